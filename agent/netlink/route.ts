/**
 * Routes (IPv4 and IPv6) over rtnetlink: add, replace, delete and list, in batches of thousands
 * per call. A batch is sent pipelined (many requests per sendmsg, acks collected per request),
 * not one round trip per route.
 */
import { ValidationError } from '../errors.js';
import { callNativeSync } from '../native/addon.js';
import { callRtnl, rtnl, where, withDumpRetry } from './call.js';
import type { DeleteOptions, NetnsOption } from './types.js';
import { PackedBatch } from './pack.js';
import { checkCidr, checkIp, hostBitsZero, parseIpInto, parsePrefixLen } from '../net/ip.js';
import { checkArray, checkIfName, checkInt, checkKnownKeys, checkMtu, checkObject, nativeOpts, quote, U32_MAX } from './validate.js';

export type RouteType = 'unicast' | 'blackhole' | 'unreachable' | 'prohibit' | 'throw';
export const ROUTE_TYPES: Record<RouteType, number> = { unicast: 1, blackhole: 6, unreachable: 7, prohibit: 8, throw: 9 };

export type RouteScope = 'global' | 'universe' | 'site' | 'link' | 'host' | 'nowhere';
export const ROUTE_SCOPES: Record<RouteScope, number> = { global: 0, universe: 0, site: 200, link: 253, host: 254, nowhere: 255 };

export type RouteProtocol = 'redirect' | 'kernel' | 'boot' | 'static';
export const ROUTE_PROTOCOLS: Record<RouteProtocol, number> = { redirect: 1, kernel: 2, boot: 3, static: 4 };

/** Well-known table ids (linux/rtnetlink.h). */
export const RT_TABLE_MAIN = 254;
export const RT_TABLE_LOCAL = 255;

export interface RouteSpec {
  /** "CIDR" or "default". */
  dst: string;
  /** 4 or 6; needed only for "default" without gateway or src. */
  family?: 4 | 6;
  /** Routing table id, 1..2^32-1; default main (254). Ids above 255 travel as RTA_TABLE. */
  table?: number;
  dev?: string;
  gateway?: string;
  /** Preferred source address (RTA_PREFSRC). */
  src?: string;
  /** Priority (RTA_PRIORITY); IPv6 routes of equal dst and metric are the same route. */
  metric?: number;
  /** Default "unicast". */
  type?: RouteType;
  /** Default like `ip route`: "link" for a unicast route without gateway, else "global". */
  scope?: RouteScope | number;
  /** Default "boot" on add/replace, as `ip route`; on delete only routes of this protocol match. */
  protocol?: RouteProtocol | number;
  /** Path MTU (RTAX_MTU). */
  mtu?: number;
}

export interface Route {
  family: 4 | 6;
  /** "CIDR" or "default". */
  dst: string;
  table: number;
  dev: string | null;
  ifindex: number | null;
  gateway: string | null;
  src: string | null;
  metric: number | null;
  /** "unicast", "blackhole", ..., "local", "broadcast" (or the number as text). */
  type: string;
  scope: number;
  protocol: number;
  mtu: number | null;
  /** rtm_flags (RTM_F_*, RTNH_F_*). */
  flags: number;
}

export interface RouteFilter {
  family?: 4 | 6;
  /** A table id, or "all" for every table. Default: the main table (254). */
  table?: number | 'all';
  /** Only routes out of this device. */
  dev?: string;
}

const KNOWN = ['dst', 'family', 'table', 'dev', 'gateway', 'src', 'metric', 'type', 'scope', 'protocol', 'mtu'] as const;
const KNOWN_SET: ReadonlySet<string> = new Set(KNOWN);

function named<K extends string>(field: string, v: unknown, names: Record<K, number>): number {
  if (typeof v === 'string') {
    const n: unknown = Object.hasOwn(names, v) ? (names as Record<string, number>)[v] : undefined;
    if (typeof n !== 'number') throw new ValidationError(field, `Invalid ${field} ${quote(v)}: use one of ${Object.keys(names).join(', ')} or a number 0..255`);
    return n;
  }
  return checkInt(field, v, 0, 255);
}

