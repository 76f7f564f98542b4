import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { addLinks, deleteLinks, findLink, getLink, listLinks, setLink } from '../../../agent/netlink/link.js';
import { eventually, ipJson, NetnsSet, run } from '../../support/netns.js';
import { rejection } from '../../support/netlink-error.js';

interface IpLink {
  ifindex: number;
  ifname: string;
  flags: string[];
  mtu: number;
  master?: string;
  operstate: string;
  address?: string;
  linkinfo?: { info_kind?: string };
}

async function ipLinks(ns: string): Promise<IpLink[]> {
  return ipJson<IpLink[]>(ns, ['-d', 'link', 'show']);
}


describe('links (privileged)', () => {
  const set = new NetnsSet();
  let a: string;
  let b: string;

  beforeEach(async () => {
    a = await set.add('vla');
    b = await set.add('vlb');
  });
  afterEach(() => set.cleanup());

  it('addLinks() creates a bridge and a veth enslaved to it with its peer in another namespace, as ip -d link shows', async () => {
    await addLinks(
      [
        { name: 'br0', kind: 'bridge', up: true },
        { name: 'veth-a', kind: 'veth', mtu: 1420, up: true, master: 'br0', peer: { name: 'veth-b', netns: b } },
      ],
      { netns: a },
    );
    const shown = await ipLinks(a);
    const veth = shown.find((l) => l.ifname === 'veth-a')!;
    const ours = await getLink('veth-a', { netns: a });
    expect(ours.ifindex).toBe(veth.ifindex);
    expect(ours.kind).toBe(veth.linkinfo?.info_kind);
    expect(ours.kind).toBe('veth');
    expect(ours.mtu).toBe(veth.mtu);
    expect(ours.mtu).toBe(1420);
    expect(ours.up).toBe(veth.flags.includes('UP'));
    expect(ours.up).toBe(true);
    // The operational state settles asynchronously (linkwatch): compare once both agree.
    await eventually(async () => (await getLink('veth-a', { netns: a })).operState === (await ipLinks(a)).find((l) => l.ifname === 'veth-a')!.operstate, {
      what: 'operState to match ip link show',
    });
    expect(ours.mac).toBe(veth.address);
    expect(veth.master).toBe('br0');
    expect(ours.masterIndex).toBe(shown.find((l) => l.ifname === 'br0')!.ifindex);

    const peer = (await ipLinks(b)).find((l) => l.ifname === 'veth-b')!;
    expect(peer.linkinfo?.info_kind).toBe('veth');
    expect(peer.mtu).toBe(1420);
    expect((await getLink('veth-b', { netns: b })).ifindex).toBe(peer.ifindex);
  });

  it('listLinks() returns exactly the links ip link show lists, field by field', async () => {
    await addLinks([{ name: 'v1', kind: 'veth', peer: { name: 'v2' } }], { netns: a });
    const ours = await listLinks({ netns: a });
    const shown = await ipLinks(a);
    expect(ours.map((l) => l.name).sort()).toEqual(shown.map((l) => l.ifname).sort());
    for (const s of shown) {
      const o = ours.find((l) => l.name === s.ifname)!;
      expect({ ifindex: o.ifindex, mtu: o.mtu, up: o.up, mac: o.mac, kind: o.kind, operState: o.operState }).toEqual({
        ifindex: s.ifindex,
        mtu: s.mtu,
        up: s.flags.includes('UP'),
        mac: s.address ?? null,
        kind: s.linkinfo?.info_kind ?? null,
        operState: s.operstate,
      });
    }
  });

  it('a batch failing at index k removes the links it created before k and reports k with the kernel message', async () => {
    await run('ip', ['-n', a, 'link', 'add', 'taken', 'type', 'bridge']);
    const before = (await ipLinks(a)).map((l) => l.ifname).sort();
    const err = await rejection(
      addLinks(
        [
          { name: 'new0', kind: 'bridge' },
          { name: 'new1', kind: 'veth', peer: { name: 'new1p', netns: b } },
          { name: 'taken', kind: 'bridge' },
          { name: 'never', kind: 'bridge' },
        ],
        { netns: a },
      ),
    );
    expect(err.code).toBe('EEXIST');
    expect(err.index).toBe(2);
    expect(err.message).toContain('"taken"');
    expect((await ipLinks(a)).map((l) => l.ifname).sort()).toEqual(before);
    expect((await ipLinks(b)).map((l) => l.ifname)).toEqual(['lo']);
  });

  it('an unsupported kind fails with the kernel extended-ack text (no kernel WireGuard on the host)', async () => {
    const hasWg = await run('ip', ['-n', a, 'link', 'add', 'probe', 'type', 'wireguard']).then(
      () => true,
      () => false,
    );
    if (hasWg) {
      // Kernel with WireGuard: the addon creates it and ip agrees.
      await run('ip', ['-n', a, 'link', 'del', 'probe']);
      await addLinks([{ name: 'wg0', kind: 'wireguard' }], { netns: a });
      expect((await ipLinks(a)).find((l) => l.ifname === 'wg0')?.linkinfo?.info_kind).toBe('wireguard');
      return;
    }
    const err = await rejection(addLinks([{ name: 'wg0', kind: 'wireguard' }], { netns: a }));
    expect(err.code).toBe('EOPNOTSUPP');
    expect(err.extack).toBe('Unknown device type');
    expect(err.message).toContain('Unknown device type');
    expect(err.index).toBe(0);
  });

  it('getLink() rejects a missing link with ENODEV and findLink() returns null', async () => {
    const err = await rejection(getLink('nope0', { netns: a }));
    expect(err.code).toBe('ENODEV');
    expect(err.message).toContain('"nope0"');
    expect(await findLink('nope0', { netns: a })).toBeNull();
  });

  it('every verb rejects an unknown namespace with ENOENT naming it', async () => {
    const err = await rejection(listLinks({ netns: 'veil-no-such-ns' }));
    expect(err.code).toBe('ENOENT');
    expect(err.message).toContain('veil-no-such-ns');
    const err2 = await rejection(addLinks([{ name: 'x', kind: 'veth', peer: { name: 'y', netns: 'veil-no-such-ns' } }], { netns: a }));
    expect(err2.code).toBe('ENOENT');
    expect(err2.index).toBe(0);
    expect((await ipLinks(a)).map((l) => l.ifname)).toEqual(['lo']);
  });

  it('creating an existing link is EEXIST', async () => {
    await addLinks([{ name: 'br0', kind: 'bridge' }], { netns: a });
    expect((await rejection(addLinks([{ name: 'br0', kind: 'bridge' }], { netns: a }))).code).toBe('EEXIST');
  });

  it('setLink() changes up, MTU, name and master, as ip link shows', async () => {
    await addLinks(
      [
        { name: 'br0', kind: 'bridge' },
        { name: 'v1', kind: 'veth', peer: { name: 'v2' } },
      ],
      { netns: a },
    );
    await setLink('v1', { up: true, mtu: 1300, master: 'br0', name: 'v1new' }, { netns: a });
    let l = (await ipLinks(a)).find((x) => x.ifname === 'v1new')!;
    expect(l.flags).toContain('UP');
    expect(l.mtu).toBe(1300);
    expect(l.master).toBe('br0');
    await setLink('v1new', { up: false, master: null }, { netns: a });
    l = (await ipLinks(a)).find((x) => x.ifname === 'v1new')!;
    expect(l.flags).not.toContain('UP');
    expect(l.master).toBeUndefined();
  });

  it('setLink() moves a veth end into another namespace, renaming it there', async () => {
    await addLinks([{ name: 'v1', kind: 'veth', peer: { name: 'v2' } }], { netns: a });
    await setLink('v2', { netns: b, name: 'eth0' }, { netns: a });
    expect((await ipLinks(a)).map((l) => l.ifname).sort()).toEqual(['lo', 'v1']);
    const moved = await getLink('eth0', { netns: b });
    expect(moved.kind).toBe('veth');
    expect((await ipLinks(b)).find((l) => l.ifname === 'eth0')?.ifindex).toBe(moved.ifindex);
  });

  it('deleteLinks() removes both ends of a veth pair and fails ENODEV on a missing link', async () => {
    await addLinks([{ name: 'v1', kind: 'veth', peer: { name: 'v2' } }], { netns: a });
    await deleteLinks(['v1'], { netns: a });
    expect((await ipLinks(a)).map((l) => l.ifname)).toEqual(['lo']);
    const err = await rejection(deleteLinks(['v1'], { netns: a }));
    expect(err.code).toBe('ENODEV');
    expect(err.index).toBe(0);
  });
});
