/**
 * A renewed node certificate reaches the peers: after KeyManager.replaceNodeCertificate() the
 * node's record in a real etcd is re-published signed with the new certificate and key, with the
 * same keys and a higher sequence, and the peer accepts it (no record.rejected).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AuditEvent } from '../../../agent/audit/events.js';
import { KeyManager } from '../../../agent/keys/key-manager.js';
import { KeyStorePaths } from '../../../agent/keys/key-store-paths.js';
import type { SignedNodeRecord } from '../../../agent/keys/node-record-sign.js';
import { EtcdStore } from '../../../agent/store/etcd-store.js';
import { createClusterCa } from '../../../certs/cluster-ca.js';
import { issueNodeCertificate } from '../../../certs/node-certificate.js';
import { createNodeCsr } from '../../../certs/node-csr.js';
import { EtcdServer } from '../../support/etcd.js';
import { eventually } from '../../support/netns.js';

let etcd: EtcdServer;
let store: EtcdStore;
let work: string;
const managers: KeyManager[] = [];
const events = new Map<string, AuditEvent[]>();
const paths = new KeyStorePaths();
const ca = await createClusterCa({ trustDomain: 'oc.veil.lab' });

async function credentials(node: string) {
  const csr = await createNodeCsr({ nodeName: node });
  return { cert: await issueNodeCertificate(ca, { csrPem: csr.csrPem, nodeName: node }), key: csr.privateKey };
}

async function start(node: string, i: number): Promise<KeyManager> {
  const c = await credentials(node);
  events.set(node, []);
  const m = await KeyManager.open({
    node,
    stateDir: join(work, node),
    store,
    audit: { record: async (e) => void events.get(node)!.push(e) },
    nodeCertificatePem: c.cert.pem,
    nodePrivateKey: c.key,
    trustAnchors: [ca.certificate.pem],
    addresses: [`192.0.2.${i}`],
    podCidrs: [`10.244.${i}.0/24`],
    bootId: `0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f${i}`,
    rotationIntervalMs: 3_600_000,
    acknowledgeTimeoutMs: 10_000,
    tickMs: 100,
  });
  await m.start();
  managers.push(m);
  return m;
}

async function record(node: string): Promise<SignedNodeRecord> {
  return JSON.parse((await store.get(paths.record(node)))!.value.toString('utf8')) as SignedNodeRecord;
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'veil-oc-km-'));
  etcd = await EtcdServer.start();
  store = new EtcdStore({ endpoints: [etcd.clientUrl] });
}, 60_000);

afterAll(async () => {
  for (const m of managers) await m.stop().catch(() => undefined);
  await store?.close();
  await etcd?.cleanup();
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('KeyManager.replaceNodeCertificate()', () => {
  it('re-publishes the record signed with the renewed certificate, and the peer accepts it', async () => {
    const a = await start('oc-a', 1);
    await start('oc-b', 2);
    const active = (m: KeyManager) => m.status().find((s) => s.kind === 'node')?.generations.find((g) => g.phase === 'active');
    await eventually(() => active(a), { timeoutMs: 20_000, what: 'an active node key on oc-a' });
    const before = await record('oc-a');
    const renewed = await credentials('oc-a');
    a.replaceNodeCertificate(renewed.cert.pem, renewed.key);
    const after = await eventually(async () => {
      const r = await record('oc-a');
      return r.certificate.trim() === renewed.cert.pem.trim() ? r : undefined;
    }, { what: 'the record with the renewed certificate' });
    expect(after.record.sequence).toBeGreaterThan(before.record.sequence);
    expect(after.record.keys).toEqual(expect.arrayContaining(before.record.keys.filter((k) => k.state === 'active')));
    await a.settled();
    // The peer verified and kept it: nothing rejected.
    expect(events.get('oc-b')!.filter((e) => e.event === 'record.rejected')).toEqual([]);
  }, 40_000);
});
