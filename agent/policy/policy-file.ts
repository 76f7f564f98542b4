/**
 * Reads NetworkPolicy files: YAML (one or more documents separated by "---") or JSON (a YAML 1.2
 * subset), each document a NetworkPolicy or a list of them (`kind: List` as `kubectl get -o yaml`
 * writes it, or `kind: NetworkPolicyList`). The input is treated as hostile: bounded size,
 * document count, nesting depth, node count and alias expansion; duplicate keys, unknown tags and
 * unknown fields are errors; every error names the source, the document and the field.
 */
import { open } from 'node:fs/promises';
import { isScalar, LineCounter, parseAllDocuments, visit, type Document } from 'yaml';
import { describeLocation, PolicyFileError, PolicyInputError, type PolicyLocation } from './errors.js';
import { at, describe, InputReader, MAX_LIST_ITEMS } from './input-reader.js';
import { parseNetworkPolicy, policyKey, type NetworkPolicy, type ParsePolicyOptions } from './network-policy.js';

export const MAX_POLICY_FILE_BYTES = 1024 * 1024;
export const MAX_DOCUMENTS = 1000;
export const MAX_POLICIES = 1000;
/** Deepest nesting of a document (a NetworkPolicy needs 8). */
export const MAX_DEPTH = 24;
/** Most values (scalars, mappings, lists, counted after alias expansion) in one document. */
export const MAX_NODES = 100_000;
const MAX_ALIASES = 64;

export interface ReadPoliciesOptions extends ParsePolicyOptions {
  /** Name of the input for error messages (a file name); default "<input>". */
  source?: string;
}

/** Parses every NetworkPolicy in `text`; throws PolicyInputError on the first problem. */
export function parsePolicies(text: string, options: ReadPoliciesOptions = {}): NetworkPolicy[] {
  const source = options.source ?? '<input>';
  if (typeof text !== 'string') throw new PolicyInputError({ source, document: 0 }, '', `expected text, got ${describe(text)}`);
  const bytes = Buffer.byteLength(text, 'utf8');
  if (bytes > MAX_POLICY_FILE_BYTES) {
    throw new PolicyInputError({ source, document: 0 }, '', `the input is ${bytes} bytes: keep a policy file under ${MAX_POLICY_FILE_BYTES} bytes, or split it`);
  }
  const lines = new LineCounter();
  const docs = parseAllDocuments(text, {
    lineCounter: lines,
    version: '1.2',
    schema: 'core',
    merge: false,
    uniqueKeys: true,
    strict: true,
    prettyErrors: true,
  });
  // An input without any document gives an EmptyStream (an empty array).
  const list = Array.from(docs);
  if (list.length > MAX_DOCUMENTS) {
    throw new PolicyInputError({ source, document: 0 }, '', `the input has ${list.length} documents: keep at most ${MAX_DOCUMENTS}`);
  }
  const out: NetworkPolicy[] = [];
  const seen = new Map<string, PolicyLocation>();
  list.forEach((doc, i) => {
    const location: PolicyLocation = { source, document: i + 1 };
    const problem = doc.errors[0] ?? doc.warnings[0];
    if (problem) {
      throw new PolicyInputError(location, '', `YAML syntax error: ${(problem.message.split('\n')[0] ?? '').replace(/:\s*$/, '')}; fix the YAML there`, { cause: problem });
    }
    if (doc.contents === null) return; // an empty document ("---" at the end)
    checkAmbiguousScalars(location, doc, lines);
    let value: unknown;
    try {
      value = doc.toJS({ maxAliasCount: MAX_ALIASES });
    } catch (err) {
      throw new PolicyInputError(location, '', `cannot be read: ${(err as Error).message}: remove YAML aliases ("*name") or the document`, { cause: err });
    }
    if (value === null || value === undefined) return;
    checkShape(location, value);
    for (const [item, obj] of unwrap(location, value)) {
      const at1: PolicyLocation = item === undefined ? { ...location } : { ...location, item };
      const policy = parseNetworkPolicy(new InputReader(at1), obj, options);
      const key = policyKey(policy);
      const first = seen.get(key);
      if (first) {
        throw new PolicyInputError(policy.location, 'metadata.name', `NetworkPolicy "${key}" is defined twice (first in ${describeLocation(first)}): give each policy its own name`);
      }
      seen.set(key, policy.location);
      if (out.length >= MAX_POLICIES) throw new PolicyInputError(policy.location, '', `the input has more than ${MAX_POLICIES} policies: split it`);
      out.push(policy);
    }
  });
  if (out.length === 0) {
    throw new PolicyInputError({ source, document: 0 }, '', 'contains no NetworkPolicy: give at least one document with "kind: NetworkPolicy"');
  }
  return out;
}

/** YAML 1.1 booleans (what kubectl and the API server read) that YAML 1.2 reads as strings. */
const YAML11_BOOLEAN = /^(y|Y|yes|Yes|YES|n|N|no|No|NO|on|On|ON|off|Off|OFF)$/;
/** YAML 1.1 timestamps (`2026-01-31`), which Kubernetes' reader turns into RFC 3339 text. */
const YAML11_TIMESTAMP = /^[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}([Tt ]|$)/;
/** Numbers both YAML versions read the same: plain decimal integers and decimals. */
const PLAIN_NUMBER = /^-?(0|[1-9][0-9]*)(\.[0-9]+)?$/;

/**
 * Refuses unquoted values that Kubernetes (YAML 1.1) and this reader (YAML 1.2) would read
 * differently: `yes`/`no`/`on`/`off`/`y`/`n` (booleans there, strings here), dates (timestamps
 * there) and numbers written with a leading zero, a base prefix, underscores or an exponent
 * (`010` is 8 there, 10 here).
 * A policy must mean the same to Veil as to the cluster it came from.
 */
