import { generateKeyPairSync } from 'node:crypto';
import { KeyUsageFlags } from '@peculiar/asn1-x509';
import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../../agent/errors.js';
import { parseCertificateDer } from '../../../certs/certificate.js';
import { createClusterCa } from '../../../certs/cluster-ca.js';
import {
  CertificateExpiredError,
  CertificateNotYetValidError,
  CertificateProfileError,
  ChainError,
  IdentityNotHostedError,
  NameConstraintError,
  SpiffeIdError,
  TrustBundleError,
} from '../../../certs/errors.js';
import { issueNodeCertificate } from '../../../certs/node-certificate.js';
import { createNodeCsr } from '../../../certs/node-csr.js';
import { issueSvid, nodeCredentials } from '../../../certs/svid.js';
import { TrustBundle } from '../../../certs/trust-bundle.js';
import { verifyNodeCertificate, verifySvid, type VerifySvidOptions } from '../../../certs/verify.js';
import { BasicConstraintsExtension, KeyUsagesExtension, SubjectAlternativeNameExtension } from '../../../certs/x509.js';
import { trustDomainNameConstraint } from '../../../certs/name-constraints.js';
import { makePki, signWithNode, signWithNodeKeepKey, svidExtensions, TD } from './pki-fixture.js';

const pki = await makePki();
const yes = () => true;

function opts(over: Partial<VerifySvidOptions> = {}): VerifySvidOptions {
  return { bundle: pki.bundle, trustDomain: TD, intermediates: pki.svid.chain, issuingNodeHostsIdentity: yes, ...over };
}

