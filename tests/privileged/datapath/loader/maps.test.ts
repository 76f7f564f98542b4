import { describe, expect, it } from 'vitest';
import { BpfMap, openShared } from '../../../../agent/datapath/bpf-map.js';
import { ConfigMap } from '../../../../agent/datapath/config-map.js';
import { Counters } from '../../../../agent/datapath/counters.js';
import { loadObject, testRun } from '../../../../agent/datapath/datapath.js';
import { openEndpointMap } from '../../../../agent/datapath/endpoints.js';
import { EventReader, type DatapathEvent } from '../../../../agent/datapath/events.js';
import { Ipcache } from '../../../../agent/datapath/ipcache.js';
import { bytesCodec, endpointKeyCodec, policyKeyCodec, policyValueCodec, u32Codec, type PolicyKey } from '../../../../agent/datapath/layout.js';
import { openPolicyMap } from '../../../../agent/datapath/policy-map.js';
import { Hook, Reason } from '../../../../agent/datapath/reasons.js';
import { ValidationError } from '../../../../agent/errors.js';
import { fixtureObject, ipv4UdpFrame, pinDirPerTest } from '../../../support/bpf.js';
import { eventually, run } from '../../../support/netns.js';

const pinDir = pinDirPerTest('ld');

async function withFixture<T>(fn: (obj: Awaited<ReturnType<typeof loadObject>>, dir: string) => Promise<T>): Promise<T> {
  const dir = pinDir();
  const obj = await loadObject(fixtureObject('loader-fixture'), { pinDir: dir });
  try {
    return await fn(obj, dir);
  } finally {
    obj.close();
  }
}

function policyKeys(n: number): PolicyKey[] {
  return Array.from({ length: n }, (_, i) => ({ subject: 256 + (i % 1000), peer: 300 + Math.floor(i / 1000), dport: 80, proto: 6, direction: 'ingress' as const }));
}

