/**
 * `veil operator` against a real etcd: one leader among replicas, identities for the cluster
 * model's pods (shared by equal label sets), new pods picked up from the watch, failover when
 * the leader stops, release of unreferenced identities after the grace period (and never of a
 * referenced one), health and metrics over HTTP.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClusterClient } from '../../../agent/cluster/client.js';
import { podLabelSet } from '../../../agent/cluster/pod-identity.js';
import type { ClusterPod } from '../../../agent/cluster/records.js';
import { loadOperatorConfig } from '../../../agent/config/operator-config.js';
import { IdentityReferences } from '../../../agent/identity/references.js';
import { IdentityKeys, parseByLabels } from '../../../agent/identity/records.js';
import { createRootLogger } from '../../../agent/log/logger.js';
import { startOperator, type RunningOperator } from '../../../agent/operator/operator.js';
import { EtcdStore } from '../../../agent/store/etcd-store.js';
import { EtcdServer } from '../../support/etcd.js';
import { eventually } from '../../support/netns.js';

let etcd: EtcdServer;
let store: EtcdStore;
let cluster: ClusterClient;
const running: RunningOperator[] = [];
const log = createRootLogger({ level: 'silent' });
const keys = new IdentityKeys();
const NS = new Map([['shop', { team: 'a' }]]);

function pod(name: string, node: string, labels: Record<string, string>): ClusterPod {
  return { name, namespace: 'shop', labels, serviceAccount: 'default', node, addresses: [] };
}

async function identityOf(p: ClusterPod): Promise<number | null> {
  const kv = await store.get(keys.byLabels(podLabelSet(p, NS).hash));
  return kv ? parseByLabels(kv) : null;
}

function operator(id: string, extra: string[] = []): Promise<RunningOperator> {
  const config = loadOperatorConfig(['--store', etcd.clientUrl, '--id', id, '--status-listen', '127.0.0.1:0', '--lease-ttl', '3s', ...extra], {});
  return startOperator(config, { log, leaderRetryMs: 100 }).then((o) => {
    running.push(o);
    return o;
  });
}

beforeAll(async () => {
  etcd = await EtcdServer.start();
  store = new EtcdStore({ endpoints: [etcd.clientUrl] });
  cluster = new ClusterClient(store);
  await cluster.put('namespaces', { name: 'shop', labels: { team: 'a' } });
});
afterAll(async () => {
  for (const o of running) await o.stop();
  await store?.close();
  await etcd?.cleanup();
});

describe('veil operator', () => {
  const web1 = pod('web-1', 'n1', { app: 'web' });
  const web2 = pod('web-2', 'n2', { app: 'web', 'pod-template-hash': 'abc' });
  const db = pod('db-0', 'n1', { app: 'db' });
  let a: RunningOperator;
  let b: RunningOperator;

  it('elects exactly one of two replicas and allocates one identity per label set', async () => {
    for (const p of [web1, web2, db]) await cluster.put('pods', p);
    a = await operator('op-a');
    b = await operator('op-b');
    await eventually(() => a.isLeader() || b.isLeader(), { what: 'a leader' });
    expect([a.isLeader(), b.isLeader()].filter(Boolean)).toHaveLength(1);
    const [i1, i2, i3] = await eventually(async () => {
      const ids = await Promise.all([web1, web2, db].map(identityOf));
      return ids.every((i) => i !== null) ? ids : undefined;
    }, { what: 'identities for the pods' });
    // pod-template-hash is volatile: web-1 and web-2 share one label set.
    expect(i1).toBe(i2);
    expect(i3).not.toBe(i1);
    expect(i1).toBeGreaterThanOrEqual(256);
  });

  it('gives a pod added later an identity through the watch', async () => {
    const api = pod('api-0', 'n2', { app: 'api' });
    await cluster.put('pods', api);
    const id = await eventually(() => identityOf(api), { what: 'identity of api-0', timeoutMs: 5000 });
    expect(id).toBeGreaterThanOrEqual(256);
  });

  it('serves health and metrics; the leader reports veil_operator_leader 1', async () => {
    const leader = a.isLeader() ? a : b;
    const base = `http://127.0.0.1:${leader.address.port}`;
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
    expect((await fetch(`${base}/readyz`)).status).toBe(200);
    const metrics = await (await fetch(`${base}/metrics`)).text();
    expect(metrics).toMatch(/^veil_operator_leader 1$/m);
    expect(metrics).toMatch(/^veil_operator_identities 3$/m);
    const status = (await (await fetch(`${base}/status`)).json()) as { leader: boolean; lastSync: { pods: number } };
    expect(status.leader).toBe(true);
    expect(status.lastSync.pods).toBe(4);
  });

  it('fails over to the standby when the leader stops', async () => {
    const [leader, standby] = a.isLeader() ? [a, b] : [b, a];
    await leader.stop();
    await eventually(() => standby.isLeader(), { what: 'the standby to lead', timeoutMs: 10_000 });
    const late = pod('late-0', 'n1', { app: 'late' });
    await cluster.put('pods', late);
    await eventually(() => identityOf(late), { what: 'identity from the new leader', timeoutMs: 5000 });
  });

  it('releases an unreferenced identity after the grace period, never a referenced one', async () => {
    for (const o of running) await o.stop();
    const gone = pod('gone-0', 'n1', { app: 'gone' });
    const kept = pod('kept-0', 'n1', { app: 'kept' });
    await cluster.put('pods', gone);
    await cluster.put('pods', kept);
    const gc = await operator('op-gc', ['--identity-grace', '500ms', '--gc-interval', '200ms']);
    await eventually(() => gc.isLeader(), { what: 'the gc operator to lead' });
    const goneId = await eventually(() => identityOf(gone), { what: 'identity of gone-0' });
    const keptId = await eventually(() => identityOf(kept), { what: 'identity of kept-0' });
    const lease = await store.grantLease(30);
    await new IdentityReferences(store).addReference(keptId, podLabelSet(kept, NS), 'n1', lease);
    await cluster.delete('pods', 'gone-0', 'shop');
    await eventually(async () => (await store.get(keys.byId(goneId))) === null, { what: 'release of the deleted pod\'s identity', timeoutMs: 10_000 });
    expect(await identityOf(kept)).toBe(keptId);
    expect(await store.get(keys.byId(keptId))).not.toBeNull();
    expect(await (await fetch(`http://127.0.0.1:${gc.address.port}/metrics`)).text()).toMatch(/^veil_operator_identities_released_total [1-9]/m);
    await lease.revoke();
  });
});
