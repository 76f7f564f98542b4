/**
 * The outer DER envelope check that runs before any ASN.1 parser sees untrusted bytes: one
 * definite-length SEQUENCE that fills the buffer exactly. A truncated or padded certificate
 * fails here with a clear message instead of deep inside a parser.
 */
import { CertificateParseError } from './errors.js';

/** Largest DER object accepted (a certificate with a big RSA key is ~2 KiB). */
export const MAX_DER_BYTES = 64 * 1024;

export function checkDerSequence(der: Uint8Array, what: string): void {
  if (der.length > MAX_DER_BYTES) {
    throw new CertificateParseError(`Cannot parse ${what}: ${der.length} bytes is more than the ${MAX_DER_BYTES} allowed`);
  }
  if (der.length < 2 || der[0] !== 0x30) {
    throw new CertificateParseError(`Cannot parse ${what}: DER does not start with a SEQUENCE`);
  }
  const first = der[1] as number;
  let length: number;
  let header: number;
  if (first < 0x80) {
    length = first;
    header = 2;
  } else {
    const n = first & 0x7f;
    if (n === 0 || n > 3) {
      throw new CertificateParseError(`Cannot parse ${what}: DER length uses ${n === 0 ? 'indefinite' : `${n}-byte`} form`);
    }
    if (der.length < 2 + n) {
      throw new CertificateParseError(`Cannot parse ${what}: DER is truncated inside its length`);
    }
    length = 0;
    for (let i = 0; i < n; i++) length = length * 256 + (der[2 + i] as number);
    header = 2 + n;
    if (length < 0x80 || (n > 1 && der[2] === 0)) {
      throw new CertificateParseError(`Cannot parse ${what}: DER length is not minimally encoded`);
    }
  }
  if (header + length > der.length) {
    throw new CertificateParseError(
      `Cannot parse ${what}: DER is truncated (${der.length} bytes, the SEQUENCE needs ${header + length})`,
    );
  }
  if (header + length < der.length) {
    throw new CertificateParseError(
      `Cannot parse ${what}: ${der.length - header - length} bytes follow the DER SEQUENCE; remove them`,
    );
  }
}
