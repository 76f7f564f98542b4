/**
 * The runtime guard that keeps key material out of the audit log. Every event a caller hands to
 * the log passes through it before anything is written; it refuses (AuditKeyMaterialError, value
 * never quoted):
 * - values that are not plain JSON data: Buffer / typed arrays / ArrayBuffer / DataView,
 *   KeyObject, bigint, functions, symbols, class instances;
 * - field names that name secrets or keys: containing "private", "secret", "psk", "preshared",
 *   "password", "token", or "key" as a word (`key`, `publicKey`, `encKey`, `key_id`) — `keyKind`
 *   is the one allowed name;
 * - strings containing a PEM armour ("-----BEGIN") or "PRIVATE KEY";
 * - strings containing a run of 32 or more hex digits (16+ bytes), unless the whole value is a
 *   fingerprint ("sha256:<hex>") in a field whose name ends in "fingerprint", or a certificate
 *   serial (up to 40 hex digits) in the field "serial";
 * - strings containing a run of 22 or more base64 / base64url characters mixing upper case,
 *   lower case and digits (16+ random bytes).
 * Kubernetes names (lower case DNS labels), SPIFFE IDs built from them, ISO times and short
 * reasons pass. The thresholds are documented in docs/audit.md.
 */
import { KeyObject } from 'node:crypto';
import { AuditKeyMaterialError } from './errors.js';
import { FINGERPRINT_RE } from '../keys/fingerprint.js';

const MAX_DEPTH = 8;
const SECRET_NAME = /private|secret|psk|preshared|password|token/i;
const HEX_RUN = /[0-9a-fA-F]{32,}/;
const BASE64_RUN = /[A-Za-z0-9+/_-]{22,}/g;
const SERIAL = /^[0-9a-f]{1,40}$/;

function nameLooksSecret(name: string): boolean {
  if (name === 'keyKind') return false;
  if (SECRET_NAME.test(name)) return true;
  // "key" as a word: the whole name, a camelCase word (publicKey, keyId), or snake/kebab.
  return /(^|[_-])key($|[_-])/i.test(name) || /^key[A-Z0-9]/.test(name) || /[a-z0-9]Key($|[A-Z0-9_-])/.test(name);
}

function looksLikeBase64Secret(token: string): boolean {
  return /[A-Z]/.test(token) && /[a-z]/.test(token) && /[0-9]/.test(token);
}

function checkString(field: string, name: string, value: string): void {
  if (value.includes('-----BEGIN') || /PRIVATE KEY/i.test(value)) {
    throw new AuditKeyMaterialError(field, `Refusing audit field "${field}": it holds a PEM block; record a fingerprint instead`);
  }
  if (/fingerprint$/i.test(name) && FINGERPRINT_RE.test(value)) return;
  if (name === 'serial' && SERIAL.test(value)) return;
  if (HEX_RUN.test(value)) {
    throw new AuditKeyMaterialError(
      field,
      `Refusing audit field "${field}": it holds a long hex string that may be key material; record a fingerprint ("sha256:<hex>") in a *fingerprint field instead`,
    );
  }
  for (const m of value.matchAll(BASE64_RUN)) {
    if (looksLikeBase64Secret(m[0])) {
      throw new AuditKeyMaterialError(
        field,
        `Refusing audit field "${field}": it holds a base64 token that may be key material; record a fingerprint instead`,
      );
    }
  }
}

function walk(value: unknown, field: string, name: string, depth: number): void {
  if (depth > MAX_DEPTH) {
    throw new AuditKeyMaterialError(field, `Refusing audit field "${field}": nested deeper than ${MAX_DEPTH} levels`);
  }
  if (value === null || typeof value === 'boolean') return;
  if (typeof value === 'number') return;
  if (typeof value === 'string') return checkString(field, name, value);
  if (typeof value !== 'object') {
    throw new AuditKeyMaterialError(field, `Refusing audit field "${field}": a ${typeof value} is not plain JSON data`);
  }
  if (value instanceof KeyObject) {
    throw new AuditKeyMaterialError(field, `Refusing audit field "${field}": it holds a key object; record a fingerprint instead`);
  }
  if (ArrayBuffer.isView(value) || value instanceof ArrayBuffer || value instanceof SharedArrayBuffer) {
    throw new AuditKeyMaterialError(field, `Refusing audit field "${field}": it holds binary data; record a fingerprint instead`);
  }
  if (Array.isArray(value)) {
    value.forEach((item, i) => walk(item, `${field}[${i}]`, name, depth + 1));
    return;
  }
  const proto = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) {
    throw new AuditKeyMaterialError(field, `Refusing audit field "${field}": only plain objects are allowed, got a ${proto?.constructor?.name ?? 'class instance'}`);
  }
  for (const [k, v] of Object.entries(value)) {
    const path = field ? `${field}.${k}` : k;
    if (nameLooksSecret(k)) {
      throw new AuditKeyMaterialError(path, `Refusing audit field "${path}": its name says it holds a key or secret; record a fingerprint instead`);
    }
    walk(v, path, k, depth + 1);
  }
}

/** Throws AuditKeyMaterialError if anything in `event` looks like key material. */
export function assertNoKeyMaterial(event: unknown): void {
  walk(event, '', '', 0);
}
