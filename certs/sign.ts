/**
 * The one place Veil signs a certificate: a random serial, the issuer's exact subject Name,
 * subject/authority key identifiers, and a round trip through the parser so the caller gets
 * the same checked view a verifier would.
 */
import { webcrypto, type KeyObject } from 'node:crypto';
import { AuthorityKeyIdentifierExtension, Extension, PublicKey, SubjectKeyIdentifierExtension, X509CertificateGenerator, type JsonName } from './x509.js';
import { VeilError } from '../agent/errors.js';
import { parseCertificateDer, type Certificate } from './certificate.js';
import { signingProfile, toSigningCryptoKey, type KeyAlgorithm } from './keys.js';
import { randomSerialHex } from './serial.js';

export interface Issuer {
  /** The issuer's certificate; undefined for a self-signed certificate. */
  certificate: Certificate | undefined;
  privateKey: KeyObject;
  /** Algorithms this issuer's key may have. */
  algorithms: readonly KeyAlgorithm[];
  /** Names the issuer key in messages ("CA key", "node key"). */
  keyWhat: string;
}

export interface SignRequest {
  subject: JsonName;
  subjectPublicKey: Buffer;
  notBefore: Date;
  notAfter: Date;
  extensions: Extension[];
  /** Names the result in messages. */
  what: string;
}

const crypto = webcrypto as unknown as Crypto;

export async function signCertificate(issuer: Issuer, req: SignRequest): Promise<Certificate> {
  const profile = signingProfile(issuer.privateKey, issuer.keyWhat, issuer.algorithms);
  const signingKey = await toSigningCryptoKey(issuer.privateKey, profile);
  const subjectKey = new PublicKey(toArrayBuffer(req.subjectPublicKey));
  const ski = await SubjectKeyIdentifierExtension.create(subjectKey, false, crypto);
  const extensions: Extension[] = [...req.extensions, ski];
  if (issuer.certificate) {
    const akiId = issuer.certificate.subjectKeyId;
    extensions.push(
      akiId !== undefined
        ? new AuthorityKeyIdentifierExtension(akiId, false)
        : await AuthorityKeyIdentifierExtension.create(new PublicKey(toArrayBuffer(issuer.certificate.spkiDer)), false, crypto),
    );
  } else {
    extensions.push(new AuthorityKeyIdentifierExtension(ski.keyId, false));
  }
  const issuerName = issuer.certificate ? issuer.certificate.x509.subjectName : req.subject;
  const x509 = await X509CertificateGenerator.create(
    {
      serialNumber: randomSerialHex(),
      subject: req.subject,
      issuer: issuerName,
      notBefore: req.notBefore,
      notAfter: req.notAfter,
      publicKey: subjectKey,
      signingKey,
      signingAlgorithm: profile.signParams,
      extensions,
    },
    crypto,
  );
  const cert = parseCertificateDer(new Uint8Array(x509.rawData), req.what);
  if (issuer.certificate && !cert.issuerDer.equals(issuer.certificate.subjectDer)) {
    throw new VeilError('VEIL_INTERNAL', `Issued ${req.what} does not name its issuer exactly: this is a bug in Veil`);
  }
  return cert;
}

function toArrayBuffer(buf: Buffer): ArrayBuffer {
  return buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength) as ArrayBuffer;
}
