/**
 * Argument validation for the rtnetlink wrappers. Every value is checked here, before it crosses
 * into C++, and a bad one raises a ValidationError naming the field, quoting the value and
 * saying how to fix it.
 */
import { ValidationError } from '../errors.js';
import type { NetnsOption } from './types.js';

/** Linux IFNAMSIZ is 16 including the terminating NUL. */
export const MAX_IFNAME_LEN = 15;

export function quote(v: unknown): string {
  const s = typeof v === 'string' ? v : JSON.stringify(v) ?? String(v);
  return `"${s.length > 64 ? `${s.slice(0, 61)}...` : s}"`;
}

/** A device name the kernel accepts (dev_valid_name): 1..15 bytes, no "/", ":" or whitespace. */
export function checkIfName(field: string, v: unknown): string {
  if (typeof v !== 'string' || v.length === 0) {
    throw new ValidationError(field, `Invalid ${field} ${quote(v)}: give a device name of 1 to ${MAX_IFNAME_LEN} characters`);
  }
  if (Buffer.byteLength(v) > MAX_IFNAME_LEN) {
    throw new ValidationError(field, `Invalid ${field} ${quote(v)}: device names are at most ${MAX_IFNAME_LEN} bytes; use a shorter name`);
  }
  if (v === '.' || v === '..' || /[/:\s\0]/.test(v)) {
    throw new ValidationError(field, `Invalid ${field} ${quote(v)}: device names cannot be "." or ".." or contain "/", ":" or whitespace`);
  }
  return v;
}

export function checkNetnsName(field: string, v: unknown): string {
  if (typeof v !== 'string' || v.length === 0 || v.includes('\0')) {
    throw new ValidationError(field, `Invalid ${field} ${quote(v)}: give a name under /run/netns or an absolute path`);
  }
  if (!v.startsWith('/') && (v.includes('/') || v === '.' || v === '..')) {
    throw new ValidationError(field, `Invalid ${field} ${quote(v)}: a namespace name cannot contain "/"; give an absolute path for other files`);
  }
  return v;
}

/** Validates the options object and returns what the addon takes. */
export function nativeOpts(opts: NetnsOption | undefined, extra: Record<string, unknown> = {}): Record<string, unknown> {
  if (opts === undefined || opts === null) return { ...extra };
  if (typeof opts !== 'object') throw new ValidationError('opts', `Invalid options ${quote(opts)}: pass an object such as { netns: "ns1" }`);
  const out: Record<string, unknown> = { ...extra };
  if (opts.netns !== undefined) out.netns = checkNetnsName('netns', opts.netns);
  return out;
}

export function checkInt(field: string, v: unknown, min: number, max: number, hint = ''): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw new ValidationError(field, `Invalid ${field} ${quote(v)}: use an integer from ${min} to ${max}${hint}`);
  }
  return v;
}

export const U32_MAX = 0xffffffff;

export function checkMtu(field: string, v: unknown): number {
  return checkInt(field, v, 68, 65535, ' (68 is the IPv4 minimum)');
}

export function checkBool(field: string, v: unknown): boolean {
  if (typeof v !== 'boolean') throw new ValidationError(field, `Invalid ${field} ${quote(v)}: use true or false`);
  return v;
}

export function checkArray<T>(field: string, v: unknown): T[] {
  if (!Array.isArray(v)) throw new ValidationError(field, `Invalid ${field} ${quote(v)}: pass an array`);
  return v as T[];
}

export function checkObject(field: string, v: unknown): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) {
    throw new ValidationError(field, `Invalid ${field} ${quote(v)}: pass an object`);
  }
  return v as Record<string, unknown>;
}

/**
 * Writes the 4 bytes of a strict dotted-quad IPv4 address (no leading zeros, each part 0..255)
 * to out[off..off+3]; false when `s` is not one. Hand-written: route batches check thousands.
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

const scratch = new Uint8Array(16);

/** The address as a 32-bit number, or -1 when the text is not dotted-quad IPv4. */
function v4Number(text: string): number {
  if (!parseIPv4Into(text, scratch, 0)) return -1;
  return ((scratch[0]! << 24) | (scratch[1]! << 16) | (scratch[2]! << 8) | scratch[3]!) >>> 0;
}

/**
 * Writes the address bytes (4 or 16) to out[off..]; returns the family, or 0 when not an address.
 * `from`/`to` delimit the address inside `text` (no substring needed for "addr/len").
 */
export function parseIpInto(text: string, out: Uint8Array, off: number, from = 0, to = text.length): 4 | 6 | 0 {
  if (parseIPv4Into(text, out, off, from, to)) return 4;
  return parseIPv6Into(text, out, off, from, to) ? 6 : 0;
}

