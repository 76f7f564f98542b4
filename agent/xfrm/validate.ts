/**
 * Validation of XFRM arguments and their conversion into the plain shapes the addon reads
 * (native/src/xfrm.cc). Everything is checked here, before anything crosses into C++; a bad
 * value becomes a ValidationError naming the field, the value and the fix. Key bytes are never
 * put into a message.
 */
import { ValidationError } from '../errors.js';
import { canonicalIp, checkCidr, checkIp, ipFamily } from '../net/ip.js';
import {
  AEAD_ICV_BITS,
  AEAD_KEY_LENGTHS,
  type XfrmAeadAlgorithm,
  type XfrmDir,
  type XfrmLifetimeLimits,
  type XfrmMode,
} from './types.js';

export const IPPROTO_ESP = 50;
export const IPSEC_PROTO_ANY = 255;
export const MODE_NUMBERS: Record<XfrmMode, number> = { transport: 0, tunnel: 1 };
export const DIR_NUMBERS: Record<XfrmDir, number> = { in: 0, out: 1, fwd: 2 };
export const ACTION_NUMBERS = { allow: 0, block: 1 } as const;
export const SELECTOR_PROTOS: Record<string, number> = { icmp: 1, tcp: 6, udp: 17, 'ipv6-icmp': 58, sctp: 132 };
/** Protocols whose selectors carry ports. */
const PORT_PROTOS = new Set([6, 17, 33, 132, 136]);
export const MAX_REPLAY_WINDOW = 4096;
export const MAX_TEMPLATES = 6;
const U32_MAX = 0xffffffff;

export interface WireMark {
  value: number;
  mask: number;
}
export interface WireSelector {
  src: string;
  srcLen: number;
  dst: string;
  dstLen: number;
  proto?: number;
  sport?: number;
  dport?: number;
}
export interface WireState {
  src: string;
  dst: string;
  spi: number;
  proto: number;
  mode: number;
  reqid: number;
  aead: { name: string; key: Buffer; icvBits: number };
  mark?: WireMark;
  setMark?: WireMark;
  ifId?: number;
  replayWindow: number;
  esn: boolean;
  lifetime?: Record<string, bigint>;
  selector?: WireSelector;
}
export interface WireStateId {
  dst: string;
  spi: number;
  proto: number;
  mark?: WireMark;
}
export interface WireTemplate {
  src?: string;
  dst?: string;
  spi: number;
  proto: number;
  mode: number;
  reqid: number;
  optional: boolean;
}
export interface WirePolicy {
  selector: WireSelector;
  dir: number;
  action: number;
  priority: number;
  mark?: WireMark;
  ifId?: number;
  templates: WireTemplate[];
}
export interface WirePolicyId {
  selector: WireSelector;
  dir: number;
  index: number;
  mark?: WireMark;
  ifId?: number;
}

const show = (v: unknown): string => {
  if (typeof v === 'string') return `"${v.length > 64 ? `${v.slice(0, 64)}…` : v}"`;
  if (typeof v === 'bigint') return `"${v}"`;
  if (Buffer.isBuffer(v)) return `a ${v.length}-byte Buffer`;
  try {
    return `"${String(JSON.stringify(v) ?? v)}"`;
  } catch {
    return `"${String(v)}"`;
  }
};

export function invalid(field: string, value: unknown, fix: string): ValidationError {
  return new ValidationError(field, `Invalid ${field} ${show(value)}: ${fix}`);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function u32(v: unknown, field: string, opts: { min?: number } = {}): number {
  const min = opts.min ?? 0;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > U32_MAX) {
    throw invalid(field, v, `use an integer from ${min} to ${U32_MAX}`);
  }
  return v;
}

function optU32(v: unknown, field: string, def: number): number {
  return v === undefined ? def : u32(v, field);
}

/** The family of an address that address() or prefix() accepted. */
export function family(addr: string): 4 | 6 {
  return ipFamily(addr) === 6 ? 6 : 4;
}

/** An IPv4 or IPv6 address (no IPv6 zone id: XFRM addresses have none), as written. */
export function address(v: unknown, field: string): string {
  return checkIp(field, v, undefined, invalid).addr;
}