describe('verifySvid()', () => {
  it('accepts an SVID issued by a node for an identity it hosts, and says who issued it', async () => {
    const seen: [string, string][] = [];
    const v = await verifySvid(pki.svid.certificate, opts({ issuingNodeHostsIdentity: (n, id) => (seen.push([n, id]), true) }));
    expect(v).toMatchObject({ spiffeId: 'spiffe://cluster.local/ns/default/sa/web', namespace: 'default', serviceAccount: 'web', nodeName: 'node-1' });
    expect(seen).toEqual([['node-1', 'spiffe://cluster.local/ns/default/sa/web']]);
    expect(v.path.map((c) => c.fingerprint)).toEqual([pki.svid.certificate, pki.node.certificate, pki.ca.certificate].map((c) => c.fingerprint));
  });

  it('fails with IdentityNotHostedError when the hosting check says no (also asynchronously)', async () => {
    await expect(verifySvid(pki.svid.certificate, opts({ issuingNodeHostsIdentity: () => false }))).rejects.toThrow(IdentityNotHostedError);
    await expect(verifySvid(pki.svid.certificate, opts({ issuingNodeHostsIdentity: async () => false }))).rejects.toThrow(
      /Node "node-1" issued an SVID for "spiffe:\/\/cluster.local\/ns\/default\/sa\/web" but does not host/,
    );
  });

  it('requires the hosting check', async () => {
    await expect(verifySvid(pki.svid.certificate, opts({ issuingNodeHostsIdentity: undefined as never }))).rejects.toThrow(ValidationError);
  });

  it('fails without the node certificate, naming the missing issuer', async () => {
    await expect(verifySvid(pki.svid.certificate, opts({ intermediates: [] }))).rejects.toThrow(ChainError);
    await expect(verifySvid(pki.svid.certificate, opts({ intermediates: [] }))).rejects.toThrow(/issued by "CN=node-1", which is neither/);
  });

  it('fails against another cluster\'s CA', async () => {
    const other = await makePki();
    await expect(verifySvid(pki.svid.certificate, opts({ bundle: other.bundle }))).rejects.toThrow(ChainError);
  });

  it('rejects a tampered SVID: a flipped signature byte and a flipped TBS byte', async () => {
    const der = pki.svid.certificate.der;
    const sig = Buffer.from(der);
    sig[sig.length - 5] = (sig[sig.length - 5] as number) ^ 0x01;
    await expect(verifySvid(parseCertificateDer(sig, 'tampered SVID'), opts())).rejects.toThrow(/does not verify with the key of its issuer/);
    // The serial number sits early in the TBS; changing it keeps the DER well-formed.
    const tbs = Buffer.from(der);
    const serialAt = der.indexOf(Buffer.from(pki.svid.certificate.serialNumber.slice(0, 8), 'hex'));
    tbs[serialAt] = (tbs[serialAt] as number) ^ 0x01;
    await expect(verifySvid(parseCertificateDer(tbs, 'tampered SVID'), opts())).rejects.toThrow(ChainError);
  });

  it('rejects an expired SVID and one not yet valid, with the tolerated skew', async () => {
    const after = new Date(pki.svid.notAfter.getTime() + 61_000);
    await expect(verifySvid(pki.svid.certificate, opts({ now: after }))).rejects.toThrow(CertificateExpiredError);
    await expect(verifySvid(pki.svid.certificate, opts({ now: after, clockSkewMs: 120_000 }))).resolves.toBeDefined();
    const before = new Date(pki.svid.notBefore.getTime() - 61_000);
    await expect(verifySvid(pki.svid.certificate, opts({ now: before }))).rejects.toThrow(CertificateNotYetValidError);
    await expect(verifySvid(pki.svid.certificate, opts({ now: before }))).rejects.toThrow(/is not valid before/);
  });

  it('bounds the configurable clock skew', async () => {
    await expect(verifySvid(pki.svid.certificate, opts({ clockSkewMs: 3_600_000 }))).rejects.toThrow(/Invalid clock skew/);
    await expect(verifySvid(pki.svid.certificate, opts({ clockSkewMs: -1 }))).rejects.toThrow(ValidationError);
  });

  it('rejects an SVID with two URI SANs', async () => {
    const two = await signWithNode(pki.node, svidExtensions(['spiffe://cluster.local/ns/default/sa/web', 'spiffe://cluster.local/ns/default/sa/db']));
    await expect(verifySvid(two, opts())).rejects.toThrow(SpiffeIdError);
    await expect(verifySvid(two, opts())).rejects.toThrow(/has 2 URI SANs/);
  });

  it('rejects an SVID without a URI SAN, with a bad path or in the wrong trust domain', async () => {
    const none = await signWithNode(pki.node, svidExtensions([]));
    await expect(verifySvid(none, opts())).rejects.toThrow(/has 0 URI SANs/);
    const path = await signWithNode(pki.node, svidExtensions(['spiffe://cluster.local/web']));
    await expect(verifySvid(path, opts())).rejects.toThrow(/workload shape/);
    await expect(verifySvid(pki.svid.certificate, opts({ trustDomain: 'other.org' }))).rejects.toThrow(/not "other.org"/);
  });

  it('the node certificate\'s name constraint stops a node from issuing for another trust domain', async () => {
    const foreign = await signWithNode(pki.node, svidExtensions(['spiffe://other.org/ns/default/sa/web']));
    await expect(verifySvid(foreign, opts({ trustDomain: 'other.org' }))).rejects.toThrow(NameConstraintError);
    await expect(verifySvid(foreign, opts())).rejects.toThrow(SpiffeIdError);
    // Even if a verifier were told to expect that trust domain, path validation refuses it.
    const { validatePath } = await import('../../../certs/chain.js');
    await expect(validatePath(foreign, [pki.node.certificate], pki.bundle, { now: new Date(), clockSkewMs: 0 })).rejects.toThrow(NameConstraintError);
  });

  it('rejects wrong key usage and basic constraints on the leaf', async () => {
    const uri = ['spiffe://cluster.local/ns/default/sa/web'];
    const certSign = await signWithNode(pki.node, svidExtensions(uri, KeyUsageFlags.digitalSignature | KeyUsageFlags.keyCertSign));
    await expect(verifySvid(certSign, opts())).rejects.toThrow(/keyCertSign or cRLSign/);
    const noSig = await signWithNode(pki.node, svidExtensions(uri, KeyUsageFlags.keyAgreement));
    await expect(verifySvid(noSig, opts())).rejects.toThrow(/lacks key usage digitalSignature/);
    const ca = await signWithNode(pki.node, [new BasicConstraintsExtension(true, undefined, true), new KeyUsagesExtension(KeyUsageFlags.digitalSignature, true)]);
    await expect(verifySvid(ca, opts())).rejects.toThrow(CertificateProfileError);
  });

  it('a node cannot make a CA: what a node-signed "CA" signs breaks pathlen 0, and it is no node certificate', async () => {
    const sub = await signWithNodeKeepKey(
      pki.node,
      [
        new BasicConstraintsExtension(true, 0, true),
        new KeyUsagesExtension(KeyUsageFlags.keyCertSign, true),
        new SubjectAlternativeNameExtension([{ type: 'url', value: 'spiffe://cluster.local' }]),
        trustDomainNameConstraint(TD),
      ],
      { subject: [{ CN: ['node-2'] }] },
    );
    const leaf = await signWithNode(sub, svidExtensions(['spiffe://cluster.local/ns/default/sa/web']));
    await expect(verifySvid(leaf, opts({ intermediates: [sub.certificate, pki.node.certificate] }))).rejects.toThrow(/allows 0 CA certificate\(s\) below it/);
    await expect(verifyNodeCertificate(sub.certificate, { bundle: pki.bundle, trustDomain: TD, intermediates: [pki.node.certificate] })).rejects.toThrow(
      /not issued directly by a trust bundle CA/,
    );
  });

  it('verifies against either CA of a rotation bundle, and refuses a third CA', async () => {
    const next = await makePki();
    const both = pki.bundle.withCa(next.ca.certificate);
    expect(both.cas).toHaveLength(2);
    await expect(verifySvid(pki.svid.certificate, opts({ bundle: both }))).resolves.toBeDefined();
    await expect(verifySvid(next.svid.certificate, opts({ bundle: both, intermediates: next.svid.chain }))).resolves.toBeDefined();
    const third = await createClusterCa({ trustDomain: TD });
    expect(() => both.withCa(third.certificate)).toThrow(TrustBundleError);
    const retired = both.withoutCa(pki.ca.certificate.fingerprint);
    await expect(verifySvid(pki.svid.certificate, opts({ bundle: retired }))).rejects.toThrow(ChainError);
    expect(TrustBundle.fromPem(both.toPem()).cas.map((c) => c.fingerprint)).toEqual(both.cas.map((c) => c.fingerprint));
  });

  it('refuses to put a non-CA certificate in a bundle', () => {
    expect(() => TrustBundle.of([pki.svid.certificate])).toThrow(/not a CA certificate/);
  });
});