export function ipFamily(text: string): 4 | 6 | 0 {
  return parseIpInto(text, scratch, 0);
}

export function checkIp(field: string, v: unknown, family?: 4 | 6): { addr: string; family: 4 | 6 } {
  const fam = typeof v === 'string' ? ipFamily(v) : 0;
  if (fam === 0) throw new ValidationError(field, `Invalid ${field} ${quote(v)}: give an IPv4 or IPv6 address such as "10.0.0.1" or "fd00::1"`);
  if (family !== undefined && fam !== family) {
    throw new ValidationError(field, `Invalid ${field} ${quote(v)}: it is IPv${fam} but the object is IPv${family}; use an IPv${family} address`);
  }
  return { addr: v as string, family: fam };
}

/** Network-order bytes of a valid IPv4/IPv6 address (checked with checkIp first). */
export function ipToBytes(text: string, family: 4 | 6): Uint8Array {
  const out = new Uint8Array(family === 4 ? 4 : 16);
  if (family === 4) parseIPv4Into(text, out, 0);
  else parseIPv6Into(text, out, 0);
  return out;
}

export interface Cidr {
  addr: string;
  prefixLen: number;
  family: 4 | 6;
}

/**
 * "IP/prefix". With `network`, host bits must be zero (a route destination or rule selector:
 * the kernel rejects "10.1.2.3/8"). A bare address means a host prefix (/32 or /128) unless
 * `requirePrefix`.
 */
export function checkCidr(field: string, v: unknown, o: { network?: boolean; requirePrefix?: boolean; family?: 4 | 6 } = {}): Cidr {
  const bad = (why: string) => new ValidationError(field, `Invalid ${field} ${quote(v)}: ${why}`);
  if (typeof v !== 'string') throw bad('give a CIDR such as "10.0.0.0/24" or "fd00::/64"');
  const slash = v.indexOf('/');
  const addrText = slash < 0 ? v : v.slice(0, slash);
  const fam = ipFamily(addrText);
  if (fam === 0) throw bad('give a CIDR such as "10.0.0.0/24" or "fd00::/64"');
  if (o.family !== undefined && fam !== o.family) throw bad(`it is IPv${fam} but the object is IPv${o.family}; use an IPv${o.family} prefix`);
  const max = fam === 4 ? 32 : 128;
  let prefixLen = max;
  if (slash < 0) {
    if (o.requirePrefix) throw bad(`add a prefix length, e.g. "${addrText}/${max}"`);
  } else {
    const p = v.slice(slash + 1);
    if (!/^\d{1,3}$/.test(p) || Number(p) > max) throw bad(`the prefix length must be 0 to ${max}`);
    prefixLen = Number(p);
  }
  if (o.network && prefixLen < max && fam === 4) {
    const n = v4Number(addrText);
    const hostMask = prefixLen === 0 ? 0xffffffff : 2 ** (32 - prefixLen) - 1;
    if (n % (hostMask + 1) !== 0) {
      const net = n - (n % (hostMask + 1));
      throw bad(`host bits are set; use "${[net >>> 24, (net >>> 16) & 255, (net >>> 8) & 255, net & 255].join('.')}/${prefixLen}"`);
    }
  } else if (o.network && prefixLen < max) {
    const bytes = ipToBytes(addrText, fam);
    for (let bit = prefixLen; bit < max; bit++) {
      if (bytes[bit >> 3]! & (0x80 >> (bit & 7))) {
        const masked = Uint8Array.from(bytes);
        for (let b = prefixLen; b < max; b++) masked[b >> 3]! &= ~(0x80 >> (b & 7));
        throw bad(`host bits are set; use "${formatIp(masked, fam)}/${prefixLen}"`);
      }
    }
  }
  return { addr: addrText, prefixLen, family: fam };
}

function formatIp(b: Uint8Array, family: 4 | 6): string {
  if (family === 4) return Array.from(b).join('.');
  const g: string[] = [];
  for (let i = 0; i < 16; i += 2) g.push(((b[i]! << 8) | b[i + 1]!).toString(16));
  return g.join(':').replace(/(^|:)0(:0)+(:|$)/, '::').replace(/:{3,}/, '::');
}

/** Rejects fields the caller misspelled, so `{ metirc: 5 }` fails instead of being ignored. */
export function checkKnownKeys(field: string, o: Record<string, unknown>, known: readonly string[]): void {
  for (const k of Object.keys(o)) {
    if (!known.includes(k)) {
      throw new ValidationError(`${field}.${k}`, `Unknown field ${quote(k)} in ${field}: known fields are ${known.join(', ')}`);
    }
  }
}
