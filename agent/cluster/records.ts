/**
 * The cluster model: nodes, namespaces (with labels), pods and network policies, as the lab
 * writes them and agents watch them, shaped so that a Kubernetes implementation maps onto it
 * (Node, Namespace, Pod, NetworkPolicy). Values are JSON with a version field "v". Everything read
 * back from the store is hostile until parsed here: size-bounded, every field type- and
 * range-checked, unknown fields refused, and the name in the value must match the key.
 */
import { ValidationError } from '../errors.js';
import { validateNamespace, validateNodeName, validateServiceAccount, isDns1123Subdomain } from '../../certs/names.js';
import { checkLabelKey, checkLabelValue } from '../identity/labels.js';
import { canonicalCidr, canonicalIp, checkCidr } from '../net/ip.js';
import { quote } from '../store/validate.js';

export const RECORD_VERSION = 1;
/** Largest record accepted (a policy manifest is the biggest). */
export const MAX_RECORD_BYTES = 256 * 1024;
export const MAX_POLICY_MANIFEST_BYTES = 128 * 1024;
export const MAX_LABELS = 64;
export const MAX_ADDRESSES = 8;

export type Labels = Record<string, string>;

/** A node: underlay addresses (one per family at most) and pod CIDRs (one per family at most). */
export interface ClusterNode {
  name: string;
  /** Underlay addresses the node is reached at, e.g. ["10.77.0.10", "fd77::a"]. */
  addresses: string[];
  /** Pod CIDRs allocated to the node, e.g. ["10.78.0.0/24", "fd78:0:0:1::/64"]. */
  podCidrs: string[];
  labels: Labels;
}

export interface ClusterNamespace {
  name: string;
  labels: Labels;
}

export interface ClusterPod {
  name: string;
  namespace: string;
  labels: Labels;
  serviceAccount: string;
  /** The node the pod runs on. */
  node: string;
  /** Pod addresses (IPv4 and/or IPv6), without prefix length. */
  addresses: string[];
}

/** A NetworkPolicy as its raw manifest text (YAML or JSON); the policy front end parses it. */
export interface ClusterPolicy {
  name: string;
  namespace: string;
  manifest: string;
}

export interface ClusterObjects {
  nodes: ClusterNode;
  namespaces: ClusterNamespace;
  pods: ClusterPod;
  policies: ClusterPolicy;
}

type Fail = (message: string) => Error;

function object(v: unknown, what: string, fail: Fail): Record<string, unknown> {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw fail(`${what} must be an object, got ${quote(v)}`);
  return v as Record<string, unknown>;
}

function onlyKeys(o: Record<string, unknown>, allowed: readonly string[], what: string, fail: Fail): void {
  for (const k of Object.keys(o)) {
    if (!allowed.includes(k)) throw fail(`${what} has unknown field ${quote(k)}: allowed are ${allowed.join(', ')}`);
  }
}

/** Wraps a ValidationError from a shared validator into the caller's failure kind. */
function via<T>(fail: Fail, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof ValidationError) throw fail(err.message);
    throw err;
  }
}

function labels(v: unknown, what: string, fail: Fail): Labels {
  const o = object(v, `${what} labels`, fail);
  const keys = Object.keys(o);
  if (keys.length > MAX_LABELS) throw fail(`${what} has ${keys.length} labels: keep at most ${MAX_LABELS}`);
  const out: Labels = {};
  for (const k of keys.sort()) {
    via(fail, () => checkLabelKey('labels', k));
    out[k] = via(fail, () => checkLabelValue('labels', k, o[k]));
  }
  return out;
}

function addressList(v: unknown, what: string, fail: Fail, parse: (field: string, x: unknown) => string): string[] {
  if (!Array.isArray(v) || v.length > MAX_ADDRESSES) throw fail(`${what} must be an array of at most ${MAX_ADDRESSES} entries, got ${quote(v)}`);
  const out = v.map((x, i) => via(fail, () => parse(`${what}[${i}]`, x)));
  if (new Set(out).size !== out.length) throw fail(`${what} lists an entry twice: ${quote(out)}`);
  return out;
}

function version(o: Record<string, unknown>, what: string, fail: Fail): void {
  if (o.v !== RECORD_VERSION) throw fail(`${what} has version ${quote(o.v)}: this agent reads version ${RECORD_VERSION}; upgrade the agent`);
}

function podName(v: unknown, fail: Fail): string {
  if (typeof v !== 'string' || !isDns1123Subdomain(v)) {
    throw fail(`Invalid pod name ${quote(v)}: use a Kubernetes pod name (lowercase letters, digits, "-" and ".", at most 253 characters)`);
  }
  return v;
}