export function checkTable(field: string, v: unknown): number {
  return checkInt(field, v, 1, U32_MAX, ` (main is ${RT_TABLE_MAIN})`);
}

/*
 * Packed route record (read by native/src/route.cc, DecodeRoutes), 72 bytes, host byte order:
 *   0 family (4|6)   1 dstLen   2 flags (HAS_*)   3 type   4 scope   5 protocol   6..7 zero
 *   8 table (u32)   12 dev (1 + index into the device names; 0 = none)   16 metric   20 mtu (0 = none)
 *   24 dst[16]   40 gateway[16]   56 src[16]   (IPv4 addresses use the first 4 bytes)
 */
const RECORD = 72;
const HAS_TYPE = 1;
const HAS_SCOPE = 2;
const HAS_PROTOCOL = 4;
const HAS_METRIC = 8;
const HAS_GATEWAY = 16;
const HAS_SRC = 32;

/** Reached only when a fast check failed: the general checker throws the precise error. */
function unreachable(field: string, v: unknown): never {
  throw new ValidationError(field, `Invalid ${field} ${quote(v)}`);
}

/**
 * Validates routes and packs them into one Buffer for the addon. `verb` shapes the checks. Each
 * field has a fast check; when it fails, the general checker (checkCidr, checkIp, ...) runs to
 * throw the same ValidationError as always, so the fast path never changes what is accepted.
 */
function packRoutes(routes: RouteSpec[], verb: 'add' | 'replace' | 'delete'): PackedBatch {
  checkArray('routes', routes);
  const p = new PackedBatch(routes.length, RECORD);
  const { bytes, words } = p;
  for (let i = 0; i < routes.length; i++) {
    const r = routes[i]!;
    const o = i * RECORD;
    const w = o >> 2;
    if (typeof r !== 'object' || r === null || Array.isArray(r)) checkObject(`routes[${i}]`, r);
    // for-in walks the enum cache without allocating; inherited keys are skipped as Object.keys does.
    for (const k in r) if (!KNOWN_SET.has(k) && Object.hasOwn(r, k)) checkKnownKeys(`routes[${i}]`, r as unknown as Record<string, unknown>, KNOWN);
    let family: 4 | 6 | undefined;
    if (r.family !== undefined) {
      if (r.family !== 4 && r.family !== 6) throw new ValidationError(`routes[${i}].family`, `Invalid routes[${i}].family ${quote(r.family)}: use 4 or 6`);
      family = r.family;
    }
    const dst = r.dst;
    let dstLen = 0;
    if (dst !== 'default') {
      let fam: 4 | 6 | 0 = 0;
      if (typeof dst === 'string') {
        const slash = dst.indexOf('/');
        fam = parseIpInto(dst, bytes, o + 24, 0, slash < 0 ? dst.length : slash);
        const max = fam === 4 ? 32 : 128;
        dstLen = max;
        if (fam !== 0 && slash >= 0) dstLen = parsePrefixLen(dst, slash + 1, dst.length, max);
        if (fam !== 0 && (dstLen < 0 || (family !== undefined && fam !== family) || !hostBitsZero(bytes, o + 24, dstLen, max))) fam = 0;
      }
      if (fam === 0) {
        checkCidr(`routes[${i}].dst`, dst, { network: true, ...(family ? { family } : {}) });
        unreachable(`routes[${i}].dst`, dst);
      }
      family = fam;
    }
    let flags = 0;
    if (r.gateway !== undefined) {
      const g = typeof r.gateway === 'string' ? parseIpInto(r.gateway, bytes, o + 40) : 0;
      if (g === 0 || (family !== undefined && g !== family)) {
        checkIp(`routes[${i}].gateway`, r.gateway, family);
        unreachable(`routes[${i}].gateway`, r.gateway);
      }
      family = g;
      flags |= HAS_GATEWAY;
    }
    if (r.src !== undefined) {
      const s = typeof r.src === 'string' ? parseIpInto(r.src, bytes, o + 56) : 0;
      if (s === 0 || (family !== undefined && s !== family)) {
        checkIp(`routes[${i}].src`, r.src, family);
        unreachable(`routes[${i}].src`, r.src);
      }
      family = s;
      flags |= HAS_SRC;
    }
    if (family === undefined) {
      throw new ValidationError(`routes[${i}].family`, `Route "default" in routes[${i}] has no gateway or src to tell its family: set family to 4 or 6`);
    }
    bytes[o] = family;
    bytes[o + 1] = dstLen;
    const t = r.table;
    words[w + 2] = t === undefined ? RT_TABLE_MAIN : typeof t === 'number' && t >= 1 && t <= U32_MAX && Number.isInteger(t) ? t : checkTable(`routes[${i}].table`, t);
    if (r.dev !== undefined) {
      if (typeof r.dev !== 'string') checkIfName(`routes[${i}].dev`, r.dev);
      words[w + 3] = p.intern(r.dev, i, (d) => checkIfName(`routes[${i}].dev`, d));
    }
    if (r.metric !== undefined) {
      const m = r.metric;
      words[w + 4] = typeof m === 'number' && m >= 0 && m <= U32_MAX && Number.isInteger(m) ? m : checkInt(`routes[${i}].metric`, m, 0, U32_MAX);
      flags |= HAS_METRIC;
    }
    if (r.type !== undefined) {
      const tn: unknown = typeof r.type === 'string' && Object.hasOwn(ROUTE_TYPES, r.type) ? ROUTE_TYPES[r.type] : undefined;
      if (typeof tn !== 'number') throw new ValidationError(`routes[${i}].type`, `Invalid routes[${i}].type ${quote(r.type)}: use one of ${Object.keys(ROUTE_TYPES).join(', ')}`);
      bytes[o + 3] = tn;
      flags |= HAS_TYPE;
    }
    if (r.scope !== undefined) {
      bytes[o + 4] = named(`routes[${i}].scope`, r.scope, ROUTE_SCOPES);
      flags |= HAS_SCOPE;
    }
    if (r.protocol !== undefined) {
      bytes[o + 5] = named(`routes[${i}].protocol`, r.protocol, ROUTE_PROTOCOLS);
      flags |= HAS_PROTOCOL;
    }
    if (r.mtu !== undefined) words[w + 5] = checkMtu(`routes[${i}].mtu`, r.mtu);
    bytes[o + 2] = flags;
    if (verb !== 'delete' && (r.type === undefined || r.type === 'unicast') && r.dev === undefined && r.gateway === undefined) {
      throw new ValidationError(`routes[${i}].dev`, `Route ${quote(r.dst)} in routes[${i}] goes nowhere: give dev or gateway, or a type such as "blackhole"`);
    }
  }
  return p;
}

