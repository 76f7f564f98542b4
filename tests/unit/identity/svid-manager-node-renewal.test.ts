import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { validateAuditEvent, type AuditEvent } from '../../../agent/audit/events.js';
import { SvidManager } from '../../../agent/identity/svid-manager.js';
import { readCertificatesPem } from '../../../certs/certificate.js';
import { issueNodeCertificate } from '../../../certs/node-certificate.js';
import { createNodeCsr } from '../../../certs/node-csr.js';
import { nodeCredentials } from '../../../certs/svid.js';
import { makePki } from '../certs/pki-fixture.js';

const dir = mkdtempSync(join(tmpdir(), 'veil-oc-svid-'));
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('SvidManager.replaceNodeCredentials()', () => {
  it('re-issues every SVID with the renewed node certificate at once, audited as renewals', async () => {
    const pki = await makePki({ nodeName: 'sv-node' });
    const events: AuditEvent[] = [];
    const m = new SvidManager({
      node: pki.node,
      stateDir: dir,
      audit: { record: async (e: AuditEvent) => void events.push(validateAuditEvent(e)) },
      hosted: async () => [{ id: 300, namespace: 'default', serviceAccount: 'web' }],
      tickMs: 60_000,
    });
    await m.start();
    const before = m.status()[0]!;
    const csr = await createNodeCsr({ nodeName: 'sv-node' });
    const renewed = nodeCredentials(await issueNodeCertificate(pki.ca, { csrPem: csr.csrPem, nodeName: 'sv-node' }), csr.privateKey);
    await m.replaceNodeCredentials(renewed);
    const [leaf, chain] = readCertificatesPem(readFileSync(m.certificatePath(300)), 'svid file');
    expect(chain!.fingerprint).toBe(renewed.certificate.fingerprint);
    expect(await leaf!.x509.verify({ publicKey: renewed.certificate.x509.publicKey })).toBe(true);
    expect(events.map((e) => e.event)).toEqual(['certificate.issued', 'certificate.renewed']);
    expect(events[1]).toMatchObject({ previousFingerprint: before.fingerprint, issuerFingerprint: renewed.certificate.fingerprint });
    await m.stop();
  });
});