describe('BpfMap batched operations', () => {
  it('updates, iterates and deletes 10,000 entries in batches, and bpftool agrees', async () => {
    await withFixture(async (obj, dir) => {
      const policy = await openPolicyMap(obj);
      const keys = policyKeys(10_000);
      const r = await policy.setMany(keys.map((k, i) => [k, { verdict: i % 2 ? 'deny' : 'allow', flags: i % 4 }] as const));
      expect(r).toEqual({ count: 10_000, method: 'batch' });
      const all = await policy.entries();
      expect(all).toHaveLength(10_000);
      const byKey = new Map(all.map(([k, v]) => [JSON.stringify(k), v]));
      keys.forEach((k, i) => expect(byKey.get(JSON.stringify(k))).toEqual({ verdict: i % 2 ? 'deny' : 'allow', flags: i % 4 }));
      // Same contents through get_next_key + lookup, and through bpftool on the pinned map.
      expect(await policy.entries({ method: 'iterate' })).toHaveLength(10_000);
      const tool = JSON.parse((await run('bpftool', ['-j', 'map', 'dump', 'pinned', `${dir}/veil_policy`])).stdout) as unknown[];
      expect(tool).toHaveLength(10_000);
      // Deleting skips absent keys: delete half, then all.
      expect(await policy.deleteMany(keys.slice(0, 5_000))).toEqual({ count: 5_000, method: 'batch' });
      expect(await policy.deleteMany(keys)).toEqual({ count: 5_000, method: 'batch' });
      expect(await policy.entries()).toEqual([]);
    });
  });

  it('a batched update refused by the kernel names the entry it stopped at', async () => {
    await withFixture(async (obj) => {
      // veil_counters is a per-CPU array of HOOK_MAX * REASON_MAX entries: index 256 is out of range.
      const { bpfAddon } = await import('../../../../agent/datapath/native.js');
      const info = await bpfAddon().bpfMapInfo(obj.map('veil_counters').fd);
      const vs = 16 * info.possibleCpus;
      const keys = Buffer.from(Uint32Array.of(1, 2, 256, 3).buffer);
      const err = await bpfAddon().bpfMapUpdateBatch(obj.map('veil_counters').fd, keys, Buffer.alloc(4 * vs), {}).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'E2BIG', index: 2 });
    });
  });

  it('the per-entry fallback gives the same result', async () => {
    await withFixture(async (obj) => {
      const policy = await openPolicyMap(obj);
      const keys = policyKeys(500);
      expect(await policy.setMany(keys.map((k) => [k, { verdict: 'allow', flags: 0 }] as const), { method: 'iterate' })).toEqual({ count: 500, method: 'iterate' });
      expect((await policy.entries({ method: 'iterate' })).length).toBe(500);
      expect(await policy.deleteMany(keys, { method: 'iterate' })).toEqual({ count: 500, method: 'iterate' });
    });
  });

  it('a batch that fails in the kernel names the failing entry', async () => {
    await withFixture(async (obj) => {
      const policy = await openPolicyMap(obj);
      const keys = policyKeys(3);
      await policy.set(keys[1]!, { verdict: 'allow', flags: 0 });
      const err = await policy.setMany(keys.map((k) => [k, { verdict: 'deny', flags: 0 }] as const), { mode: 'create' }).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'EEXIST', index: 1 });
      expect(await policy.get(keys[0]!)).toEqual({ verdict: 'deny', flags: 0 });
      expect(await policy.get(keys[1]!)).toEqual({ verdict: 'allow', flags: 0 });
    });
  });

  it('opens a pinned map by path and refuses codecs of the wrong size', async () => {
    await withFixture(async (obj, dir) => {
      const eps = await openEndpointMap(dir);
      await eps.set(12, { identity: 4242, flags: 0, ipv4: '10.0.0.12' });
      expect(await (await openEndpointMap(obj)).get(12)).toEqual({ identity: 4242, flags: 1, ipv4: '10.0.0.12' });
      expect(await eps.get(13)).toBeUndefined();
      expect(await eps.delete(12)).toBe(true);
      expect(await eps.delete(12)).toBe(false);
      await expect(BpfMap.open(`${dir}/veil_endpoints`, endpointKeyCodec, bytesCodec(28))).rejects.toMatchObject({ code: 'EINVAL', message: expect.stringContaining('32-byte values') });
      await expect(BpfMap.open(`${dir}/veil_policy`, u32Codec, policyValueCodec)).rejects.toBeInstanceOf(ValidationError);
      await expect(BpfMap.open(`${dir}/nope`, u32Codec, policyValueCodec)).rejects.toMatchObject({ code: 'ENOENT' });
      await expect(openShared(obj, 'veil_policy', policyKeyCodec, policyValueCodec)).resolves.toBeInstanceOf(BpfMap);
    });
  });

  it('the raw addon refuses keys and values of the wrong size with EINVAL', async () => {
    await withFixture(async (obj) => {
      const { bpfAddon } = await import('../../../../agent/datapath/native.js');
      await expect(bpfAddon().bpfMapUpdate(obj.map('veil_endpoints').fd, Buffer.alloc(3), Buffer.alloc(32), 0)).rejects.toMatchObject({ code: 'EINVAL', message: expect.stringContaining('Key is 3 bytes') });
      await expect(bpfAddon().bpfMapUpdate(obj.map('veil_endpoints').fd, Buffer.alloc(4), Buffer.alloc(31), 0)).rejects.toMatchObject({ code: 'EINVAL' });
      await expect(bpfAddon().bpfMapUpdateBatch(obj.map('veil_endpoints').fd, Buffer.alloc(6), Buffer.alloc(64), {})).rejects.toMatchObject({ code: 'EINVAL' });
    });
  });
});

describe('a closed object', () => {
  it('refuses calls on its maps and programs instead of using fd numbers that may be reused', async () => {
    const dir = pinDir();
    const obj = await loadObject(fixtureObject('loader-fixture'), { pinDir: dir });
    const policy = await openPolicyMap(obj);
    const byPath = await openPolicyMap(dir);
    obj.close();
    await expect(policy.get(policyKeys(1)[0]!)).rejects.toMatchObject({ code: 'EBADF', message: expect.stringContaining('is closed') });
    await expect(policy.entries()).rejects.toMatchObject({ code: 'EBADF' });
    await expect(testRun([...obj.programs.values()][0]!, ipv4UdpFrame('10.0.0.1', '10.0.0.2'))).rejects.toMatchObject({ code: 'EBADF' });
    expect(() => EventReader.open([...obj.maps.values()].find((m) => m.name === 'veil_events')!)).toThrow(expect.objectContaining({ code: 'EBADF' }));
    // A map opened by its pinned path does not depend on the object.
    expect(await byPath.entries()).toEqual([]);
  });
});