function describe(routes: RouteSpec[], verb: string, netns: string | undefined) {
  return (i: number | undefined) => {
    if (i === undefined) return `Cannot ${verb} routes${where(netns)}`;
    const r = routes[i];
    const dev = r?.dev ? ` dev ${r.dev}` : '';
    const table = r?.table ? ` table ${r.table}` : '';
    return `Cannot ${verb} route ${quote(`${r?.dst}${dev}${table}`)} (routes[${i}] of ${routes.length})${where(netns)}`;
  };
}

/**
 * Adds routes (`ip route add [TYPE] DST [table T] [dev D] [via G] [src S] [metric M] [scope S]
 * [proto P] [mtu N]`, i.e. NLM_F_CREATE|NLM_F_EXCL), pipelined. Devices are looked up before
 * anything changes; when the kernel rejects route k (EEXIST, ENETUNREACH, ...), routes 0..k-1
 * are deleted again and the NetlinkError carries `index` k and the kernel's message.
 */
export async function addRoutes(routes: RouteSpec[], opts?: NetnsOption): Promise<void> {
  const p = packRoutes(routes, 'add');
  const o = nativeOpts(opts);
  if (p.count === 0) return;
  await callRtnl(describe(routes, 'add', opts?.netns), (a) => a.routeAdd(p.buffer(), p.strings, o));
}

/**
 * Creates or replaces routes (`ip route replace ...`, NLM_F_CREATE|NLM_F_REPLACE), pipelined.
 * Idempotent, so a reconciler converges by calling it again. A replaced route's previous
 * attributes are not kept, so a failure at route k leaves routes 0..k-1 applied (the error's
 * `index` says where to resume); devices are looked up first, so a missing one changes nothing.
 */
