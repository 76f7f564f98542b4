/**
 * The Store conformance suite, written once and run against every implementation: the memory
 * store (tests/unit/store) and the etcd store on a real etcd (tests/privileged/store). Each
 * implementation supplies a harness that can make its store go away and come back.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ValidationError } from '../../agent/errors.js';
import {
  STORE_COMPACTED,
  STORE_LEASE_LOST,
  StoreClosedError,
  StoreCompactedError,
  StoreLeaseLostError,
  StoreUnavailableError,
  WatchHandlerError,
} from '../../agent/store/errors.js';
import type { KeyValue, Store, Watch, WatchEvent } from '../../agent/store/store.js';
import { MAX_KEY_BYTES, MAX_VALUE_BYTES } from '../../agent/store/validate.js';
import { eventually } from './netns.js';

export interface StoreHarness {
  /** The store under test (one per suite; tests use unique prefixes). */
  store: Store;
  /** Opens another, independent client of the same backing store. */
  openClient(): Promise<Store>;
  /**
   * The store goes away and comes back while clients keep running: etcd is killed and restarted
   * on the same data directory and ports; the memory store is disconnected and reconnected.
   */
  outage(): Promise<void>;
  /** The store stops answering until resume() (etcd: SIGSTOP; memory: disconnected). */
  pause(): Promise<void>;
  resume(): Promise<void>;
  /** Revokes a lease behind the store client's back (another client, an operator). */
  revokeLease(id: string): Promise<void>;
  /** Compacts history before `revision`. */
  compact(revision: string): Promise<void>;
  /** The backing store's current revision. */
  revision(): Promise<string>;
  cleanup(): Promise<void>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const buf = (s: string) => Buffer.from(s);
const keyOf = (e: WatchEvent) => (e.type === 'put' ? e.kv.key : e.key);
const revOf = (e: WatchEvent) => BigInt(e.type === 'put' ? e.kv.modRevision : e.modRevision);

/** A unique key prefix per test, so tests never see each other's keys. */
function uniquePrefix(): string {
  return `/veil-test/${randomBytes(6).toString('hex')}/`;
}

/** Collects a watch's events and errors. */
function collector() {
  const events: WatchEvent[] = [];
  const errors: Error[] = [];
  return {
    events,
    errors,
    handlers: {
      onEvent: (e: WatchEvent) => {
        events.push(e);
      },
      onError: (err: Error) => {
        errors.push(err);
      },
    },
  };
}

/** Retries a write while the store is unavailable (what a caller of the store does). */
async function retrying<T>(fn: () => Promise<T>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await fn();
    } catch (err) {
      if (!(err instanceof StoreUnavailableError) || Date.now() > deadline) throw err;
      await sleep(50);
    }
  }
}