/**
 * The address as the kernel's read-backs spell it (inet_ntop: lower case, longest zero run
 * compressed, "::ffff:a.b.c.d"), so filters compare equal however the caller wrote it.
 */
export function canonicalAddress(v: unknown, field: string): string {
  return canonicalIp(field, v, invalid);
}

/** "addr/len" or a bare address (a host prefix); the address as written. */
export function prefix(v: unknown, field: string): { addr: string; len: number; family: 4 | 6 } {
  const c = checkCidr(field, v, {}, invalid);
  return { addr: c.addr, len: c.prefixLen, family: c.family };
}

export function mark(v: unknown, field: string): WireMark | undefined {
  if (v === undefined) return undefined;
  if (!isObject(v)) throw invalid(field, v, 'use { value, mask? } with 32-bit unsigned integers');
  const value = u32(v.value, `${field}.value`);
  const mask = optU32(v.mask, `${field}.mask`, U32_MAX);
  return { value, mask };
}

function port(v: unknown, field: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 65535) {
    throw invalid(field, v, 'use a port from 0 to 65535');
  }
  return v;
}

export function selector(v: unknown, field: string): WireSelector {
  if (!isObject(v)) throw invalid(field, v, 'use { src, dst, proto?, sport?, dport? } with prefixes');
  const src = prefix(v.src, `${field}.src`);
  const dst = prefix(v.dst, `${field}.dst`);
  if (src.family !== dst.family) {
    throw invalid(`${field}.dst`, v.dst, `use an IPv${src.family} prefix like the source ${show(v.src)}`);
  }
  const out: WireSelector = { src: src.addr, srcLen: src.len, dst: dst.addr, dstLen: dst.len };
  if (v.proto !== undefined) {
    const p = typeof v.proto === 'string' ? SELECTOR_PROTOS[v.proto] : v.proto;
    if (typeof p !== 'number' || !Number.isInteger(p) || p < 0 || p > 255) {
      throw invalid(`${field}.proto`, v.proto, `use one of ${Object.keys(SELECTOR_PROTOS).join(', ')} or a number 0..255`);
    }
    out.proto = p;
  }
  for (const key of ['sport', 'dport'] as const) {
    if (v[key] === undefined) continue;
    if (out.proto === undefined || !PORT_PROTOS.has(out.proto)) {
      throw invalid(`${field}.${key}`, v[key], 'ports need proto "tcp", "udp" or "sctp"');
    }
    out[key] = port(v[key], `${field}.${key}`);
  }
  return out;
}

function mode(v: unknown, field: string): number {
  if (v === undefined) return MODE_NUMBERS.tunnel;
  if (v !== 'tunnel' && v !== 'transport') throw invalid(field, v, 'use "tunnel" or "transport"');
  return MODE_NUMBERS[v];
}

function proto(v: unknown, field: string): number {
  if (v !== undefined && v !== 'esp') throw invalid(field, v, 'use "esp" (the only protocol Veil installs)');
  return IPPROTO_ESP;
}

function lifetime(v: unknown, field: string): Record<string, bigint> | undefined {
  if (v === undefined) return undefined;
  if (!isObject(v)) throw invalid(field, v, 'use an object of byte, packet and second limits');
  const keys: (keyof XfrmLifetimeLimits)[] = [
    'softBytes', 'hardBytes', 'softPackets', 'hardPackets',
    'softAddSeconds', 'hardAddSeconds', 'softUseSeconds', 'hardUseSeconds',
  ];
  const out: Record<string, bigint> = {};
  for (const k of Object.keys(v)) {
    if (!keys.includes(k as keyof XfrmLifetimeLimits)) throw invalid(`${field}.${k}`, v[k], `use only ${keys.join(', ')}`);
  }
  for (const k of keys) {
    const x = v[k];
    if (x === undefined) continue;
    const big = typeof x === 'number' && Number.isSafeInteger(x) ? BigInt(x) : typeof x === 'bigint' ? x : -1n;
    if (big < 0n || big > 0xffffffffffffffffn) throw invalid(`${field}.${k}`, x, 'use a non-negative integer (number or bigint below 2^64)');
    out[k] = big;
  }
  return out;
}

