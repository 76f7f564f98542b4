/**
 * The trust bundle: the CA certificates a verifier accepts, one normally and two while the
 * cluster CA rotates (old and new; a chain to either verifies). More than two is refused so a
 * forgotten retired CA cannot linger.
 */
import { isFingerprint } from '../agent/keys/fingerprint.js';
import { ValidationError } from '../agent/errors.js';
import { readCertificatesPem, type Certificate } from './certificate.js';
import { TrustBundleError } from './errors.js';
import { checkSigningCertificate } from './profile.js';

export const MAX_BUNDLE_CAS = 2;

export class TrustBundle {
  readonly cas: readonly Certificate[];

  private constructor(cas: Certificate[]) {
    this.cas = Object.freeze([...cas]);
  }

  /** A bundle of 1..2 distinct CA certificates. */
  static of(cas: readonly Certificate[]): TrustBundle {
    if (!Array.isArray(cas) || cas.length === 0) {
      throw new TrustBundleError('A trust bundle needs at least one CA certificate');
    }
    if (cas.length > MAX_BUNDLE_CAS) {
      throw new TrustBundleError(
        `A trust bundle holds at most ${MAX_BUNDLE_CAS} CAs (old and new during rotation), got ${cas.length}: remove the retired CA`,
      );
    }
    for (const ca of cas) {
      try {
        checkSigningCertificate(ca);
      } catch (err) {
        throw new TrustBundleError(`Cannot put ${ca.what} in the trust bundle: ${(err as Error).message}`, { cause: err });
      }
    }
    const fps = new Set(cas.map((c) => c.fingerprint));
    if (fps.size !== cas.length) throw new TrustBundleError('The trust bundle lists the same CA certificate twice: list it once');
    return new TrustBundle([...cas]);
  }

  /** Reads a bundle PEM file (one or two "CERTIFICATE" blocks). */
  static fromPem(pem: string | Buffer, what = 'trust bundle'): TrustBundle {
    return TrustBundle.of(readCertificatesPem(pem, what, MAX_BUNDLE_CAS));
  }

  /** A new bundle with `ca` added (CA rotation, step 1: distribute the new CA). */
  withCa(ca: Certificate): TrustBundle {
    if (this.cas.some((c) => c.fingerprint === ca.fingerprint)) return this;
    return TrustBundle.of([...this.cas, ca]);
  }

  /** A new bundle without the CA with this SHA-256 fingerprint (rotation, last step: retire the old CA). */
  withoutCa(fingerprint: string): TrustBundle {
    if (!isFingerprint(fingerprint)) {
      throw new ValidationError('fingerprint', `Invalid CA fingerprint "${String(fingerprint).slice(0, 80)}": pass the CA certificate's fingerprint, "sha256:" and 64 lowercase hex digits`);
    }
    const rest = this.cas.filter((c) => c.fingerprint !== fingerprint);
    if (rest.length === this.cas.length) {
      throw new TrustBundleError(`The trust bundle has no CA with fingerprint "${fingerprint}"`);
    }
    return TrustBundle.of(rest);
  }

  toPem(): string {
    return this.cas.map((c) => c.pem).join('');
  }
}
