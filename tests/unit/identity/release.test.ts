import { describe, expect, it } from 'vitest';
import { IdentityAllocator } from '../../../agent/identity/allocator.js';
import { IdentityCorruptError, IdentityReleasedError } from '../../../agent/identity/errors.js';
import { canonicalLabelSet, type LabelSet } from '../../../agent/identity/labels.js';
import { encodeById } from '../../../agent/identity/records.js';
import { IdentityReferences } from '../../../agent/identity/references.js';
import { IdentityReleaser } from '../../../agent/identity/release.js';
import type { Store } from '../../../agent/store/store.js';
import { MemoryStore } from '../../../agent/store/memory-store.js';
import { eventually } from '../../support/netns.js';
import { validationError } from '../../support/validation-error.js';

const PREFIX = '/veil/identities/';
const GRACE = 60_000;
const labels = (app: string): LabelSet => canonicalLabelSet({ namespace: 'shop', serviceAccount: 'web', podLabels: { app } });

function setup() {
  const store = new MemoryStore();
  return {
    store,
    alloc: new IdentityAllocator({ store }),
    refs: new IdentityReferences(store),
    releaser: new IdentityReleaser(store),
  };
}

/**
 * Another real client of the same MemoryStore whose list() of `prefix` first runs `race`, once:
 * a deterministic interleaving of another node's writes into the releaser's steps.
 */
