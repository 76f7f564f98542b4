import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { addAddresses } from '../../../agent/netlink/address.js';
import { addLinks, setLink } from '../../../agent/netlink/link.js';
import { addRoutes, deleteRoutes, listRoutes, replaceRoutes, type Route } from '../../../agent/netlink/route.js';
import { ipJson, NetnsSet } from '../../support/netns.js';
import { rejection } from '../../support/netlink-error.js';

interface IpRoute {
  type?: string;
  dst: string;
  gateway?: string;
  dev?: string;
  protocol?: string;
  scope?: string;
  prefsrc?: string;
  metric?: number;
  table?: string;
  metrics?: { mtu?: number }[];
}

const PROTO: Record<string, number> = { kernel: 2, boot: 3, static: 4 };
const SCOPE: Record<string, number> = { global: 0, link: 253, host: 254 };

async function ipRoutes(ns: string, family: 4 | 6, table: string): Promise<IpRoute[]> {
  return ipJson<IpRoute[]>(ns, [`-${family}`, '-d', 'route', 'show', 'table', table]);
}

/** Compares one route read through the addon with what `ip -d -j route show` printed for it. */
function expectSame(o: Route, s: IpRoute): void {
  expect(o.dst).toBe(s.dst);
  expect(o.type).toBe(s.type ?? 'unicast');
  expect(o.gateway).toBe(s.gateway ?? null);
  expect(o.dev).toBe(s.dev ?? null);
  expect(o.src).toBe(s.prefsrc ?? null);
  expect(o.protocol).toBe(PROTO[s.protocol ?? ''] ?? Number(s.protocol));
  if (o.family === 4) expect(o.scope).toBe(SCOPE[s.scope ?? 'global']);
  expect(o.metric ?? 0).toBe(s.metric ?? 0);
  expect(o.mtu).toBe(s.metrics?.find((m) => m.mtu !== undefined)?.mtu ?? null);
}


