/**
 * Which datapath events a reader wants: by type (drop, flow), reason, hook, identity (source or
 * destination) and pod address (source or destination). The agent's /events endpoint takes them
 * as query parameters (`?type=drop&reason=policy-deny&identity=300&address=10.0.1.5`); every
 * given criterion must hold. Invalid values are refused with the accepted ones named.
 */
import { ValidationError } from '../errors.js';
import { canonicalIp, quote } from '../net/ip.js';
import type { EventRecord } from './event-record.js';
import { Hook, Reason } from './reasons.js';

export interface EventFilter {
  type?: 'drop' | 'flow';
  /** Reason name as in reasons.h (DROP_POLICY_DENY). */
  reason?: string;
  /** Hook name as in reasons.h (FROM_POD). */
  hook?: string;
  identity?: number;
  /** Canonical address text. */
  address?: string;
}

export const EVENT_FILTER_KEYS = ['type', 'reason', 'hook', 'identity', 'address'] as const;

/** "policy-deny", "POLICY_DENY", "drop_policy_deny", "35" → "DROP_POLICY_DENY". */
export function parseReason(v: string): string {
  const n = Number(v);
  const names = Object.keys(Reason) as (keyof typeof Reason)[];
  if (/^\d+$/.test(v)) {
    const hit = names.find((k) => Reason[k] === n);
    if (hit) return hit;
  } else {
    const up = v.trim().toUpperCase().replace(/-/g, '_');
    const hit = names.find((k) => k === up || k === `DROP_${up}` || k === `FWD_${up}`);
    if (hit) return hit;
  }
  const list = names.map((k) => k.replace(/^(DROP|FWD)_/, '').toLowerCase().replace(/_/g, '-'));
  throw new ValidationError('reason', `Unknown event reason ${quote(v)}: use one of ${list.join(', ')} (or its number)`);
}

export function parseHook(v: string): string {
  const up = v.trim().toUpperCase().replace(/-/g, '_');
  if (Object.hasOwn(Hook, up)) return up;
  const list = Object.keys(Hook).map((k) => k.toLowerCase().replace(/_/g, '-'));
  throw new ValidationError('hook', `Unknown hook ${quote(v)}: use one of ${list.join(', ')}`);
}

/** The filter from query parameters (or flags with the same names); unknown keys are ignored. */
export function parseEventFilter(params: URLSearchParams | Record<string, string | undefined>): EventFilter {
  const get = (k: string): string | undefined => (params instanceof URLSearchParams ? params.get(k) ?? undefined : params[k]);
  const f: EventFilter = {};
  const type = get('type');
  if (type !== undefined) {
    if (type !== 'drop' && type !== 'flow') throw new ValidationError('type', `Unknown event type ${quote(type)}: use "drop" or "flow"`);
    f.type = type;
  }
  const reason = get('reason');
  if (reason !== undefined) f.reason = parseReason(reason);
  const hook = get('hook');
  if (hook !== undefined) f.hook = parseHook(hook);
  const identity = get('identity');
  if (identity !== undefined) {
    const n = Number(identity);
    if (!/^\d+$/.test(identity) || !Number.isSafeInteger(n) || n > 0xffffffff) {
      throw new ValidationError('identity', `Invalid identity ${quote(identity)}: use a number such as 256`);
    }
    f.identity = n;
  }
  const address = get('address');
  if (address !== undefined) f.address = canonicalIp('address', address);
  return f;
}

export function eventMatches(f: EventFilter, r: EventRecord): boolean {
  if (f.type !== undefined && r.type !== f.type) return false;
  if (f.reason !== undefined && r.reason !== f.reason) return false;
  if (f.hook !== undefined && r.hook !== f.hook) return false;
  if (f.identity !== undefined && r.srcIdentity !== f.identity && r.dstIdentity !== f.identity) return false;
  if (f.address !== undefined && r.saddr !== f.address && r.daddr !== f.address) return false;
  return true;
}

/** The filter as query parameters (for clients). */
export function eventFilterQuery(f: EventFilter): URLSearchParams {
  const q = new URLSearchParams();
  for (const k of EVENT_FILTER_KEYS) if (f[k] !== undefined) q.set(k, String(f[k]));
  return q;
}