function policyName(v: unknown, fail: Fail): string {
  if (typeof v !== 'string' || !isDns1123Subdomain(v)) {
    throw fail(`Invalid policy name ${quote(v)}: use a Kubernetes object name (lowercase letters, digits, "-" and ".", at most 253 characters)`);
  }
  return v;
}

const ipOf = (field: string, x: unknown): string => canonicalIp(field, x);
const cidrOf = (field: string, x: unknown): string => {
  checkCidr(field, x, { network: true, requirePrefix: true });
  const c = canonicalCidr(field, x);
  return `${c.addr}/${c.prefixLen}`;
};

/** Checks a record and returns a canonical copy (labels sorted, addresses canonical). */
export const checkers: { [K in keyof ClusterObjects]: (v: unknown, fail: Fail) => ClusterObjects[K] } = {
  nodes(v, fail) {
    const o = object(v, 'Node', fail);
    onlyKeys(o, ['v', 'name', 'addresses', 'podCidrs', 'labels'], 'Node', fail);
    const name = via(fail, () => validateNodeName(o.name, 'name'));
    return {
      name,
      addresses: addressList(o.addresses, `Node ${quote(name)} addresses`, fail, ipOf),
      podCidrs: addressList(o.podCidrs, `Node ${quote(name)} podCidrs`, fail, cidrOf),
      labels: labels(o.labels ?? {}, `Node ${quote(name)}`, fail),
    };
  },
  namespaces(v, fail) {
    const o = object(v, 'Namespace', fail);
    onlyKeys(o, ['v', 'name', 'labels'], 'Namespace', fail);
    const name = via(fail, () => validateNamespace(o.name, 'name'));
    return { name, labels: labels(o.labels ?? {}, `Namespace ${quote(name)}`, fail) };
  },
  pods(v, fail) {
    const o = object(v, 'Pod', fail);
    onlyKeys(o, ['v', 'name', 'namespace', 'labels', 'serviceAccount', 'node', 'addresses'], 'Pod', fail);
    const name = podName(o.name, fail);
    const what = `Pod ${quote(name)}`;
    return {
      name,
      namespace: via(fail, () => validateNamespace(o.namespace, 'namespace')),
      labels: labels(o.labels ?? {}, what, fail),
      serviceAccount: via(fail, () => validateServiceAccount(o.serviceAccount, 'serviceAccount')),
      node: via(fail, () => validateNodeName(o.node, 'node')),
      addresses: addressList(o.addresses, `${what} addresses`, fail, ipOf),
    };
  },
  policies(v, fail) {
    const o = object(v, 'Policy', fail);
    onlyKeys(o, ['v', 'name', 'namespace', 'manifest'], 'Policy', fail);
    const name = policyName(o.name, fail);
    if (typeof o.manifest !== 'string' || o.manifest.length === 0 || Buffer.byteLength(o.manifest) > MAX_POLICY_MANIFEST_BYTES) {
      throw fail(`Policy ${quote(name)} manifest must be non-empty text of at most ${MAX_POLICY_MANIFEST_BYTES} bytes`);
    }
    return { name, namespace: via(fail, () => validateNamespace(o.namespace, 'namespace')), manifest: o.manifest };
  },
};

/** Validates a record the caller wants to write; ValidationError on anything wrong. */
export function checkRecord<K extends keyof ClusterObjects>(kind: K, v: unknown): ClusterObjects[K] {
  return checkers[kind](v, (message) => new ValidationError(kind, message));
}

/** The stored bytes of a (checked) record. */
export function encodeRecord<K extends keyof ClusterObjects>(kind: K, record: ClusterObjects[K]): Buffer {
  return Buffer.from(JSON.stringify({ v: RECORD_VERSION, ...checkRecord(kind, record) }), 'utf8');
}

/**
 * Parses stored bytes; `fail` builds the error for the caller (the client reports the key). The
 * version is checked before the shape, so a newer writer is reported as such.
 */
export function decodeRecord<K extends keyof ClusterObjects>(kind: K, value: Buffer, fail: Fail): ClusterObjects[K] {
  if (value.length > MAX_RECORD_BYTES) throw fail(`Record is ${value.length} bytes, more than the ${MAX_RECORD_BYTES} allowed`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(value.toString('utf8'));
  } catch {
    throw fail('Record is not JSON');
  }
  const o = object(parsed, 'Record', fail);
  version(o, 'Record', fail);
  return checkers[kind](o, fail);
}