function raceBeforeList(inner: MemoryStore, prefix: string, race: () => Promise<void>): Store {
  let fired = false;
  const client = new MemoryStore(inner.backend);
  return new Proxy(client, {
    get(target, prop, receiver) {
      if (prop === 'list') {
        return async (p: string) => {
          if (!fired && p === prefix) {
            fired = true;
            await race();
          }
          return target.list(p);
        };
      }
      const v = Reflect.get(target, prop, receiver) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}

describe('identity references and release', () => {
  it('releases an unreferenced identity only after the grace period, then frees its id', async () => {
    const { store, alloc, releaser } = setup();
    const a = await alloc.allocate(labels('a'));
    expect(await releaser.releaseUnused({ graceMs: GRACE, now: 1_000 })).toEqual({ released: [], pending: [a.id], aborted: [], corrupt: [] });
    expect((await releaser.releaseUnused({ graceMs: GRACE, now: 1_000 + GRACE - 1 })).pending).toEqual([a.id]);
    expect((await releaser.releaseUnused({ graceMs: GRACE, now: 1_000 + GRACE })).released).toEqual([a.id]);
    expect(await alloc.lookupById(a.id)).toBeNull();
    expect(await alloc.lookupByLabels(labels('a'))).toBeNull();
    expect((await store.list(PREFIX)).items).toEqual([]);
  });

  it('never releases an identity while a node refers to it', async () => {
    const { store, alloc, refs, releaser } = setup();
    const a = await alloc.allocate(labels('a'));
    const lease = await store.grantLease(30);
    await refs.addReference(a.id, labels('a'), 'worker-1', lease);
    expect(await refs.nodesReferencing(a.id)).toEqual(['worker-1']);
    for (const now of [0, GRACE, 10 * GRACE]) {
      expect(await releaser.releaseUnused({ graceMs: GRACE, now })).toEqual({ released: [], pending: [], aborted: [], corrupt: [] });
    }
    expect((await alloc.lookupById(a.id))?.state).toBe('active');
    await lease.revoke();
  });

  it('restarts the grace period when a reference comes and goes', async () => {
    const { store, alloc, refs, releaser } = setup();
    const a = await alloc.allocate(labels('a'));
    await releaser.releaseUnused({ graceMs: GRACE, now: 0 });
    const lease = await store.grantLease(30);
    await refs.addReference(a.id, labels('a'), 'worker-1', lease);
    await releaser.releaseUnused({ graceMs: GRACE, now: GRACE / 2 }); // referenced: marker dropped
    expect(await refs.removeReference(a.id, 'worker-1')).toBe(true);
    expect((await releaser.releaseUnused({ graceMs: GRACE, now: GRACE })).pending).toEqual([a.id]);
    expect((await releaser.releaseUnused({ graceMs: GRACE, now: 2 * GRACE - 1 })).pending).toEqual([a.id]);
    expect((await releaser.releaseUnused({ graceMs: GRACE, now: 2 * GRACE })).released).toEqual([a.id]);
    await lease.revoke();
  });

  it('drops the references of a node whose lease is lost, so its identities can be released', async () => {
    const { store, alloc, refs, releaser } = setup();
    const a = await alloc.allocate(labels('a'));
    const lease = await store.grantLease(30);
    await refs.addReference(a.id, labels('a'), 'worker-1', lease);
    store.backend.revokeLease(lease.id);
    await eventually(async () => (await refs.nodesReferencing(a.id)).length === 0);
    await releaser.releaseUnused({ graceMs: GRACE, now: 0 });
    expect((await releaser.releaseUnused({ graceMs: GRACE, now: GRACE })).released).toEqual([a.id]);
  });

  it('a reference added while the releaser re-checks wins: the release aborts', async () => {
    const { store, alloc, refs } = setup();
    const a = await alloc.allocate(labels('a'));
    const lease = await store.grantLease(30);
    // The new reference lands after the record was marked "releasing", before the re-check.
    let sawReleasing = false;
    const releaser = new IdentityReleaser(
      raceBeforeList(store, `${PREFIX}refs/${a.id}/`, async () => {
        sawReleasing = (await alloc.lookupById(a.id))?.state === 'releasing';
        await refs.addReference(a.id, labels('a'), 'worker-2', lease);
      }),
    );
    await releaser.releaseUnused({ graceMs: GRACE, now: 0 });
    const report = await releaser.releaseUnused({ graceMs: GRACE, now: GRACE });
    expect(sawReleasing).toBe(true);
    expect(report.released).toEqual([]);
    expect(report.aborted).toEqual([a.id]);
    const rec = await alloc.lookupById(a.id);
    expect(rec?.state).toBe('active');
    expect((await alloc.allocate(labels('a'))).id).toBe(a.id);
    await lease.revoke();
  });

  it('addReference() revives a record marked "releasing", which makes the releaser\'s delete fail', async () => {
    const { store, alloc, refs, releaser } = setup();
    const a = await alloc.allocate(labels('a'));
    const kv = (await store.get(`${PREFIX}by-id/${a.id}`))!;
    await store.update(kv.key, encodeById(labels('a'), 'releasing'), kv.modRevision);
    const lease = await store.grantLease(30);
    const rec = await refs.addReference(a.id, labels('a'), 'worker-1', lease);
    expect(rec.state).toBe('active');
    expect(await store.delete(kv.key, String(BigInt(kv.modRevision) + 1n))).toBe(false);
    expect((await releaser.releaseUnused({ graceMs: 0, now: 0 })).released).toEqual([]);
    await lease.revoke();
  });

  it('addReference() to a released identity withdraws the reference and throws IdentityReleasedError', async () => {
    const { store, alloc, refs, releaser } = setup();
    const a = await alloc.allocate(labels('a'));
    await releaser.releaseUnused({ graceMs: 0, now: 0 });
    expect((await releaser.releaseUnused({ graceMs: 0, now: 0 })).released).toEqual([a.id]);
    const lease = await store.grantLease(30);
    const err = await refs.addReference(a.id, labels('a'), 'worker-1', lease).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(IdentityReleasedError);
    expect((err as Error).message).toBe(`Identity ${a.id} was released before node "worker-1" referenced it: allocate the label set again`);
    expect(await refs.nodesReferencing(a.id)).toEqual([]);
    await lease.revoke();
  });

  it('a node restarting with a new lease moves its reference to it', async () => {
    const { store, alloc, refs } = setup();
    const a = await alloc.allocate(labels('a'));
    const old = await store.grantLease(30);
    const fresh = await store.grantLease(30);
    await refs.addReference(a.id, labels('a'), 'worker-1', old);
    await refs.addReference(a.id, labels('a'), 'worker-1', fresh);
    expect((await store.get(`${PREFIX}refs/${a.id}/worker-1`))?.lease).toBe(fresh.id);
    await old.revoke();
    expect(await refs.nodesReferencing(a.id)).toEqual(['worker-1']);
    await fresh.revoke();
  });

  it('a record left "releasing" by a crashed run is restored when referenced', async () => {
    const { store, alloc, refs, releaser } = setup();
    const a = await alloc.allocate(labels('a'));
    const lease = await store.grantLease(30);
    await refs.addReference(a.id, labels('a'), 'worker-1', lease);
    const kv = (await store.get(`${PREFIX}by-id/${a.id}`))!;
    await store.update(kv.key, encodeById(labels('a'), 'releasing'), kv.modRevision);
    await releaser.releaseUnused({ graceMs: GRACE, now: 0 });
    expect((await alloc.lookupById(a.id))?.state).toBe('active');
    await lease.revoke();
  });

  it('reports corrupt records and leaves them alone', async () => {
    const { store, alloc, releaser } = setup();
    await store.create(`${PREFIX}by-id/999`, Buffer.from('garbage'));
    const a = await alloc.allocate(labels('a'));
    const report = await releaser.releaseUnused({ graceMs: 0, now: 0 });
    expect(report.corrupt).toEqual([`${PREFIX}by-id/999`]);
    expect(report.pending).toEqual([a.id]);
    expect(await store.get(`${PREFIX}by-id/999`)).not.toBeNull();
  });

  it('reports stray reference keys and restarts the grace period on a damaged marker', async () => {
    const { store, alloc, refs, releaser } = setup();
    const a = await alloc.allocate(labels('a'));
    await store.create(`${PREFIX}refs/not-an-id/worker-1`, Buffer.from('{}'));
    await store.create(`${PREFIX}unused/${a.id}`, Buffer.from('{"v":1,"since":"yesterday"}'));
    const first = await releaser.releaseUnused({ graceMs: GRACE, now: 5 * GRACE });
    expect(first.corrupt.sort()).toEqual([`${PREFIX}refs/not-an-id/worker-1`, `${PREFIX}unused/${a.id}`].sort());
    expect(first.pending).toEqual([a.id]);
    expect((await releaser.releaseUnused({ graceMs: GRACE, now: 6 * GRACE - 1 })).released).toEqual([]);
    expect((await releaser.releaseUnused({ graceMs: GRACE, now: 6 * GRACE })).released).toEqual([a.id]);
    await store.create(`${PREFIX}refs/${a.id}/Bad_Node`, Buffer.from('{}'));
    await expect(refs.nodesReferencing(a.id)).rejects.toBeInstanceOf(IdentityCorruptError);
  });

  it('validates its arguments', async () => {
    const { store, refs, releaser } = setup();
    const lease = await store.grantLease(30);
    await expect(refs.addReference(300, labels('a'), 'Worker_1', lease)).rejects.toMatchObject({ field: 'node' });
    await expect(refs.addReference(5, labels('a'), 'worker-1', lease)).rejects.toMatchObject({ field: 'id' });
    await expect(releaser.releaseUnused({ graceMs: -1 })).rejects.toMatchObject({ field: 'graceMs' });
    expect(validationError(() => new IdentityReleaser(store, 'x')).field).toBe('prefix');
    await lease.revoke();
  });
});
