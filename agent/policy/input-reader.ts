/**
 * Strict reading of one untrusted, already-parsed document: every accessor checks the type,
 * refuses fields the schema does not have (Kubernetes' strict field validation) and raises a
 * PolicyInputError carrying the document's location and the field path. Object keys are read
 * with Object.hasOwn only, so "__proto__" and friends never reach a prototype.
 */
import { ValidationError } from '../errors.js';
import { quote } from '../store/validate.js';
import { PolicyInputError, PolicyUnsupportedError, type PolicyLocation } from './errors.js';

/** Most entries an array of the schema may have (rules, peers, ports, except, values, ...). */
export const MAX_LIST_ITEMS = 256;

export type PlainObject = Record<string, unknown>;

export class InputReader {
  constructor(readonly at: PolicyLocation) {}

  fail(path: string, problem: string): PolicyInputError {
    return new PolicyInputError(this.at, path, problem);
  }

  unsupported(path: string, problem: string): PolicyUnsupportedError {
    return new PolicyUnsupportedError(this.at, path, problem);
  }

  /** Runs a shared validator (agent/identity/labels.ts) and turns its ValidationError into a located one. */
  check<T>(path: string, run: () => T): T {
    try {
      return run();
    } catch (err) {
      if (err instanceof ValidationError) throw this.fail(path, err.message);
      throw err;
    }
  }

  /** A mapping whose keys are all in `allowed` (unknown fields are refused, as kubectl --validate=strict does). */
  object(value: unknown, path: string, allowed: readonly string[]): PlainObject {
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      throw this.fail(path, `expected a mapping, got ${describe(value)}: write it as "key: value" lines or {key: value}`);
    }
    const obj = value as PlainObject;
    for (const key of Object.keys(obj)) {
      if (!allowed.includes(key)) {
        const list = allowed.map((k) => `"${k}"`).join(', ');
        throw this.fail(join(path, key), `unknown field ${quote(key)}: remove it or fix its spelling (known fields here: ${list})`);
      }
    }
    return obj;
  }

  /** A mapping of strings to strings (labels, annotations); at most `max` entries. */
  stringMap(value: unknown, path: string, max: number): Array<[string, string]> {
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      throw this.fail(path, `expected a mapping of strings to strings, got ${describe(value)}`);
    }
    const keys = Object.keys(value);
    if (keys.length > max) throw this.fail(path, `has ${keys.length} entries: keep at most ${max}`);
    return keys.map((k) => {
      const v = (value as PlainObject)[k];
      if (typeof v !== 'string') throw this.fail(join(path, k), `expected a string, got ${describe(v)}: quote the value in YAML (e.g. "true", "80")`);
      return [k, v];
    });
  }

  get(obj: PlainObject, key: string): unknown {
    return Object.hasOwn(obj, key) ? obj[key] : undefined;
  }

  /** An array of at most MAX_LIST_ITEMS entries; `null` (YAML "key:" with nothing) reads as empty. */
  array(value: unknown, path: string, max = MAX_LIST_ITEMS): unknown[] {
    if (value === null) return [];
    if (!Array.isArray(value)) throw this.fail(path, `expected a list, got ${describe(value)}: write it as "- item" lines or [item, ...]`);
    if (value.length > max) throw this.fail(path, `has ${value.length} entries: keep at most ${max}, or split the policy`);
    return value;
  }
}

/** "spec" + "ingress" → "spec.ingress"; keys that are not identifiers are quoted, long ones cut. */
export function join(path: string, key: string): string {
  const shown = key.length > 64 ? `${key.slice(0, 61)}...` : key;
  const part = /^[A-Za-z_][A-Za-z0-9_]*$/.test(shown) ? shown : `[${JSON.stringify(shown)}]`;
  if (path === '') return part;
  return part.startsWith('[') ? `${path}${part}` : `${path}.${part}`;
}

export function at(path: string, index: number): string {
  return `${path}[${index}]`;
}

/** A value's kind and (short) text for messages. */
export function describe(value: unknown): string {
  if (value === undefined) return 'nothing (the field is missing)';
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  return `${typeof value} ${quote(value)}`;
}
