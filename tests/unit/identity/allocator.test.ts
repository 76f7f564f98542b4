import { describe, expect, it } from 'vitest';
import { IdentityAllocator } from '../../../agent/identity/allocator.js';
import {
  IdentityConflictError,
  IdentityCorruptError,
  IdentityExhaustedError,
} from '../../../agent/identity/errors.js';
import { canonicalLabelSet, type LabelSet } from '../../../agent/identity/labels.js';
import { encode, encodeById } from '../../../agent/identity/records.js';
import type { KeyValue, Lease, Store } from '../../../agent/store/store.js';
import { MemoryStore } from '../../../agent/store/memory-store.js';
import { ValidationError } from '../../../agent/errors.js';
import { validationError } from '../../support/validation-error.js';

const PREFIX = '/veil/identities/';
const labels = (app: string): LabelSet => canonicalLabelSet({ namespace: 'shop', serviceAccount: 'web', podLabels: { app } });

/**
 * A real MemoryStore client that lets a test run another client's writes at an exact point: just
 * before the first create() of a key matching `when` (a deterministic race, not a mock).
 */
class RaceInjectingStore implements Store {
  private fired = false;
  constructor(
    private readonly inner: MemoryStore,
    private readonly when: (key: string) => boolean,
    private readonly race: () => Promise<void>,
  ) {}
  get(key: string) {
    return this.inner.get(key);
  }
  list(prefix: string) {
    return this.inner.list(prefix);
  }
  async create(key: string, value: Buffer, opts?: { lease?: Lease }): Promise<{ created: boolean; kv: KeyValue }> {
    if (!this.fired && this.when(key)) {
      this.fired = true;
      await this.race();
    }
    return this.inner.create(key, value, opts);
  }
  update(key: string, value: Buffer, rev: string, opts?: { lease?: Lease }) {
    return this.inner.update(key, value, rev, opts);
  }
  delete(key: string, rev?: string) {
    return this.inner.delete(key, rev);
  }
  grantLease(ttl: number) {
    return this.inner.grantLease(ttl);
  }
  watch(...args: Parameters<Store['watch']>) {
    return this.inner.watch(...args);
  }
  close() {
    return this.inner.close();
  }
}

async function keysUnder(store: Store, prefix: string): Promise<string[]> {
  return (await store.list(prefix)).items.map((kv) => kv.key).sort();
}

