import { afterEach, describe, expect, it } from 'vitest';
import { Health } from '../../../agent/lifecycle/health.js';
import { createAgentMetrics } from '../../../agent/metrics/metrics.js';
import { StatusServer } from '../../../agent/metrics/status-server.js';

let server: StatusServer | undefined;
afterEach(async () => {
  await server?.stop();
  server = undefined;
});

async function start(opts: { ready?: boolean; health?: Health } = {}) {
  const health = opts.health ?? new Health();
  const metrics = createAgentMetrics({ defaultMetrics: false });
  let scrapes = 0;
  server = new StatusServer({
    host: '127.0.0.1',
    port: 0,
    health,
    registry: metrics.registry,
    ready: () => opts.ready ?? true,
    status: () => ({ node: 'node-a' }),
    beforeScrape: () => {
      scrapes++;
      metrics.datapathPackets.set({ hook: 'from-pod', reason: 'policy-deny' }, 7);
    },
  });
  const addr = await server.start();
  const get = (path: string) => fetch(`http://127.0.0.1:${addr.port}${path}`);
  return { health, metrics, get, scrapes: () => scrapes };
}

describe('StatusServer', () => {
  it('serves Prometheus metrics refreshed at scrape time', async () => {
    const { get, metrics, scrapes } = await start();
    metrics.peers.set({ mode: 'wireguard' }, 2);
    metrics.rotations.inc({ key: 'node', result: 'completed' });
    const res = await get('/metrics');
    expect(res.status).toBe(200);
    const text = await res.text();
    expect(text).toContain('veil_peers{mode="wireguard"} 2');
    expect(text).toContain('veil_key_rotations_total{key="node",result="completed"} 1');
    expect(text).toContain('veil_datapath_packets{hook="from-pod",reason="policy-deny"} 7');
    expect(scrapes()).toBe(1);
  });

  it('healthz is 503 only when a component failed; readyz needs started and nothing failed', async () => {
    const health = new Health();
    health.set('store', 'degraded', 'etcd reconnecting');
    const { get } = await start({ health });
    expect((await get('/healthz')).status).toBe(200);
    expect((await get('/readyz')).status).toBe(200);
    health.set('datapath', 'failed', 'cannot load programs');
    const res = await get('/healthz');
    expect(res.status).toBe(503);
    expect(await res.json()).toMatchObject({ status: 'failed', components: [{ name: 'datapath', detail: 'cannot load programs' }, { name: 'store' }] });
    expect((await get('/readyz')).status).toBe(503);
  });

  it('readyz is 503 until the program has started', async () => {
    const { get } = await start({ ready: false });
    expect((await get('/readyz')).status).toBe(503);
  });

  it('status merges health with the program status; unknown paths and methods are refused', async () => {
    const { get } = await start();
    expect(await (await get('/status')).json()).toEqual({ health: { status: 'ok', components: [] }, node: 'node-a' });
    expect((await get('/nope')).status).toBe(404);
    expect((await fetch(`${(await get('/status')).url}`, { method: 'POST' })).status).toBe(405);
  });
});
