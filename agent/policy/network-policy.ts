/**
 * One Kubernetes NetworkPolicy (networking.k8s.io/v1), read strictly from an untrusted document
 * into Veil's normalized model, with the API server's defaulting and validation:
 *
 * - policyTypes absent or empty: ["Ingress"], plus "Egress" when spec.egress has rules;
 * - a rule without from/to (or with an empty list) matches every peer, without ports every port;
 * - a port without protocol is TCP; a port without number is every port of its protocol;
 * - a peer is podSelector, namespaceSelector, both (AND), or ipBlock alone.
 *
 * Deliberate differences, each an error naming the field and the fix (docs/policy.md): named
 * ports; selectors on volatile labels; rules of a direction that policyTypes leaves out (the API
 * server stores and ignores them, Veil refuses them so that nobody believes they apply); an
 * ipBlock whose CIDR has host bits set or no prefix length; unknown fields anywhere.
 */
import { checkLabelKey, checkLabelValue, isDns1123Label, isDns1123Subdomain } from '../identity/labels.js';
import { checkCidr, type Cidr } from '../net/ip.js';
import { contains } from './cidr-rule.js';
import { quote } from '../store/validate.js';
import { at, describe, InputReader, join } from './input-reader.js';
import { parseLabelSelector, type LabelSelector } from './label-selector.js';
import { parseRequirements, type RequirementLevel } from './requirements.js';
import type { PolicyLocation } from './errors.js';
import type { PolicyDirection } from './rule.js';

export const NETWORK_POLICY_API_VERSION = 'networking.k8s.io/v1';
/** Kubernetes' limit on the total size of an object's annotations. */
export const MAX_ANNOTATIONS_BYTES = 256 * 1024;
const MAX_METADATA_ENTRIES = 1024;

export type PortProtocol = 'tcp' | 'udp' | 'sctp';

export interface PortSpec {
  protocol: PortProtocol;
  /** Absent: every port of the protocol. */
  port?: number;
  /** Last port of the range [port, endPort]; absent: just `port`. */
  endPort?: number;
}

export type PeerSpec =
  /** Pods: podSelector only → in the policy's namespace; namespaceSelector only → every pod of matching namespaces; both → AND. */
  | { kind: 'pods'; podSelector?: LabelSelector; namespaceSelector?: LabelSelector }
  /** Addresses: `cidr` minus every prefix of `except` (canonical, host bits clear). */
  | { kind: 'ipBlock'; cidr: Cidr; except: Cidr[] };

export interface RuleSpec {
  /** null: every peer (from/to absent or empty). */
  peers: PeerSpec[] | null;
  /** Empty: every port and protocol. */
  ports: PortSpec[];
  /** Veil requirement from the policy.veil.dev/ annotations. */
  requirement: RequirementLevel;
}

export interface NetworkPolicy {
  namespace: string;
  name: string;
  /** Selects the policy's subjects among the pods of its namespace. */
  podSelector: LabelSelector;
  /** null: the policy does not isolate ingress (not in policyTypes); []: deny all ingress. */
  ingress: RuleSpec[] | null;
  egress: RuleSpec[] | null;
  annotations: ReadonlyArray<readonly [string, string]>;
  location: PolicyLocation;
}

const PROTOCOLS: Record<string, PortProtocol> = { TCP: 'tcp', UDP: 'udp', SCTP: 'sctp' };
/** ObjectMeta fields the API server fills in: accepted (kubectl get -o yaml output) and ignored. */
const SERVER_METADATA = [
  'uid', 'resourceVersion', 'generation', 'creationTimestamp', 'deletionTimestamp', 'deletionGracePeriodSeconds',
  'managedFields', 'selfLink', 'finalizers', 'ownerReferences',
];

export interface ParsePolicyOptions {
  /** Namespace of a policy without metadata.namespace (kubectl's current namespace); default "default". */
  defaultNamespace?: string;
}

