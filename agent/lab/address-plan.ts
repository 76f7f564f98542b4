/**
 * The lab's address plan and names: pure functions of the lab name and its sizes, so `up`,
 * `status`, `pods add` and the tests agree without asking the kernel.
 *
 *   underlay   10.77.0.0/24  fd77::/64       bridge "br0" .1 / ::1 (etcd listens here)
 *   node i     10.77.0.(10+i) fd77::(10+i)   uplink "eth0" in node netns, "node<i>" on the bridge
 *   pods of i  10.78.i.0/24  fd78:0:0:i::/64 gateway .1 / ::1 on every host-side veth, pods .2 ..
 *
 * i counts from 1. Every address lives inside the lab's own namespaces, so two labs (and the
 * host) never see each other's addresses; only namespace names must be unique, and they carry
 * the lab name.
 */
import { ConfigError } from '../errors.js';
import { quote } from '../net/ip.js';

export const MAX_NODES = 64;
export const MAX_PODS_PER_NODE = 64;
/** Host parts 2..254 of a node's /24 are pod addresses. */
export const FIRST_POD_HOST = 2;
export const LAST_POD_HOST = 254;
export const UNDERLAY_BRIDGE = 'br0';
export const NODE_UPLINK = 'eth0';
export const POD_IFACE = 'eth0';
export const ETCD_CLIENT_PORT = 2379;
export const ETCD_PEER_PORT = 2380;

const LAB_NAME = /^[a-z0-9]([a-z0-9-]{0,14}[a-z0-9])?$/;

/** A lab name: 1..16 characters [a-z0-9-], part of every namespace and directory the lab makes. */
export function checkLabName(v: unknown): string {
  if (typeof v !== 'string' || !LAB_NAME.test(v)) {
    throw new ConfigError(`Invalid lab name ${quote(v)}: use 1 to 16 lowercase letters, digits or "-", starting and ending with a letter or digit`);
  }
  return v;
}

export interface UnderlayPlan {
  netns: string;
  bridge: string;
  /** Bridge addresses with prefix: ["10.77.0.1/24", "fd77::1/64"]. */
  addresses: string[];
  etcdUrl: string;
}

export interface NodePlan {
  index: number;
  name: string;
  netns: string;
  /** The node end of the uplink (in the node netns). */
  uplink: string;
  /** The bridge end of the uplink (in the underlay netns). */
  bridgePort: string;
  /** Underlay addresses with prefix: ["10.77.0.11/24", "fd77::b/64"]. */
  underlayAddresses: string[];
  podCidrs: string[];
  /** Gateway addresses of pods (on every host-side veth): ["10.78.1.1", "fd78:0:0:1::1"]. */
  gateways: string[];
}

export interface PodAddressPlan {
  /** Host part within the node's pod CIDRs (2..254). */
  host: number;
  addresses: string[];
  /** Host-side veth in the node netns. */
  hostIface: string;
}

export function underlayPlan(lab: string): UnderlayPlan {
  return {
    netns: `veil-${checkLabName(lab)}-underlay`,
    bridge: UNDERLAY_BRIDGE,
    addresses: ['10.77.0.1/24', 'fd77::1/64'],
    etcdUrl: `http://10.77.0.1:${ETCD_CLIENT_PORT}`,
  };
}

function checkIndex(i: number, max: number, what: string): number {
  if (!Number.isInteger(i) || i < 1 || i > max) throw new ConfigError(`Invalid ${what} ${quote(i)}: use 1 to ${max}`);
  return i;
}

export function nodePlan(lab: string, index: number): NodePlan {
  checkLabName(lab);
  const i = checkIndex(index, MAX_NODES, 'node index');
  const hex = i.toString(16);
  const host = 10 + i;
  return {
    index: i,
    name: `node-${i}`,
    netns: `veil-${lab}-node-${i}`,
    uplink: NODE_UPLINK,
    bridgePort: `node${i}`,
    underlayAddresses: [`10.77.0.${host}/24`, `fd77::${host.toString(16)}/64`],
    podCidrs: [`10.78.${i}.0/24`, `fd78:0:0:${hex}::/64`],
    gateways: [`10.78.${i}.1`, `fd78:0:0:${hex}::1`],
  };
}

/** The addresses and host-side interface of the pod with host part `host` on node `index`. */
export function podAddressPlan(index: number, host: number): PodAddressPlan {
  const i = checkIndex(index, MAX_NODES, 'node index');
  if (!Number.isInteger(host) || host < FIRST_POD_HOST || host > LAST_POD_HOST) {
    throw new ConfigError(`Invalid pod host number ${quote(host)}: use ${FIRST_POD_HOST} to ${LAST_POD_HOST}`);
  }
  return {
    host,
    addresses: [`10.78.${i}.${host}`, `fd78:0:0:${i.toString(16)}::${host.toString(16)}`],
    hostIface: `lxc${host}`,
  };
}

/** The address part of "address/prefix". */
export function hostAddress(cidr: string): string {
  return cidr.split('/')[0]!;
}

/** The lowest free pod host number on a node, or null when the node's CIDR is full. */
export function nextPodHost(used: Iterable<number>): number | null {
  const taken = new Set(used);
  for (let h = FIRST_POD_HOST; h <= LAST_POD_HOST; h++) if (!taken.has(h)) return h;
  return null;
}

/** The namespace of a pod's network namespace (names are unique per lab and namespace). */
export function podNetns(lab: string, namespace: string, pod: string): string {
  return `veil-${checkLabName(lab)}-pod-${namespace}-${pod}`;
}

export interface DefaultPod {
  name: string;
  namespace: string;
  labels: Record<string, string>;
  serviceAccount: string;
}

/** The two namespaces default pods live in, with labels so namespaceSelector policies apply. */
export const DEFAULT_NAMESPACES: ReadonlyArray<{ name: string; labels: Record<string, string> }> = [
  { name: 'frontend', labels: { 'kubernetes.io/metadata.name': 'frontend', tier: 'frontend' } },
  { name: 'backend', labels: { 'kubernetes.io/metadata.name': 'backend', tier: 'backend' } },
];

/**
 * The default pods of node `index`: alternately a client (app=client in "frontend", service
 * account "client") and a server (app=server in "backend", service account "server").
 */
export function defaultPods(index: number, perNode: number): DefaultPod[] {
  const out: DefaultPod[] = [];
  for (let j = 0; j < perNode; j++) {
    const client = j % 2 === 0;
    out.push({
      name: `${client ? 'client' : 'server'}-${index}-${j}`,
      namespace: client ? 'frontend' : 'backend',
      labels: { app: client ? 'client' : 'server' },
      serviceAccount: client ? 'client' : 'server',
    });
  }
  return out;
}
