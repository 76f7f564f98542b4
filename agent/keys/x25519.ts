/**
 * X25519 key pairs for node keys and identity keys, on node:crypto (OpenSSL).
 *
 * Why node:crypto and not tweetnacl: measured side by side (bench/identity.ts, docs/keys.md),
 * OpenSSL's X25519 is ~17× faster for key generation and for the shared secret, and there is no
 * path where tweetnacl wins. Raw 32-byte keys cross into OpenSSL as JWK, which Node imports an
 * order of magnitude faster than DER (DER decoding goes through OpenSSL 3's decoder framework).
 *
 * Private keys are held as KeyObjects inside X25519PrivateKey, whose JSON, string and inspect
 * forms show only the public key's fingerprint: logging one, or putting one in an error, cannot
 * leak it. The raw bytes come out only through the explicit exportRaw().
 */
import { createPrivateKey, createPublicKey, diffieHellman, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { inspect } from 'node:util';
import { KeyMaterialError } from './errors.js';
import { publicKeyFingerprint } from './fingerprint.js';

export const X25519_KEY_LEN = 32;

/** PKCS#8 prefix of an X25519 private key (RFC 8410): the raw 32 bytes follow. */
const PKCS8_X25519_PREFIX = Buffer.from('302e020100300506032b656e04220420', 'hex');

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Buffer.isBuffer(value) || value instanceof Uint8Array) return `${value.length} bytes`;
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'object' ? 'an object' : `a ${typeof value}`;
}

/** Copies a 32-byte Uint8Array into a new Buffer, or throws a KeyMaterialError naming the field. */
function rawKey(value: unknown, field: string, what: string): Buffer {
  if (!(value instanceof Uint8Array) || value.length !== X25519_KEY_LEN) {
    throw new KeyMaterialError(
      field,
      `Invalid ${what} at "${field}": expected ${X25519_KEY_LEN} raw bytes, got ${describe(value)}; pass the raw X25519 key (base64 decodes to 32 bytes)`,
    );
  }
  return Buffer.from(value);
}


/** An X25519 public key: the raw 32 bytes, with its OpenSSL form made once on first use. */
export class X25519PublicKey {
  // The only own enumerable property is the base64 text, and toJSON() reads only it: pino's
  // redaction clones logged objects member by member without private fields, and the clone
  // must still serialise.
  readonly #raw: Buffer;
  #object: KeyObject | undefined;
  #fingerprint: string | undefined;
  /** The key in base64 (as `wg pubkey` prints it). */
  readonly base64: string;

  private constructor(raw: Buffer, object?: KeyObject) {
    this.#raw = raw;
    this.#object = object;
    this.base64 = raw.toString('base64');
  }

  /** The raw 32 bytes (do not modify). */
  get raw(): Buffer {
    return this.#raw;
  }

  static fromRaw(raw: unknown, field = 'publicKey'): X25519PublicKey {
    return new X25519PublicKey(rawKey(raw, field, 'X25519 public key'));
  }

  static fromBase64(text: unknown, field = 'publicKey'): X25519PublicKey {
    if (typeof text !== 'string' || !/^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$/.test(text)) {
      throw new KeyMaterialError(
        field,
        `Invalid X25519 public key at "${field}": expected 44 characters of base64 encoding ${X25519_KEY_LEN} bytes (as "wg pubkey" prints)`,
      );
    }
    return new X25519PublicKey(Buffer.from(text, 'base64'));
  }

  /** @internal Used by X25519PrivateKey, which already holds the KeyObject. */
  static fromKeyObject(object: KeyObject): X25519PublicKey {
    const x = object.export({ format: 'jwk' }).x;
    return new X25519PublicKey(Buffer.from(x!, 'base64url'), object);
  }

  get keyObject(): KeyObject {
    this.#object ??= createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x: this.raw.toString('base64url') }, format: 'jwk' });
    return this.#object;
  }

  get fingerprint(): string {
    this.#fingerprint ??= publicKeyFingerprint(this.raw);
    return this.#fingerprint;
  }