export function aeadKeyLengths(algorithm: string): readonly number[] | undefined {
  return Object.hasOwn(AEAD_KEY_LENGTHS, algorithm) ? AEAD_KEY_LENGTHS[algorithm as XfrmAeadAlgorithm] : undefined;
}

export function stateConfig(v: unknown, field: string): WireState {
  if (!isObject(v)) throw invalid(field, v, 'use an XfrmStateConfig object');
  const src = address(v.src, `${field}.src`);
  const dst = address(v.dst, `${field}.dst`);
  if (family(src) !== family(dst)) {
    throw invalid(`${field}.dst`, dst, `use an IPv${family(src)} address like the source "${src}"`);
  }
  const spi = u32(v.spi, `${field}.spi`, { min: 1 });
  if (!isObject(v.aead)) throw invalid(`${field}.aead`, v.aead, 'use { algorithm, key } (AEAD is required)');
  const algorithm = v.aead.algorithm;
  const lengths = typeof algorithm === 'string' ? aeadKeyLengths(algorithm) : undefined;
  if (!lengths) {
    throw invalid(`${field}.aead.algorithm`, algorithm, `use one of ${Object.keys(AEAD_KEY_LENGTHS).map((a) => `"${a}"`).join(', ')}`);
  }
  const key = v.aead.key;
  if (!Buffer.isBuffer(key)) {
    // Never echo the value: it may be key material in another encoding.
    throw new ValidationError(`${field}.aead.key`, `Invalid ${field}.aead.key: use a Buffer holding the key followed by the 4-byte salt`);
  }
  if (!lengths.includes(key.length)) {
    throw new ValidationError(
      `${field}.aead.key`,
      `Invalid ${field}.aead.key of ${key.length} bytes for "${algorithm as string}": use ${lengths.join(', ')} bytes (key followed by the 4-byte salt)`,
    );
  }
  const replayWindow = optU32(v.replayWindow, `${field}.replayWindow`, 0);
  if (replayWindow > MAX_REPLAY_WINDOW) throw invalid(`${field}.replayWindow`, replayWindow, `use 0 to ${MAX_REPLAY_WINDOW} packets`);
  if (v.esn !== undefined && typeof v.esn !== 'boolean') throw invalid(`${field}.esn`, v.esn, 'use true or false');
  const esn = v.esn === true;
  if (esn && replayWindow === 0) throw invalid(`${field}.replayWindow`, 0, 'ESN needs a replay window of at least 1 packet (for example 128)');
  const out: WireState = {
    src,
    dst,
    spi,
    proto: proto(v.proto, `${field}.proto`),
    mode: mode(v.mode, `${field}.mode`),
    reqid: optU32(v.reqid, `${field}.reqid`, 0),
    aead: { name: algorithm as string, key, icvBits: AEAD_ICV_BITS },
    replayWindow,
    esn,
  };
  const m = mark(v.mark, `${field}.mark`);
  if (m) out.mark = m;
  const sm = mark(v.setMark, `${field}.setMark`);
  if (sm) out.setMark = sm;
  if (v.ifId !== undefined) out.ifId = u32(v.ifId, `${field}.ifId`, { min: 1 });
  const l = lifetime(v.lifetime, `${field}.lifetime`);
  if (l) out.lifetime = l;
  if (v.selector !== undefined) out.selector = selector(v.selector, `${field}.selector`);
  return out;
}

export function stateId(v: unknown, field: string): WireStateId {
  if (!isObject(v)) throw invalid(field, v, 'use { dst, spi, mark? }');
  const out: WireStateId = {
    dst: address(v.dst, `${field}.dst`),
    spi: u32(v.spi, `${field}.spi`, { min: 1 }),
    proto: proto(v.proto, `${field}.proto`),
  };
  const m = mark(v.mark, `${field}.mark`);
  if (m) out.mark = m;
  return out;
}

