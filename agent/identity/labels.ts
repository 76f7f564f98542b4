/**
 * The canonical label set of an identity: what makes two pods "the same workload" for policy
 * and keys. Built from the pod's namespace, its service account, its own labels and the labels
 * of its namespace (NetworkPolicy namespaceSelectors must be decidable from the identity alone),
 * with volatile labels removed (they change per rollout or per pod; keeping them would give every
 * ReplicaSet generation its own identity and run a cluster into the 65k id cap).
 *
 * Canonical form: every label becomes one "source:key" → value entry
 *   veil:namespace, veil:service-account, k8s:<pod label key>, ns:<namespace label key>
 * (Kubernetes label keys cannot contain ':', so the sources cannot collide), sorted by key in
 * UTF-16 code-unit order and serialised as a JSON array of [key, value] pairs. JSON quoting makes
 * the form unambiguous; the store key is the SHA-256 (hex) of its UTF-8 bytes.
 */
import { createHash } from 'node:crypto';
import { ValidationError } from '../errors.js';
import { quote } from '../store/validate.js';

/**
 * Labels that differ between pods of one workload or between rollouts of it, never part of an
 * identity (pod and namespace labels alike).
 */
export const VOLATILE_LABEL_KEYS: ReadonlySet<string> = new Set([
  'pod-template-hash', // Deployment → ReplicaSet generation
  'controller-revision-hash', // StatefulSet / DaemonSet revision
  'pod-template-generation', // DaemonSet (legacy)
  'statefulset.kubernetes.io/pod-name', // one per pod
  'apps.kubernetes.io/pod-index', // StatefulSet ordinal
  'controller-uid', // Job (legacy)
  'job-name', // Job (legacy), one per Job run of a CronJob
  'batch.kubernetes.io/controller-uid',
  'batch.kubernetes.io/job-name',
  'batch.kubernetes.io/job-completion-index',
]);

/** At most this many labels (pod + namespace, after volatile ones are dropped). */
export const MAX_LABELS = 64;
/** At most this many bytes of canonical form (a label set this size is a mistake or an attack). */
export const MAX_CANONICAL_BYTES = 16 * 1024;
/** A raw input object with more keys than this is rejected before it is looked at. */
const MAX_INPUT_KEYS = 1024;

export interface IdentityLabelsInput {
  namespace: string;
  serviceAccount: string;
  /** The pod's labels. */
  podLabels?: Record<string, string>;
  /** The labels of the pod's namespace. */
  namespaceLabels?: Record<string, string>;
}

/** A validated, canonical label set (immutable). */
export interface LabelSet {
  /** Sorted [key, value] pairs with source prefixes ("k8s:app" → "web"). */
  readonly entries: ReadonlyArray<readonly [string, string]>;
  /** The canonical serialisation (JSON array of pairs). */
  readonly canonical: string;
  /** SHA-256 of the canonical form, lower-case hex: the label set's key in the store. */
  readonly hash: string;
}

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const LABEL_NAME = /^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
const SOURCES = new Set(['veil', 'k8s', 'ns']);
const HEX64 = /^[0-9a-f]{64}$/;

/** A DNS-1123 label: at most 63 lower-case letters, digits and "-", alphanumeric at both ends (namespace names). */
export function isDns1123Label(s: unknown): s is string {
  return typeof s === 'string' && s.length <= 63 && DNS1123_LABEL.test(s);
}

/** A DNS-1123 subdomain: at most 253 characters of dot-separated DNS-1123 labels (object names, label key prefixes). */
export function isDns1123Subdomain(s: unknown): s is string {
  return typeof s === 'string' && s.length <= 253 && DNS1123_SUBDOMAIN.test(s);
}

function checkNamespace(ns: unknown): string {
  if (!isDns1123Label(ns)) {
    throw new ValidationError('namespace', `Namespace ${quote(ns)} is invalid: use a DNS-1123 label (lower-case letters, digits, "-", at most 63 characters)`);
  }
  return ns;
}

