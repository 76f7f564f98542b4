/**
 * The node credentials certs/ issues are the ones keys/ and audit/ sign with: a node record
 * signed with a node certificate from certs/ verifies against the cluster CA, and an audit log
 * checkpointed with the same key verifies as intact. Built separately, these parts must fit.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openAuditLog } from '../../../agent/audit/audit-log.js';
import { createCaVerifier } from '../../../agent/audit/ca-verifier.js';
import { certificateFingerprint } from '../../../agent/keys/fingerprint.js';
import { keyObjectSigner } from '../../../agent/audit/signer.js';
import { verifyAuditFile } from '../../../agent/audit/verify.js';
import { signNodeRecord, serializeSignedNodeRecord } from '../../../agent/keys/node-record-sign.js';
import { verifyNodeRecord } from '../../../agent/keys/node-record-verify.js';
import { createClusterCa, createNodeCsr, issueNodeCertificate } from '../../../certs/index.js';
import { sampleRecord } from '../keys/sample-record.js';

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

async function nodeCredentials(nodeName: string) {
  const ca = await createClusterCa({ trustDomain: 'cluster.local' });
  const { csrPem, privateKey } = await createNodeCsr({ nodeName });
  const cert = await issueNodeCertificate(ca, { csrPem, nodeName });
  return { ca, cert, privateKey };
}

describe('node credentials from certs/', () => {
  it('sign a node record that keys/ verifies against the cluster CA', async () => {
    const { ca, cert, privateKey } = await nodeCredentials('node-a');
    const record = sampleRecord({ name: 'node-a', issuedAt: Date.now() });
    const wire = serializeSignedNodeRecord(signNodeRecord(record, { privateKey, certificate: cert.pem }));
    const verified = verifyNodeRecord(wire, { trustAnchors: [ca.certificate.pem], expectedNode: 'node-a' });
    expect(verified.record).toEqual(record);
    // Another cluster's CA does not vouch for it.
    const other = await createClusterCa({ trustDomain: 'cluster.local' });
    expect(() => verifyNodeRecord(wire, { trustAnchors: [other.certificate.pem] })).toThrow();
    // The cluster CA's own key is not a node's: a record it signs is refused.
    const byCa = serializeSignedNodeRecord(signNodeRecord(record, { privateKey: ca.privateKey, certificate: ca.certificate.pem, nodeNameOf: () => 'node-a' }));
    expect(() => verifyNodeRecord(byCa, { trustAnchors: [ca.certificate.pem] })).toThrow(/trust anchor or a self-issued/);
  });

  it('checkpoint an audit log that veil audit verify accepts as intact', async () => {
    const { ca, cert, privateKey } = await nodeCredentials('node-b');
    const dir = mkdtempSync(join(tmpdir(), 'veil-int-'));
    dirs.push(dir);
    const path = join(dir, 'audit.jsonl');
    const log = openAuditLog({ path, node: 'node-b', signer: keyObjectSigner(privateKey, cert.pem), mirror: null });
    await log.record({
      event: 'certificate.issued',
      certKind: 'node',
      subject: 'CN=node-b',
      serial: cert.serialNumber.toLowerCase().replace(/^0+(?=.)/, ''),
      fingerprint: certificateFingerprint(cert.pem),
      issuerFingerprint: certificateFingerprint(ca.certificate.pem),
      notBefore: cert.notBefore.toISOString(),
      notAfter: cert.notAfter.toISOString(),
    });
    await log.close();
    const result = verifyAuditFile(path, createCaVerifier([ca.certificate.pem]));
    expect(result.status).toBe('intact');
    const wrongCa = await createClusterCa({ trustDomain: 'cluster.local' });
    expect(verifyAuditFile(path, createCaVerifier([wrongCa.certificate.pem])).status).toBe('tampered');

    // Checkpoints signed with the cluster CA's own key are refused.
    const caPath = join(dir, 'audit-by-ca.jsonl');
    const caLog = openAuditLog({ path: caPath, node: 'node-b', signer: keyObjectSigner(ca.privateKey, ca.certificate.pem), mirror: null });
    await caLog.record({ event: 'key.generated', keyKind: 'node', generation: 0, fingerprint: certificateFingerprint(cert.pem), algorithm: 'x25519' });
    await caLog.close();
    const byCa = verifyAuditFile(caPath, createCaVerifier([ca.certificate.pem]));
    expect(byCa.status).toBe('tampered');
    expect(byCa.status !== 'intact' && byCa.reason).toMatch(/trust anchor or self-issued/);
  });
});
