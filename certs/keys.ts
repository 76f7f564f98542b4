/**
 * Key algorithms for certificates. Veil generates ECDSA P-256 keys for its CA, node and SVID
 * certificates (see docs/keys.md §Certificates for why not Ed25519). An imported cluster CA may
 * also use ECDSA P-384 or RSA 2048..8192. Private keys are node:crypto KeyObjects; they are turned
 * into WebCrypto keys only for the moment of signing and never appear in a message.
 */
import { createPrivateKey, createPublicKey, generateKeyPair as generateKeyPairCb, webcrypto, type KeyObject } from 'node:crypto';
import { promisify } from 'node:util';
import { KeyError, PemError } from './errors.js';
import { decodeSinglePem, encodePem } from './pem.js';

const generateKeyPairAsync = promisify(generateKeyPairCb);

export interface KeyPair {
  privateKey: KeyObject;
  publicKey: KeyObject;
}

/** The key algorithms Veil can sign with. */
export type KeyAlgorithm = 'ECDSA P-256' | 'ECDSA P-384' | 'RSA';

/** How to import and sign with a key in WebCrypto (what @peculiar/x509 uses). */
export interface SigningProfile {
  algorithm: KeyAlgorithm;
  importParams: EcKeyImportParams | RsaHashedImportParams;
  signParams: EcdsaParams | Algorithm;
}

/** Generates the key pair Veil uses for every certificate it creates: ECDSA P-256. */
export async function generateKeyPair(): Promise<KeyPair> {
  const { privateKey, publicKey } = await generateKeyPairAsync('ec', { namedCurve: 'P-256' });
  return { privateKey, publicKey };
}

/** Names a key's algorithm for messages ("ECDSA P-256", "Ed25519", "RSA 1024"). Never key material. */
export function describeKey(key: KeyObject): string {
  const type = key.asymmetricKeyType ?? 'unknown';
  const d = key.asymmetricKeyDetails ?? {};
  if (type === 'ec') return `ECDSA ${d.namedCurve === 'prime256v1' ? 'P-256' : d.namedCurve === 'secp384r1' ? 'P-384' : (d.namedCurve ?? '?')}`;
  if (type === 'rsa' || type === 'rsa-pss') return `${type.toUpperCase()} ${d.modulusLength ?? '?'}`;
  return type.charAt(0).toUpperCase() + type.slice(1);
}

/**
 * The signing profile of a key, or a KeyError naming the key type and what is accepted.
 * `allowed` narrows the accepted algorithms (node and SVID keys: P-256 only).
 */
export function signingProfile(key: KeyObject, what: string, allowed: readonly KeyAlgorithm[]): SigningProfile {
  const type = key.asymmetricKeyType;
  const d = key.asymmetricKeyDetails ?? {};
  let profile: SigningProfile | undefined;
  if (type === 'ec' && d.namedCurve === 'prime256v1') {
    profile = { algorithm: 'ECDSA P-256', importParams: { name: 'ECDSA', namedCurve: 'P-256' }, signParams: { name: 'ECDSA', hash: 'SHA-256' } };
  } else if (type === 'ec' && d.namedCurve === 'secp384r1') {
    profile = { algorithm: 'ECDSA P-384', importParams: { name: 'ECDSA', namedCurve: 'P-384' }, signParams: { name: 'ECDSA', hash: 'SHA-384' } };
  } else if (type === 'rsa' && (d.modulusLength ?? 0) >= 2048 && (d.modulusLength ?? 0) <= 8192) {
    profile = {
      algorithm: 'RSA',
      importParams: { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' },
      signParams: { name: 'RSASSA-PKCS1-v1_5' },
    };
  }
  if (!profile || !allowed.includes(profile.algorithm)) {
    const accepted = allowed.map((a) => (a === 'RSA' ? 'RSA 2048..8192' : a)).join(', ');
    throw new KeyError(`Cannot use ${what}: it is a ${describeKey(key)} key; use one of: ${accepted}`);
  }
  return profile;
}

const PRIVATE_KEY_LABELS = ['PRIVATE KEY', 'EC PRIVATE KEY', 'RSA PRIVATE KEY', 'ENCRYPTED PRIVATE KEY'];

/**
 * Reads one unencrypted private key from PEM (PKCS#8 "PRIVATE KEY", SEC1 "EC PRIVATE KEY" or
 * PKCS#1 "RSA PRIVATE KEY"). Errors name the file and the problem, never the key's bytes; the
 * underlying parser error is dropped rather than attached as `cause`.
 */
export function readPrivateKeyPem(pem: string | Buffer, what: string): KeyObject {
  let block;
  try {
    block = decodeSinglePem(pem, { what, labels: PRIVATE_KEY_LABELS, maxBlocks: 1 });
  } catch (err) {
    // Re-throw PemError as KeyError: same message (it quotes only labels and line numbers).
    if (err instanceof PemError) throw new KeyError(err.message);
    throw err;
  }
  if (block.label === 'ENCRYPTED PRIVATE KEY') {
    throw new KeyError(`Cannot read ${what}: the key is encrypted; decrypt it first (openssl pkey -in FILE -out FILE.plain)`);
  }
  const type = block.label === 'PRIVATE KEY' ? 'pkcs8' : block.label === 'EC PRIVATE KEY' ? 'sec1' : 'pkcs1';
  try {
    return createPrivateKey({ key: block.der, format: 'der', type });
  } catch {
    throw new KeyError(`Cannot read ${what}: the "${block.label}" block is not a valid ${type.toUpperCase()} private key (truncated or corrupt)`);
  } finally {
    block.der.fill(0);
  }
}

/** PKCS#8 PEM of a private key, for a file written with mode 0600. */
export function privateKeyToPem(key: KeyObject): string {
  const der = key.export({ format: 'der', type: 'pkcs8' });
  const pem = encodePem('PRIVATE KEY', der);
  der.fill(0);
  return pem;
}

/** DER SubjectPublicKeyInfo of a public key or of a private key's public half. */
export function spkiDer(key: KeyObject): Buffer {
  const pub = key.type === 'private' ? createPublicKey(key) : key;
  return pub.export({ format: 'der', type: 'spki' });
}

/** The private key as a non-extractable WebCrypto signing key for @peculiar/x509. */
export async function toSigningCryptoKey(key: KeyObject, profile: SigningProfile): Promise<CryptoKey> {
  const der = key.export({ format: 'der', type: 'pkcs8' });
  try {
    return await webcrypto.subtle.importKey('pkcs8', der, profile.importParams, false, ['sign']);
  } finally {
    der.fill(0);
  }
}