function checkServiceAccount(sa: unknown): string {
  if (!isDns1123Subdomain(sa)) {
    throw new ValidationError('serviceAccount', `Service account ${quote(sa)} is invalid: use a DNS-1123 subdomain (lower-case letters, digits, "-", ".", at most 253 characters)`);
  }
  return sa;
}

/** Validates one Kubernetes label key: optional DNS-1123 subdomain prefix (≤ 253) "/" name (≤ 63). */
export function checkLabelKey(field: string, key: string): void {
  const slash = key.indexOf('/');
  const prefix = slash >= 0 ? key.slice(0, slash) : undefined;
  const name = slash >= 0 ? key.slice(slash + 1) : key;
  if (prefix !== undefined && !isDns1123Subdomain(prefix)) {
    throw new ValidationError(field, `Label key ${quote(key)} has an invalid prefix: use a DNS-1123 subdomain of at most 253 characters before "/"`);
  }
  if (name.length === 0 || name.length > 63 || !LABEL_NAME.test(name)) {
    throw new ValidationError(field, `Label key ${quote(key)} has an invalid name: use at most 63 characters [A-Za-z0-9-_.], starting and ending alphanumeric`);
  }
}

/** Validates one Kubernetes label value: empty, or at most 63 characters [A-Za-z0-9-_.]. */
export function checkLabelValue(field: string, key: string, value: unknown): string {
  if (typeof value !== 'string' || value.length > 63 || (value !== '' && !LABEL_NAME.test(value))) {
    throw new ValidationError(field, `Label ${quote(key)} has invalid value ${quote(value)}: use at most 63 characters [A-Za-z0-9-_.], starting and ending alphanumeric, or ""`);
  }
  return value;
}

function oversized(detail: string): ValidationError {
  return new ValidationError('labels', `Identity has an oversized label set (${detail}): keep at most ${MAX_LABELS} labels and ${MAX_CANONICAL_BYTES} bytes, or drop per-pod labels`);
}

function collect(field: 'podLabels' | 'namespaceLabels', source: string, labels: unknown, out: Array<[string, string]>): void {
  if (labels === undefined) return;
  if (labels === null || typeof labels !== 'object' || Array.isArray(labels)) {
    throw new ValidationError(field, `Identity ${field} must be an object of label key to value, got ${quote(labels)}: pass e.g. { app: "web" }`);
  }
  const keys = Object.keys(labels);
  if (keys.length > MAX_INPUT_KEYS) throw oversized(`${keys.length} ${field}`);
  for (const key of keys) {
    if (VOLATILE_LABEL_KEYS.has(key)) continue;
    checkLabelKey(field, key);
    const value = checkLabelValue(field, key, (labels as Record<string, unknown>)[key]);
    out.push([`${source}:${key}`, value]);
  }
}

function finish(entries: Array<[string, string]>): LabelSet {
  if (entries.length - 2 > MAX_LABELS) throw oversized(`${entries.length - 2} labels`);
  entries.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  for (let i = 1; i < entries.length; i++) {
    if (entries[i]![0] === entries[i - 1]![0]) throw new ValidationError('labels', `Label set has label ${quote(entries[i]![0])} twice: give each key one value`);
  }
  const canonical = JSON.stringify(entries);
  const bytes = Buffer.byteLength(canonical, 'utf8');
  if (bytes > MAX_CANONICAL_BYTES) throw oversized(`${bytes} bytes`);
  const hash = createHash('sha256').update(canonical, 'utf8').digest('hex');
  return Object.freeze({ entries: Object.freeze(entries.map((e) => Object.freeze(e) as readonly [string, string])), canonical, hash });
}

