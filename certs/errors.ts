/**
 * Typed errors of the certificate module. Every class extends Veil's `VeilError` (stable `code`,
 * `cause`); one class per failure kind so callers and the audit log can tell them apart.
 * Messages never contain key material: code that reads a private key never passes the input,
 * nor an underlying parser error that might quote it, into a message or a `cause`.
 */
import { VeilError } from '../agent/errors.js';

/** Messages often start with a certificate's name ("certificate \"a.pem\" ..."); house style wants a capital. */
function capitalise(message: string): string {
  return message.charAt(0).toUpperCase() + message.slice(1);
}

/** Input is not well-formed PEM (missing armour, bad base64, wrong label, too large). */
export class PemError extends VeilError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('VEIL_PEM', capitalise(message), options);
  }
}

/** A certificate or CSR does not parse as DER X.509 / PKCS#10 (truncated, trailing bytes, bad ASN.1). */
export class CertificateParseError extends VeilError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('VEIL_CERT_PARSE', capitalise(message), options);
  }
}

/** A key is unreadable, of an unsupported type or size, or does not match its certificate. */
export class KeyError extends VeilError {
  constructor(message: string) {
    super('VEIL_KEY', capitalise(message));
  }
}

/** A certificate signing request was refused (bad signature, wrong name, unsupported key). */
export class CsrRejectedError extends VeilError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('VEIL_CSR_REJECTED', capitalise(message), options);
  }
}

/** A certificate's notAfter lies in the past (beyond the allowed clock skew). */
export class CertificateExpiredError extends VeilError {
  readonly notAfter: Date;
  constructor(notAfter: Date, message: string) {
    super('VEIL_CERT_EXPIRED', capitalise(message));
    this.notAfter = notAfter;
  }
}

/** A certificate's notBefore lies in the future (beyond the allowed clock skew). */
export class CertificateNotYetValidError extends VeilError {
  readonly notBefore: Date;
  constructor(notBefore: Date, message: string) {
    super('VEIL_CERT_NOT_YET_VALID', capitalise(message));
    this.notBefore = notBefore;
  }
}

/** No valid path from a certificate to the trust bundle (unknown issuer, bad signature, depth, path length). */
export class ChainError extends VeilError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('VEIL_CERT_CHAIN', capitalise(message), options);
  }
}

/** A certificate's profile is wrong for its role: basic constraints, key usage, extended key usage, critical extensions. */
export class CertificateProfileError extends VeilError {
  constructor(message: string) {
    super('VEIL_CERT_PROFILE', capitalise(message));
  }
}

/** A SPIFFE ID or the certificate's SAN set breaks the SPIFFE rules Veil enforces. */
export class SpiffeIdError extends VeilError {
  constructor(message: string) {
    super('VEIL_SPIFFE_ID', capitalise(message));
  }
}

/** A certificate violates a name constraint of a CA above it. */
export class NameConstraintError extends VeilError {
  constructor(message: string) {
    super('VEIL_NAME_CONSTRAINT', capitalise(message));
  }
}

/** The node that issued an SVID does not host that identity (the caller's hosting check said no). */
export class IdentityNotHostedError extends VeilError {
  readonly node: string;
  readonly spiffeId: string;
  constructor(node: string, spiffeId: string) {
    super(
      'VEIL_IDENTITY_NOT_HOSTED',
      `Node "${node}" issued an SVID for "${spiffeId}" but does not host that identity: refuse it until the node runs an endpoint of that service account`,
    );
    this.node = node;
    this.spiffeId = spiffeId;
  }
}

/** A trust bundle is empty, too large, or holds something that is not a CA certificate. */
export class TrustBundleError extends VeilError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('VEIL_TRUST_BUNDLE', capitalise(message), options);
  }
}
