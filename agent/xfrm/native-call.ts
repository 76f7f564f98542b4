/**
 * Shared plumbing of the XFRM wrappers: calling the addon with the caller's stack, retrying
 * interrupted dumps, and rewording batch failures so they name the object that failed.
 */
import { NetlinkError, ValidationError, hasCode } from '../errors.js';
import { callNative, native } from '../native/addon.js';
import type { RawPolicy, RawState } from './decode.js';
import type { WirePolicyId, WireState, WireStateId } from './validate.js';

/** The XFRM exports of the addon (native/src/xfrm.cc), typed. */
export interface XfrmNative {
  xfrmStatesApply(opts: { netns?: string }, states: WireState[], update: boolean): Promise<void>;
  xfrmStatesDelete(opts: { netns?: string }, ids: WireStateId[], ignoreMissing: boolean): Promise<number>;
  xfrmStateGet(opts: { netns?: string }, id: WireStateId): Promise<RawState | null>;
  xfrmStatesList(opts: { netns?: string }): Promise<RawState[]>;
  xfrmStatesFlush(opts: { netns?: string }, proto: number): Promise<void>;
  xfrmPoliciesApply(opts: { netns?: string }, packed: Buffer, count: number, update: boolean): Promise<void>;
  xfrmPoliciesDelete(opts: { netns?: string }, ids: WirePolicyId[], ignoreMissing: boolean): Promise<number>;
  xfrmPolicyGet(opts: { netns?: string }, id: WirePolicyId): Promise<RawPolicy | null>;
  xfrmPoliciesList(opts: { netns?: string }): Promise<RawPolicy[]>;
  xfrmPoliciesFlush(opts: { netns?: string }): Promise<void>;
  encodeXfrmStates(states: WireState[], update: boolean): Buffer[];
  encodeXfrmStateIds(ids: WireStateId[], kind: 'get' | 'delete'): Buffer[];
  encodeXfrmStatesFlush(proto: number): Buffer[];
  encodeXfrmStatesDump(): Buffer[];
  parseXfrmStates(buf: Buffer): RawState[];
  encodeXfrmPolicies(packed: Buffer, count: number, update: boolean): Buffer[];
  encodeXfrmPolicyIds(ids: WirePolicyId[], kind: 'get' | 'delete'): Buffer[];
  encodeXfrmPoliciesFlush(): Buffer[];
  encodeXfrmPoliciesDump(): Buffer[];
  parseXfrmPolicies(buf: Buffer): RawPolicy[];
}

export function xfrmNative(): XfrmNative {
  return native() as unknown as XfrmNative;
}

/** Options as they cross: only the namespace (nothing else of the caller's object). */
export function nsOpts(opts: { netns?: string } | undefined): { netns?: string } {
  const netns = opts?.netns;
  if (netns !== undefined && (typeof netns !== 'string' || netns === '')) {
    throw new ValidationError('netns', `Invalid netns ${JSON.stringify(netns)}: use a namespace name under /run/netns or an absolute path`);
  }
  return netns === undefined ? {} : { netns };
}

/** Dumps retried this many times when the kernel's object set changes mid-dump (EDUMPINTR). */
export const DUMP_ATTEMPTS = 3;

export async function dumpWithRetry<T>(context: string, run: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await callNative(context, run);
    } catch (err) {
      if (!hasCode(err, 'EDUMPINTR') || attempt >= DUMP_ATTEMPTS) throw err;
    }
  }
}

/**
 * Replaces a NetlinkError's message (keeping code, errno, op, extack, index, cause and stack).
 * `describe` receives the failing object's index (undefined outside batches).
 */
export function reword(err: unknown, describe: (e: NetlinkError) => string | undefined): unknown {
  if (!(err instanceof NetlinkError)) return err;
  const message = describe(err);
  if (message === undefined) return err;
  const fields = {
    code: err.code,
    errno: err.errno,
    op: err.op,
    ...(err.extack !== undefined ? { extack: err.extack } : {}),
    ...(err.index !== undefined ? { index: err.index } : {}),
  };
  const out = new NetlinkError(fields, message, { cause: err.cause ?? err });
  if (err.stack) out.stack = `${out.name}: ${message}\n${err.stack.split('\n').slice(1).join('\n')}`;
  return out;
}

/** " (kernel: …)" suffix when the kernel explained itself. */
export function kernelSays(e: NetlinkError): string {
  return e.extack ? ` (kernel: ${e.extack})` : '';
}

/** The native rollback note ("; rolling back … failed …"), when the rollback itself failed. */
export function rollbackNote(e: NetlinkError): string {
  const cause = e.cause as { detail?: string } | undefined;
  const detail = typeof cause?.detail === 'string' ? cause.detail : '';
  const i = detail.indexOf('; rolling back');
  return i >= 0 ? detail.slice(i) : '';
}


/** The addon's own description of the failure (strerror text), without the rollback note. */
export function detailOf(e: NetlinkError): string {
  const cause = e.cause as { detail?: string } | undefined;
  const detail = typeof cause?.detail === 'string' ? cause.detail : e.message;
  const i = detail.indexOf('; rolling back');
  return i >= 0 ? detail.slice(0, i) : detail;
}