describe('IdentityAllocator', () => {
  it('allocate() gives one cluster id per label set, the same one every time', async () => {
    const store = new MemoryStore();
    const alloc = new IdentityAllocator({ store });
    const a = await alloc.allocate(labels('a'));
    const b = await alloc.allocate(labels('b'));
    expect(a.id).toBeGreaterThanOrEqual(256);
    expect(a.id).toBeLessThanOrEqual(65535);
    expect(b.id).not.toBe(a.id);
    expect((await alloc.allocate(labels('a'))).id).toBe(a.id);
    // Another process (another client of the same store) agrees.
    const other = new IdentityAllocator({ store: new MemoryStore(store.backend) });
    expect((await other.allocate(labels('a'))).id).toBe(a.id);
    expect(await keysUnder(store, PREFIX)).toEqual(
      [`${PREFIX}by-id/${a.id}`, `${PREFIX}by-id/${b.id}`, `${PREFIX}by-labels/${labels('a').hash}`, `${PREFIX}by-labels/${labels('b').hash}`].sort(),
    );
    await store.close();
  });

  it('lookupById() and lookupByLabels() return the record or null', async () => {
    const store = new MemoryStore();
    const alloc = new IdentityAllocator({ store });
    const a = await alloc.allocate(labels('a'));
    const byId = await alloc.lookupById(a.id);
    expect(byId?.labels.canonical).toBe(labels('a').canonical);
    expect(byId?.state).toBe('active');
    expect((await alloc.lookupByLabels(labels('a')))?.id).toBe(a.id);
    expect(await alloc.lookupByLabels(labels('zzz'))).toBeNull();
    expect(await alloc.lookupById(a.id === 256 ? 257 : 256)).toBeNull();
    await expect(alloc.lookupById(7)).rejects.toBeInstanceOf(ValidationError);
    await store.close();
  });

  it('concurrent allocators on one store converge on a single id per label set', async () => {
    const store = new MemoryStore();
    const allocators = Array.from({ length: 8 }, () => new IdentityAllocator({ store: new MemoryStore(store.backend), minId: 256, maxId: 300 }));
    const sets = Array.from({ length: 20 }, (_, i) => labels(`app${i}`));
    const results = await Promise.all(allocators.map((al) => Promise.all(sets.map((s) => al.allocate(s)))));
    for (const r of results) expect(r.map((x) => x.id)).toEqual(results[0]!.map((x) => x.id));
    expect(new Set(results[0]!.map((x) => x.id)).size).toBe(20);
    // No stray claims: exactly one record per label set.
    expect(await keysUnder(store, `${PREFIX}by-id/`)).toHaveLength(20);
    await store.close();
  });

  it('a claim lost to another label set moves on to another id', async () => {
    const store = new MemoryStore();
    const other = new IdentityAllocator({ store: new MemoryStore(store.backend), random: () => 0 });
    const racing = new RaceInjectingStore(new MemoryStore(store.backend), (k) => k.endsWith('/by-id/256'), async () => {
      expect((await other.allocate(labels('other'))).id).toBe(256);
    });
    const alloc = new IdentityAllocator({ store: racing, random: () => 0 });
    const mine = await alloc.allocate(labels('mine'));
    expect(mine.id).toBe(257);
    expect(alloc.stats).toMatchObject({ created: 1, claimsLost: 1 });
    expect((await alloc.lookupById(256))?.labels.hash).toBe(labels('other').hash);
  });

  it('a mapping lost to another allocator gives its claim back and uses the winner\'s id', async () => {
    const store = new MemoryStore();
    const set = labels('same');
    const other = new IdentityAllocator({ store: new MemoryStore(store.backend), random: () => 0.5 });
    let winner = 0;
    const racing = new RaceInjectingStore(new MemoryStore(store.backend), (k) => k.includes('/by-labels/'), async () => {
      winner = (await other.allocate(set)).id;
    });
    const alloc = new IdentityAllocator({ store: racing, random: () => 0 });
    const got = await alloc.allocate(set);
    expect(got.id).toBe(winner);
    expect(winner).not.toBe(256);
    expect(alloc.stats).toMatchObject({ created: 0, mappingsLost: 1 });
    // Our claim on 256 was withdrawn.
    expect(await store.get(`${PREFIX}by-id/256`)).toBeNull();
    expect(await keysUnder(store, `${PREFIX}by-id/`)).toEqual([`${PREFIX}by-id/${winner}`]);
  });

  it('a stale mapping to a released id is replaced', async () => {
    const store = new MemoryStore();
    const set = labels('a');
    await store.create(`${PREFIX}by-labels/${set.hash}`, encode({ id: 400 }));
    // 400 now belongs to another label set.
    await store.create(`${PREFIX}by-id/400`, encodeById(labels('b'), 'active'));
    const alloc = new IdentityAllocator({ store });
    const got = await alloc.allocate(set);
    expect(got.id).not.toBe(400);
    expect((await alloc.lookupByLabels(set))?.id).toBe(got.id);
    expect((await alloc.lookupById(400))?.labels.hash).toBe(labels('b').hash);
  });

  it('allocate() revives a record that is being released', async () => {
    const store = new MemoryStore();
    const alloc = new IdentityAllocator({ store });
    const a = await alloc.allocate(labels('a'));
    const kv = (await store.get(`${PREFIX}by-id/${a.id}`))!;
    await store.update(kv.key, encodeById(labels('a'), 'releasing'), kv.modRevision);
    expect((await alloc.allocate(labels('a'))).id).toBe(a.id);
    expect((await alloc.lookupById(a.id))?.state).toBe('active');
  });

  it('throws IdentityExhaustedError when every id in range is taken, counting referenced ids', async () => {
    const store = new MemoryStore();
    await store.create(`${PREFIX}refs/258/worker-1`, encode({ node: 'worker-1' }));
    const alloc = new IdentityAllocator({ store, minId: 256, maxId: 258 });
    await alloc.allocate(labels('a'));
    await alloc.allocate(labels('b'));
    const err = await alloc.allocate(labels('c')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(IdentityExhaustedError);
    expect((err as Error).message).toMatch(/^Cannot allocate an identity: all 3 ids from 256 to 258/);
    // Existing label sets still resolve.
    expect((await alloc.allocate(labels('a'))).id).toBeLessThan(258);
  });

  it('throws IdentityConflictError after maxAttempts lost rounds', async () => {
    const store = new MemoryStore();
    // Another process claimed 256 after our listing, and we always pick 256.
    const racing = new RaceInjectingStore(new MemoryStore(store.backend), (k) => k.endsWith('/by-id/256'), async () => {
      await store.create(`${PREFIX}by-id/256`, encodeById(labels('x'), 'active'));
    });
    const alloc = new IdentityAllocator({ store: racing, random: () => 0, maxAttempts: 1 });
    const err = await alloc.allocate(labels('a')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(IdentityConflictError);
    expect((err as IdentityConflictError).attempts).toBe(1);
  });

  it.each([
    ['not JSON', 'by-labels', '{'],
    ['a reserved id', 'by-labels', '{"v":1,"id":7}'],
    ['an unknown version', 'by-labels', '{"v":2,"id":300}'],
    ['an oversized value', 'by-labels', `{"v":1,"id":300,"pad":"${'x'.repeat(30_000)}"}`],
  ])('rejects a hostile mapping (%s) with IdentityCorruptError', async (_name, _kind, value) => {
    const store = new MemoryStore();
    const set = labels('a');
    await store.create(`${PREFIX}by-labels/${set.hash}`, Buffer.from(value));
    const err = await new IdentityAllocator({ store }).allocate(set).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(IdentityCorruptError);
    expect((err as IdentityCorruptError).key).toBe(`${PREFIX}by-labels/${set.hash}`);
  });

  it.each([
    ['labels that do not hash to the stored hash', () => JSON.stringify({ v: 1, hash: labels('b').hash, labels: labels('a').canonical, state: 'active' })],
    ['a non-canonical label set', () => JSON.stringify({ v: 1, hash: labels('a').hash, labels: ` ${labels('a').canonical}`, state: 'active' })],
    ['an unknown state', () => JSON.stringify({ v: 1, hash: labels('a').hash, labels: labels('a').canonical, state: 'gone' })],
  ])('rejects a hostile identity record (%s) with IdentityCorruptError', async (_name, value) => {
    const store = new MemoryStore();
    await store.create(`${PREFIX}by-id/300`, Buffer.from(value()));
    const err = await new IdentityAllocator({ store }).lookupById(300).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(IdentityCorruptError);
  });

  it('validates its options', () => {
    const store = new MemoryStore();
    expect(validationError(() => new IdentityAllocator({ store, minId: 100 })).field).toBe('minId');
    expect(validationError(() => new IdentityAllocator({ store, minId: 300, maxId: 299 })).field).toBe('maxId');
    expect(validationError(() => new IdentityAllocator({ store, maxAttempts: 0 })).field).toBe('maxAttempts');
    expect(validationError(() => new IdentityAllocator({ store, prefix: 'veil' })).field).toBe('prefix');
  });
});