  toBase64(): string {
    return this.base64;
  }

  equals(other: X25519PublicKey): boolean {
    return this.raw.equals(other.raw);
  }

  toJSON(): string {
    return this.base64;
  }
}

/**
 * An X25519 private key. Its public half is computed once and kept beside it. Serialising or
 * printing it shows `X25519PrivateKey(<public fingerprint>)` and nothing secret.
 */
export class X25519PrivateKey {
  // Own enumerable properties: only the public fingerprint, which toJSON()/toString() read (see
  // X25519PublicKey on why: a logger's member-wise clone must serialise without private fields).
  readonly #key: KeyObject;
  readonly #publicKey: X25519PublicKey;
  /** The public key's fingerprint; safe to log. */
  readonly fingerprint: string;

  private constructor(key: KeyObject, publicKey: X25519PublicKey) {
    this.#key = key;
    this.#publicKey = publicKey;
    this.fingerprint = publicKey.fingerprint;
  }

  get publicKey(): X25519PublicKey {
    return this.#publicKey;
  }

  /** A fresh key pair from OpenSSL's CSPRNG. */
  static generate(): X25519PrivateKey {
    const { privateKey, publicKey } = generateKeyPairSync('x25519');
    return new X25519PrivateKey(privateKey, X25519PublicKey.fromKeyObject(publicKey));
  }

  /** Imports a raw 32-byte private key (clamping is X25519's, as `wg pubkey` does). */
  static fromRaw(raw: unknown, field = 'privateKey'): X25519PrivateKey {
    const bytes = rawKey(raw, field, 'X25519 private key');
    const der = Buffer.concat([PKCS8_X25519_PREFIX, bytes]);
    try {
      const key = createPrivateKey({ key: der, format: 'der', type: 'pkcs8' });
      return new X25519PrivateKey(key, X25519PublicKey.fromKeyObject(createPublicKey(key)));
    } finally {
      der.fill(0);
      bytes.fill(0);
    }
  }

  /** The OpenSSL key object (for node:crypto calls); treat it as secret. */
  get keyObject(): KeyObject {
    return this.#key;
  }

  /** The raw 32 secret bytes: only for writing the key file. Zero the Buffer after use. */
  exportRaw(): Buffer {
    return Buffer.from(this.#key.export({ format: 'jwk' }).d!, 'base64url');
  }

  toJSON(): { type: 'X25519PrivateKey'; publicKeyFingerprint: string } {
    return { type: 'X25519PrivateKey', publicKeyFingerprint: this.fingerprint };
  }

  toString(): string {
    return `X25519PrivateKey(${this.fingerprint})`;
  }

  [inspect.custom](): string {
    return this.toString();
  }
}

function allZero(b: Uint8Array): boolean {
  let acc = 0;
  for (const x of b) acc |= x;
  return acc === 0;
}

/**
 * The X25519 shared secret of our private key and a peer's public key (32 bytes; secret).
 * Refuses a low-order peer key, whose shared secret is all zeros whatever our key is (RFC 7748
 * §6.1): such a "secret" would be known to anyone.
 */
export function x25519SharedSecret(privateKey: X25519PrivateKey, publicKey: X25519PublicKey, field = 'publicKey'): Buffer {
  let secret: Buffer;
  try {
    secret = diffieHellman({ privateKey: privateKey.keyObject, publicKey: publicKey.keyObject });
  } catch (err) {
    // OpenSSL refuses an all-zero result itself ("failed during derivation").
    throw lowOrder(publicKey, field, err);
  }
  if (allZero(secret)) throw lowOrder(publicKey, field);
  return secret;
}

function lowOrder(publicKey: X25519PublicKey, field: string, cause?: unknown): KeyMaterialError {
  return new KeyMaterialError(
    field,
    `Refusing X25519 public key "${publicKey.fingerprint}" at "${field}": it is a low-order point and gives an all-zero shared secret; the peer must publish a real key`,
    cause === undefined ? undefined : { cause },
  );
}