function template(v: unknown, field: string, selFamily: 4 | 6): WireTemplate {
  if (!isObject(v)) throw invalid(field, v, 'use { src, dst, reqid, mode? } (an XfrmTemplate)');
  const m = mode(v.mode, `${field}.mode`);
  const out: WireTemplate = {
    spi: optU32(v.spi, `${field}.spi`, 0),
    proto: proto(v.proto, `${field}.proto`),
    mode: m,
    reqid: optU32(v.reqid, `${field}.reqid`, 0),
    optional: false,
  };
  if (v.optional !== undefined) {
    if (typeof v.optional !== 'boolean') throw invalid(`${field}.optional`, v.optional, 'use true or false');
    out.optional = v.optional;
  }
  if (v.src !== undefined) out.src = address(v.src, `${field}.src`);
  if (v.dst !== undefined) out.dst = address(v.dst, `${field}.dst`);
  if (m === MODE_NUMBERS.tunnel && (out.src === undefined || out.dst === undefined)) {
    throw invalid(field, v, 'a tunnel-mode template needs both "src" and "dst" (the tunnel endpoints)');
  }
  if (out.src !== undefined && out.dst !== undefined && family(out.src) !== family(out.dst)) {
    throw invalid(`${field}.dst`, out.dst, `use an IPv${family(out.src)} address like the template source`);
  }
  if (m === MODE_NUMBERS.transport) {
    const a = out.dst ?? out.src;
    if (a !== undefined && family(a) !== selFamily) {
      throw invalid(field, v, `a transport-mode template must use the selector's family (IPv${selFamily})`);
    }
  }
  return out;
}

function dir(v: unknown, field: string): number {
  if (v !== 'in' && v !== 'out' && v !== 'fwd') throw invalid(field, v, 'use "in", "out" or "fwd"');
  return DIR_NUMBERS[v];
}

export function policyConfig(v: unknown, field: string): WirePolicy {
  if (!isObject(v)) throw invalid(field, v, 'use an XfrmPolicyConfig object');
  const sel = selector(v.selector, `${field}.selector`);
  let action: number = ACTION_NUMBERS.allow;
  if (v.action !== undefined) {
    if (v.action !== 'allow' && v.action !== 'block') throw invalid(`${field}.action`, v.action, 'use "allow" or "block"');
    action = ACTION_NUMBERS[v.action];
  }
  const templates = v.templates ?? [];
  if (!Array.isArray(templates) || templates.length > MAX_TEMPLATES) {
    throw invalid(`${field}.templates`, Array.isArray(templates) ? `${templates.length} templates` : templates, `use an array of at most ${MAX_TEMPLATES} templates`);
  }
  const selFamily = family(sel.src);
  const out: WirePolicy = {
    selector: sel,
    dir: dir(v.dir, `${field}.dir`),
    action,
    priority: optU32(v.priority, `${field}.priority`, 0),
    templates: templates.map((t: unknown, i: number) => template(t, `${field}.templates[${i}]`, selFamily)),
  };
  const m = mark(v.mark, `${field}.mark`);
  if (m) out.mark = m;
  if (v.ifId !== undefined) out.ifId = u32(v.ifId, `${field}.ifId`, { min: 1 });
  return out;
}

export function policyId(v: unknown, field: string): WirePolicyId {
  if (!isObject(v)) throw invalid(field, v, 'use { dir, selector, mark?, ifId? } or { dir, index }');
  const d = dir(v.dir, `${field}.dir`);
  let out: WirePolicyId;
  if (v.index !== undefined) {
    const index = u32(v.index, `${field}.index`, { min: 1 });
    // The kernel keeps the direction in the index's low 3 bits.
    if ((index & 7) !== d) throw invalid(`${field}.index`, index, `this index belongs to another direction than "${v.dir as string}"`);
    out = { selector: { src: '0.0.0.0', srcLen: 0, dst: '0.0.0.0', dstLen: 0 }, dir: d, index };
  } else {
    out = { selector: selector(v.selector, `${field}.selector`), dir: d, index: 0 };
  }
  const m = mark(v.mark, `${field}.mark`);
  if (m) out.mark = m;
  if (v.ifId !== undefined) out.ifId = u32(v.ifId, `${field}.ifId`, { min: 1 });
  return out;
}

/** Validates a list argument of a batch call. */
export function list<T>(v: unknown, field: string, each: (x: unknown, f: string) => T): T[] {
  if (!Array.isArray(v)) throw invalid(field, typeof v, 'pass an array');
  return v.map((x, i) => each(x, `${field}[${i}]`));
}