describe('typed maps against the fixture program', () => {
  it('the ipcache tiers, the config and per-CPU counters are what the program sees', async () => {
    await withFixture(async (obj, dir) => {
      const ipc = await Ipcache.open(dir);
      await ipc.setMany([
        ['10.0.0.2', { identity: 777, nodeIndex: 3, keySlot: 1, flags: 2, tunnelEndpoint: '192.168.0.3' }],
        ['10.1.0.0/16', { identity: 2, nodeIndex: 0, keySlot: 0, flags: 0 }],
        ['fd00::2/128', { identity: 778, nodeIndex: 3, keySlot: 1, flags: 2, tunnelEndpoint: 'fd10::3' }],
        ['fd00:1::/64', { identity: 2, nodeIndex: 0, keySlot: 0, flags: 0 }],
      ]);
      expect((await ipc.entries()).map(([k]) => k).sort()).toEqual(['10.0.0.2/32', '10.1.0.0/16', 'fd00:1::/64', 'fd00::2/128']);
      expect(await ipc.get('10.1.0.0/16')).toEqual({ identity: 2, nodeIndex: 0, keySlot: 0, flags: 0 });

      const cfg = await ConfigMap.open(obj);
      expect(await cfg.get()).toEqual({ flags: 0, wireguardIfindex: [0, 0], nodeIdentity: 0, wireguardPort: 0, nodeIndex: 0 });
      await cfg.set({ flags: 2, wireguardIfindex: [5, 6], nodeIdentity: 0x42, wireguardPort: 51871, nodeIndex: 1 });

      const events: DatapathEvent[] = [];
      const reader = EventReader.open(obj.map('veil_events'), { onEvent: (e) => events.push(e) });
      try {
        const r = await testRun(obj.program('fixture_pass'), ipv4UdpFrame('10.0.0.1', '10.0.0.2'), { repeat: 10 });
        expect(r.mark).toBe(0x00420e00); // the config's node identity reached the program
        await testRun(obj.program('fixture_drop'), ipv4UdpFrame('10.0.0.1', '10.0.0.9'), { repeat: 3 });
        await eventually(() => events.length >= 13, { what: '13 events' });
      } finally {
        reader.close();
      }
      const flows = events.filter((e) => e.kind === 'flow');
      const drops = events.filter((e) => e.kind === 'drop');
      expect(flows).toHaveLength(10);
      expect(flows[0]).toMatchObject({ reasonName: 'FWD_LOCAL', hookName: 'FROM_POD', dstIdentity: 777, srcIdentity: 0x42, family: 4, proto: 17, saddr: '10.0.0.1', daddr: '10.0.0.2' });
      expect(drops).toHaveLength(3);
      expect(drops[0]).toMatchObject({ reasonName: 'DROP_POLICY_DENY', dstIdentity: 0, daddr: '10.0.0.9' });

      const counters = await Counters.open(dir);
      expect(await counters.get(Hook.FROM_POD, Reason.FWD_LOCAL)).toEqual({ packets: 10n, bytes: 10n * 58n });
      const rows = await counters.read();
      expect(rows).toEqual([
        { hook: 'FROM_POD', reason: 'FWD_LOCAL', drop: false, packets: 10n, bytes: 580n },
        { hook: 'FROM_POD', reason: 'DROP_POLICY_DENY', drop: true, packets: 3n, bytes: 174n },
      ]);
    });
  });

  it('events as an async iterable end when the reader closes', async () => {
    await withFixture(async (obj) => {
      const reader = EventReader.open(obj.map('veil_events'));
      await testRun(obj.program('fixture_drop'), ipv4UdpFrame('10.0.0.1', '10.0.0.3'), { repeat: 2 });
      const got: DatapathEvent[] = [];
      for await (const e of reader) {
        got.push(e);
        if (got.length === 2) break; // return() closes the reader
      }
      expect(got.map((e) => e.daddr)).toEqual(['10.0.0.3', '10.0.0.3']);
      expect(reader.stats).toEqual({ delivered: 2, malformed: 0, discarded: 0 });
      expect(() => EventReader.open(obj.map('veil_policy'))).toThrow(ValidationError);
    });
  });
});