describe('verifyNodeCertificate()', () => {
  it('accepts a node certificate the CA issued and returns the node name', async () => {
    const v = await verifyNodeCertificate(pki.node.certificate, { bundle: pki.bundle, trustDomain: TD });
    expect(v.nodeName).toBe('node-1');
  });

  it('refuses an SVID or the CA in place of a node certificate', async () => {
    await expect(verifyNodeCertificate(pki.svid.certificate, { bundle: pki.bundle, trustDomain: TD })).rejects.toThrow(CertificateProfileError);
    await expect(verifyNodeCertificate(pki.ca.certificate, { bundle: pki.bundle, trustDomain: TD })).rejects.toThrow(/pathlen must be 0/);
  });
});

describe('issuance', () => {
  it('issues SVIDs with the documented profile, 1 h by default and renewal at half-life ±10 %', () => {
    const c = pki.svid.certificate;
    expect(c.basicConstraints).toEqual({ ca: false, pathLength: undefined });
    expect(c.keyUsage).toBe(KeyUsageFlags.digitalSignature);
    expect(c.extKeyUsage).toEqual(['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2']);
    const life = c.notAfter.getTime() - c.notBefore.getTime();
    expect(c.notAfter.getTime() - Date.now()).toBeLessThanOrEqual(3_600_000);
    expect(c.notAfter.getTime() - Date.now()).toBeGreaterThan(3_500_000);
    const renew = pki.svid.renewAt.getTime() - c.notBefore.getTime();
    expect(renew).toBeGreaterThanOrEqual(0.45 * life - 1);
    expect(renew).toBeLessThanOrEqual(0.55 * life + 1);
  });

  it('never issues an SVID beyond the node certificate', async () => {
    const now = new Date();
    const ca = await createClusterCa({ trustDomain: TD, now });
    const csr = await createNodeCsr({ nodeName: 'short' });
    const cert = await issueNodeCertificate(ca, { csrPem: csr.csrPem, nodeName: 'short', ttlMs: 600_000, now });
    const svid = await issueSvid(nodeCredentials(cert, csr.privateKey), { namespace: 'a', serviceAccount: 'b', now });
    expect(svid.notAfter.getTime()).toBe(cert.notAfter.getTime());
  });

  it('refuses a CSR for another node, a CSR with a bad signature and a non-P-256 key', async () => {
    const csr = await createNodeCsr({ nodeName: 'node-a' });
    await expect(issueNodeCertificate(pki.ca, { csrPem: csr.csrPem, nodeName: 'node-b' })).rejects.toThrow(/asks for subject "CN=node-a", expected exactly "CN=node-b"/);
    const { decodeSinglePem, encodePem } = await import('../../../certs/pem.js');
    const der = decodeSinglePem(csr.csrPem, { what: 'csr', labels: ['CERTIFICATE REQUEST'] }).der;
    der[der.length - 3] = (der[der.length - 3] as number) ^ 0x01;
    await expect(issueNodeCertificate(pki.ca, { csrPem: encodePem('CERTIFICATE REQUEST', der), nodeName: 'node-a' })).rejects.toThrow(/signature does not verify/);
    const { Pkcs10CertificateRequestGenerator } = await import('../../../certs/x509.js');
    const { webcrypto } = await import('node:crypto');
    const keys = (await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-384' }, true, ['sign', 'verify'])) as CryptoKeyPair;
    const p384 = await Pkcs10CertificateRequestGenerator.create({ name: [{ CN: ['node-a'] }], keys, signingAlgorithm: { name: 'ECDSA', hash: 'SHA-384' } }, webcrypto as unknown as Crypto);
    await expect(issueNodeCertificate(pki.ca, { csrPem: p384.toString('pem'), nodeName: 'node-a' })).rejects.toThrow(/ECDSA P-384 key; use one of: ECDSA P-256/);
  });

  it('refuses node credentials whose key does not match the certificate', async () => {
    const other = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    expect(() => nodeCredentials(pki.node.certificate, other.privateKey)).toThrow(/does not belong to/);
  });
});
