/**
 * Network links over rtnetlink: create (veth, wireguard, dummy, bridge), delete, change, get and
 * list, in the caller's namespace or another one.
 */
import { ValidationError } from '../errors.js';
import { callNativeSync } from '../native/addon.js';
import { callRtnl, rtnl, where, withDumpRetry } from './call.js';
import type { NetnsOption } from './types.js';
import {
  checkArray,
  checkBool,
  checkIfName,
  checkKnownKeys,
  checkMtu,
  checkNetnsName,
  checkObject,
  nativeOpts,
  quote,
} from './validate.js';

export type LinkKind = 'veth' | 'wireguard' | 'dummy' | 'bridge';
export const LINK_KINDS: readonly LinkKind[] = ['veth', 'wireguard', 'dummy', 'bridge'];

export interface LinkSpec {
  name: string;
  kind: LinkKind;
  /** Both ends of a veth pair get this MTU. */
  mtu?: number;
  up?: boolean;
  /** A bridge to enslave the link to (may be created earlier in the same batch). */
  master?: string;
  /** veth only: peer end, optionally created directly in another namespace. */
  peer?: { name: string; netns?: string };
}

export interface Link {
  name: string;
  ifindex: number;
  /** IFLA_INFO_KIND ("veth", "bridge", ...), null for links without one (lo, physical). */
  kind: string | null;
  mtu: number;
  /** Administratively up (IFF_UP). */
  up: boolean;
  /** RFC 2863 operational state as `ip` prints it: "UP", "DOWN", "UNKNOWN", "LOWERLAYERDOWN", ... */
  operState: string;
  mac: string | null;
  masterIndex: number | null;
  /** ifi_flags (IFF_*). */
  flags: number;
}

export interface LinkChange {
  up?: boolean;
  mtu?: number;
  name?: string;
  /** A bridge to enslave to, or null to release from its master. */
  master?: string | null;
  /** Move to this namespace. */
  netns?: string;
}

/** What the encode exports need instead of the lookups the real operation does in the kernel. */
export interface LinkResolved {
  /** Master device name -> ifindex. */
  masterIndex?: Record<string, number>;
  /** Namespace -> the file descriptor that would be sent as IFLA_NET_NS_FD. */
  netnsFd?: Record<string, number>;
}

interface NativeLinkSpec {
  name: string;
  kind: LinkKind;
  mtu?: number;
  up?: boolean;
  master?: string;
  masterIndex?: number;
  peer?: { name: string; netns?: string; netnsFd?: number };
}

function toNativeSpecs(links: LinkSpec[]): NativeLinkSpec[] {
  checkArray('links', links);
  const seen = new Set<string>();
  return links.map((l, i) => {
    const f = `links[${i}]`;
    const o = checkObject(f, l);
    checkKnownKeys(f, o, ['name', 'kind', 'mtu', 'up', 'master', 'peer']);
    const name = checkIfName(`${f}.name`, l.name);
    if (!LINK_KINDS.includes(l.kind)) {
      throw new ValidationError(`${f}.kind`, `Invalid ${f}.kind ${quote(l.kind)}: use one of ${LINK_KINDS.join(', ')}`);
    }
    const out: NativeLinkSpec = { name, kind: l.kind };
    if (l.mtu !== undefined) out.mtu = checkMtu(`${f}.mtu`, l.mtu);
    if (l.up !== undefined) out.up = checkBool(`${f}.up`, l.up);
    if (l.master !== undefined) out.master = checkIfName(`${f}.master`, l.master);
    if (l.peer !== undefined) {
      if (l.kind !== 'veth') {
        throw new ValidationError(`${f}.peer`, `Invalid ${f}.peer for link ${quote(name)} of kind ${quote(l.kind)}: only veth links have a peer`);
      }
      const p = checkObject(`${f}.peer`, l.peer);
      checkKnownKeys(`${f}.peer`, p, ['name', 'netns']);
      out.peer = { name: checkIfName(`${f}.peer.name`, l.peer.name) };
      if (l.peer.netns !== undefined) out.peer.netns = checkNetnsName(`${f}.peer.netns`, l.peer.netns);
      if (out.peer.name === name && out.peer.netns === undefined) {
        throw new ValidationError(`${f}.peer.name`, `Invalid ${f}.peer.name ${quote(name)}: both ends of a veth pair in one namespace need different names`);
      }
    }
    if (seen.has(name)) throw new ValidationError(`${f}.name`, `Duplicate link name ${quote(name)} in one batch: give each link its own name`);
    seen.add(name);
    return out;
  });
}

interface NativeLinkChange {
  ifindex?: number;
  up?: boolean;
  mtu?: number;
  name?: string;
  master?: string | null;
  masterIndex?: number;
  netns?: string;
  netnsFd?: number;
}

function toNativeChange(change: LinkChange): NativeLinkChange {
  const o = checkObject('change', change);
  checkKnownKeys('change', o, ['up', 'mtu', 'name', 'master', 'netns']);
  const out: NativeLinkChange = {};
  if (change.up !== undefined) out.up = checkBool('change.up', change.up);
  if (change.mtu !== undefined) out.mtu = checkMtu('change.mtu', change.mtu);
  if (change.name !== undefined) out.name = checkIfName('change.name', change.name);
  if (change.master !== undefined) out.master = change.master === null ? null : checkIfName('change.master', change.master);
  if (change.netns !== undefined) out.netns = checkNetnsName('change.netns', change.netns);
  if (Object.keys(out).length === 0) {
    throw new ValidationError('change', 'Empty link change: set at least one of up, mtu, name, master, netns');
  }
  return out;
}

