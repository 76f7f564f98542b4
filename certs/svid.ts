/**
 * Identity certificates (X.509 SVIDs), issued by a node agent with its node certificate key for
 * identities that have endpoints on that node. Each SVID has its own ECDSA P-256 key,
 * exactly one URI SAN spiffe://<td>/ns/<ns>/sa/<sa>, CA:FALSE, critical keyUsage
 * digitalSignature (not keyAgreement: Veil's key agreement uses the identity's X25519 key, which
 * travels in signed node records, so the SVID key only ever signs), EKU serverAuth+clientAuth
 * (X509-SVID §4.4), a default lifetime of 1 h, never beyond the node certificate's own.
 */
import type { KeyObject } from 'node:crypto';
import { BasicConstraintsExtension, ExtendedKeyUsageExtension, KeyUsageFlags, KeyUsagesExtension, SubjectAlternativeNameExtension } from './x509.js';
import { ValidationError } from '../agent/errors.js';
import { readCertificatePem, type Certificate } from './certificate.js';
import { KeyError, SpiffeIdError } from './errors.js';
import { describeKey, generateKeyPair, readPrivateKeyPem, signingProfile, spkiDer } from './keys.js';
import { CLIENT_AUTH, SERVER_AUTH, checkNodeCertificate, signingTrustDomain } from './profile.js';
import { renewalTime } from './renewal.js';
import { signCertificate } from './sign.js';
import { workloadSpiffeId } from './spiffe-id.js';
import {
  DEFAULT_CLOCK_SKEW_MS,
  DEFAULT_SVID_TTL_MS,
  MIN_TTL_MS,
  NOT_BEFORE_BACKDATE_MS,
  checkValidity,
  validateNow,
  validateTtl,
} from './validity.js';

/** A node's certificate and key: what a node agent needs to issue SVIDs. */
export interface NodeCredentials {
  readonly nodeName: string;
  readonly trustDomain: string;
  readonly certificate: Certificate;
  /** Never logged; kept in memory or a 0600 file. */
  readonly privateKey: KeyObject;
}

/** Loads and checks node credentials: the node profile, and that the key matches the certificate. */
export function loadNodeCredentials(opts: {
  certificatePem: string | Buffer;
  privateKeyPem: string | Buffer;
  certificateWhat?: string;
  keyWhat?: string;
}): NodeCredentials {
  const certificate = readCertificatePem(opts.certificatePem, opts.certificateWhat ?? 'node certificate');
  const keyWhat = opts.keyWhat ?? 'node private key';
  const privateKey = readPrivateKeyPem(opts.privateKeyPem, keyWhat);
  return nodeCredentials(certificate, privateKey, keyWhat);
}

/** Checks a node certificate and key in memory (what issue-node hands to the node). */
export function nodeCredentials(certificate: Certificate, privateKey: KeyObject, keyWhat = 'node private key'): NodeCredentials {
  const trustDomain = signingTrustDomain(certificate);
  if (trustDomain === undefined) {
    throw new SpiffeIdError(`${certificate.what} has no SPIFFE trust domain ID (URI SAN spiffe://<td>): it is not a Veil node certificate`);
  }
  const nodeName = checkNodeCertificate(certificate, trustDomain);
  signingProfile(privateKey, keyWhat, ['ECDSA P-256']);
  if (!spkiDer(privateKey).equals(certificate.spkiDer)) {
    throw new KeyError(`${keyWhat} (${describeKey(privateKey)}) does not belong to ${certificate.what}: pass the node's own key`);
  }
  return Object.freeze({ nodeName, trustDomain, certificate, privateKey });
}

export interface IssueSvidOptions {
  namespace: string;
  serviceAccount: string;
  ttlMs?: number;
  now?: Date;
  /** Source of the renewal jitter (default Math.random). */
  random?: () => number;
}

export interface Svid {
  readonly spiffeId: string;
  readonly nodeName: string;
  readonly certificate: Certificate;
  /** Intermediates a verifier needs: the issuing node's certificate. */
  readonly chain: readonly Certificate[];
  /** Never logged; kept in memory or a 0600 file. */
  readonly privateKey: KeyObject;
  readonly notBefore: Date;
  readonly notAfter: Date;
  /** When to issue the next one: half-life ±10 %. */
  readonly renewAt: Date;
}

export async function issueSvid(node: NodeCredentials, opts: IssueSvidOptions): Promise<Svid> {
  if (!node || typeof node !== 'object' || !node.certificate || !node.privateKey) {
    throw new ValidationError('node', 'Cannot issue an SVID without node credentials: pass the result of loadNodeCredentials()');
  }
  const spiffeId = workloadSpiffeId(node.trustDomain, opts.namespace, opts.serviceAccount);
  const ttlMs = validateTtl(opts.ttlMs ?? DEFAULT_SVID_TTL_MS, 'ttlMs');
  const now = validateNow(opts.now ?? new Date());
  checkValidity(node.certificate, `node certificate "${node.nodeName}"`, now, DEFAULT_CLOCK_SKEW_MS);
  const notAfterMs = Math.min(now.getTime() + ttlMs, node.certificate.notAfter.getTime());
  if (notAfterMs - now.getTime() < MIN_TTL_MS) {
    throw new ValidationError(
      'node',
      `Node certificate "${node.nodeName}" expires at ${node.certificate.notAfter.toISOString()}, too soon to issue SVIDs: renew the node certificate`,
    );
  }
  const { privateKey, publicKey } = await generateKeyPair();
  const notBefore = new Date(Math.max(now.getTime() - NOT_BEFORE_BACKDATE_MS, node.certificate.notBefore.getTime()));
  const notAfter = new Date(notAfterMs);
  const certificate = await signCertificate(
    { certificate: node.certificate, privateKey: node.privateKey, algorithms: ['ECDSA P-256'], keyWhat: 'node key' },
    {
      what: `SVID "${spiffeId}"`,
      subject: [{ O: ['Veil'] }],
      subjectPublicKey: spkiDer(publicKey),
      notBefore,
      notAfter,
      extensions: [
        new BasicConstraintsExtension(false, undefined, true),
        new KeyUsagesExtension(KeyUsageFlags.digitalSignature, true),
        new ExtendedKeyUsageExtension([SERVER_AUTH, CLIENT_AUTH], false),
        new SubjectAlternativeNameExtension([{ type: 'url', value: spiffeId }], false),
      ],
    },
  );
  return Object.freeze({
    spiffeId,
    nodeName: node.nodeName,
    certificate,
    chain: Object.freeze([node.certificate]),
    privateKey,
    notBefore: certificate.notBefore,
    notAfter: certificate.notAfter,
    renewAt: renewalTime(certificate.notBefore, certificate.notAfter, opts.random),
  });
}
