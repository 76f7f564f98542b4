/**
 * The CA holder's half of node certificate issuance. The CA checks the request's signature (the
 * node holds the key), that it names exactly the node it was asked to certify, and that the key
 * is ECDSA P-256; every extension is the CA's choice, requested extensions are not copied.
 *
 * The node certificate is an intermediate CA constrained so that a node can issue SVIDs and
 * nothing else: pathlen 0 (what it signs cannot sign), keyUsage keyCertSign plus digitalSignature
 * (the node key also signs the node's published record and its audit-log checkpoints), and a critical
 * URI name constraint to the trust domain (what it signs can only name spiffe://<td>/...).
 * Which identities a node may issue is checked by verifiers (issuingNodeHostsIdentity).
 */
import { createPublicKey, webcrypto } from 'node:crypto';
import { BasicConstraintsExtension, KeyUsageFlags, KeyUsagesExtension, SubjectAlternativeNameExtension } from './x509.js';
import { ValidationError } from '../agent/errors.js';
import type { Certificate } from './certificate.js';
import { CA_KEY_ALGORITHMS, type ClusterCa } from './cluster-ca.js';
import { CsrRejectedError, KeyError } from './errors.js';
import { signingProfile } from './keys.js';
import { validateNodeName } from './names.js';
import { trustDomainNameConstraint } from './name-constraints.js';
import { readCsrPem } from './node-csr.js';
import { signCertificate } from './sign.js';
import { trustDomainId } from './spiffe-id.js';
import { DEFAULT_CLOCK_SKEW_MS, DEFAULT_NODE_TTL_MS, NOT_BEFORE_BACKDATE_MS, checkValidity, validateNow, validateTtl } from './validity.js';

export interface IssueNodeCertificateOptions {
  /** PEM of the node's PKCS#10 request. */
  csrPem: string | Buffer;
  /** The node the CA holder means to certify; the request must name exactly this node. */
  nodeName: string;
  ttlMs?: number;
  now?: Date;
}

const crypto = webcrypto as unknown as Crypto;

export async function issueNodeCertificate(ca: ClusterCa, opts: IssueNodeCertificateOptions): Promise<Certificate> {
  const nodeName = validateNodeName(opts.nodeName, 'nodeName');
  const ttlMs = validateTtl(opts.ttlMs ?? DEFAULT_NODE_TTL_MS, 'ttlMs');
  const now = validateNow(opts.now ?? new Date());
  if (!ca || typeof ca !== 'object' || !ca.certificate || !ca.privateKey) {
    throw new ValidationError('ca', 'Cannot issue a node certificate without the cluster CA: pass the CA from createClusterCa() or importClusterCa()');
  }
  checkValidity(ca.certificate, 'the cluster CA certificate', now, DEFAULT_CLOCK_SKEW_MS);
  const what = `certificate request of node "${nodeName}"`;
  const csr = readCsrPem(opts.csrPem, what);
  let signatureOk = false;
  try {
    signatureOk = await csr.verify(crypto);
  } catch {
    signatureOk = false;
  }
  if (!signatureOk) {
    throw new CsrRejectedError(`Refusing the ${what}: its signature does not verify, so the requester does not hold the key`);
  }
  const cns = csr.subjectName.getField('CN');
  const rdns = csr.subjectName.toJSON();
  if (cns.length !== 1 || cns[0] !== nodeName || rdns.length !== 1 || Object.keys(rdns[0] ?? {}).length !== 1) {
    throw new CsrRejectedError(`Refusing the ${what}: it asks for subject "${csr.subject}", expected exactly "CN=${nodeName}"`);
  }
  if (csr.attributes.length > 0) {
    throw new CsrRejectedError(`Refusing the ${what}: it carries ${csr.attributes.length} attribute(s) (requested extensions); make the request with only a subject`);
  }
  const spki = Buffer.from(csr.publicKey.rawData);
  try {
    signingProfile(createPublicKey({ key: spki, format: 'der', type: 'spki' }), 'the requested node key', ['ECDSA P-256']);
  } catch (err) {
    if (err instanceof KeyError) throw new CsrRejectedError(`Refusing the ${what}: ${err.message}`);
    throw new CsrRejectedError(`Refusing the ${what}: its public key does not parse`);
  }
  const notAfter = new Date(Math.min(now.getTime() + ttlMs, ca.certificate.notAfter.getTime()));
  return signCertificate(
    { certificate: ca.certificate, privateKey: ca.privateKey, algorithms: CA_KEY_ALGORITHMS, keyWhat: 'CA key' },
    {
      what: `node certificate "${nodeName}"`,
      subject: [{ CN: [nodeName] }],
      subjectPublicKey: spki,
      notBefore: new Date(now.getTime() - NOT_BEFORE_BACKDATE_MS),
      notAfter,
      extensions: [
        new BasicConstraintsExtension(true, 0, true),
        new KeyUsagesExtension(KeyUsageFlags.keyCertSign | KeyUsageFlags.digitalSignature, true),
        new SubjectAlternativeNameExtension([{ type: 'url', value: trustDomainId(ca.trustDomain) }], false),
        trustDomainNameConstraint(ca.trustDomain),
      ],
    },
  );
}