/** Reads one NetworkPolicy object; `r.at` says where it came from. */
export function parseNetworkPolicy(r: InputReader, doc: unknown, options: ParsePolicyOptions = {}): NetworkPolicy {
  const top = r.object(doc, '', ['apiVersion', 'kind', 'metadata', 'spec']);
  const apiVersion = r.get(top, 'apiVersion');
  if (apiVersion !== NETWORK_POLICY_API_VERSION) {
    throw r.fail('apiVersion', `expected "${NETWORK_POLICY_API_VERSION}", got ${describe(apiVersion)}: only networking.k8s.io/v1 NetworkPolicy is supported`);
  }
  if (r.get(top, 'kind') !== 'NetworkPolicy') throw r.fail('kind', `expected "NetworkPolicy", got ${describe(r.get(top, 'kind'))}`);

  const meta = r.object(r.get(top, 'metadata'), 'metadata', ['name', 'namespace', 'annotations', 'labels', ...SERVER_METADATA]);
  const name = r.get(meta, 'name');
  if (!isDns1123Subdomain(name)) {
    throw r.fail('metadata.name', `name ${quote(name)} is invalid: give a DNS-1123 subdomain (lower-case letters, digits, "-", ".", at most 253 characters)`);
  }
  const rawNs = r.get(meta, 'namespace') ?? options.defaultNamespace ?? 'default';
  if (!isDns1123Label(rawNs)) {
    throw r.fail('metadata.namespace', `namespace ${quote(rawNs)} is invalid: give a DNS-1123 label (lower-case letters, digits, "-", at most 63 characters)`);
  }
  const namespace = rawNs;
  r.at.policy = `${namespace}/${name}`;
  const annotations = readAnnotations(r, r.get(meta, 'annotations'));
  const labels = r.get(meta, 'labels');
  if (labels !== undefined && labels !== null) {
    for (const [k, v] of r.stringMap(labels, 'metadata.labels', MAX_METADATA_ENTRIES)) r.check(join('metadata.labels', k), () => (checkLabelKey('', k), checkLabelValue('', k, v)));
  }

  const spec = r.object(r.get(top, 'spec'), 'spec', ['podSelector', 'policyTypes', 'ingress', 'egress']);
  if (!Object.hasOwn(spec, 'podSelector')) {
    throw r.fail('spec.podSelector', 'is required: use "podSelector: {}" to select every pod of the namespace');
  }
  const podSelector = parseLabelSelector(r, r.get(spec, 'podSelector'), 'spec.podSelector');
  const ingressRaw = r.get(spec, 'ingress') === undefined ? [] : r.array(r.get(spec, 'ingress'), 'spec.ingress');
  const egressRaw = r.get(spec, 'egress') === undefined ? [] : r.array(r.get(spec, 'egress'), 'spec.egress');
  const types = policyTypes(r, r.get(spec, 'policyTypes'), egressRaw.length > 0);
  for (const dir of ['ingress', 'egress'] as const) {
    const raw = dir === 'ingress' ? ingressRaw : egressRaw;
    if (!types.has(dir) && raw.length > 0) {
      const t = dir === 'ingress' ? 'Ingress' : 'Egress';
      throw r.fail(`spec.${dir}`, `has rules but spec.policyTypes does not list "${t}", so Kubernetes would ignore them: add "${t}" to policyTypes or remove the rules`);
    }
  }
  const req = parseRequirements(r, annotations, { ingress: types.has('ingress') ? ingressRaw.length : 0, egress: types.has('egress') ? egressRaw.length : 0 });
  const rules = (dir: PolicyDirection, raw: unknown[]): RuleSpec[] | null =>
    types.has(dir) ? raw.map((rule, i) => parseRule(r, rule, at(`spec.${dir}`, i), dir, req[dir][i]!)) : null;
  return { namespace, name, podSelector, ingress: rules('ingress', ingressRaw), egress: rules('egress', egressRaw), annotations, location: { ...r.at } };
}

function readAnnotations(r: InputReader, value: unknown): Array<[string, string]> {
  if (value === undefined || value === null) return [];
  const entries = r.stringMap(value, 'metadata.annotations', MAX_METADATA_ENTRIES);
  let bytes = 0;
  for (const [k, v] of entries) {
    r.check(join('metadata.annotations', k), () => checkLabelKey('', k));
    bytes += Buffer.byteLength(k) + Buffer.byteLength(v);
  }
  if (bytes > MAX_ANNOTATIONS_BYTES) throw r.fail('metadata.annotations', `annotations total ${bytes} bytes: Kubernetes allows at most ${MAX_ANNOTATIONS_BYTES}`);
  return entries;
}

function policyTypes(r: InputReader, value: unknown, hasEgressRules: boolean): Set<PolicyDirection> {
  const list = value === undefined ? [] : r.array(value, 'spec.policyTypes', 2);
  if (list.length === 0) return new Set(hasEgressRules ? ['ingress', 'egress'] : ['ingress']);
  const out = new Set<PolicyDirection>();
  list.forEach((t, i) => {
    const path = at('spec.policyTypes', i);
    if (t !== 'Ingress' && t !== 'Egress') throw r.fail(path, `policy type ${describe(t)} is not "Ingress" or "Egress" (case matters)`);
    const dir = t === 'Ingress' ? 'ingress' : 'egress';
    if (out.has(dir)) throw r.fail(path, `policy type "${t}" is listed twice: list it once`);
    out.add(dir);
  });
  return out;
}

