/**
 * Argument validation for the rtnetlink wrappers. Every value is checked here, before it crosses
 * into C++, and a bad one raises a ValidationError naming the field, quoting the value and
 * saying how to fix it.
 */
import { ValidationError } from '../errors.js';
import { quote } from '../net/ip.js';
import type { NetnsOption } from './types.js';

// Addresses and CIDRs are checked by agent/net/ip.ts (checkIp, checkCidr); its quote() is
// the one every message here uses too.
export { quote };

/** Linux IFNAMSIZ is 16 including the terminating NUL. */
export const MAX_IFNAME_LEN = 15;

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

/** Rejects fields the caller misspelled, so `{ metirc: 5 }` fails instead of being ignored. */
export function checkKnownKeys(field: string, o: Record<string, unknown>, known: readonly string[]): void {
  for (const k of Object.keys(o)) {
    if (!known.includes(k)) {
      throw new ValidationError(`${field}.${k}`, `Unknown field ${quote(k)} in ${field}: known fields are ${known.join(', ')}`);
    }
  }
}
