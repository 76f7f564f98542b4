/**
 * Certification path building and validation (the subset of RFC 5280 §6 that Veil's profiles
 * use): issuer by name and key identifier, every signature, every validity window with bounded
 * clock skew, CA flag and keyCertSign on every issuer, path length constraints, URI name
 * constraints, and no unknown critical extension anywhere. The path must end at a CA of the
 * trust bundle; nothing else is trusted, whatever the presented chain claims.
 */
import { webcrypto } from 'node:crypto';
import type { Certificate } from './certificate.js';
import { ChainError } from './errors.js';
import { checkNameConstraints } from './name-constraints.js';
import { checkCriticalExtensions, checkSigningCertificate } from './profile.js';
import type { TrustBundle } from './trust-bundle.js';
import { checkValidity } from './validity.js';

/** Most certificates below a trust anchor (Veil's paths have two: node, SVID). */
export const MAX_PATH_DEPTH = 4;
/** Most untrusted chain certificates a verifier looks at. */
export const MAX_INTERMEDIATES = 8;

export interface PathValidationOptions {
  now: Date;
  clockSkewMs: number;
}

/** True when `issuer`'s key verifies `cert`'s signature. */
export async function signatureVerifies(cert: Certificate, issuer: Certificate): Promise<boolean> {
  try {
    return await cert.x509.verify({ publicKey: issuer.x509.publicKey, signatureOnly: true }, webcrypto as unknown as Crypto);
  } catch {
    return false;
  }
}

function namesIssuer(cert: Certificate, candidate: Certificate): boolean {
  if (!cert.issuerDer.equals(candidate.subjectDer)) return false;
  return cert.authorityKeyId === undefined || candidate.subjectKeyId === undefined || cert.authorityKeyId === candidate.subjectKeyId;
}

/**
 * Builds the path leaf → ... → trust anchor and validates it. Returns the path, leaf first,
 * anchor last. Throws ChainError, CertificateExpiredError, CertificateNotYetValidError,
 * CertificateProfileError or NameConstraintError.
 */
export async function validatePath(
  leaf: Certificate,
  intermediates: readonly Certificate[],
  bundle: TrustBundle,
  opts: PathValidationOptions,
): Promise<Certificate[]> {
  if (intermediates.length > MAX_INTERMEDIATES) {
    throw new ChainError(`The chain has ${intermediates.length} certificates; Veil looks at most at ${MAX_INTERMEDIATES}`);
  }
  const path: Certificate[] = [leaf];
  let current = leaf;
  for (;;) {
    const anchor = await findIssuer(current, bundle.cas);
    if (anchor) {
      path.push(anchor);
      break;
    }
    if (path.length > MAX_PATH_DEPTH) {
      throw new ChainError(`No trust bundle CA within ${MAX_PATH_DEPTH} certificates of ${leaf.what}: the chain is too long`);
    }
    const next = await findIssuer(
      current,
      intermediates.filter((c) => !path.some((p) => p.fingerprint === c.fingerprint)),
    );
    if (!next) throw await noIssuerError(current, intermediates, bundle);
    path.push(next);
    current = next;
  }
  checkPath(path, opts);
  return path;
}

async function findIssuer(cert: Certificate, candidates: readonly Certificate[]): Promise<Certificate | undefined> {
  for (const c of candidates) {
    if (namesIssuer(cert, c) && (await signatureVerifies(cert, c))) return c;
  }
  return undefined;
}

async function noIssuerError(cert: Certificate, intermediates: readonly Certificate[], bundle: TrustBundle): Promise<ChainError> {
  const named = [...bundle.cas, ...intermediates].filter((c) => cert.issuerDer.equals(c.subjectDer));
  if (named.length > 0) {
    return new ChainError(
      `The signature of ${cert.what} does not verify with the key of its issuer "${cert.issuer}": the certificate was altered or signed by another key`,
    );
  }
  return new ChainError(
    `${cert.what} was issued by "${cert.issuer}", which is neither in the trust bundle nor in the chain: pass the issuing certificate with --chain, or trust its CA`,
  );
}

function checkPath(path: Certificate[], opts: PathValidationOptions): void {
  for (const cert of path) checkValidity(cert, cert.what, opts.now, opts.clockSkewMs);
  checkCriticalExtensions(path[0] as Certificate);
  for (let j = 1; j < path.length; j++) {
    const issuer = path[j] as Certificate;
    checkSigningCertificate(issuer);
    const below = j - 1; // CA certificates between this issuer and the leaf
    const pathLength = issuer.basicConstraints?.pathLength;
    if (pathLength !== undefined && below > pathLength) {
      throw new ChainError(
        `${issuer.what} allows ${pathLength} CA certificate(s) below it (pathlen) but the path has ${below}: a certificate it signed tried to act as a CA`,
      );
    }
    for (let k = 0; k < j; k++) checkNameConstraints(issuer, path[k] as Certificate);
  }
}
