/**
 * The SVID manager of node "sv-node" on a real etcd: identities referenced by the node get SVIDs
 * that `openssl verify` accepts with the CA and the node certificate, renewal (short TTL) emits
 * certificate.renewed with previousFingerprint, an identity whose reference is removed loses its
 * files, and the audit log passes `veil audit verify`.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openAuditLog, type AuditLog } from '../../../agent/audit/audit-log.js';
import type { AuditEvent } from '../../../agent/audit/events.js';
import { keyObjectSigner } from '../../../agent/audit/signer.js';
import { IdentityAllocator } from '../../../agent/identity/allocator.js';
import { hostedIdentities } from '../../../agent/identity/hosting.js';
import { canonicalLabelSet } from '../../../agent/identity/labels.js';
import { IdentityReferences } from '../../../agent/identity/references.js';
import { SvidManager } from '../../../agent/identity/svid-manager.js';
import { projectRoot } from '../../../agent/project-root.js';
import { openEtcdStore, type EtcdStore } from '../../../agent/store/etcd-store.js';
import { createClusterCa, createNodeCsr, issueNodeCertificate } from '../../../certs/index.js';
import { nodeCredentials, type NodeCredentials } from '../../../certs/svid.js';
import { EtcdServer } from '../../support/etcd.js';
import { eventually } from '../../support/netns.js';

const NODE = 'sv-node';
const cli = join(projectRoot(), 'dist/agent/cli/main.js');
let etcd: EtcdServer;
let store: EtcdStore;
let work: string;
let caPath: string;
let node: NodeCredentials;
let audit: AuditLog;
let auditPath: string;
let manager: SvidManager;
let refs: IdentityReferences;
let webId: number;
let dbId: number;

function auditEvents(): AuditEvent[] {
  return readFileSync(auditPath, 'utf8')
    .split('\n')
    .filter((l) => l.length > 0)
    .map((l) => JSON.parse(l) as AuditEvent)
    .filter((e) => e.event.startsWith('certificate.'));
}

function opensslVerify(file: string): string {
  return execFileSync('openssl', ['verify', '-CAfile', caPath, '-untrusted', file, file], { encoding: 'utf8' });
}

beforeAll(async () => {
  execFileSync(join(projectRoot(), 'node_modules/.bin/tsc'), ['-p', join(projectRoot(), 'tsconfig.json')], { stdio: 'pipe' });
  work = mkdtempSync(join(tmpdir(), 'veil-sv-manager-'));
  const ca = await createClusterCa({ trustDomain: 'cluster.local' });
  caPath = join(work, 'ca.pem');
  writeFileSync(caPath, ca.certificate.pem);
  const csr = await createNodeCsr({ nodeName: NODE });
  const cert = await issueNodeCertificate(ca, { csrPem: csr.csrPem, nodeName: NODE });
  node = nodeCredentials(cert, csr.privateKey);
  etcd = await EtcdServer.start();
  store = await openEtcdStore({ endpoints: [etcd.clientUrl], requestTimeoutMs: 10_000 });
  const alloc = new IdentityAllocator({ store });
  refs = new IdentityReferences(store);
  const lease = await store.grantLease(600);
  const web = canonicalLabelSet({ namespace: 'default', serviceAccount: 'web' });
  const db = canonicalLabelSet({ namespace: 'shop', serviceAccount: 'db' });
  const other = canonicalLabelSet({ namespace: 'default', serviceAccount: 'elsewhere' });
  webId = (await alloc.allocate(web)).id;
  dbId = (await alloc.allocate(db)).id;
  const otherId = (await alloc.allocate(other)).id;
  await refs.addReference(webId, web, NODE, lease);
  await refs.addReference(dbId, db, NODE, lease);
  await refs.addReference(otherId, other, 'sv-other', lease);
  auditPath = join(work, 'audit.jsonl');
  audit = openAuditLog({ path: auditPath, node: NODE, signer: keyObjectSigner(node.privateKey, cert.pem), mirror: null, checkpointEvery: 1 });
  // 60 s (the minimum) and jitter near its top: renewal a few seconds after issuance.
  manager = new SvidManager({ node, stateDir: join(work, 'state'), audit, hosted: () => hostedIdentities(store, NODE), ttlMs: 60_000, tickMs: 200, random: () => 0.99 });
  await manager.start();
}, 120_000);

afterAll(async () => {
  await manager?.stop().catch(() => undefined);
  await audit?.close().catch(() => undefined);
  await store?.close().catch(() => undefined);
  await etcd?.cleanup();
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('SVID manager on a real etcd', () => {
  it('issues an SVID per identity the node references, 0600, accepted by openssl verify with the CA and node certificate', () => {
    expect(manager.status().map((s) => [s.identity, s.spiffeId])).toEqual(
      [
        [webId, 'spiffe://cluster.local/ns/default/sa/web'],
        [dbId, 'spiffe://cluster.local/ns/shop/sa/db'],
      ].sort((a, b) => Number(a[0]) - Number(b[0])),
    );
    expect(statSync(manager.dir).mode & 0o777).toBe(0o700);
    for (const id of [webId, dbId]) {
      const file = manager.certificatePath(id);
      expect(statSync(file).mode & 0o777).toBe(0o600);
      expect(statSync(manager.keyPath(id)).mode & 0o777).toBe(0o600);
      expect(opensslVerify(file)).toBe(`${file}: OK\n`);
      const text = execFileSync('openssl', ['x509', '-in', file, '-noout', '-ext', 'subjectAltName'], { encoding: 'utf8' });
      expect(text).toMatch(/URI:spiffe:\/\/cluster\.local\/ns\/(default\/sa\/web|shop\/sa\/db)\s*$/);
    }
    const issued = auditEvents().filter((e) => e.event === 'certificate.issued');
    expect(issued.map((e) => 'identity' in e && e.identity).sort()).toEqual([webId, dbId].sort());
  });

  it('renews at half-life and audits certificate.renewed with previousFingerprint', async () => {
    const first = manager.status().find((s) => s.identity === webId)!;
    const renewed = await eventually(
      () => auditEvents().find((e) => e.event === 'certificate.renewed' && e.identity === webId && e.previousFingerprint === first.fingerprint),
      { timeoutMs: 60_000, what: 'certificate.renewed for the web identity' },
    );
    expect(renewed.fingerprint).not.toBe(first.fingerprint);
    expect(opensslVerify(manager.certificatePath(webId))).toContain(': OK');
  }, 70_000);

  it('removes the files of an identity whose reference is removed', async () => {
    await refs.removeReference(dbId, NODE);
    await eventually(() => !existsSync(manager.certificatePath(dbId)) && !existsSync(manager.keyPath(dbId)), { timeoutMs: 10_000, what: 'db SVID files removed' });
    expect(existsSync(manager.certificatePath(webId))).toBe(true);
    expect(manager.status().map((s) => s.identity)).toEqual([webId]);
  });

  it('leaves an audit log that veil audit verify accepts, without SVID key material', async () => {
    const keyPem = readFileSync(manager.keyPath(webId), 'utf8');
    await manager.stop();
    await audit.close();
    const r = spawnSync(process.execPath, [cli, 'audit', 'verify', auditPath, '--ca', caPath], { encoding: 'utf8' });
    expect(r.status, `${r.stdout}${r.stderr}`).toBe(0);
    expect(r.stdout).toContain(`Audit log "${auditPath}" is intact`);
    const body = keyPem.split('\n').filter((l) => l.length === 64)[0]!;
    expect(readFileSync(auditPath, 'utf8')).not.toContain(body);
  });
});
