/**
 * Identity allocation on a real etcd (Debian's etcd-server, started by the test): the issue's
 * acceptance test — 8 allocators, each with its own etcd client, racing over the same 1,000
 * label sets — and release after the grace period with a live reference protecting an id.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IdentityAllocator, type Identity } from '../../../agent/identity/allocator.js';
import { IdentityReleasedError } from '../../../agent/identity/errors.js';
import { canonicalLabelSet, type LabelSet } from '../../../agent/identity/labels.js';
import { IdentityKeys, parseById, parseByLabels } from '../../../agent/identity/records.js';
import { IdentityReferences } from '../../../agent/identity/references.js';
import { IdentityReleaser } from '../../../agent/identity/release.js';
import { EtcdStore, openEtcdStore } from '../../../agent/store/etcd-store.js';
import { EtcdServer } from '../../support/etcd.js';
import { eventually } from '../../support/netns.js';

const ALLOCATORS = 8;
const LABEL_SETS = 1_000;
/** Allocations each allocator keeps in flight. */
const IN_FLIGHT = 16;

function labelSets(n: number): LabelSet[] {
  return Array.from({ length: n }, (_, i) =>
    canonicalLabelSet({
      namespace: `ns-${i % 10}`,
      serviceAccount: `sa-${i % 7}`,
      podLabels: { app: `app-${i}`, 'pod-template-hash': `h${i}` },
      namespaceLabels: { team: `team-${i % 3}` },
    }),
  );
}

/** A deterministic permutation per allocator, so they meet the same label sets in different orders. */
function shuffled<T>(items: T[], seed: number): T[] {
  const out = [...items];
  let x = seed * 2654435761 + 1;
  for (let i = out.length - 1; i > 0; i--) {
    x = (x * 1103515245 + 12345) >>> 0;
    const j = x % (i + 1);
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

async function allocateAll(alloc: IdentityAllocator, sets: LabelSet[]): Promise<Map<string, number>> {
  const result = new Map<string, number>();
  let next = 0;
  const worker = async () => {
    for (;;) {
      const set = sets[next++];
      if (!set) return;
      const got: Identity = await alloc.allocate(set);
      result.set(set.hash, got.id);
    }
  };
  await Promise.all(Array.from({ length: IN_FLIGHT }, worker));
  return result;
}

describe('identity allocation on a real etcd', () => {
  let etcd: EtcdServer;
  const stores: EtcdStore[] = [];
  const open = async () => {
    const s = await openEtcdStore({ endpoints: [etcd.clientUrl], requestTimeoutMs: 10_000 });
    stores.push(s);
    return s;
  };

  beforeAll(async () => {
    etcd = await EtcdServer.start();
  });
  afterAll(async () => {
    await Promise.all(stores.map((s) => s.close()));
    await etcd?.cleanup();
  });

  it('8 allocators racing over 1,000 label sets produce exactly 1,000 ids and identical mappings everywhere', async () => {
    const prefix = '/veil-race/identities/';
    const sets = labelSets(LABEL_SETS);
    const allocators = await Promise.all(
      Array.from({ length: ALLOCATORS }, async () => new IdentityAllocator({ store: await open(), prefix })),
    );
    const results = await Promise.all(allocators.map((a, i) => allocateAll(a, shuffled(sets, i + 1))));

    // Exactly one allocator created each mapping; the others converged on it.
    expect(allocators.reduce((n, a) => n + a.stats.created, 0)).toBe(LABEL_SETS);
    const lost = allocators.reduce((n, a) => n + a.stats.claimsLost + a.stats.mappingsLost, 0);
    console.info(`8 allocators: ${lost} compare-and-swap races lost and recovered`);

    const first = results[0]!;
    expect(first.size).toBe(LABEL_SETS);
    for (const r of results) expect(r).toEqual(first);
    const ids = new Set(first.values());
    expect(ids.size).toBe(LABEL_SETS);
    for (const id of ids) {
      expect(id).toBeGreaterThanOrEqual(256);
      expect(id).toBeLessThanOrEqual(65535);
    }

    // The store holds exactly one claim and one mapping per label set, and they agree.
    const store = stores[0]!;
    const keys = new IdentityKeys(prefix);
    const records = (await store.list(keys.byIdPrefix())).items.map((kv) => parseById(keys, kv));
    const mappings = (await store.list(`${prefix}by-labels/`)).items;
    expect(records).toHaveLength(LABEL_SETS);
    expect(mappings).toHaveLength(LABEL_SETS);
    for (const r of records) expect(first.get(r.labels.hash)).toBe(r.id);
    for (const kv of mappings) expect(first.get(kv.key.slice(`${prefix}by-labels/`.length))).toBe(parseByLabels(kv));

    // A ninth process that starts afterwards reads the same answers.
    const late = new IdentityAllocator({ store: await open(), prefix });
    for (const set of sets.slice(0, 50)) expect((await late.lookupByLabels(set))?.id).toBe(first.get(set.hash));
  });

  it('releases an identity only after the grace period, while a live reference protects another', async () => {
    const prefix = '/veil-release/identities/';
    const store = await open();
    const node = await open();
    const alloc = new IdentityAllocator({ store: node, prefix });
    const refs = new IdentityReferences(node, prefix);
    const releaser = new IdentityReleaser(store, prefix);
    const [kept, dropped] = labelSets(2);
    const k = await alloc.allocate(kept!);
    const d = await alloc.allocate(dropped!);
    const lease = await node.grantLease(5);
    await refs.addReference(k.id, kept!, 'worker-1', lease);
    await refs.addReference(d.id, dropped!, 'worker-1', lease);

    const grace = 800;
    // Both referenced: nothing happens however long we wait.
    expect((await releaser.releaseUnused({ graceMs: grace })).pending).toEqual([]);
    await refs.removeReference(d.id, 'worker-1');

    const t0 = Date.now();
    expect((await releaser.releaseUnused({ graceMs: grace })).pending).toEqual([d.id]);
    // Within the grace period the unreferenced one is still there.
    expect((await releaser.releaseUnused({ graceMs: grace })).released).toEqual([]);
    expect(await alloc.lookupById(d.id)).not.toBeNull();
    await eventually(async () => {
      expect((await releaser.releaseUnused({ graceMs: grace })).released).toEqual([d.id]);
      return true;
    });
    expect(Date.now() - t0).toBeGreaterThanOrEqual(grace);
    expect(await alloc.lookupById(d.id)).toBeNull();
    expect(await alloc.lookupByLabels(dropped!)).toBeNull();
    expect((await alloc.lookupById(k.id))?.state).toBe('active');
    expect(await refs.nodesReferencing(k.id)).toEqual(['worker-1']);

    // The released id cannot be referenced any more; the protected one still can.
    const err = await refs.addReference(d.id, dropped!, 'worker-2', lease).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(IdentityReleasedError);
    expect((await refs.addReference(k.id, kept!, 'worker-2', lease)).state).toBe('active');

    // When the node's lease ends its references go, and after the grace period so does the id.
    await lease.revoke();
    await eventually(async () => (await refs.nodesReferencing(k.id)).length === 0);
    expect((await releaser.releaseUnused({ graceMs: grace })).pending).toEqual([k.id]);
    await eventually(async () => {
      expect((await releaser.releaseUnused({ graceMs: grace })).released).toEqual([k.id]);
      return true;
    });
    expect((await store.list(prefix)).items).toEqual([]);
  });
});