function checkAmbiguousScalars(location: PolicyLocation, doc: Document, lines: LineCounter): void {
  visit(doc, {
    Scalar(key, node) {
      if (!isScalar(node) || node.type !== 'PLAIN' || typeof node.source !== 'string') return;
      const src = node.source;
      const ambiguous = typeof node.value === 'number' ? !PLAIN_NUMBER.test(src) : typeof node.value === 'string' && (YAML11_BOOLEAN.test(src) || YAML11_TIMESTAMP.test(src));
      if (!ambiguous) return;
      const pos = node.range ? lines.linePos(node.range[0]) : undefined;
      const where = pos ? ` at line ${pos.line}, column ${pos.col}` : '';
      const what = typeof node.value === 'number' ? `number ${JSON.stringify(src)}` : `${key === 'key' ? 'key' : 'value'} ${JSON.stringify(src)}`;
      const fix = typeof node.value === 'number' ? `write it as a plain decimal (${String(node.value)}) or quote it` : `quote it ("${src}") if you mean the text`;
      throw new PolicyInputError(location, '', `${what}${where} is read differently by Kubernetes (YAML 1.1) and YAML 1.2: ${fix}`);
    },
  });
}

/** A document → its NetworkPolicy objects: itself, or the items of a List. */
function unwrap(location: PolicyLocation, value: unknown): Array<[number | undefined, unknown]> {
  const r = new InputReader(location);
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw r.fail('', `expected a mapping (a Kubernetes object), got ${describe(value)}`);
  const kind = Object.hasOwn(value, 'kind') ? (value as Record<string, unknown>).kind : undefined;
  if (kind !== 'List' && kind !== 'NetworkPolicyList') return [[undefined, value]];
  const obj = r.object(value, '', ['apiVersion', 'kind', 'metadata', 'items']);
  const want = kind === 'List' ? 'v1' : 'networking.k8s.io/v1';
  if (r.get(obj, 'apiVersion') !== want) throw r.fail('apiVersion', `a ${kind} has apiVersion "${want}", got ${describe(r.get(obj, 'apiVersion'))}`);
  if (r.get(obj, 'metadata') !== undefined && r.get(obj, 'metadata') !== null) {
    r.object(r.get(obj, 'metadata'), 'metadata', ['resourceVersion', 'continue', 'remainingItemCount', 'selfLink']);
  }
  const items = r.get(obj, 'items') === undefined ? [] : r.array(r.get(obj, 'items'), 'items', MAX_POLICIES);
  return items.map((item, i) => {
    if (item !== null && typeof item === 'object' && !Array.isArray(item) && Object.hasOwn(item, 'kind') && (item as { kind: unknown }).kind !== 'NetworkPolicy') {
      throw r.fail(at('items', i) + '.kind', `expected "NetworkPolicy", got ${describe((item as { kind: unknown }).kind)}: a list holds NetworkPolicy objects only`);
    }
    return [i, item];
  });
}

/** Rejects documents nested deeper than MAX_DEPTH or with more than MAX_NODES values. */
function checkShape(location: PolicyLocation, value: unknown): void {
  let nodes = 0;
  const stack: Array<[unknown, number]> = [[value, 1]];
  while (stack.length > 0) {
    const [v, depth] = stack.pop()!;
    if (++nodes > MAX_NODES) throw new PolicyInputError(location, '', `has more than ${MAX_NODES} values: a NetworkPolicy is far smaller; split the document`);
    if (v === null || typeof v !== 'object') continue;
    if (depth > MAX_DEPTH) throw new PolicyInputError(location, '', `is nested deeper than ${MAX_DEPTH} levels: a NetworkPolicy needs far fewer`);
    const children = Array.isArray(v) ? v : Object.values(v);
    if (children.length > MAX_NODES) throw new PolicyInputError(location, '', `has a list or mapping of ${children.length} entries: keep lists under ${MAX_LIST_ITEMS}`);
    for (const c of children) stack.push([c, depth + 1]);
  }
}

/**
 * Reads and parses a policy file. The size is checked on the open file before anything is read,
 * and at most MAX_POLICY_FILE_BYTES + 1 bytes are ever read (a file growing meanwhile is caught).
 */
export async function readPolicyFile(path: string, options: Omit<ReadPoliciesOptions, 'source'> = {}): Promise<NetworkPolicy[]> {
  let text: string;
  let handle;
  try {
    handle = await open(path, 'r');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'error';
    throw new PolicyFileError(path, `Cannot open NetworkPolicy file ${JSON.stringify(path)} (${code}): check the path and that it is readable`, { cause: err });
  }
  try {
    const st = await handle.stat();
    if (!st.isFile()) throw new PolicyFileError(path, `NetworkPolicy file ${JSON.stringify(path)} is not a regular file: give the path of a YAML or JSON file`);
    if (st.size > MAX_POLICY_FILE_BYTES) {
      throw new PolicyInputError({ source: path, document: 0 }, '', `the file is ${st.size} bytes: keep a policy file under ${MAX_POLICY_FILE_BYTES} bytes, or split it`);
    }
    const buf = Buffer.alloc(MAX_POLICY_FILE_BYTES + 1);
    let n = 0;
    for (;;) {
      const { bytesRead } = await handle.read(buf, n, buf.length - n, null);
      if (bytesRead === 0) break;
      n += bytesRead;
      if (n === buf.length) {
        throw new PolicyInputError({ source: path, document: 0 }, '', `the file is larger than ${MAX_POLICY_FILE_BYTES} bytes: keep a policy file under that, or split it`);
      }
    }
    text = buf.subarray(0, n).toString('utf8');
  } finally {
    await handle.close();
  }
  return parsePolicies(text, { ...options, source: path });
}
