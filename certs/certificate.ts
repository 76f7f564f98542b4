/**
 * Parsing X.509 certificates from untrusted PEM/DER into one checked, read-only view. Every
 * extension Veil looks at is decoded here, once; a certificate whose extensions do not decode,
 * that repeats an extension, or whose inner and outer signature algorithms differ is refused.
 */
import { certificateFingerprint } from '../agent/keys/fingerprint.js';
import { AsnConvert } from '@peculiar/asn1-schema';
import {
  AuthorityKeyIdentifier,
  BasicConstraints,
  Certificate as AsnCertificate,
  ExtendedKeyUsage,
  KeyUsage,
  NameConstraints,
  SubjectAlternativeName,
  SubjectKeyIdentifier,
  id_ce_authorityKeyIdentifier,
  id_ce_basicConstraints,
  id_ce_extKeyUsage,
  id_ce_keyUsage,
  id_ce_nameConstraints,
  id_ce_subjectAltName,
  id_ce_subjectKeyIdentifier,
} from '@peculiar/asn1-x509';
import { X509Certificate } from './x509.js';
import { checkDerSequence } from './der.js';
import { CertificateParseError } from './errors.js';
import { decodePem, encodePem } from './pem.js';

/** Extensions Veil understands; any other extension marked critical makes a certificate unusable. */
export const KNOWN_EXTENSIONS = new Set([
  id_ce_basicConstraints,
  id_ce_keyUsage,
  id_ce_extKeyUsage,
  id_ce_subjectAltName,
  id_ce_nameConstraints,
  id_ce_subjectKeyIdentifier,
  id_ce_authorityKeyIdentifier,
]);

export interface CertificateExtensionInfo {
  oid: string;
  critical: boolean;
}

/** A parsed certificate. `what` names it in messages ("SVID \"svid.pem\"", "chain certificate 2"). */
export interface Certificate {
  readonly what: string;
  readonly x509: X509Certificate;
  readonly der: Buffer;
  readonly pem: string;
  /** certificateFingerprint() ("sha256:" + hex SHA-256 of the DER): how logs and audit events name a certificate. */
  readonly fingerprint: string;
  readonly serialNumber: string;
  readonly subject: string;
  readonly issuer: string;
  /** DER of the subject and issuer Names, compared byte for byte when building paths. */
  readonly subjectDer: Buffer;
  readonly issuerDer: Buffer;
  readonly commonNames: readonly string[];
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly spkiDer: Buffer;
  readonly extensions: readonly CertificateExtensionInfo[];
  /** undefined when the extension is absent. */
  readonly basicConstraints: { ca: boolean; pathLength: number | undefined } | undefined;
  readonly keyUsage: number | undefined;
  readonly extKeyUsage: readonly string[] | undefined;
  /** URI SANs, in order. */
  readonly uriSans: readonly string[];
  /** Number of SAN entries of other types (DNS, IP, ...). */
  readonly otherSanCount: number;
  readonly subjectKeyId: string | undefined;
  readonly authorityKeyId: string | undefined;
  readonly nameConstraints: NameConstraints | undefined;
}

const CERT_LABELS = ['CERTIFICATE'];

/** Parses certificates from PEM (one or more "CERTIFICATE" blocks). */
export function readCertificatesPem(pem: string | Buffer, what: string, maxBlocks?: number): Certificate[] {
  const blocks = decodePem(pem, { what, labels: CERT_LABELS, ...(maxBlocks !== undefined ? { maxBlocks } : {}) });
  return blocks.map((b, i) => parseCertificateDer(b.der, blocks.length === 1 ? what : `${what} (certificate ${i + 1})`));
}

/** Parses exactly one certificate from PEM. */
export function readCertificatePem(pem: string | Buffer, what: string): Certificate {
  const certs = readCertificatesPem(pem, what, 1);
  return certs[0] as Certificate;
}

function hex(buf: ArrayBuffer | Uint8Array): string {
  return Buffer.from(buf instanceof Uint8Array ? buf : new Uint8Array(buf)).toString('hex');
}

/** Parses one DER certificate. Throws CertificateParseError naming `what` and the problem. */
export function parseCertificateDer(derIn: Uint8Array, what: string): Certificate {
  checkDerSequence(derIn, what);
  const der = Buffer.from(derIn);
  let x509: X509Certificate;
  let asn: AsnCertificate;
  try {
    asn = AsnConvert.parse(der, AsnCertificate);
    x509 = new X509Certificate(der);
  } catch (err) {
    throw new CertificateParseError(`Cannot parse ${what}: not a DER X.509 certificate (${shortReason(err)})`, { cause: err });
  }
  try {
    return describe(x509, asn, der, what);
  } catch (err) {
    if (err instanceof CertificateParseError) throw err;
    throw new CertificateParseError(`Cannot parse ${what}: ${shortReason(err)}`, { cause: err });
  }
}

