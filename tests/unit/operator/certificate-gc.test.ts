import { describe, expect, it } from 'vitest';
import { ClusterClient } from '../../../agent/cluster/client.js';
import { createBootstrapToken, registerBootstrapToken } from '../../../agent/node-cert/bootstrap-token.js';
import { putValue } from '../../../agent/node-cert/put-value.js';
import { issuedKey, requestKey } from '../../../agent/node-cert/store-keys.js';
import { CertificateRecordCollector } from '../../../agent/operator/certificate-gc.js';
import { MemoryStore } from '../../../agent/store/memory-store.js';

describe('CertificateRecordCollector', () => {
  it('removes records of nodes gone from the cluster model only after the grace period', async () => {
    const store = new MemoryStore();
    const cluster = new ClusterClient(store);
    let now = Date.parse('2026-12-07T21:00:00Z');
    await cluster.put('nodes', { name: 'node-a', addresses: ['10.0.0.1'], podCidrs: ['10.1.0.0/24'], labels: {} });
    for (const n of ['node-a', 'node-gone']) {
      await putValue(store, requestKey(n), Buffer.from('{}'));
      await putValue(store, issuedKey(n), Buffer.from('{}'));
      await registerBootstrapToken(store, n, createBootstrapToken(), { now: new Date(now), ttlMs: 3_600_000 });
    }
    await putValue(store, '/veil/certs/requests/Not_A_Node', Buffer.from('x'));
    const gc = new CertificateRecordCollector({ store, cluster, graceMs: 60_000, now: () => now });
    const first = await gc.collect();
    expect(first.removed).toEqual([]);
    expect(first.pending.sort()).toEqual(['/veil/certs/bootstrap/node-gone', '/veil/certs/issued/node-gone', '/veil/certs/requests/Not_A_Node', '/veil/certs/requests/node-gone']);
    now += 59_000;
    expect((await gc.collect()).removed).toEqual([]);
    now += 1_000;
    expect((await gc.collect()).removed.sort()).toEqual(first.pending);
    expect((await store.list('/veil/certs/')).items.map((kv) => kv.key).sort()).toEqual(['/veil/certs/bootstrap/node-a', '/veil/certs/issued/node-a', '/veil/certs/requests/node-a']);
  });

  it('removes an expired bootstrap registration, and forgets a node that came back', async () => {
    const store = new MemoryStore();
    const cluster = new ClusterClient(store);
    let now = Date.parse('2026-12-07T21:00:00Z');
    await cluster.put('nodes', { name: 'node-a', addresses: ['10.0.0.1'], podCidrs: ['10.1.0.0/24'], labels: {} });
    await registerBootstrapToken(store, 'node-a', createBootstrapToken(), { now: new Date(now), ttlMs: 60_000 });
    await putValue(store, issuedKey('node-b'), Buffer.from('{}'));
    const gc = new CertificateRecordCollector({ store, cluster, graceMs: 10_000, now: () => now });
    expect((await gc.collect()).pending).toEqual(['/veil/certs/issued/node-b']);
    await cluster.put('nodes', { name: 'node-b', addresses: ['10.0.0.2'], podCidrs: ['10.1.1.0/24'], labels: {} });
    now += 61_000;
    const r = await gc.collect();
    expect(r.pending).toEqual(['/veil/certs/bootstrap/node-a']);
    now += 10_000;
    expect((await gc.collect()).removed).toEqual(['/veil/certs/bootstrap/node-a']);
    expect(await store.get(issuedKey('node-b'))).not.toBeNull();
  });
});
