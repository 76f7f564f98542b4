/**
 * IP addresses, CIDRs and endpoints: text → bytes, bytes → canonical text, and the argument
 * checks every module (rtnetlink, WireGuard, XFRM) runs before a value crosses into C++ or goes
 * to wireguard-go. One parser and one formatter, so an address means the same everywhere:
 *
 * - accepted text is exactly what node:net's isIP() accepts, minus IPv6 zone indexes ("%eth0"):
 *   dotted-quad IPv4 without leading zeros, RFC 4291 IPv6 text (optionally with an IPv4 tail);
 * - canonical text is what the C library's inet_ntop writes (RFC 5952, "::ffff:a.b.c.d"), which
 *   is how the kernel's read-backs spell addresses through the addon.
 *
 * The parsers are hand-written and allocation-free (route batches check thousands of addresses
 * per call). A failed check raises the error that `fail(field, value, fix)` builds; the default
 * is a ValidationError "Invalid <field> "<value>": <fix>", and callers with their own wording
 * pass their own builder.
 */
import { ValidationError } from '../errors.js';

export type IpFamily = 4 | 6;

/** Builds the error for a bad value; `fix` says what is wrong and what to give instead. */
export type Invalid = (field: string, value: unknown, fix: string) => Error;

/** A value as error messages show it: in double quotes, long text cut short. */
export function quote(v: unknown): string {
  let s: string;
  if (typeof v === 'string') s = v;
  else if (typeof v === 'bigint') s = `${v}n`;
  else {
    try {
      s = JSON.stringify(v) ?? String(v);
    } catch {
      s = String(v); // a cycle
    }
  }
  return `"${s.length > 64 ? `${s.slice(0, 61)}...` : s}"`;
}

/** The default error: `Invalid <field> "<value>": <fix>`. */
export const invalid: Invalid = (field, value, fix) => new ValidationError(field, `Invalid ${field} ${quote(value)}: ${fix}`);

// ------------------------------------------------------------------------------------------
// Text → bytes

/**
 * Writes the 4 bytes of a strict dotted-quad IPv4 address (no leading zeros, each part 0..255)
 * to out[off..off+3]; false when `s` is not one. `from`/`to` delimit the text inside `s`.
 */
export function parseIPv4Into(s: string, out: Uint8Array, off: number, from = 0, to = s.length): boolean {
  const n = to;
  if (n - from < 7 || n - from > 15) return false;
  let i = from;
  for (let part = 0; part < 4; part++) {
    if (part > 0) {
      if (s.charCodeAt(i) !== 46) return false; // "."
      i++;
    }
    const start = i;
    let v = 0;
    while (i < n && i - start < 4) {
      const c = s.charCodeAt(i) - 48;
      if (c < 0 || c > 9) break;
      v = v * 10 + c;
      i++;
    }
    const len = i - start;
    if (len === 0 || len > 3 || v > 255 || (len > 1 && s.charCodeAt(start) === 48)) return false;
    out[off + part] = v;
  }
  return i === n;
}

const groups = new Uint16Array(8);
const v4Tail = new Uint8Array(4);

function hexValue(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 97 && c <= 102) return c - 87;
  if (c >= 65 && c <= 70) return c - 55;
  return -1;
}

/**
 * Writes the 16 bytes of an IPv6 address in text form (RFC 4291 section 2.2: eight groups of
 * 1..4 hex digits, at most one "::", optionally a dotted-quad IPv4 tail; no zone index) to
 * out[off..off+15]; false when `s` is not one. `from`/`to` delimit the text inside `s`.
 */