/** Builds the canonical label set of a workload; throws ValidationError on any invalid input. */
export function canonicalLabelSet(input: IdentityLabelsInput): LabelSet {
  if (input === null || typeof input !== 'object') {
    throw new ValidationError('labels', `Identity labels must be an object { namespace, serviceAccount, podLabels, namespaceLabels }, got ${quote(input)}`);
  }
  const entries: Array<[string, string]> = [
    ['veil:namespace', checkNamespace(input.namespace)],
    ['veil:service-account', checkServiceAccount(input.serviceAccount)],
  ];
  collect('podLabels', 'k8s', input.podLabels, entries);
  collect('namespaceLabels', 'ns', input.namespaceLabels, entries);
  return finish(entries);
}

/**
 * Parses a canonical form read from the store (hostile input): it must be exactly what
 * canonicalLabelSet produces — valid pairs, sorted, no duplicates, within bounds — and, when
 * `expectedHash` is given, hash to it. Throws ValidationError naming what is wrong.
 */
export function parseCanonicalLabelSet(canonical: unknown, expectedHash?: string): LabelSet {
  if (typeof canonical !== 'string' || Buffer.byteLength(canonical, 'utf8') > MAX_CANONICAL_BYTES) {
    throw oversized('canonical form is not a string within bounds');
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(canonical);
  } catch (err) {
    throw new ValidationError('labels', `Canonical label set is not JSON: rewrite it from the workload's labels`, { cause: err });
  }
  if (!Array.isArray(parsed)) throw new ValidationError('labels', 'Canonical label set is not a JSON array of [key, value] pairs');
  const entries: Array<[string, string]> = [];
  let ns: string | undefined;
  let sa: string | undefined;
  for (const pair of parsed) {
    if (!Array.isArray(pair) || pair.length !== 2 || typeof pair[0] !== 'string' || typeof pair[1] !== 'string') {
      throw new ValidationError('labels', `Canonical label set has an entry ${quote(pair)} that is not a [key, value] pair of strings`);
    }
    const [full, value] = pair as [string, string];
    const colon = full.indexOf(':');
    const source = colon > 0 ? full.slice(0, colon) : '';
    const key = full.slice(colon + 1);
    if (!SOURCES.has(source)) throw new ValidationError('labels', `Canonical label ${quote(full)} has an unknown source: expected veil:, k8s: or ns:`);
    if (source === 'veil') {
      if (key === 'namespace') ns = checkNamespace(value);
      else if (key === 'service-account') sa = checkServiceAccount(value);
      else throw new ValidationError('labels', `Canonical label ${quote(full)} is not a Veil label: expected veil:namespace or veil:service-account`);
    } else {
      if (VOLATILE_LABEL_KEYS.has(key)) throw new ValidationError('labels', `Canonical label set contains volatile label ${quote(key)}`);
      checkLabelKey('labels', key);
      checkLabelValue('labels', key, value);
    }
    entries.push([full, value]);
  }
  if (ns === undefined || sa === undefined) {
    throw new ValidationError('labels', 'Canonical label set lacks veil:namespace or veil:service-account');
  }
  const set = finish([...entries]);
  if (set.canonical !== canonical) {
    throw new ValidationError('labels', 'Canonical label set is not in canonical form (unsorted, duplicated or re-formatted entries)');
  }
  if (expectedHash !== undefined && set.hash !== expectedHash) {
    throw new ValidationError('labels', `Canonical label set hashes to "${set.hash}", not the expected ${quote(expectedHash)}`);
  }
  return set;
}

/** Validates a label-set hash (64 lower-case hex digits). */
export function checkLabelHash(field: string, hash: unknown): string {
  if (typeof hash !== 'string' || !HEX64.test(hash)) {
    throw new ValidationError(field, `Label-set hash ${quote(hash)} is invalid: expected 64 lower-case hex digits (SHA-256)`);
  }
  return hash;
}

/** Namespace and service account of a canonical label set. */
export function workloadOf(set: LabelSet): { namespace: string; serviceAccount: string } {
  const get = (k: string) => set.entries.find((e) => e[0] === k)?.[1] ?? '';
  return { namespace: get('veil:namespace'), serviceAccount: get('veil:service-account') };
}
