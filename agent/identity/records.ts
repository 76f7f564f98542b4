/**
 * The identity records in the store, their keys and their (JSON) values. Everything read back is
 * hostile until parsed here: values are bounded, fields type-checked, ids range-checked and the
 * label set re-canonicalised and checked against the hash in its key.
 *
 *   <prefix>by-labels/<sha256>   {"v":1,"id":N}                                   label set → id
 *   <prefix>by-id/<id>           {"v":1,"hash":H,"labels":C,"state":"active"}     id → label set (the claim)
 *   <prefix>refs/<id>/<node>     {"v":1,"node":NODE}  (attached to the node's lease)
 *   <prefix>unused/<id>          {"v":1,"since":MS}   (the releaser's grace-period clock)
 */
import { ValidationError } from '../errors.js';
import type { KeyValue } from '../store/store.js';
import { quote } from '../store/validate.js';
import { IdentityCorruptError } from './errors.js';
import { checkLabelHash, parseCanonicalLabelSet, type LabelSet } from './labels.js';
import { checkClusterId } from './reserved.js';

export const DEFAULT_IDENTITY_PREFIX = '/veil/identities/';
/** No identity record is larger than this (the label set is bounded at 16 KiB). */
const MAX_RECORD_BYTES = 20 * 1024;
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

export type IdentityState = 'active' | 'releasing';

export interface IdentityRecord {
  id: number;
  labels: LabelSet;
  /** "releasing": the releaser is about to delete it; a new reference revives it. */
  state: IdentityState;
  /** The record's modRevision: the compare-and-swap token for state changes. */
  modRevision: string;
}

/** Validates a node name (a Kubernetes node name: DNS-1123 subdomain, at most 253 characters). */
export function checkNodeName(node: unknown): string {
  if (typeof node !== 'string' || node.length > 253 || !DNS1123_SUBDOMAIN.test(node)) {
    throw new ValidationError('node', `Node name ${quote(node)} is invalid: use a DNS-1123 subdomain such as "worker-1"`);
  }
  return node;
}

/** Validates a key prefix for identity records: absolute, ends with "/". */
export function checkPrefix(prefix: unknown): string {
  if (typeof prefix !== 'string' || !prefix.startsWith('/') || !prefix.endsWith('/') || prefix.length > 256) {
    throw new ValidationError('prefix', `Identity key prefix ${quote(prefix)} is invalid: use an absolute path ending in "/", e.g. "${DEFAULT_IDENTITY_PREFIX}"`);
  }
  return prefix;
}

export class IdentityKeys {
  constructor(readonly prefix: string = DEFAULT_IDENTITY_PREFIX) {
    checkPrefix(prefix);
  }
  byLabels(hash: string): string {
    return `${this.prefix}by-labels/${hash}`;
  }
  byIdPrefix(): string {
    return `${this.prefix}by-id/`;
  }
  byId(id: number): string {
    return `${this.prefix}by-id/${id}`;
  }
  refsPrefix(): string {
    return `${this.prefix}refs/`;
  }
  refsOf(id: number): string {
    return `${this.prefix}refs/${id}/`;
  }
  ref(id: number, node: string): string {
    return `${this.prefix}refs/${id}/${node}`;
  }
  unusedPrefix(): string {
    return `${this.prefix}unused/`;
  }
  unused(id: number): string {
    return `${this.prefix}unused/${id}`;
  }
  /** The id in a key "<base><id>" or "<base><id>/...", validated. */
  idIn(base: string, key: string): number {
    const rest = key.slice(base.length);
    const text = rest.split('/', 1)[0]!;
    const id = /^[1-9][0-9]{0,4}$/.test(text) ? Number(text) : NaN;
    try {
      return checkClusterId('id', id);
    } catch (err) {
      throw new IdentityCorruptError(key, `Store key ${quote(key)} does not name a cluster identity id: remove the stray key`, { cause: err });
    }
  }
}

export function encode(value: object): Buffer {
  return Buffer.from(JSON.stringify({ v: 1, ...value }));
}

function object(kv: KeyValue, what: string): Record<string, unknown> {
  const fail = (detail: string, cause?: unknown) =>
    new IdentityCorruptError(kv.key, `Identity ${what} at ${quote(kv.key)} is invalid (${detail}): delete the key and let the allocator rewrite it`, { cause });
  if (kv.value.length > MAX_RECORD_BYTES) throw fail(`${kv.value.length} bytes, the limit is ${MAX_RECORD_BYTES}`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(kv.value.toString('utf8'));
  } catch (err) {
    throw fail('not JSON', err);
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw fail('not a JSON object');
  const o = parsed as Record<string, unknown>;
  if (o.v !== 1) throw fail(`unknown version ${quote(o.v)}`);
  return o;
}

function corrupt(kv: KeyValue, what: string, err: unknown): never {
  if (err instanceof IdentityCorruptError) throw err;
  const detail = err instanceof Error ? err.message : String(err);
  throw new IdentityCorruptError(kv.key, `Identity ${what} at ${quote(kv.key)} is invalid (${detail}): delete the key and let the allocator rewrite it`, { cause: err });
}

/** Parses a by-labels value: the id the label set with `hash` maps to. */
export function parseByLabels(kv: KeyValue): number {
  try {
    return checkClusterId('id', object(kv, 'mapping').id);
  } catch (err) {
    return corrupt(kv, 'mapping', err);
  }
}

/** Parses a by-id value; its id comes from the key, its label set must hash to its hash. */
export function parseById(keys: IdentityKeys, kv: KeyValue): IdentityRecord {
  try {
    const id = keys.idIn(keys.byIdPrefix(), kv.key);
    if (kv.key !== keys.byId(id)) throw new Error('key has extra path segments');
    const o = object(kv, 'record');
    const hash = checkLabelHash('hash', o.hash);
    const labels = parseCanonicalLabelSet(o.labels, hash);
    if (o.state !== 'active' && o.state !== 'releasing') throw new Error(`state ${quote(o.state)} is neither "active" nor "releasing"`);
    return { id, labels, state: o.state, modRevision: kv.modRevision };
  } catch (err) {
    return corrupt(kv, 'record', err);
  }
}

export function encodeById(labels: LabelSet, state: IdentityState): Buffer {
  return encode({ hash: labels.hash, labels: labels.canonical, state });
}

/** Parses an unused marker: when the releaser first saw the id without references (ms). */
export function parseUnused(kv: KeyValue): number {
  try {
    const since = object(kv, 'unused marker').since;
    if (typeof since !== 'number' || !Number.isSafeInteger(since) || since < 0) throw new Error(`since ${quote(since)} is not a time in ms`);
    return since;
  } catch (err) {
    return corrupt(kv, 'unused marker', err);
  }
}
