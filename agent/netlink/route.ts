/**
 * Routes (IPv4 and IPv6) over rtnetlink: add, replace, delete and list, in batches of thousands
 * per call. A batch is sent pipelined (many requests per sendmsg, acks collected per request),
 * not one round trip per route.
 */
import { ValidationError } from '../errors.js';
import { callNativeSync } from '../native/addon.js';
import { callRtnl, rtnl, where, withDumpRetry } from './call.js';
import type { DeleteOptions, NetnsOption } from './types.js';
import { checkArray, checkCidr, checkIfName, checkInt, checkIp, checkKnownKeys, checkMtu, checkObject, nativeOpts, quote, U32_MAX } from './validate.js';

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

interface NativeRoute {
  family: 4 | 6;
  dst?: string;
  dstLen: number;
  table?: number;
  dev?: string;
  ifindex?: number;
  gateway?: string;
  src?: string;
  metric?: number;
  type?: number;
  scope?: number;
  protocol?: number;
  mtu?: number;
}

const KNOWN = ['dst', 'family', 'table', 'dev', 'gateway', 'src', 'metric', 'type', 'scope', 'protocol', 'mtu'] as const;

function named<K extends string>(field: string, v: unknown, names: Record<K, number>): number {
  if (typeof v === 'string') {
    const n = (names as Record<string, number>)[v];
    if (n === undefined) throw new ValidationError(field, `Invalid ${field} ${quote(v)}: use one of ${Object.keys(names).join(', ')} or a number 0..255`);
    return n;
  }
  return checkInt(field, v, 0, 255);
}

export function checkTable(field: string, v: unknown): number {
  return checkInt(field, v, 1, U32_MAX, ` (main is ${RT_TABLE_MAIN})`);
}

/** Validates routes and converts them to what the addon takes. `verb` shapes the checks. */
function toNative(routes: RouteSpec[], verb: 'add' | 'replace' | 'delete'): NativeRoute[] {
  checkArray('routes', routes);
  const out = new Array<NativeRoute>(routes.length);
  for (let i = 0; i < routes.length; i++) {
    const r = routes[i]!;
    const f = `routes[${i}]`;
    checkKnownKeys(f, checkObject(f, r), KNOWN);
    let family: 4 | 6 | undefined;
    if (r.family !== undefined) {
      if (r.family !== 4 && r.family !== 6) throw new ValidationError(`${f}.family`, `Invalid ${f}.family ${quote(r.family)}: use 4 or 6`);
      family = r.family;
    }
    const n: NativeRoute = { family: 4, dstLen: 0 };
    if (r.dst !== 'default') {
      const c = checkCidr(`${f}.dst`, r.dst, { network: true, ...(family ? { family } : {}) });
      family = c.family;
      n.dst = c.addr;
      n.dstLen = c.prefixLen;
    }
    if (r.gateway !== undefined) {
      const g = checkIp(`${f}.gateway`, r.gateway, family);
      family = g.family;
      n.gateway = g.addr;
    }
    if (r.src !== undefined) {
      const s = checkIp(`${f}.src`, r.src, family);
      family = s.family;
      n.src = s.addr;
    }
    if (family === undefined) {
      throw new ValidationError(`${f}.family`, `Route "default" in ${f} has no gateway or src to tell its family: set family to 4 or 6`);
    }
    n.family = family;
    if (r.table !== undefined) n.table = checkTable(`${f}.table`, r.table);
    if (r.dev !== undefined) n.dev = checkIfName(`${f}.dev`, r.dev);
    if (r.metric !== undefined) n.metric = checkInt(`${f}.metric`, r.metric, 0, U32_MAX);
    if (r.type !== undefined) {
      const t = ROUTE_TYPES[r.type];
      if (t === undefined) throw new ValidationError(`${f}.type`, `Invalid ${f}.type ${quote(r.type)}: use one of ${Object.keys(ROUTE_TYPES).join(', ')}`);
      n.type = t;
    }
    if (r.scope !== undefined) n.scope = named(`${f}.scope`, r.scope, ROUTE_SCOPES);
    if (r.protocol !== undefined) n.protocol = named(`${f}.protocol`, r.protocol, ROUTE_PROTOCOLS);
    if (r.mtu !== undefined) n.mtu = checkMtu(`${f}.mtu`, r.mtu);
    if (verb !== 'delete' && (r.type === undefined || r.type === 'unicast') && n.dev === undefined && n.gateway === undefined) {
      throw new ValidationError(`${f}.dev`, `Route ${quote(r.dst)} in ${f} goes nowhere: give dev or gateway, or a type such as "blackhole"`);
    }
    out[i] = n;
  }
  return out;
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
  const n = toNative(routes, 'add');
  const o = nativeOpts(opts);
  if (n.length === 0) return;
  await callRtnl(describe(routes, 'add', opts?.netns), (a) => a.routeAdd(n, o));
}

/**
 * Creates or replaces routes (`ip route replace ...`, NLM_F_CREATE|NLM_F_REPLACE), pipelined.
 * Idempotent, so a reconciler converges by calling it again. A replaced route's previous
 * attributes are not kept, so a failure at route k leaves routes 0..k-1 applied (the error's
 * `index` says where to resume); devices are looked up first, so a missing one changes nothing.
 */
export async function replaceRoutes(routes: RouteSpec[], opts?: NetnsOption): Promise<void> {
  const n = toNative(routes, 'replace');
  const o = nativeOpts(opts);
  if (n.length === 0) return;
  await callRtnl(describe(routes, 'replace', opts?.netns), (a) => a.routeReplace(n, o));
}

/**
 * Deletes routes (`ip route del DST [table T] [dev D] [via G] [metric M] ...`), pipelined. Fields
 * left out match any value. Stops at the first failure (routes before it stay deleted) unless
 * `ignoreMissing`, which skips routes that do not exist (ESRCH).
 */
export async function deleteRoutes(routes: RouteSpec[], opts?: DeleteOptions): Promise<void> {
  const n = toNative(routes, 'delete');
  const o = nativeOpts(opts, opts?.ignoreMissing ? { ignoreMissing: true } : {});
  if (n.length === 0) return;
  await callRtnl(describe(routes, 'delete', opts?.netns), (a) => a.routeDelete(n, o));
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

function withIfindex(routes: NativeRoute[], ifindex: Record<string, number>): NativeRoute[] {
  return routes.map((r, i) => {
    if (r.dev === undefined) return r;
    const idx = ifindex[r.dev];
    if (idx === undefined) throw new ValidationError(`routes[${i}].dev`, `No ifindex given for device ${quote(r.dev)}: pass it in the ifindex map`);
    const { dev: _dev, ...rest } = r;
    return { ...rest, ifindex: idx };
  });
}

/** The messages addRoutes()/replaceRoutes()/deleteRoutes() send; `ifindex` maps device names. */
export function encodeRoutes(verb: 'add' | 'replace' | 'delete', routes: RouteSpec[], ifindex: Record<string, number> = {}): Buffer[] {
  const n = withIfindex(toNative(routes, verb), ifindex);
  const fn = verb === 'add' ? 'encodeRouteAdd' : verb === 'replace' ? 'encodeRouteReplace' : 'encodeRouteDelete';
  return callNativeSync('Cannot encode routes', () => rtnl()[fn](n) as Buffer[]);
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