export async function replaceRoutes(routes: RouteSpec[], opts?: NetnsOption): Promise<void> {
  const p = packRoutes(routes, 'replace');
  const o = nativeOpts(opts);
  if (p.count === 0) return;
  await callRtnl(describe(routes, 'replace', opts?.netns), (a) => a.routeReplace(p.buffer(), p.strings, o));
}

/**
 * Deletes routes (`ip route del DST [table T] [dev D] [via G] [metric M] ...`), pipelined. Fields
 * left out match any value. Stops at the first failure (routes before it stay deleted) unless
 * `ignoreMissing`, which skips routes that do not exist (ESRCH).
 */
export async function deleteRoutes(routes: RouteSpec[], opts?: DeleteOptions): Promise<void> {
  const p = packRoutes(routes, 'delete');
  const o = nativeOpts(opts, opts?.ignoreMissing ? { ignoreMissing: true } : {});
  if (p.count === 0) return;
  await callRtnl(describe(routes, 'delete', opts?.netns), (a) => a.routeDelete(p.buffer(), p.strings, o));
}

function toNativeFilter(filter: RouteFilter): Record<string, unknown> {
  checkKnownKeys('filter', checkObject('filter', filter), ['family', 'table', 'dev']);
  const f: Record<string, unknown> = {};
  if (filter.family !== undefined) {
    if (filter.family !== 4 && filter.family !== 6) throw new ValidationError('filter.family', `Invalid filter.family ${quote(filter.family)}: use 4 or 6`);
    f.family = filter.family;
  }
  f.table = filter.table === undefined ? RT_TABLE_MAIN : filter.table === 'all' ? 0 : checkTable('filter.table', filter.table);
  if (filter.dev !== undefined) f.dev = checkIfName('filter.dev', filter.dev);
  return f;
}

/**
 * Routes of the main table, or of `filter.table` ("all" for every table), both families unless
 * `filter.family` (`ip route show table T`, `ip -6 route show table T`). The kernel filters by
 * table and device (strict dump checking); cached clones are left out.
 */
export async function listRoutes(filter: RouteFilter = {}, opts?: NetnsOption): Promise<Route[]> {
  const f = toNativeFilter(filter);
  const o = nativeOpts(opts);
  return withDumpRetry(() => callRtnl(() => `Cannot list routes${where(opts?.netns)}`, (a) => a.routeList(f, o) as Promise<Route[]>));
}

/** The messages addRoutes()/replaceRoutes()/deleteRoutes() send; `ifindex` maps device names. */
export function encodeRoutes(verb: 'add' | 'replace' | 'delete', routes: RouteSpec[], ifindex: Record<string, number> = {}): Buffer[] {
  const p = packRoutes(routes, verb);
  const ifindexes = p.strings.map((dev, k) => {
    const idx = Object.hasOwn(ifindex, dev) ? ifindex[dev] : undefined;
    if (idx === undefined) throw new ValidationError(`routes[${p.firstUse[k]}].dev`, `No ifindex given for device ${quote(dev)}: pass it in the ifindex map`);
    return idx;
  });
  const fn = verb === 'add' ? 'encodeRouteAdd' : verb === 'replace' ? 'encodeRouteReplace' : 'encodeRouteDelete';
  return callNativeSync('Cannot encode routes', () => rtnl()[fn](p.buffer(), ifindexes) as Buffer[]);
}

/** The dump request listRoutes() sends (device given as ifindex). */
export function encodeRouteDump(filter: Omit<RouteFilter, 'dev'> & { ifindex?: number } = {}): Buffer[] {
  const { ifindex, ...rest } = filter;
  const f = toNativeFilter(rest);
  if (ifindex !== undefined) f.ifindex = checkInt('filter.ifindex', ifindex, 1, 0x7fffffff);
  return callNativeSync('Cannot encode route dump', () => rtnl().encodeRouteDump(f) as Buffer[]);
}

/** Parses RTM_NEWROUTE messages (dev is null: the list call fills it in); throws NetlinkError "EMALFORMED" on truncated input. */
export function parseRoutes(buf: Buffer): Route[] {
  return callNativeSync('Cannot parse route messages', () => rtnl().parseRoutes(buf) as Route[]);
}
