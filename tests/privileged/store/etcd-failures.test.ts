/**
 * How the etcd store fails against a real etcd: unreachable and hung servers give a typed error
 * naming the endpoint within the request timeout (never a hang), watches reassemble the
 * fragments of large catch-ups, and the store reads what other etcd clients wrote with etcd's own revisions.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StoreUnavailableError, STORE_UNAVAILABLE } from '../../../agent/store/errors.js';
import { EtcdStore, openEtcdStore } from '../../../agent/store/etcd-store.js';
import type { WatchEvent } from '../../../agent/store/store.js';
import { EtcdServer, freePort } from '../../support/etcd.js';
import { eventually } from '../../support/netns.js';

async function timed<T>(p: Promise<T>): Promise<{ ms: number; result?: T; err?: unknown }> {
  const t0 = Date.now();
  try {
    const result = await p;
    return { ms: Date.now() - t0, result };
  } catch (err) {
    return { ms: Date.now() - t0, err };
  }
}

describe('etcd store failures', () => {
  let etcd: EtcdServer;
  let store: EtcdStore;
  beforeAll(async () => {
    etcd = await EtcdServer.start();
    store = await openEtcdStore({ endpoints: [etcd.clientUrl], requestTimeoutMs: 1_000 });
  });
  afterAll(async () => {
    await store?.close();
    await etcd?.cleanup();
  });

  it('openEtcdStore() on a port where nothing listens rejects with VEIL_STORE_UNAVAILABLE naming the endpoint', async () => {
    const url = `http://127.0.0.1:${await freePort()}`;
    const { ms, err } = await timed(openEtcdStore({ endpoints: [url], requestTimeoutMs: 1_000 }));
    expect(err).toBeInstanceOf(StoreUnavailableError);
    expect((err as StoreUnavailableError).code).toBe(STORE_UNAVAILABLE);
    expect((err as StoreUnavailableError).endpoints).toEqual([url]);
    expect((err as Error).message).toContain(`"${url}"`);
    expect((err as Error).message).toMatch(/check that etcd is running/);
    expect(ms).toBeLessThan(2_000);
  });

  it('watch() on a port where nothing listens rejects with VEIL_STORE_UNAVAILABLE', async () => {
    const s = new EtcdStore({ endpoints: [`http://127.0.0.1:${await freePort()}`], requestTimeoutMs: 1_000 });
    try {
      const { ms, err } = await timed(s.watch('/x/', { onEvent() {}, onError() {} }, { afterRevision: '1' }));
      expect(err).toBeInstanceOf(StoreUnavailableError);
      expect(ms).toBeLessThan(2_000);
    } finally {
      await s.close();
    }
  });

  it('a hung etcd (SIGSTOP) makes calls fail with VEIL_STORE_UNAVAILABLE within the request timeout, then work again', async () => {
    const key = `/veil-test/${randomBytes(4).toString('hex')}`;
    await etcd.pause();
    try {
      for (const call of [() => store.get(key), () => store.create(key, Buffer.from('x')), () => store.list('/veil-test/')]) {
        const { ms, err } = await timed(call());
        expect(err).toBeInstanceOf(StoreUnavailableError);
        expect(ms).toBeGreaterThanOrEqual(900);
        expect(ms).toBeLessThan(2_500);
      }
    } finally {
      etcd.resume();
    }
    await eventually(async () => (await store.create(key, Buffer.from('y'))).created, { what: 'etcd answering again' });
  });

  it("a watch catching up over 4 MiB of large values (beyond etcd's 1.5 MiB request size) gets them all, in order (etcd sends it as fragments)", async () => {
    const p = `/veil-test/${randomBytes(4).toString('hex')}/`;
    const start = await etcd.revision();
    const values = Array.from({ length: 6 }, () => randomBytes(700 * 1024));
    for (let i = 0; i < values.length; i++) await store.create(`${p}${i}`, values[i]!);
    const got: WatchEvent[] = [];
    const errors: Error[] = [];
    const w = await store.watch(p, { onEvent: (e) => void got.push(e), onError: (e) => void errors.push(e) }, { afterRevision: start });
    try {
      await eventually(() => got.length === values.length, { what: 'six large events' });
      expect(errors).toEqual([]);
      got.forEach((e, i) => {
        expect(e.type).toBe('put');
        if (e.type === 'put') expect(e.kv.value.equals(values[i]!)).toBe(true);
      });
    } finally {
      await w.close();
    }
  });

  it('reads what another etcd client wrote, with etcd\'s own revisions and lease', async () => {
    const key = `/veil-test/${randomBytes(4).toString('hex')}`;
    const raw = await etcd.withClient(async (c) => {
      const lease = c.lease(30, { autoKeepAlive: false });
      await lease.put(key).value('from etcd3');
      const id = await lease.grant();
      const res = await c.kv.range({ key: Buffer.from(key) });
      return { id, kv: res.kvs[0]! };
    });
    const kv = await store.get(key);
    expect(kv?.value.toString()).toBe('from etcd3');
    expect(kv?.modRevision).toBe(raw.kv.mod_revision);
    expect(kv?.createRevision).toBe(raw.kv.create_revision);
    expect(kv?.lease).toBe(raw.id);
  });
});