function parseRule(r: InputReader, value: unknown, path: string, dir: PolicyDirection, requirement: RequirementLevel): RuleSpec {
  const peersKey = dir === 'ingress' ? 'from' : 'to';
  const obj = r.object(value ?? {}, path, [peersKey, 'ports']);
  const peersPath = join(path, peersKey);
  const rawPeers = r.get(obj, peersKey) === undefined ? [] : r.array(r.get(obj, peersKey), peersPath);
  const peers = rawPeers.length === 0 ? null : rawPeers.map((p, i) => parsePeer(r, p, at(peersPath, i)));
  const portsPath = join(path, 'ports');
  const rawPorts = r.get(obj, 'ports') === undefined ? [] : r.array(r.get(obj, 'ports'), portsPath);
  const ports = rawPorts.map((p, i) => parsePort(r, p, at(portsPath, i)));
  return { peers, ports, requirement };
}

function parsePeer(r: InputReader, value: unknown, path: string): PeerSpec {
  const obj = r.object(value, path, ['podSelector', 'namespaceSelector', 'ipBlock']);
  const present = (k: string) => r.get(obj, k) !== undefined && r.get(obj, k) !== null;
  if (present('ipBlock')) {
    if (present('podSelector') || present('namespaceSelector')) {
      throw r.fail(path, 'a peer is either an ipBlock or pod/namespace selectors, not both: split it into two list entries');
    }
    return parseIpBlock(r, r.get(obj, 'ipBlock'), join(path, 'ipBlock'));
  }
  if (!present('podSelector') && !present('namespaceSelector')) {
    throw r.fail(path, 'peer is empty: give podSelector, namespaceSelector (both: pods matching both) or ipBlock; to allow every peer, leave out the whole from/to list');
  }
  const peer: PeerSpec = { kind: 'pods' };
  if (present('podSelector')) peer.podSelector = parseLabelSelector(r, r.get(obj, 'podSelector'), join(path, 'podSelector'));
  if (present('namespaceSelector')) peer.namespaceSelector = parseLabelSelector(r, r.get(obj, 'namespaceSelector'), join(path, 'namespaceSelector'));
  return peer;
}

function cidrOf(r: InputReader, value: unknown, path: string): Cidr {
  return checkCidr(path, value, { network: true, requirePrefix: true }, (_f, v, fix) => r.fail(path, `CIDR ${quote(v)} is invalid: ${fix}`));
}

function parseIpBlock(r: InputReader, value: unknown, path: string): PeerSpec {
  const obj = r.object(value, path, ['cidr', 'except']);
  const cidr = cidrOf(r, r.get(obj, 'cidr'), join(path, 'cidr'));
  const exPath = join(path, 'except');
  const rawExcept = r.get(obj, 'except') === undefined ? [] : r.array(r.get(obj, 'except'), exPath);
  const except = rawExcept.map((e, i) => {
    const p = at(exPath, i);
    const c = cidrOf(r, e, p);
    if (c.family !== cidr.family || c.prefixLen <= cidr.prefixLen || !contains(cidr, c)) {
      throw r.fail(p, `except ${quote(e)} is not strictly inside cidr "${cidr.addr}/${cidr.prefixLen}": give a longer prefix of the same family within it`);
    }
    return c;
  });
  return { kind: 'ipBlock', cidr, except };
}

function parsePort(r: InputReader, value: unknown, path: string): PortSpec {
  const obj = r.object(value ?? {}, path, ['protocol', 'port', 'endPort']);
  const rawProto = r.get(obj, 'protocol') ?? 'TCP';
  if (typeof rawProto !== 'string' || !Object.hasOwn(PROTOCOLS, rawProto)) {
    throw r.fail(join(path, 'protocol'), `protocol ${describe(rawProto)} is not one of TCP, UDP, SCTP (upper case)`);
  }
  const spec: PortSpec = { protocol: PROTOCOLS[rawProto]! };
  const port = r.get(obj, 'port');
  const endPort = r.get(obj, 'endPort');
  if (port !== undefined && port !== null) {
    if (typeof port === 'string') {
      if (/^[0-9]+$/.test(port)) throw r.fail(join(path, 'port'), `port ${quote(port)} is a string: write the number without quotes (port: ${port})`);
      throw r.unsupported(join(path, 'port'), `named port ${quote(port)} is not supported: Veil compiles policy to identities, not to pods' container ports; write the port number instead`);
    }
    spec.port = portNumber(r, port, join(path, 'port'));
  }
  if (endPort !== undefined && endPort !== null) {
    const p = join(path, 'endPort');
    if (spec.port === undefined) throw r.fail(p, 'endPort needs a numeric port: set "port" to the first port of the range');
    const end = portNumber(r, endPort, p);
    if (end < spec.port) throw r.fail(p, `endPort ${end} is below port ${spec.port}: give endPort >= port`);
    if (end > spec.port) spec.endPort = end;
  }
  return spec;
}

function portNumber(r: InputReader, v: unknown, path: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > 65535) {
    throw r.fail(path, `port ${describe(v)} is invalid: give an integer from 1 to 65535`);
  }
  return v;
}

/** "namespace/name", the policy's key. */
export function policyKey(p: Pick<NetworkPolicy, 'namespace' | 'name'>): string {
  return `${p.namespace}/${p.name}`;
}

