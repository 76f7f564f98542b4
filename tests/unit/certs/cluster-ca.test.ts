import { generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../../agent/errors.js';
import { createClusterCa, importClusterCa } from '../../../certs/cluster-ca.js';
import { CertificateExpiredError, CertificateNotYetValidError, CertificateProfileError, KeyError, SpiffeIdError } from '../../../certs/errors.js';
import { privateKeyToPem } from '../../../certs/keys.js';
import { issueNodeCertificate } from '../../../certs/node-certificate.js';
import { createNodeCsr } from '../../../certs/node-csr.js';
import { makePki, TD } from './pki-fixture.js';

const ca = await createClusterCa({ trustDomain: TD });
const caKeyPem = privateKeyToPem(ca.privateKey);

describe('cluster CA', () => {
  it('creates an ECDSA P-256 CA with pathlen 1, keyCertSign and the trust domain ID', () => {
    const c = ca.certificate;
    expect(c.basicConstraints).toEqual({ ca: true, pathLength: 1 });
    expect(c.uriSans).toEqual(['spiffe://cluster.local']);
    expect(ca.privateKey.asymmetricKeyDetails?.namedCurve).toBe('prime256v1');
    expect(c.notAfter.getTime() - Date.now()).toBeGreaterThan(9 * 365 * 86_400_000);
  });

  it('imports a valid CA and issues node certificates with it', async () => {
    const imported = await importClusterCa({ certificatePem: ca.certificate.pem, privateKeyPem: caKeyPem, trustDomain: TD });
    const csr = await createNodeCsr({ nodeName: 'n' });
    await expect(issueNodeCertificate(imported, { csrPem: csr.csrPem, nodeName: 'n' })).resolves.toBeDefined();
  });

  it('refuses to import a certificate that is not a CA', async () => {
    const pki = await makePki();
    await expect(
      importClusterCa({ certificatePem: pki.svid.certificate.pem, privateKeyPem: privateKeyToPem(pki.svid.privateKey), trustDomain: TD }),
    ).rejects.toThrow(/not a CA certificate/);
  });

  it('refuses to import a node certificate (pathlen 0 leaves no room for node certificates)', async () => {
    const pki = await makePki();
    await expect(
      importClusterCa({ certificatePem: pki.node.certificate.pem, privateKeyPem: privateKeyToPem(pki.node.privateKey), trustDomain: TD }),
    ).rejects.toThrow(CertificateProfileError);
  });

  it('refuses a key that does not match the certificate', async () => {
    const other = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    await expect(importClusterCa({ certificatePem: ca.certificate.pem, privateKeyPem: privateKeyToPem(other.privateKey), trustDomain: TD })).rejects.toThrow(
      /does not belong to/,
    );
  });

  it.each([
    ['Ed25519', () => generateKeyPairSync('ed25519').privateKey, /Ed25519 key/],
    ['RSA 1024', () => generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey, /RSA 1024 key/],
    ['ECDSA secp256k1', () => generateKeyPairSync('ec', { namedCurve: 'secp256k1' }).privateKey, /secp256k1 key/],
  ])('refuses a %s CA key, naming the accepted algorithms', async (_n, make, message) => {
    const err = await importClusterCa({ certificatePem: ca.certificate.pem, privateKeyPem: privateKeyToPem(make()), trustDomain: TD }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KeyError);
    expect((err as Error).message).toMatch(message);
    expect((err as Error).message).toMatch(/use one of: ECDSA P-256, ECDSA P-384, RSA 2048..8192/);
  });

  it('refuses an expired or not yet valid CA', async () => {
    const later = new Date(ca.certificate.notAfter.getTime() + 3_600_000);
    await expect(importClusterCa({ certificatePem: ca.certificate.pem, privateKeyPem: caKeyPem, trustDomain: TD, now: later })).rejects.toThrow(CertificateExpiredError);
    const earlier = new Date(ca.certificate.notBefore.getTime() - 3_600_000);
    await expect(importClusterCa({ certificatePem: ca.certificate.pem, privateKeyPem: caKeyPem, trustDomain: TD, now: earlier })).rejects.toThrow(CertificateNotYetValidError);
  });

  it('refuses a CA of another trust domain', async () => {
    await expect(importClusterCa({ certificatePem: ca.certificate.pem, privateKeyPem: caKeyPem, trustDomain: 'other.org' })).rejects.toThrow(SpiffeIdError);
  });

  it('refuses an invalid trust domain or lifetime', async () => {
    await expect(createClusterCa({ trustDomain: 'Bad Domain' })).rejects.toThrow(ValidationError);
    await expect(createClusterCa({ trustDomain: TD, ttlMs: 5 })).rejects.toThrow(/Invalid lifetime/);
  });
});
