/**
 * Argument validation for the rtnetlink wrappers. Every value is checked here, before it crosses
 * into C++, and a bad one raises a ValidationError naming the field, quoting the value and
 * saying how to fix it.
 */
import { isIPv6 } from 'node:net';
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

const V4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

/** The address as a 32-bit number, or -1 when the text is not dotted-quad IPv4 (fast path). */
function v4Number(text: string): number {
  const m = V4.exec(text);
  if (!m) return -1;
  let n = 0;
  for (let i = 1; i <= 4; i++) {
    const part = m[i]!;
    const b = Number(part);
    if (b > 255 || (part.length > 1 && part[0] === '0')) return -1;
    n = n * 256 + b;
  }
  return n;
}

export function ipFamily(text: string): 4 | 6 | 0 {
  if (v4Number(text) >= 0) return 4;
  return text.includes(':') && isIPv6(text) && !text.includes('%') ? 6 : 0;
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
  if (family === 4) return Uint8Array.from(text.split('.').map(Number));
  let s = text;
  const out = new Uint8Array(16);
  // An embedded IPv4 tail ("::ffff:1.2.3.4") becomes two hex groups.
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(s);
  if (v4) {
    const b = v4[1]!.split('.').map(Number);
    s = s.slice(0, v4.index) + `${((b[0]! << 8) | b[1]!).toString(16)}:${((b[2]! << 8) | b[3]!).toString(16)}`;
  }
  const [head, tail] = s.split('::') as [string, string | undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  groups.forEach((g, i) => {
    const n = parseInt(g, 16);
    out[i * 2] = n >> 8;
    out[i * 2 + 1] = n & 0xff;
  });
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
