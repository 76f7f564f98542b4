/**
 * The cluster CA: created by Veil (ECDSA P-256, self-signed, 10 years) or imported from an
 * existing PKI (validated: a CA, its key matches, currently valid, room for node certificates
 * below it). Whoever holds it signs node certificates; nodes never hold it.
 */
import type { KeyObject } from 'node:crypto';
import { BasicConstraintsExtension, KeyUsageFlags, KeyUsagesExtension, SubjectAlternativeNameExtension } from './x509.js';
import { readCertificatePem, type Certificate } from './certificate.js';
import { CertificateProfileError, ChainError, KeyError, SpiffeIdError } from './errors.js';
import { describeKey, generateKeyPair, readPrivateKeyPem, signingProfile, spkiDer, type KeyAlgorithm } from './keys.js';
import { checkSigningCertificate, signingTrustDomain } from './profile.js';
import { signCertificate } from './sign.js';
import { signatureVerifies } from './chain.js';
import { trustDomainId, validateTrustDomain } from './spiffe-id.js';
import {
  DEFAULT_CA_TTL_MS,
  DEFAULT_CLOCK_SKEW_MS,
  NOT_BEFORE_BACKDATE_MS,
  checkValidity,
  validateClockSkew,
  validateNow,
  validateTtl,
} from './validity.js';

/** Key algorithms accepted for the cluster CA (created ones are always ECDSA P-256). */
export const CA_KEY_ALGORITHMS: readonly KeyAlgorithm[] = ['ECDSA P-256', 'ECDSA P-384', 'RSA'];

export interface ClusterCa {
  readonly trustDomain: string;
  readonly certificate: Certificate;
  /** Never logged; written only to a 0600 file. */
  readonly privateKey: KeyObject;
}

export interface CreateClusterCaOptions {
  trustDomain: string;
  ttlMs?: number;
  now?: Date;
}

/** Creates a self-signed cluster CA: CA:TRUE pathlen 1, keyCertSign+cRLSign, URI SAN spiffe://<td>. */
export async function createClusterCa(opts: CreateClusterCaOptions): Promise<ClusterCa> {
  const trustDomain = validateTrustDomain(opts.trustDomain);
  const ttlMs = validateTtl(opts.ttlMs ?? DEFAULT_CA_TTL_MS, 'ttlMs');
  const now = validateNow(opts.now ?? new Date());
  const { privateKey, publicKey } = await generateKeyPair();
  const suffix = spkiDer(publicKey).subarray(-8).toString('hex');
  const certificate = await signCertificate(
    { certificate: undefined, privateKey, algorithms: ['ECDSA P-256'], keyWhat: 'CA key' },
    {
      what: 'cluster CA certificate',
      subject: [{ O: ['Veil'] }, { CN: [`Veil cluster CA ${suffix}`] }],
      subjectPublicKey: spkiDer(publicKey),
      notBefore: new Date(now.getTime() - NOT_BEFORE_BACKDATE_MS),
      notAfter: new Date(now.getTime() + ttlMs),
      extensions: [
        new BasicConstraintsExtension(true, 1, true),
        new KeyUsagesExtension(KeyUsageFlags.keyCertSign | KeyUsageFlags.cRLSign, true),
        new SubjectAlternativeNameExtension([{ type: 'url', value: trustDomainId(trustDomain) }], false),
      ],
    },
  );
  return Object.freeze({ trustDomain, certificate, privateKey });
}

export interface ImportClusterCaOptions {
  certificatePem: string | Buffer;
  privateKeyPem: string | Buffer;
  trustDomain: string;
  now?: Date;
  clockSkewMs?: number;
  /** Names the inputs in messages (file names). */
  certificateWhat?: string;
  keyWhat?: string;
}

/** Imports an existing CA after validating it; throws a typed error saying what is wrong. */
export async function importClusterCa(opts: ImportClusterCaOptions): Promise<ClusterCa> {
  const trustDomain = validateTrustDomain(opts.trustDomain);
  const now = validateNow(opts.now ?? new Date());
  const skew = validateClockSkew(opts.clockSkewMs ?? DEFAULT_CLOCK_SKEW_MS);
  const certificate = readCertificatePem(opts.certificatePem, opts.certificateWhat ?? 'CA certificate');
  const keyWhat = opts.keyWhat ?? 'CA private key';
  const privateKey = readPrivateKeyPem(opts.privateKeyPem, keyWhat);
  checkSigningCertificate(certificate);
  if (certificate.basicConstraints?.pathLength === 0) {
    throw new CertificateProfileError(
      `${certificate.what} has pathlen 0, which leaves no room for node certificates (they are CAs for SVIDs): use a CA with pathlen ≥ 1 or none`,
    );
  }
  signingProfile(privateKey, keyWhat, CA_KEY_ALGORITHMS);
  if (!spkiDer(privateKey).equals(certificate.spkiDer)) {
    throw new KeyError(`${keyWhat} (${describeKey(privateKey)}) does not belong to ${certificate.what}: pass the key that matches the certificate`);
  }
  checkValidity(certificate, certificate.what, now, skew);
  const td = signingTrustDomain(certificate);
  if (td !== undefined && td !== trustDomain) {
    throw new SpiffeIdError(`${certificate.what} names trust domain "${td}", not "${trustDomain}": pass --trust-domain ${td} or another CA`);
  }
  if (certificate.subjectDer.equals(certificate.issuerDer) && !(await signatureVerifies(certificate, certificate))) {
    throw new ChainError(`${certificate.what} is self-issued but its signature does not verify: the file is corrupt or altered`);
  }
  return Object.freeze({ trustDomain, certificate, privateKey });
}