export function parseIPv6Into(s: string, out: Uint8Array, off: number, from = 0, to = s.length): boolean {
  const n = to;
  if (n - from < 2 || n - from > 45) return false;
  let i = from;
  let g = 0;
  let gap = -1;
  if (s.charCodeAt(from) === 58) {
    if (s.charCodeAt(from + 1) !== 58) return false;
    gap = 0;
    i = from + 2;
  }
  while (i < n) {
    const start = i;
    let v = 0;
    while (i < n && i - start < 5) {
      const h = hexValue(s.charCodeAt(i));
      if (h < 0) break;
      v = v * 16 + h;
      i++;
    }
    if (i < n && s.charCodeAt(i) === 46) {
      // A dotted-quad tail fills the last two groups.
      if (g > 6 || !parseIPv4Into(s, v4Tail, 0, start, n)) return false;
      groups[g++] = (v4Tail[0]! << 8) | v4Tail[1]!;
      groups[g++] = (v4Tail[2]! << 8) | v4Tail[3]!;
      i = n;
      break;
    }
    const len = i - start;
    if (len === 0 || len > 4 || g >= 8) return false;
    groups[g++] = v;
    if (i === n) break;
    if (s.charCodeAt(i) !== 58) return false;
    i++;
    if (i === n) return false; // a single trailing ":"
    if (s.charCodeAt(i) === 58) {
      if (gap >= 0) return false;
      gap = g;
      i++;
    }
  }
  if (gap < 0 ? g !== 8 : g > 7) return false;
  const zeros = 8 - g;
  for (let k = 0, o = off; k < 8; k++, o += 2) {
    let v = 0;
    if (gap < 0 || k < gap) v = groups[k]!;
    else if (k >= gap + zeros) v = groups[k - zeros]!;
    out[o] = v >> 8;
    out[o + 1] = v & 0xff;
  }
  return true;
}

/**
 * Writes the address bytes (4 or 16) to out[off..]; returns the family, or 0 when not an address.
 * `from`/`to` delimit the address inside `text` (no substring needed for "addr/len").
 */
export function parseIpInto(text: string, out: Uint8Array, off: number, from = 0, to = text.length): IpFamily | 0 {
  if (parseIPv4Into(text, out, off, from, to)) return 4;
  return parseIPv6Into(text, out, off, from, to) ? 6 : 0;
}

const scratch = new Uint8Array(16);

/** 4, 6, or 0 when `text` is not an address. */
export function ipFamily(text: string): IpFamily | 0 {
  return parseIpInto(text, scratch, 0);
}

/** The address's bytes in network order (a new array of 4 or 16), or undefined. */
export function parseIp(text: string): Uint8Array | undefined {
  if (parseIPv4Into(text, scratch, 0)) return scratch.slice(0, 4);
  return parseIPv6Into(text, scratch, 0) ? scratch.slice(0, 16) : undefined;
}

/**
 * The decimal prefix length in text[from..to) when it is 0..max without leading zeros
 * ("0", "24", "128"), else -1. Allocation-free, for batch fast paths.
 */
export function parsePrefixLen(text: string, from: number, to: number, max: number): number {
  const digits = to - from;
  if (digits < 1 || digits > 3 || (digits > 1 && text.charCodeAt(from) === 48)) return -1;
  let v = 0;
  for (let k = from; k < to; k++) {
    const c = text.charCodeAt(k) - 48;
    if (c < 0 || c > 9) return -1;
    v = v * 10 + c;
  }
  return v <= max ? v : -1;
}

/** True when every bit of bytes[off..] past `prefixLen` (of `max` bits) is zero. */
export function hostBitsZero(bytes: Uint8Array, off: number, prefixLen: number, max: number): boolean {
  let bit = prefixLen;
  if (bit & 7) {
    if (bytes[off + (bit >> 3)]! & (0xff >> (bit & 7))) return false;
    bit += 8 - (bit & 7);
  }
  for (let b = bit >> 3; b < max >> 3; b++) if (bytes[off + b] !== 0) return false;
  return true;
}

/** Clears every bit past `prefixLen` in place ("10.0.1.7" /24 → 10.0.1.0) and returns `bytes`. */
export function maskHostBits(bytes: Uint8Array, prefixLen: number): Uint8Array {
  for (let b = prefixLen >> 3; b < bytes.length; b++) {
    const keep = prefixLen - b * 8; // bits of this byte to keep: 0..7 here, then negative
    bytes[b]! &= keep > 0 ? (0xff00 >> keep) & 0xff : 0;
  }
  return bytes;
}

// ------------------------------------------------------------------------------------------
// Bytes → text