function shortReason(err: unknown): string {
  const msg = err instanceof Error ? err.message : String(err);
  return msg.length > 160 ? `${msg.slice(0, 160)}…` : msg;
}

function describe(x509: X509Certificate, asn: AsnCertificate, der: Buffer, what: string): Certificate {
  const tbs = asn.tbsCertificate;
  const innerAlg = Buffer.from(AsnConvert.serialize(tbs.signature));
  const outerAlg = Buffer.from(AsnConvert.serialize(asn.signatureAlgorithm));
  if (!innerAlg.equals(outerAlg)) {
    throw new CertificateParseError(`Cannot parse ${what}: the signed and the outer signature algorithms differ`);
  }
  const extensions: CertificateExtensionInfo[] = [];
  const seen = new Set<string>();
  let basicConstraints: Certificate['basicConstraints'];
  let keyUsage: number | undefined;
  let extKeyUsage: string[] | undefined;
  let uriSans: string[] = [];
  let otherSanCount = 0;
  let subjectKeyId: string | undefined;
  let authorityKeyId: string | undefined;
  let nameConstraints: NameConstraints | undefined;
  for (const ext of tbs.extensions ?? []) {
    const oid = ext.extnID;
    if (seen.has(oid)) throw new CertificateParseError(`Cannot parse ${what}: extension ${oid} appears twice`);
    seen.add(oid);
    extensions.push({ oid, critical: ext.critical });
    const value = ext.extnValue.buffer;
    try {
      switch (oid) {
        case id_ce_basicConstraints: {
          const bc = AsnConvert.parse(value, BasicConstraints);
          basicConstraints = { ca: bc.cA, pathLength: bc.pathLenConstraint };
          break;
        }
        case id_ce_keyUsage:
          keyUsage = AsnConvert.parse(value, KeyUsage).toNumber();
          break;
        case id_ce_extKeyUsage:
          extKeyUsage = [...AsnConvert.parse(value, ExtendedKeyUsage)];
          break;
        case id_ce_subjectAltName: {
          const names = AsnConvert.parse(value, SubjectAlternativeName);
          uriSans = names.filter((n) => n.uniformResourceIdentifier !== undefined).map((n) => n.uniformResourceIdentifier as string);
          otherSanCount = names.length - uriSans.length;
          break;
        }
        case id_ce_subjectKeyIdentifier:
          subjectKeyId = hex(AsnConvert.parse(value, SubjectKeyIdentifier).buffer);
          break;
        case id_ce_authorityKeyIdentifier: {
          const aki = AsnConvert.parse(value, AuthorityKeyIdentifier);
          if (aki.keyIdentifier) authorityKeyId = hex(aki.keyIdentifier.buffer);
          break;
        }
        case id_ce_nameConstraints:
          nameConstraints = AsnConvert.parse(value, NameConstraints);
          break;
        default:
          break;
      }
    } catch (err) {
      throw new CertificateParseError(`Cannot parse ${what}: extension ${oid} does not decode (${shortReason(err)})`, { cause: err });
    }
  }
  if (extensions.length > 0 && tbs.version !== 2) {
    throw new CertificateParseError(`Cannot parse ${what}: it has extensions but is not an X.509 v3 certificate`);
  }
  const commonNames = x509.subjectName.getField('CN');
  return Object.freeze({
    what,
    x509,
    der,
    pem: encodePem('CERTIFICATE', der),
    fingerprint: certificateFingerprint(der),
    serialNumber: x509.serialNumber,
    subject: x509.subject,
    issuer: x509.issuer,
    subjectDer: Buffer.from(AsnConvert.serialize(tbs.subject)),
    issuerDer: Buffer.from(AsnConvert.serialize(tbs.issuer)),
    commonNames,
    notBefore: x509.notBefore,
    notAfter: x509.notAfter,
    spkiDer: Buffer.from(AsnConvert.serialize(tbs.subjectPublicKeyInfo)),
    extensions,
    basicConstraints,
    keyUsage,
    extKeyUsage,
    uriSans,
    otherSanCount,
    subjectKeyId,
    authorityKeyId,
    nameConstraints,
  });
}
