/**
 * The one-time bootstrap token a provisioner (the lab, or whoever installs a node) gives a node so
 * that its first certificate request proves it may claim its node name.
 *
 * The token is 32 random bytes (file: "veil-bootstrap-v1:" + base64url, mode 0600 on the node). It
 * is the seed of an Ed25519 key pair (RFC 8410): the node signs its request with the private key
 * derived from the token, and the provisioner registers only the derived *public* key in the
 * store (/veil/certs/bootstrap/<node>, with an expiry). Whoever reads the store — every agent can —
 * learns nothing that lets them sign for the node, unlike a registered hash used as an HMAC key.
 * The operator deletes the registration (compare-and-swap) when it accepts the request, so a token
 * works once; a registration past its expiry is refused and garbage collected.
 */
import { createPrivateKey, createPublicKey, randomBytes, type KeyObject } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { writePrivateKeyFile } from '../../certs/files.js';
import { validateNodeName } from '../../certs/names.js';
import type { KeyValue, Store } from '../store/store.js';
import { BootstrapTokenError, CertificateRecordError } from './errors.js';
import { bootstrapKey } from './store-keys.js';
import { putValue } from './put-value.js';

const TOKEN_PREFIX = 'veil-bootstrap-v1:';
const SEED_BYTES = 32;
/** RFC 8410 PKCS#8 prefix of an Ed25519 private key; the 32-byte seed follows. */
const ED25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');
/** Default lifetime of a registration: long enough to install a node, short enough to matter. */
export const DEFAULT_BOOTSTRAP_TOKEN_TTL_MS = 24 * 3_600_000;
const MAX_RECORD_BYTES = 4096;

/** A new random token. It is a secret: never log it. */
export function createBootstrapToken(): string {
  return TOKEN_PREFIX + randomBytes(SEED_BYTES).toString('base64url');
}

/** The Ed25519 private key the token stands for. */
export function tokenSigningKey(token: string): KeyObject {
  const t = token.trim();
  const seed = t.startsWith(TOKEN_PREFIX) ? Buffer.from(t.slice(TOKEN_PREFIX.length), 'base64url') : Buffer.alloc(0);
  if (seed.length !== SEED_BYTES || seed.toString('base64url') !== t.slice(TOKEN_PREFIX.length)) {
    throw new BootstrapTokenError(`The bootstrap token is malformed: expected "${TOKEN_PREFIX}" followed by ${SEED_BYTES} bytes in base64url; provision a new token for this node`);
  }
  return createPrivateKey({ key: Buffer.concat([ED25519_PKCS8_PREFIX, seed]), format: 'der', type: 'pkcs8' });
}

/** The public verification key registered for the token (SPKI DER). */
export function tokenPublicKeyDer(token: string): Buffer {
  return createPublicKey(tokenSigningKey(token)).export({ format: 'der', type: 'spki' });
}

/** Writes the token for a node (0600, atomically). */
export async function writeBootstrapTokenFile(path: string, token: string): Promise<void> {
  tokenSigningKey(token);
  await writePrivateKeyFile(path, `${token}\n`);
}

/** Reads the node's token file; refuses a file readable by group or others. */
export async function readBootstrapTokenFile(path: string): Promise<string> {
  let mode: number;
  let text: string;
  try {
    mode = (await stat(path)).mode;
    text = await readFile(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new BootstrapTokenError(
      code === 'ENOENT'
        ? `The node has no valid certificate and no bootstrap token at "${path}": provision a token for this node (docs/keys.md §Node certificate lifecycle) or install a certificate`
        : `Cannot read the bootstrap token "${path}": ${code ?? (err as Error).message}`,
      { cause: err },
    );
  }
  if ((mode & 0o077) !== 0) {
    throw new BootstrapTokenError(`The bootstrap token "${path}" has mode ${(mode & 0o777).toString(8).padStart(4, '0')}: it is a secret, run "chmod 600 ${path}"`);
  }
  if (text.length > 256) throw new BootstrapTokenError(`The bootstrap token "${path}" is ${text.length} bytes: it is not a Veil bootstrap token; provision a new one`);
  tokenSigningKey(text);
  return text.trim();
}

export interface BootstrapRegistration {
  node: string;
  /** Ed25519 SPKI DER of the token's key. */
  publicKey: Buffer;
  expiresAt: Date;
}

export function encodeRegistration(r: BootstrapRegistration): Buffer {
  return Buffer.from(JSON.stringify({ v: 1, node: r.node, publicKey: r.publicKey.toString('base64'), expiresAt: r.expiresAt.toISOString() }));
}

/** Parses a registration read from the store (hostile input) for `node`. */
export function parseRegistration(kv: KeyValue, node: string): BootstrapRegistration {
  const bad = (why: string) => new CertificateRecordError(`Bootstrap registration "${kv.key}" is invalid: ${why}; register the node's token again`);
  if (kv.value.length > MAX_RECORD_BYTES) throw bad(`it is ${kv.value.length} bytes`);
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(kv.value.toString('utf8')) as Record<string, unknown>;
  } catch {
    throw bad('it is not JSON');
  }
  if (o === null || typeof o !== 'object' || o.v !== 1) throw bad('it is not a version 1 record');
  if (o.node !== node) throw bad(`it names node ${JSON.stringify(o.node)}`);
  if (typeof o.publicKey !== 'string' || typeof o.expiresAt !== 'string') throw bad('"publicKey" or "expiresAt" is missing');
  const publicKey = Buffer.from(o.publicKey, 'base64');
  try {
    if (createPublicKey({ key: publicKey, format: 'der', type: 'spki' }).asymmetricKeyType !== 'ed25519') throw new Error('not ed25519');
  } catch {
    throw bad('"publicKey" is not an Ed25519 public key');
  }
  const expiresAt = new Date(o.expiresAt);
  if (Number.isNaN(expiresAt.getTime())) throw bad('"expiresAt" is not a time');
  return { node, publicKey, expiresAt };
}

/**
 * Registers (or replaces) the token of `node` in the store, valid for `ttlMs`. Run by whoever
 * provisions the node; the token itself stays with the node.
 */
export async function registerBootstrapToken(store: Store, node: string, token: string, opts: { ttlMs?: number; now?: Date } = {}): Promise<BootstrapRegistration> {
  const reg: BootstrapRegistration = {
    node: validateNodeName(node),
    publicKey: tokenPublicKeyDer(token),
    expiresAt: new Date((opts.now ?? new Date()).getTime() + (opts.ttlMs ?? DEFAULT_BOOTSTRAP_TOKEN_TTL_MS)),
  };
  await putValue(store, bootstrapKey(reg.node), encodeRegistration(reg));
  return reg;
}