/**
 * Creates links in order (`ip link add NAME type KIND [peer name P netns NS]`, then
 * `ip link set NAME master B up`, in one request per link). When link k fails, links 0..k-1
 * are removed again and the NetlinkError carries `index` k and the kernel's message.
 */
export async function addLinks(links: LinkSpec[], opts?: NetnsOption): Promise<void> {
  const specs = toNativeSpecs(links);
  const o = nativeOpts(opts);
  if (specs.length === 0) return;
  await callRtnl(
    (i) => (i === undefined ? `Cannot add links${where(opts?.netns)}` : `Cannot add link ${quote(specs[i]?.name)}${where(opts?.netns)}`),
    (a) => a.linkAdd(specs, o),
  );
}

/** Deletes links by name (`ip link del NAME`); deleting one end of a veth pair removes both. */
export async function deleteLinks(names: string[], opts?: NetnsOption): Promise<void> {
  checkArray('names', names);
  names.forEach((n, i) => checkIfName(`names[${i}]`, n));
  const o = nativeOpts(opts);
  if (names.length === 0) return;
  await callRtnl(
    (i) => (i === undefined ? `Cannot delete links${where(opts?.netns)}` : `Cannot delete link ${quote(names[i])}${where(opts?.netns)}`),
    (a) => a.linkDelete(names, o),
  );
}

/** The link named `name` (`ip -d link show NAME`); NetlinkError code "ENODEV" when absent. */
export async function getLink(name: string, opts?: NetnsOption): Promise<Link> {
  checkIfName('name', name);
  const o = nativeOpts(opts);
  return callRtnl(() => `Cannot read link ${quote(name)}${where(opts?.netns)}`, (a) => a.linkGet(name, o) as Promise<Link>);
}

/** Like getLink(), but null when the link does not exist. */
export async function findLink(name: string, opts?: NetnsOption): Promise<Link | null> {
  try {
    return await getLink(name, opts);
  } catch (err) {
    if ((err as { code?: string }).code === 'ENODEV') return null;
    throw err;
  }
}

/** Every link in the namespace (`ip -d link show`). */
export async function listLinks(opts?: NetnsOption): Promise<Link[]> {
  const o = nativeOpts(opts);
  return withDumpRetry(() => callRtnl(() => `Cannot list links${where(opts?.netns)}`, (a) => a.linkList(o) as Promise<Link[]>));
}

/**
 * Changes a link in one request: `ip link set dev NAME [up|down] [mtu M] [name N]
 * [master B | nomaster] [netns NS]`. Moving a link into another namespace takes its addresses
 * and routes away; the link keeps its name unless `name` is given too.
 */
export async function setLink(name: string, change: LinkChange, opts?: NetnsOption): Promise<void> {
  checkIfName('name', name);
  const c = toNativeChange(change);
  const o = nativeOpts(opts);
  await callRtnl(() => `Cannot change link ${quote(name)}${where(opts?.netns)}`, (a) => a.linkSet(name, c, o));
}

function resolvedIndex(field: string, name: string, r: LinkResolved | undefined): number {
  const v = r?.masterIndex?.[name];
  if (v === undefined) throw new ValidationError(field, `No ifindex given for master ${quote(name)}: pass it in resolved.masterIndex`);
  return v;
}

function resolvedFd(field: string, netns: string, r: LinkResolved | undefined): number {
  const v = r?.netnsFd?.[netns];
  if (v === undefined) throw new ValidationError(field, `No file descriptor given for namespace ${quote(netns)}: pass it in resolved.netnsFd`);
  return v;
}

/** The RTM_NEWLINK messages addLinks() sends (seq/pid 0), with lookups supplied by `resolved`. */
export function encodeLinkAdd(links: LinkSpec[], resolved?: LinkResolved): Buffer[] {
  const specs = toNativeSpecs(links).map((s, i) => {
    const out: NativeLinkSpec = { ...s };
    if (s.master !== undefined) {
      out.masterIndex = resolvedIndex(`links[${i}].master`, s.master, resolved);
      delete out.master;
    }
    if (s.peer?.netns !== undefined) out.peer = { name: s.peer.name, netnsFd: resolvedFd(`links[${i}].peer.netns`, s.peer.netns, resolved) };
    return out;
  });
  return callNativeSync('Cannot encode links', () => rtnl().encodeLinkAdd(specs) as Buffer[]);
}

/** The RTM_NEWLINK message setLink() sends for the link with `ifindex`. */
export function encodeLinkSet(ifindex: number, change: LinkChange, resolved?: LinkResolved): Buffer[] {
  const c: NativeLinkChange = { ...toNativeChange(change), ifindex };
  if (typeof c.master === 'string') {
    c.masterIndex = resolvedIndex('change.master', c.master, resolved);
    delete c.master;
  } else if (c.master === null) {
    c.masterIndex = 0;
    delete c.master;
  }
  if (c.netns !== undefined) {
    c.netnsFd = resolvedFd('change.netns', c.netns, resolved);
    delete c.netns;
  }
  return callNativeSync('Cannot encode link change', () => rtnl().encodeLinkSet(c) as Buffer[]);
}

/** The RTM_DELLINK messages deleteLinks() sends. */
export function encodeLinkDelete(names: string[]): Buffer[] {
  checkArray('names', names);
  names.forEach((n, i) => checkIfName(`names[${i}]`, n));
  return callNativeSync('Cannot encode link deletion', () => rtnl().encodeLinkDelete(names) as Buffer[]);
}

/**
 * Parses RTM_NEWLINK messages (a dump's datagrams); other message types are skipped. Throws a
 * NetlinkError with code "EMALFORMED" on truncated input.
 */
export function parseLinks(buf: Buffer): Link[] {
  return callNativeSync('Cannot parse link messages', () => rtnl().parseLinks(buf) as Link[]);
}
