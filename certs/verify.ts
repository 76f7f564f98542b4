/**
 * Verification of node certificates and SVIDs against a trust bundle.
 *
 * An SVID verifies when: its own profile is an SVID's (CA:FALSE, digitalSignature, no
 * keyCertSign/cRLSign, exactly one URI SAN of shape spiffe://<td>/ns/<ns>/sa/<sa> in the
 * expected trust domain); it was signed by a node certificate (CA:TRUE pathlen 0, name
 * constraint to <td>) that a CA of the bundle signed directly; every certificate on that path is
 * within its validity window give or take the clock skew; and the caller's
 * `issuingNodeHostsIdentity(node, spiffeId)` says that node hosts the identity. The hook is
 * required: a verifier that does not ask cannot tell a compromised node minting other
 * identities from an honest one.
 */
import { ValidationError } from '../agent/errors.js';
import type { Certificate } from './certificate.js';
import { validatePath, type PathValidationOptions } from './chain.js';
import { ChainError, IdentityNotHostedError, SpiffeIdError } from './errors.js';
import { checkNodeCertificate, checkSvidLeaf, signingTrustDomain } from './profile.js';
import { validateTrustDomain } from './spiffe-id.js';
import { TrustBundle } from './trust-bundle.js';
import { DEFAULT_CLOCK_SKEW_MS, validateClockSkew, validateNow } from './validity.js';

/** Does node `nodeName` host (run endpoints of) the identity `spiffeId`? Provided by the caller (the store). */
export type IssuingNodeHostsIdentity = (nodeName: string, spiffeId: string) => boolean | Promise<boolean>;

export interface VerifyOptions {
  bundle: TrustBundle;
  trustDomain: string;
  /** Untrusted certificates that may complete the path (the issuing node's certificate). */
  intermediates?: readonly Certificate[];
  now?: Date;
  /** Tolerated clock skew at both ends of every validity window (default 60 s, at most 15 min). */
  clockSkewMs?: number;
}

export interface VerifySvidOptions extends VerifyOptions {
  issuingNodeHostsIdentity: IssuingNodeHostsIdentity;
}

export interface VerifiedSvid {
  spiffeId: string;
  trustDomain: string;
  namespace: string;
  serviceAccount: string;
  /** The node whose certificate signed the SVID. */
  nodeName: string;
  notBefore: Date;
  notAfter: Date;
  /** SVID, node certificate, trust anchor. */
  path: Certificate[];
}

export interface VerifiedNode {
  nodeName: string;
  trustDomain: string;
  notBefore: Date;
  notAfter: Date;
  /** Node certificate, trust anchor. */
  path: Certificate[];
}

function pathOptions(opts: VerifyOptions): PathValidationOptions & { trustDomain: string; intermediates: readonly Certificate[] } {
  if (!opts || !(opts.bundle instanceof TrustBundle)) {
    throw new ValidationError('bundle', 'Cannot verify without a trust bundle: pass TrustBundle.fromPem(...)');
  }
  const intermediates = opts.intermediates ?? [];
  if (!Array.isArray(intermediates)) {
    throw new ValidationError('intermediates', 'Invalid intermediates: pass an array of parsed certificates');
  }
  return {
    trustDomain: validateTrustDomain(opts.trustDomain),
    now: validateNow(opts.now ?? new Date()),
    clockSkewMs: validateClockSkew(opts.clockSkewMs ?? DEFAULT_CLOCK_SKEW_MS),
    intermediates,
  };
}

function checkAnchorTrustDomain(anchor: Certificate, trustDomain: string): void {
  const td = signingTrustDomain(anchor);
  if (td !== undefined && td !== trustDomain) {
    throw new SpiffeIdError(`${anchor.what} is the CA of trust domain "${td}", not "${trustDomain}"`);
  }
}

export async function verifyNodeCertificate(cert: Certificate, opts: VerifyOptions): Promise<VerifiedNode> {
  const o = pathOptions(opts);
  const nodeName = checkNodeCertificate(cert, o.trustDomain);
  const path = await validatePath(cert, o.intermediates, opts.bundle, o);
  if (path.length !== 2) {
    throw new ChainError(`${cert.what} (node "${nodeName}") was not issued directly by a trust bundle CA: only the cluster CA issues node certificates`);
  }
  checkAnchorTrustDomain(path[1] as Certificate, o.trustDomain);
  return { nodeName, trustDomain: o.trustDomain, notBefore: cert.notBefore, notAfter: cert.notAfter, path };
}

export async function verifySvid(svid: Certificate, opts: VerifySvidOptions): Promise<VerifiedSvid> {
  const o = pathOptions(opts);
  if (typeof opts.issuingNodeHostsIdentity !== 'function') {
    throw new ValidationError(
      'issuingNodeHostsIdentity',
      'Cannot verify an SVID without issuingNodeHostsIdentity(node, spiffeId): pass the store-backed check of which node hosts which identity',
    );
  }
  const id = checkSvidLeaf(svid, o.trustDomain);
  const path = await validatePath(svid, o.intermediates, opts.bundle, o);
  if (path.length !== 3) {
    throw new ChainError(
      `${svid.what} must be signed by a node certificate that a trust bundle CA signed directly; its path has ${path.length - 2} certificate(s) in between`,
    );
  }
  const nodeName = checkNodeCertificate(path[1] as Certificate, o.trustDomain);
  checkAnchorTrustDomain(path[2] as Certificate, o.trustDomain);
  const hosts = await opts.issuingNodeHostsIdentity(nodeName, id.spiffeId);
  if (hosts !== true) throw new IdentityNotHostedError(nodeName, id.spiffeId);
  return { ...id, nodeName, notBefore: svid.notBefore, notAfter: svid.notAfter, path };
}