export function storeConformance(name: string, makeHarness: () => Promise<StoreHarness>): void {
  describe(`Store conformance: ${name}`, () => {
    let h: StoreHarness;
    let store: Store;
    beforeAll(async () => {
      h = await makeHarness();
      store = h.store;
    });
    afterAll(async () => {
      await h?.cleanup();
    });

    describe('get, create, update, delete', () => {
      it('get() returns null for a key that was never written', async () => {
        expect(await store.get(`${uniquePrefix()}absent`)).toBeNull();
      });

      it('create() writes an absent key and get() returns it with its revisions', async () => {
        const key = `${uniquePrefix()}a`;
        const before = BigInt(await h.revision());
        const r = await store.create(key, buf('one'));
        expect(r.created).toBe(true);
        expect(r.kv.key).toBe(key);
        expect(r.kv.value.toString()).toBe('one');
        expect(BigInt(r.kv.modRevision)).toBeGreaterThan(before);
        expect(r.kv.createRevision).toBe(r.kv.modRevision);
        expect(r.kv.lease).toBeUndefined();
        expect(await store.get(key)).toEqual(r.kv);
      });

      it('create() of an existing key writes nothing and returns the existing value', async () => {
        const key = `${uniquePrefix()}a`;
        const first = await store.create(key, buf('first'));
        const second = await store.create(key, buf('second'));
        expect(second.created).toBe(false);
        expect(second.kv).toEqual(first.kv);
        expect((await store.get(key))?.value.toString()).toBe('first');
      });

      it('32 concurrent create() calls of one key from 4 clients: exactly one wins, all see its value', async () => {
        const key = `${uniquePrefix()}race`;
        const clients = [store, ...(await Promise.all([1, 2, 3].map(() => h.openClient())))];
        try {
          const results = await Promise.all(
            Array.from({ length: 32 }, (_, i) => clients[i % clients.length]!.create(key, buf(`v${i}`))),
          );
          const winners = results.filter((r) => r.created);
          expect(winners).toHaveLength(1);
          const winner = winners[0]!.kv;
          for (const r of results) expect(r.kv).toEqual(winner);
          expect(await store.get(key)).toEqual(winner);
        } finally {
          await Promise.all(clients.slice(1).map((c) => c.close()));
        }
      });

      it('update() at the current modRevision writes; at a stale one it fails and returns the current value', async () => {
        const key = `${uniquePrefix()}u`;
        const c = await store.create(key, buf('v1'));
        const u1 = await store.update(key, buf('v2'), c.kv.modRevision);
        expect(u1.updated).toBe(true);
        expect(u1.kv?.value.toString()).toBe('v2');
        expect(u1.kv?.createRevision).toBe(c.kv.createRevision);
        expect(BigInt(u1.kv!.modRevision)).toBeGreaterThan(BigInt(c.kv.modRevision));
        expect(await store.get(key)).toEqual(u1.kv);

        const stale = await store.update(key, buf('v3'), c.kv.modRevision);
        expect(stale.updated).toBe(false);
        expect(stale.kv).toEqual(u1.kv);
        expect((await store.get(key))?.value.toString()).toBe('v2');
      });

      it('update() of a deleted key fails and returns null', async () => {
        const key = `${uniquePrefix()}u`;
        const c = await store.create(key, buf('v1'));
        expect(await store.delete(key)).toBe(true);
        expect(await store.update(key, buf('v2'), c.kv.modRevision)).toEqual({ updated: false, kv: null });
        expect(await store.get(key)).toBeNull();
      });

      it('16 concurrent update() calls from one revision: exactly one wins', async () => {
        const key = `${uniquePrefix()}u`;
        const c = await store.create(key, buf('v0'));
        const results = await Promise.all(Array.from({ length: 16 }, (_, i) => store.update(key, buf(`v${i + 1}`), c.kv.modRevision)));
        const winners = results.filter((r) => r.updated);
        expect(winners).toHaveLength(1);
        for (const r of results) if (!r.updated) expect(r.kv).toEqual(winners[0]!.kv);
      });

      it('delete() with a stale modRevision deletes nothing; with the current one it deletes', async () => {
        const key = `${uniquePrefix()}d`;
        const c = await store.create(key, buf('v1'));
        const u = await store.update(key, buf('v2'), c.kv.modRevision);
        expect(await store.delete(key, c.kv.modRevision)).toBe(false);
        expect((await store.get(key))?.value.toString()).toBe('v2');
        expect(await store.delete(key, u.kv!.modRevision)).toBe(true);
        expect(await store.get(key)).toBeNull();
        expect(await store.delete(key)).toBe(false);
        expect(await store.delete(key, u.kv!.modRevision)).toBe(false);
      });

      it('stores and returns arbitrary bytes, empty values and a value of exactly 1 MiB', async () => {
        const p = uniquePrefix();
        const bytes = randomBytes(4096);
        await store.create(`${p}bin`, bytes);
        expect((await store.get(`${p}bin`))?.value.equals(bytes)).toBe(true);
        await store.create(`${p}empty`, Buffer.alloc(0));
        expect((await store.get(`${p}empty`))?.value.length).toBe(0);
        const big = randomBytes(MAX_VALUE_BYTES);
        await store.create(`${p}big`, big);
        expect((await store.get(`${p}big`))?.value.equals(big)).toBe(true);
      });

      it('a caller mutating a Buffer after writing or reading does not change the stored value', async () => {
        const key = `${uniquePrefix()}m`;
        const v = buf('abc');
        const r = await store.create(key, v);
        v.fill(0);
        r.kv.value.fill(0);
        const got = await store.get(key);
        expect(got?.value.toString()).toBe('abc');
        got!.value.fill(0);
        expect((await store.get(key))?.value.toString()).toBe('abc');
      });
    });

    describe('list', () => {
      it('list() returns exactly the keys under the prefix, sorted, at one revision', async () => {
        const p = uniquePrefix();
        const names = ['b', 'a', 'c/d', 'c'];
        for (const n of names) await store.create(`${p}${n}`, buf(n));
        await store.create(`${p.slice(0, -1)}x`, buf('sibling, not under the prefix'));
        const l = await store.list(p);
        expect(l.items.map((i) => i.key)).toEqual([...names].sort().map((n) => `${p}${n}`));
        for (const i of l.items) expect(BigInt(i.modRevision)).toBeLessThanOrEqual(BigInt(l.revision));
        expect(l.revision).toBe(await h.revision());
      });

      it('list() of 150 keys (several pages) returns all of them, consistent while writes continue', async () => {
        const p = uniquePrefix();
        await Promise.all(Array.from({ length: 150 }, (_, i) => store.create(`${p}${String(i).padStart(3, '0')}`, buf(String(i)))));
        let stop = false;
        const writer = (async () => {
          for (let i = 0; !stop; i++) {
            await store.create(`${p}zz-later-${i}`, buf('later'));
            await new Promise((r) => setImmediate(r)); // let timers run (the memory store never waits)
          }
        })();
        try {
          const l = await store.list(p);
          const rev = BigInt(l.revision);
          const early = l.items.filter((i) => !i.key.includes('zz-later'));
          expect(early).toHaveLength(150);
          for (const i of l.items) expect(BigInt(i.modRevision)).toBeLessThanOrEqual(rev);
          // Consistent at one revision: every later key written at or before it is included.
          const later = l.items.filter((i) => i.key.includes('zz-later')).length;
          await sleep(20);
          stop = true;
          await writer;
          const all = await store.list(p);
          const upToRev = all.items.filter((i) => i.key.includes('zz-later') && BigInt(i.modRevision) <= rev).length;
          expect(later).toBe(upToRev);
        } finally {
          stop = true;
          await writer;
        }
      });

      it('a watch from list().revision sees exactly the writes after the list', async () => {
        const p = uniquePrefix();
        await store.create(`${p}1`, buf('1'));
        const l = await store.list(p);
        await store.create(`${p}2`, buf('2'));
        const c = collector();
        const w = await store.watch(p, c.handlers, { afterRevision: l.revision });
        try {
          await eventually(() => c.events.length >= 1, { what: 'the write after the list' });
          await sleep(100);
          expect(c.events.map(keyOf)).toEqual([`${p}2`]);
        } finally {
          await w.close();
        }
      });
    });

    describe('leases', () => {
      it('a key created with a lease names it; revoke() deletes the key and does not call onLost', async () => {
        const key = `${uniquePrefix()}l`;
        const lease = await store.grantLease(5);
        expect(lease.ttlSeconds).toBeGreaterThanOrEqual(5);
        let lost = 0;
        lease.onLost(() => lost++);
        const r = await store.create(key, buf('alive'), { lease });
        expect(r.kv.lease).toBe(lease.id);
        expect((await store.get(key))?.lease).toBe(lease.id);
        await lease.revoke();
        expect(await store.get(key)).toBeNull();
        await sleep(100);
        expect(lost).toBe(0);
        await expect(store.create(key, buf('again'), { lease })).rejects.toBeInstanceOf(StoreLeaseLostError);
      });

      it('a lease is refreshed in the background: its key outlives three TTLs', async () => {
        const key = `${uniquePrefix()}l`;
        const lease = await store.grantLease(1);
        let lost: Error | undefined;
        lease.onLost((e) => (lost = e));
        await store.create(key, buf('alive'), { lease });
        await sleep(lease.ttlSeconds * 3000);
        expect(lost).toBeUndefined();
        expect((await store.get(key))?.lease).toBe(lease.id);
        await lease.revoke();
      });

      it('update() without a lease keeps the key\'s lease; with one it moves the key to it', async () => {
        const key = `${uniquePrefix()}l`;
        const a = await store.grantLease(10);
        const b = await store.grantLease(10);
        const c = await store.create(key, buf('1'), { lease: a });
        const u1 = await store.update(key, buf('2'), c.kv.modRevision);
        expect(u1.kv?.lease).toBe(a.id);
        expect((await store.get(key))?.lease).toBe(a.id);
        const u2 = await store.update(key, buf('3'), u1.kv!.modRevision, { lease: b });
        expect(u2.kv?.lease).toBe(b.id);
        await a.revoke();
        expect((await store.get(key))?.value.toString()).toBe('3');
        await b.revoke();
        expect(await store.get(key)).toBeNull();
      });

      it('a lease revoked behind the client\'s back is reported lost at the next keep-alive', async () => {
        const key = `${uniquePrefix()}l`;
        const lease = await store.grantLease(1);
        const losses: Error[] = [];
        lease.onLost((e) => losses.push(e));
        await store.create(key, buf('x'), { lease });
        await h.revokeLease(lease.id);
        expect(await store.get(key)).toBeNull();
        await eventually(() => losses.length === 1, { timeoutMs: 3_000, what: 'onLost' });
        expect(losses[0]).toBeInstanceOf(StoreLeaseLostError);
        expect(losses[0]!.message).toMatch(/expired/);
        await lease.revoke(); // a no-op on a lost lease
      });

      it('a lease that cannot be refreshed is lost: onLost runs once with VEIL_STORE_LEASE_LOST and its keys are deleted', async () => {
        const p = uniquePrefix();
        const lease = await store.grantLease(2);
        const losses: Error[] = [];
        lease.onLost((e) => losses.push(e));
        await store.create(`${p}a`, buf('a'), { lease });
        await store.create(`${p}b`, buf('b'), { lease });
        await store.create(`${p}keep`, buf('no lease'));
        const c = collector();
        const w = await store.watch(p, c.handlers);
        try {
          await h.pause();
          try {
            await eventually(() => losses.length > 0, { timeoutMs: lease.ttlSeconds * 1000 + 3000, what: 'onLost' });
          } finally {
            await h.resume();
          }
          expect(losses).toHaveLength(1);
          expect(losses[0]).toBeInstanceOf(StoreLeaseLostError);
          expect((losses[0] as StoreLeaseLostError).code).toBe(STORE_LEASE_LOST);
          expect((losses[0] as StoreLeaseLostError).leaseId).toBe(lease.id);
          await retrying(async () => {
            await eventually(async () => (await store.get(`${p}a`)) === null && (await store.get(`${p}b`)) === null, {
              timeoutMs: 10_000,
              what: 'the lease\'s keys to be deleted',
            });
          });
          expect((await store.get(`${p}keep`))?.value.toString()).toBe('no lease');
          // The deletions arrive on the watch, in one revision.
          await eventually(() => c.events.filter((e) => e.type === 'delete').length === 2, { what: 'delete events' });
          const dels = c.events.filter((e) => e.type === 'delete');
          expect(dels.map(keyOf).sort()).toEqual([`${p}a`, `${p}b`]);
          expect(revOf(dels[0]!)).toBe(revOf(dels[1]!));
          // A late handler hears about the loss too; a lost lease cannot take keys.
          const late = await new Promise<Error>((resolve) => lease.onLost(resolve));
          expect(late).toBe(losses[0]);
          await expect(store.create(`${p}c`, buf('c'), { lease })).rejects.toBeInstanceOf(StoreLeaseLostError);
          await sleep(200);
          expect(losses).toHaveLength(1);
        } finally {
          await w.close();
        }
      });
    });

    describe('watch', () => {
      it('delivers every event after a revision, in order, exactly once: puts, updates and deletes', async () => {
        const p = uniquePrefix();
        const start = await h.revision();
        const expected: Array<{ type: string; key: string; value?: string }> = [];
        for (let i = 0; i < 30; i++) {
          const key = `${p}${i % 7}`;
          const cur = await store.get(key);
          if (!cur) {
            await store.create(key, buf(`c${i}`));
            expected.push({ type: 'put', key, value: `c${i}` });
          } else if (i % 3 === 0) {
            await store.delete(key, cur.modRevision);
            expected.push({ type: 'delete', key });
          } else {
            await store.update(key, buf(`u${i}`), cur.modRevision);
            expected.push({ type: 'put', key, value: `u${i}` });
          }
        }
        const c = collector();
        const w = await store.watch(p, c.handlers, { afterRevision: start });
        try {
          await eventually(() => c.events.length >= expected.length, { what: 'all events' });
          await sleep(100);
          expect(c.errors).toEqual([]);
          expect(
            c.events.map((e) => (e.type === 'put' ? { type: 'put', key: e.kv.key, value: e.kv.value.toString() } : { type: 'delete', key: e.key })),
          ).toEqual(expected);
          const revs = c.events.map(revOf);
          for (let i = 1; i < revs.length; i++) expect(revs[i]!).toBeGreaterThan(revs[i - 1]!);
        } finally {
          await w.close();
        }
      });

      it('afterRevision "0" replays from the beginning of retained history', async () => {
        const p = uniquePrefix();
        await store.create(`${p}x`, buf('x'));
        const c = collector();
        const w = await store.watch(p, c.handlers, { afterRevision: '0' }).catch((e: Error) => {
          throw e;
        });
        try {
          await eventually(() => c.events.length >= 1 || c.errors.length >= 1, { what: 'the replay or a compaction error' });
          if (c.errors.length) expect((c.errors[0] as StoreCompactedError).code).toBe(STORE_COMPACTED);
          else expect(c.events.map(keyOf)).toEqual([`${p}x`]);
        } finally {
          await w.close();
        }
      });

      it('without afterRevision it delivers only writes after watch() resolved', async () => {
        const p = uniquePrefix();
        await store.create(`${p}before`, buf('b'));
        const c = collector();
        const w = await store.watch(p, c.handlers);
        try {
          await store.create(`${p}after`, buf('a'));
          await eventually(() => c.events.length >= 1, { what: 'the write after watch()' });
          await sleep(100);
          expect(c.events.map(keyOf)).toEqual([`${p}after`]);
        } finally {
          await w.close();
        }
      });

      it('waits for an async onEvent before delivering the next event', async () => {
        const p = uniquePrefix();
        const start = await h.revision();
        for (let i = 0; i < 5; i++) await store.create(`${p}${i}`, buf(String(i)));
        let inFlight = 0;
        let maxInFlight = 0;
        const seen: string[] = [];
        const w = await store.watch(
          p,
          {
            onEvent: async (e) => {
              inFlight++;
              maxInFlight = Math.max(maxInFlight, inFlight);
              await sleep(20);
              seen.push(keyOf(e));
              inFlight--;
            },
            onError: () => undefined,
          },
          { afterRevision: start },
        );
        try {
          await eventually(() => seen.length === 5, { what: 'five events' });
          expect(maxInFlight).toBe(1);
          expect(seen).toEqual([0, 1, 2, 3, 4].map((i) => `${p}${i}`));
        } finally {
          await w.close();
        }
      });

      it('close() stops delivery: no event after it resolves', async () => {
        const p = uniquePrefix();
        const c = collector();
        const w = await store.watch(p, c.handlers);
        await store.create(`${p}1`, buf('1'));
        await eventually(() => c.events.length === 1, { what: 'the first event' });
        await w.close();
        await store.create(`${p}2`, buf('2'));
        await sleep(300);
        expect(c.events.map(keyOf)).toEqual([`${p}1`]);
        expect(c.errors).toEqual([]);
      });

      it('an onEvent handler that throws stops the watch with VEIL_STORE_WATCH_HANDLER', async () => {
        const p = uniquePrefix();
        const seen: string[] = [];
        const errors: Error[] = [];
        const w = await store.watch(p, {
          onEvent: (e) => {
            seen.push(keyOf(e));
            if (seen.length === 2) throw new Error('handler bug');
          },
          onError: (err) => errors.push(err),
        });
        try {
          for (let i = 0; i < 4; i++) await store.create(`${p}${i}`, buf(String(i)));
          await eventually(() => errors.length === 1, { what: 'onError' });
          await sleep(200);
          expect(errors[0]).toBeInstanceOf(WatchHandlerError);
          expect((errors[0] as WatchHandlerError).cause).toEqual(new Error('handler bug'));
          expect(seen).toEqual([`${p}0`, `${p}1`]);
        } finally {
          await w.close();
        }
      });

      it('a watch from a compacted revision ends with onError VEIL_STORE_COMPACTED', async () => {
        const p = uniquePrefix();
        const old = await h.revision();
        for (let i = 0; i < 5; i++) await store.create(`${p}${i}`, buf(String(i)));
        await h.compact(await h.revision());
        const c = collector();
        const w = await store.watch(p, c.handlers, { afterRevision: old });
        try {
          await eventually(() => c.errors.length === 1, { what: 'the compaction error' });
          const err = c.errors[0] as StoreCompactedError;
          expect(err).toBeInstanceOf(StoreCompactedError);
          expect(err.code).toBe(STORE_COMPACTED);
          expect(err.requiredRevision).toBe((BigInt(old) + 1n).toString());
          expect(BigInt(err.compactRevision)).toBeGreaterThan(BigInt(old) + 1n);
          expect(c.events).toEqual([]);
          // Recovery: list, then watch from the list's revision.
          const l = await store.list(p);
          expect(l.items).toHaveLength(5);
          const c2 = collector();
          const w2 = await store.watch(p, c2.handlers, { afterRevision: l.revision });
          await store.create(`${p}new`, buf('n'));
          await eventually(() => c2.events.length === 1, { what: 'the event after recovery' });
          await w2.close();
        } finally {
          await w.close();
        }
      });

      it('the store going away mid-watch while writes continue loses and repeats no event', async () => {
        const p = uniquePrefix();
        const start = await h.revision();
        const c = collector();
        const w = await store.watch(p, c.handlers, { afterRevision: start });
        const total = 60;
        const written: KeyValue[] = [];
        try {
          const writer = (async () => {
            for (let i = 0; i < total; i++) {
              const key = `${p}${String(i).padStart(3, '0')}`;
              // A create cut off by the outage may have been applied: the retry then finds it.
              const r = await retrying(() => store.create(key, buf(`v${i}`)));
              expect(r.kv.value.toString()).toBe(`v${i}`);
              written.push(r.kv);
              await sleep(10);
            }
          })();
          await eventually(() => c.events.length >= 20, { what: '20 events before the outage' });
          await h.outage();
          await writer;
          await eventually(() => c.events.length >= total, { timeoutMs: 30_000, what: `all ${total} events` });
          await sleep(300);
          expect(c.errors).toEqual([]);
          expect(c.events.map(keyOf)).toEqual(written.map((k) => k.key));
          expect(c.events.map((e) => (e.type === 'put' ? e.kv.modRevision : ''))).toEqual(written.map((k) => k.modRevision));
        } finally {
          await w.close();
        }
      });
    });

    describe('bad input', () => {
      const cases: Array<[string, () => Promise<unknown>, string]> = [
        ['an empty key', () => store.get(''), 'key'],
        [`a key over ${MAX_KEY_BYTES} bytes`, () => store.get(`/${'k'.repeat(MAX_KEY_BYTES)}`), 'key'],
        ['a key with a lone surrogate', () => store.create('/a\uD800b', buf('x')), 'key'],
        ['a key that is not a string', () => store.get(42 as unknown as string), 'key'],
        ['a value over 1 MiB', () => store.create('/veil-test/big', Buffer.alloc(MAX_VALUE_BYTES + 1)), 'value'],
        ['a value that is not bytes', () => store.create('/veil-test/s', 'text' as unknown as Buffer), 'value'],
        ['a revision that is not decimal', () => store.update('/veil-test/r', buf('x'), '0x10'), 'expectedModRevision'],
        ['a revision of 0 for compare-and-swap', () => store.delete('/veil-test/r', '0'), 'expectedModRevision'],
        ['a revision beyond int64', () => store.update('/veil-test/r', buf('x'), '9223372036854775808'), 'expectedModRevision'],
        ['an empty prefix', () => store.list(''), 'prefix'],
        ['a TTL of 0', () => store.grantLease(0), 'ttlSeconds'],
        ['a fractional TTL', () => store.grantLease(1.5), 'ttlSeconds'],
        ['a watch without handlers', () => store.watch('/veil-test/', {} as never), 'handlers'],
        ['a negative afterRevision', () => store.watch('/veil-test/', { onEvent() {}, onError() {} }, { afterRevision: '-1' }), 'afterRevision'],
        ['a lease from elsewhere', () => store.create('/veil-test/l', buf('x'), { lease: { id: '1', ttlSeconds: 5 } as never }), 'lease'],
      ];
      for (const [what, call, field] of cases) {
        it(`rejects ${what} with a ValidationError naming "${field}"`, async () => {
          const err = await call().then(
            () => undefined,
            (e: unknown) => e,
          );
          expect(err).toBeInstanceOf(ValidationError);
          expect((err as ValidationError).field).toBe(field);
          expect((err as ValidationError).message).toMatch(/^[A-Z]/);
          expect((err as ValidationError).message).not.toMatch(/\.$/);
        });
      }

      it('error messages never contain value bytes (values may be secret)', async () => {
        const secret = Buffer.alloc(MAX_VALUE_BYTES + 1, 'SECRET-VALUE-');
        const err = await store.create('/veil-test/secret', secret).catch((e: Error) => e);
        expect(err).toBeInstanceOf(ValidationError);
        expect(String((err as Error).message)).not.toContain('SECRET');
        expect(String((err as Error).stack)).not.toContain('SECRET');
      });

      it('an oversized key is quoted cut short in the message, not whole', async () => {
        const err = await store.get(`/${'k'.repeat(5000)}`).catch((e: Error) => e);
        expect((err as Error).message.length).toBeLessThan(400);
      });
    });

    describe('close', () => {
      it('calls on a closed store reject with VEIL_STORE_CLOSED', async () => {
        const s = await h.openClient();
        await s.close();
        await expect(s.get('/veil-test/x')).rejects.toBeInstanceOf(StoreClosedError);
        await expect(s.create('/veil-test/x', buf('x'))).rejects.toBeInstanceOf(StoreClosedError);
        await s.close();
      });
    });
  });
}