/** Formats 4 or 16 address bytes exactly as the C library's inet_ntop does (RFC 5952 for IPv6). */
export function formatIp(bytes: Uint8Array): string {
  if (bytes.length === 4) return `${bytes[0]}.${bytes[1]}.${bytes[2]}.${bytes[3]}`;
  const words: number[] = [];
  for (let i = 0; i < 8; i++) words.push((bytes[i * 2]! << 8) | bytes[i * 2 + 1]!);
  // Longest run of zero words (the first on a tie), compressed only when at least two long.
  let best = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (words[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && words[j] === 0) j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  if (bestLen < 2) best = -1;
  // IPv4-compatible (::a.b.c.d) and IPv4-mapped (::ffff:a.b.c.d) forms, as inet_ntop writes them.
  if (best === 0 && (bestLen === 6 || (bestLen === 5 && words[5] === 0xffff))) {
    return `::${bestLen === 5 ? 'ffff:' : ''}${bytes[12]}.${bytes[13]}.${bytes[14]}.${bytes[15]}`;
  }
  let out = '';
  for (let i = 0; i < 8; i++) {
    if (i === best) {
      out += '::';
      i += bestLen - 1;
      continue;
    }
    if (out !== '' && !out.endsWith(':')) out += ':';
    out += words[i]!.toString(16);
  }
  return out;
}

// ------------------------------------------------------------------------------------------
// Checks that throw

const ADDRESS_FIX = 'use an IPv4 or IPv6 address such as "192.0.2.1" or "2001:db8::1"';

/** An address of either family, or of `family` when given. Returns the text as written. */
export function checkIp(field: string, v: unknown, family?: IpFamily, fail: Invalid = invalid): { addr: string; family: IpFamily } {
  const fam = typeof v === 'string' ? ipFamily(v) : 0;
  if (fam === 0) throw fail(field, v, ADDRESS_FIX);
  if (family !== undefined && fam !== family) throw fail(field, v, `it is IPv${fam} but the object is IPv${family}; use an IPv${family} address`);
  return { addr: v as string, family: fam };
}

/** The address in canonical (inet_ntop) text: "FD00::0001" → "fd00::1". */
export function canonicalIp(field: string, v: unknown, fail: Invalid = invalid): string {
  const fam = typeof v === 'string' ? parseIpInto(v, scratch, 0) : 0;
  if (fam === 0) throw fail(field, v, ADDRESS_FIX);
  return formatIp(scratch.subarray(0, fam === 4 ? 4 : 16));
}

export interface Cidr {
  /** The address as written (checkCidr) or canonical with host bits cleared (canonicalCidr). */
  addr: string;
  prefixLen: number;
  family: IpFamily;
}

export interface CidrOptions {
  /** Host bits must be zero (a route destination or rule selector: the kernel rejects "10.1.2.3/8"). */
  network?: boolean;
  /** A bare address is refused instead of meaning a host prefix (/32 or /128). */
  requirePrefix?: boolean;
  /** The family the prefix must have. */
  family?: IpFamily;
}

/** "IP/prefix" (or a bare address as a host prefix, unless `requirePrefix`). */
export function checkCidr(field: string, v: unknown, o: CidrOptions = {}, fail: Invalid = invalid): Cidr {
  if (typeof v !== 'string') throw fail(field, v, 'use a CIDR such as "10.0.0.0/24" or "fd00::/64"');
  const slash = v.indexOf('/');
  const end = slash < 0 ? v.length : slash;
  const fam = parseIpInto(v, scratch, 0, 0, end);
  if (fam === 0) throw fail(field, v, 'use a CIDR such as "10.0.0.0/24" or "fd00::/64"');
  const addr = slash < 0 ? v : v.slice(0, slash);
  if (o.family !== undefined && fam !== o.family) throw fail(field, v, `it is IPv${fam} but the object is IPv${o.family}; use an IPv${o.family} prefix`);
  const max = fam === 4 ? 32 : 128;
  let prefixLen = max;
  if (slash < 0) {
    if (o.requirePrefix) throw fail(field, v, `add a prefix length, e.g. "${addr}/${max}"`);
  } else {
    prefixLen = parsePrefixLen(v, slash + 1, v.length, max);
    if (prefixLen < 0) throw fail(field, v, `use a prefix length from 0 to ${max}`);
  }
  if (o.network && !hostBitsZero(scratch, 0, prefixLen, max)) {
    const net = formatIp(maskHostBits(scratch.subarray(0, max >> 3), prefixLen));
    throw fail(field, v, `host bits are set; use "${net}/${prefixLen}"`);
  }
  return { addr, prefixLen, family: fam };
}

/**
 * checkCidr(), then the canonical form: host bits cleared ("10.0.1.7/24" → 10.0.1.0/24), as the
 * kernel and wireguard-go store allowed IPs, and the address in inet_ntop text, so
 * configurations compare equal to what reads return.
 */
export function canonicalCidr(field: string, v: unknown, o: Omit<CidrOptions, 'network'> = {}, fail: Invalid = invalid): Cidr {
  const c = checkCidr(field, v, o, fail);
  // checkCidr() left the address bytes in scratch.
  const addr = formatIp(maskHostBits(scratch.subarray(0, c.family === 4 ? 4 : 16), c.prefixLen));
  return { addr, prefixLen: c.prefixLen, family: c.family };
}

/** True when prefix `inner` lies inside prefix `outer` (same family, inner at least as long). */
export function cidrContains(outer: Cidr, inner: Cidr): boolean {
  if (outer.family !== inner.family || inner.prefixLen < outer.prefixLen) return false;
  const a = parseIp(outer.addr);
  const b = parseIp(inner.addr);
  if (!a || !b) return false;
  return formatIp(maskHostBits(a, outer.prefixLen)) === formatIp(maskHostBits(b, outer.prefixLen));
}

/** True when two prefixes share at least one address (for prefixes: one contains the other). */
export function cidrsOverlap(a: Cidr, b: Cidr): boolean {
  return cidrContains(a, b) || cidrContains(b, a);
}

/** "addr/len". */
export function formatCidr(c: Cidr): string {
  return `${c.addr}/${c.prefixLen}`;
}

export interface Endpoint {
  family: IpFamily;
  /** Canonical (inet_ntop) address text. */
  address: string;
  port: number;
}

const ENDPOINT_FIX = 'use "192.0.2.1:51820" or "[2001:db8::1]:51820"';

/** "192.0.2.1:51820" or "[2001:db8::1]:51820" (port 1..65535; no host names, no zone ids). */
export function checkEndpoint(field: string, v: unknown, fail: Invalid = invalid): Endpoint {
  const bad = (why: string): Error => fail(field, v, `${why}; ${ENDPOINT_FIX}`);
  if (typeof v !== 'string') throw bad('expected a string "address:port"');
  let fam: IpFamily | 0;
  let portFrom: number;
  if (v.startsWith('[')) {
    const close = v.indexOf(']');
    if (close < 0 || v.charCodeAt(close + 1) !== 58) throw bad('an IPv6 endpoint needs "]:port" after the address');
    fam = parseIPv6Into(v, scratch, 0, 1, close) ? 6 : 0;
    if (fam === 0) throw bad(`${quote(v.slice(1, close))} is not an IPv6 address`);
    portFrom = close + 2;
  } else {
    const colon = v.lastIndexOf(':');
    if (colon < 0) throw bad('the port is missing');
    if (colon > 0 && v.lastIndexOf(':', colon - 1) >= 0) throw bad('an IPv6 address needs brackets');
    fam = parseIPv4Into(v, scratch, 0, 0, colon) ? 4 : 0;
    if (fam === 0) throw bad(`${quote(v.slice(0, colon))} is not an IPv4 address`);
    portFrom = colon + 1;
  }
  const address = formatIp(scratch.subarray(0, fam === 4 ? 4 : 16));
  const portText = v.slice(portFrom);
  const port = /^[0-9]{1,5}$/.test(portText) ? Number(portText) : 0;
  if (port < 1 || port > 65535) throw bad(`port ${quote(portText)} is not between 1 and 65535`);
  return { family: fam, address, port };
}

/** "192.0.2.1:51820" / "[2001:db8::1]:51820". */
export function formatEndpoint(ep: Endpoint): string {
  return ep.family === 6 ? `[${ep.address}]:${ep.port}` : `${ep.address}:${ep.port}`;
}