describe('routes (privileged)', () => {
  const set = new NetnsSet();
  let ns: string;
  const o = () => ({ netns: ns });

  beforeEach(async () => {
    ns = await set.add('vrt');
    await addLinks([{ name: 'v1', kind: 'veth', up: true, peer: { name: 'v2', netns: ns } }], { netns: ns });
    await setLink('v2', { up: true }, { netns: ns });
    await addAddresses(
      [
        { dev: 'v1', address: '192.0.2.1/24' },
        { dev: 'v1', address: '2001:db8:1::1/64', noDad: true },
      ],
      { netns: ns },
    );
  });
  afterEach(() => set.cleanup());

  it('addRoutes() installs IPv4 and IPv6 routes in a table above 255 that ip -d route show reports field by field', async () => {
    await addRoutes(
      [
        { dst: '10.20.0.0/16', dev: 'v1', table: 1000 },
        { dst: '10.21.0.0/16', gateway: '192.0.2.2', src: '192.0.2.1', metric: 50, mtu: 1400, table: 1000 },
        { dst: '10.22.0.0/16', type: 'blackhole', table: 1000 },
        { dst: 'default', family: 4, type: 'unreachable', table: 1000, metric: 9999 },
        { dst: 'fd00:20::/64', dev: 'v1', table: 1000, protocol: 'static' },
        { dst: 'fd00:21::/64', gateway: '2001:db8:1::2', dev: 'v1', metric: 300, mtu: 1380, table: 1000 },
        { dst: 'fd00:22::/64', type: 'prohibit', table: 1000 },
      ],
      o(),
    );
    for (const family of [4, 6] as const) {
      const shown = await ipRoutes(ns, family, '1000');
      const ours = await listRoutes({ family, table: 1000 }, o());
      expect(ours.map((r) => r.dst).sort()).toEqual(shown.map((s) => s.dst).sort());
      expect(ours.every((r) => r.table === 1000)).toBe(true);
      for (const s of shown) expectSame(ours.find((r) => r.dst === s.dst)!, s);
    }
    expect(ours6Dst(await listRoutes({ table: 1000 }, o()))).toContain('fd00:22::/64');
  });

  it('listRoutes() defaults to the main table and takes "all" for every table', async () => {
    await addRoutes(
      [
        { dst: '10.30.0.0/16', dev: 'v1' },
        { dst: '10.31.0.0/16', dev: 'v1', table: 77 },
      ],
      o(),
    );
    const main = await listRoutes({}, o());
    expect(main.every((r) => r.table === 254)).toBe(true);
    expect(main.map((r) => r.dst)).toContain('10.30.0.0/16');
    expect(main.map((r) => r.dst)).not.toContain('10.31.0.0/16');
    const shownMain = await ipRoutes(ns, 4, 'main');
    for (const s of shownMain) expectSame(main.find((r) => r.dst === s.dst && r.family === 4)!, s);
    const all = await listRoutes({ table: 'all' }, o());
    expect(all.map((r) => r.dst)).toEqual(expect.arrayContaining(['10.30.0.0/16', '10.31.0.0/16']));
    expect(all.some((r) => r.table === 255)).toBe(true); // the local table
    expect(await listRoutes({ table: 4242 }, o())).toEqual([]);
    expect((await listRoutes({ dev: 'v2' }, o())).every((r) => r.dev === 'v2')).toBe(true);
  });

  it('replaceRoutes() creates and then changes routes in place (metric-keyed for IPv6)', async () => {
    await replaceRoutes(
      [
        { dst: '10.40.0.0/16', dev: 'v1', table: 500 },
        { dst: 'fd00:40::/64', dev: 'v1', table: 500 },
      ],
      o(),
    );
    await replaceRoutes(
      [
        { dst: '10.40.0.0/16', gateway: '192.0.2.9', mtu: 1300, table: 500 },
        { dst: 'fd00:40::/64', gateway: '2001:db8:1::9', dev: 'v1', mtu: 1300, table: 500 },
      ],
      o(),
    );
    for (const family of [4, 6] as const) {
      const shown = await ipRoutes(ns, family, '500');
      expect(shown).toHaveLength(1);
      const ours = await listRoutes({ family, table: 500 }, o());
      expect(ours).toHaveLength(1);
      expectSame(ours[0]!, shown[0]!);
      expect(ours[0]!.mtu).toBe(1300);
      expect(ours[0]!.gateway).toBe(family === 4 ? '192.0.2.9' : '2001:db8:1::9');
    }
  });

  it('a batch failing at index k (duplicate, EEXIST) removes routes 0..k-1 again', async () => {
    await addRoutes([{ dst: '10.50.0.0/16', dev: 'v1', table: 600 }], o());
    const before4 = await ipRoutes(ns, 4, '600');
    const err = await rejection(
      addRoutes(
        [
          { dst: '10.51.0.0/16', dev: 'v1', table: 600 },
          { dst: 'fd00:51::/64', dev: 'v1', table: 600 },
          { dst: '10.50.0.0/16', dev: 'v1', table: 600 },
          { dst: '10.52.0.0/16', dev: 'v1', table: 600 },
        ],
        o(),
      ),
    );
    expect(err.code).toBe('EEXIST');
    expect(err.index).toBe(2);
    expect(err.message).toContain('10.50.0.0/16');
    expect(await ipRoutes(ns, 4, '600')).toEqual(before4);
    expect(await ipRoutes(ns, 6, '600')).toEqual([]);
  });

  it('a gateway the kernel cannot reach fails with its extended-ack text and nothing stays applied', async () => {
    const err = await rejection(
      addRoutes(
        [
          { dst: '10.60.0.0/16', dev: 'v1', table: 700 },
          { dst: '10.61.0.0/16', gateway: '203.0.113.1', table: 700 },
        ],
        o(),
      ),
    );
    expect(err.code).toBe('ENETUNREACH');
    expect(err.index).toBe(1);
    expect(err.extack).toBeTruthy();
    expect(err.message).toContain(err.extack!);
    expect(await ipRoutes(ns, 4, '700')).toEqual([]);
  });

  it('a missing device is ENODEV naming it, before any route is installed', async () => {
    const err = await rejection(
      addRoutes(
        [
          { dst: '10.70.0.0/16', dev: 'v1' },
          { dst: 'fd00:70::/64', dev: 'ghost0' },
        ],
        o(),
      ),
    );
    expect(err.code).toBe('ENODEV');
    expect(err.index).toBe(1);
    expect(err.message).toContain('"ghost0"');
    expect((await ipRoutes(ns, 4, 'main')).map((r) => r.dst)).not.toContain('10.70.0.0/16');
  });

  it('an unknown namespace is ENOENT', async () => {
    const err = await rejection(addRoutes([{ dst: '10.0.0.0/8', dev: 'v1' }], { netns: 'veil-no-such-ns' }));
    expect(err.code).toBe('ENOENT');
  });

  it('deleteRoutes() removes IPv4 and IPv6 routes; missing ones fail ESRCH unless ignoreMissing', async () => {
    const routes = [
      { dst: '10.80.0.0/16', dev: 'v1', table: 800 },
      { dst: 'fd00:80::/64', dev: 'v1', table: 800 },
    ];
    await addRoutes(routes, o());
    await deleteRoutes(routes, o());
    expect(await ipRoutes(ns, 4, '800')).toEqual([]);
    expect(await ipRoutes(ns, 6, '800')).toEqual([]);
    const err = await rejection(deleteRoutes(routes, o()));
    expect(err.code).toBe('ESRCH');
    expect(err.index).toBe(0);
    await addRoutes([{ dst: '10.81.0.0/16', dev: 'v1', table: 800 }], o());
    await deleteRoutes([...routes, { dst: '10.81.0.0/16', table: 800 }], { ...o(), ignoreMissing: true });
    expect(await ipRoutes(ns, 4, '800')).toEqual([]);
  });

  it('installs, lists and deletes 10,000 routes in one call each', async () => {
    const routes = Array.from({ length: 10_000 }, (_, i) => ({ dst: `10.${100 + (i >> 8)}.${i & 255}.0/24`, dev: 'v1', table: 900 }));
    await addRoutes(routes, o());
    expect(await listRoutes({ table: 900 }, o())).toHaveLength(10_000);
    const shown = await ipRoutes(ns, 4, '900');
    expect(shown).toHaveLength(10_000);
    await replaceRoutes(routes.map((r) => ({ ...r, mtu: 1400 })), o());
    expect((await listRoutes({ table: 900 }, o())).every((r) => r.mtu === 1400)).toBe(true);
    await deleteRoutes(routes, o());
    expect(await listRoutes({ table: 900 }, o())).toEqual([]);
  });
});

function ours6Dst(routes: Route[]): string[] {
  return routes.filter((r) => r.family === 6).map((r) => r.dst);
}
