/**
 * Canonical JSON: the one byte sequence a value is signed as.
 *
 * The form: UTF-8 JSON without any whitespace; object members sorted by key in UTF-16 code
 * unit order (JavaScript's default string order); arrays in their order; strings escaped as
 * JSON.stringify escapes them (which writes lone surrogates as \uXXXX); numbers only as safe
 * integers in their shortest decimal form ("-0" is written "0"). For such values this is exactly
 * RFC 8785 (JCS). Everything else — fractions, NaN, Infinity, bigint, undefined members, Dates,
 * Buffers, class instances, nesting deeper than 32 — is refused, so two signers can never
 * disagree about the bytes of one record.
 */
import { ValidationError } from '../errors.js';

export const CANONICAL_JSON_MAX_DEPTH = 32;

function fail(path: string, what: string): never {
  throw new ValidationError(path, `Cannot write "${path}" as canonical JSON: ${what}`);
}

function write(v: unknown, path: string, depth: number, out: string[]): void {
  if (depth > CANONICAL_JSON_MAX_DEPTH) fail(path, `nested deeper than ${CANONICAL_JSON_MAX_DEPTH} levels`);
  if (v === null) {
    out.push('null');
  } else if (typeof v === 'boolean') {
    out.push(v ? 'true' : 'false');
  } else if (typeof v === 'string') {
    out.push(JSON.stringify(v));
  } else if (typeof v === 'number') {
    if (!Number.isSafeInteger(v)) fail(path, `the number ${String(v)} is not a safe integer; only integers are allowed`);
    out.push(String(v === 0 ? 0 : v));
  } else if (Array.isArray(v)) {
    out.push('[');
    v.forEach((item, i) => {
      if (i) out.push(',');
      write(item, `${path}[${i}]`, depth + 1, out);
    });
    out.push(']');
  } else if (typeof v === 'object') {
    const proto = Object.getPrototypeOf(v);
    if (proto !== Object.prototype && proto !== null) fail(path, 'only plain objects are allowed (not Date, Buffer or class instances)');
    const keys = Object.keys(v as object).sort();
    out.push('{');
    keys.forEach((k, i) => {
      const item = (v as Record<string, unknown>)[k];
      if (item === undefined) fail(`${path}.${k}`, 'undefined is not JSON; leave the member out');
      if (i) out.push(',');
      out.push(JSON.stringify(k), ':');
      write(item, `${path}.${k}`, depth + 1, out);
    });
    out.push('}');
  } else {
    fail(path, `a ${typeof v} is not JSON`);
  }
}

/** The canonical JSON text of `value` (throws ValidationError for anything outside the form). */
export function canonicalJson(value: unknown, path = 'value'): string {
  const out: string[] = [];
  write(value, path, 0, out);
  return out.join('');
}

/** The canonical JSON of `value` as UTF-8 bytes. */
export function canonicalJsonBytes(value: unknown, path = 'value'): Buffer {
  return Buffer.from(canonicalJson(value, path), 'utf8');
}
