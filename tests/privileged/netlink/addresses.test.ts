import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { addAddresses, deleteAddresses, listAddresses } from '../../../agent/netlink/address.js';
import { addLinks } from '../../../agent/netlink/link.js';
import { ipJson, NetnsSet } from '../../support/netns.js';
import { rejection } from '../../support/netlink-error.js';

interface IpAddr {
  ifname: string;
  addr_info: { family: string; local: string; prefixlen: number; scope: string; address?: string; broadcast?: string; label?: string }[];
}

async function ipAddrs(ns: string, dev: string): Promise<string[]> {
  const shown = await ipJson<IpAddr[]>(ns, ['addr', 'show', 'dev', dev]);
  return shown.flatMap((i) => i.addr_info.filter((a) => a.scope !== 'link').map((a) => `${a.local}/${a.prefixlen}`)).sort();
}


describe('addresses (privileged)', () => {
  const set = new NetnsSet();
  let ns: string;

  beforeEach(async () => {
    ns = await set.add('vad');
    await addLinks([{ name: 'v1', kind: 'veth', up: true, peer: { name: 'v2' } }], { netns: ns });
  });
  afterEach(() => set.cleanup());

  it('addAddresses() adds IPv4 and IPv6 addresses that ip addr show reports field by field', async () => {
    await addAddresses(
      [
        { dev: 'v1', address: '10.5.0.1/24', broadcast: '10.5.0.255', label: 'v1:veil' },
        { dev: 'v1', address: 'fd00:5::1/64', noDad: true },
        { dev: 'v1', address: '10.6.0.1/32', peer: '10.6.0.2' },
      ],
      { netns: ns },
    );
    const shown = (await ipJson<IpAddr[]>(ns, ['addr', 'show', 'dev', 'v1']))[0]!.addr_info;
    const ours = await listAddresses({ dev: 'v1' }, { netns: ns });
    for (const want of ['10.5.0.1/24', 'fd00:5::1/64', '10.6.0.1/32']) {
      const o = ours.find((a) => a.address === want)!;
      const s = shown.find((a) => `${a.local}/${a.prefixlen}` === want)!;
      expect(o.dev).toBe('v1');
      expect(o.family).toBe(s.family === 'inet6' ? 6 : 4);
      expect(o.broadcast).toBe(s.broadcast ?? null);
      expect(o.label).toBe(s.label ?? null);
      expect(o.peer).toBe(s.address && s.address !== s.local ? s.address : null);
      expect(o.scope).toBe(s.scope === 'global' ? 0 : -1);
    }
    expect(ours.find((a) => a.address === '10.5.0.1/24')?.label).toBe('v1:veil');
    expect(ours.find((a) => a.address === '10.6.0.1/32')?.peer).toBe('10.6.0.2');
    expect((await listAddresses({ family: 6, dev: 'v1' }, { netns: ns })).every((a) => a.family === 6)).toBe(true);
  });

  it('a duplicate address is EEXIST and the batch leaves nothing half-applied', async () => {
    await addAddresses([{ dev: 'v1', address: '10.5.0.1/24' }], { netns: ns });
    const before = await ipAddrs(ns, 'v1');
    const err = await rejection(
      addAddresses(
        [
          { dev: 'v1', address: '10.7.0.1/24' },
          { dev: 'v1', address: 'fd00:7::1/64', noDad: true },
          { dev: 'v1', address: '10.5.0.1/24' },
        ],
        { netns: ns },
      ),
    );
    expect(err.code).toBe('EEXIST');
    expect(err.index).toBe(2);
    expect(err.message).toContain('"10.5.0.1/24"');
    expect(await ipAddrs(ns, 'v1')).toEqual(before);
  });

  it('a missing device is ENODEV naming it and nothing is added', async () => {
    const err = await rejection(
      addAddresses(
        [
          { dev: 'v1', address: '10.8.0.1/24' },
          { dev: 'ghost0', address: '10.9.0.1/24' },
        ],
        { netns: ns },
      ),
    );
    expect(err.code).toBe('ENODEV');
    expect(err.index).toBe(1);
    expect(err.message).toContain('"ghost0"');
    expect(await ipAddrs(ns, 'v1')).toEqual([]);
  });

  it('deleteAddresses() removes IPv4 and IPv6 addresses', async () => {
    const addrs = [
      { dev: 'v1', address: '10.5.0.1/24' },
      { dev: 'v1', address: 'fd00:5::1/64', noDad: true },
    ];
    await addAddresses(addrs, { netns: ns });
    expect(await ipAddrs(ns, 'v1')).toEqual(['10.5.0.1/24', 'fd00:5::1/64']);
    await deleteAddresses(addrs, { netns: ns });
    expect(await ipAddrs(ns, 'v1')).toEqual([]);
  });
});
