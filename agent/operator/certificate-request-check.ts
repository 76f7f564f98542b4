/**
 * The operator's checks of one node certificate request before it signs anything (inputs from the
 * cluster are hostile). In this order, the first failure refuses the request:
 *
 *   replayed               the request id was answered already
 *   stale                  created more than `maxAgeMs` ago, or in the future beyond the clock skew
 *   unknown-node           the node has no record in the cluster model
 *   no-token / token-expired / bad-proof       (bootstrap-token proof) no registration for the
 *                          node (never registered, or used already), past its expiry, or the
 *                          signature does not verify with the registered key
 *   untrusted-certificate / bad-proof          (node-certificate proof) the certificate is not a
 *                          valid node certificate of this CA for this very node, or the signature
 *                          does not verify with its key
 *
 * The CSR itself (signature, subject CN=<node>, ECDSA P-256) is checked by issueNodeCertificate()
 * (certs/node-certificate.ts), the one implementation. Messages name the node and the fix and
 * never carry the token, a signature or key material.
 */
import { createPublicKey, verify as cryptoVerify } from 'node:crypto';
import type { ClusterCa } from '../../certs/cluster-ca.js';
import { readCertificatePem } from '../../certs/certificate.js';
import { TrustBundle } from '../../certs/trust-bundle.js';
import { verifyNodeCertificate } from '../../certs/verify.js';
import { signatureAlgorithmOf, verifySignature } from '../keys/signature.js';
import type { BootstrapRegistration } from '../node-cert/bootstrap-token.js';
import { CertificateRequestRefusedError } from '../node-cert/errors.js';
import { requestSigningData, type CertificateRequest } from '../node-cert/records.js';

export interface RequestCheckContext {
  ca: ClusterCa;
  /** Request ids already answered for this node. */
  answered: readonly string[];
  /** Whether the node exists in the cluster model. */
  nodeExists: boolean;
  /** The node's bootstrap registration, or null (needed for "bootstrap-token" proofs only). */
  registration: BootstrapRegistration | null;
  now: Date;
  maxAgeMs: number;
  clockSkewMs: number;
}

export const DEFAULT_MAX_REQUEST_AGE_MS = 10 * 60_000;

export async function checkCertificateRequest(req: CertificateRequest, c: RequestCheckContext): Promise<void> {
  const node = req.node;
  const refuse = (reason: ConstructorParameters<typeof CertificateRequestRefusedError>[1], message: string) =>
    new CertificateRequestRefusedError(node, reason, message);
  if (c.answered.includes(req.requestId)) {
    throw refuse('replayed', `Refusing the certificate request of node "${node}": request "${req.requestId}" was answered already (a replay); the node must make a new request`);
  }
  const age = c.now.getTime() - req.createdAt.getTime();
  if (age > c.maxAgeMs || age < -c.clockSkewMs) {
    throw refuse(
      'stale',
      `Refusing the certificate request of node "${node}": it was made at "${req.createdAt.toISOString()}", outside the accepted ${Math.round(c.maxAgeMs / 1000)} s window; check the node's clock and let the agent make a new request`,
    );
  }
  if (!c.nodeExists) {
    throw refuse('unknown-node', `Refusing the certificate request of node "${node}": the node has no record in the cluster model; register the node first`);
  }
  const data = requestSigningData(req, req.proof.kind);
  if (req.proof.kind === 'bootstrap-token') {
    const reg = c.registration;
    if (!reg) {
      throw refuse('no-token', `Refusing the certificate request of node "${node}": no bootstrap token is registered for it (never registered, or used already); provision a new token for the node`);
    }
    if (reg.expiresAt.getTime() <= c.now.getTime()) {
      throw refuse('token-expired', `Refusing the certificate request of node "${node}": its bootstrap token expired at "${reg.expiresAt.toISOString()}"; provision a new token for the node`);
    }
    let ok = false;
    try {
      ok = cryptoVerify(null, data, createPublicKey({ key: reg.publicKey, format: 'der', type: 'spki' }), req.proof.signature);
    } catch {
      ok = false;
    }
    if (!ok) {
      throw refuse('bad-proof', `Refusing the certificate request of node "${node}": its bootstrap proof does not verify with the token registered for the node; give the node the token that was registered for it, or register a new one`);
    }
    return;
  }
  let verified;
  try {
    const cert = readCertificatePem(req.proof.certificatePem, `certificate presented by node "${node}"`);
    verified = await verifyNodeCertificate(cert, { bundle: TrustBundle.of([c.ca.certificate]), trustDomain: c.ca.trustDomain, now: c.now, clockSkewMs: c.clockSkewMs });
  } catch (err) {
    throw refuse('untrusted-certificate', `Refusing the renewal request of node "${node}": ${(err as Error).message}; the node needs a new bootstrap token`);
  }
  if (verified.nodeName !== node) {
    throw refuse('untrusted-certificate', `Refusing the renewal request of node "${node}": the certificate it presents names node "${verified.nodeName}"; a node may only renew its own certificate`);
  }
  const publicKey = createPublicKey({ key: verified.path[0]!.spkiDer, format: 'der', type: 'spki' });
  const alg = signatureAlgorithmOf(publicKey);
  if (!alg || !verifySignature(alg, publicKey, data, req.proof.signature)) {
    throw refuse('bad-proof', `Refusing the renewal request of node "${node}": its proof does not verify with the key of the certificate it presents; restart the agent so that it makes a new request`);
  }
}
