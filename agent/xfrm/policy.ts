/**
 * XFRM policies (the security policy database): in/out/fwd selectors with marks, priorities,
 * allow/block actions and templates that bind matching traffic to states by reqid.
 *
 * Batches are pipelined over one netlink socket (10,000 policies per call is the intended
 * scale). A batch of creates that fails at index k removes every policy it had created, and the
 * NetlinkError carries k and the kernel's extended-ack text.
 */
import type { NetlinkError } from '../errors.js';
import { callNative, callNativeSync } from '../native/addon.js';
import { decodePolicy } from './decode.js';
import { packPolicies } from './pack.js';
import { detailOf, dumpWithRetry, kernelSays, nsOpts, reword, rollbackNote, xfrmNative } from './native-call.js';
import type { XfrmOptions, XfrmPolicy, XfrmPolicyConfig, XfrmPolicyFilter, XfrmPolicyId } from './types.js';
import {
  DIR_NUMBERS,
  invalid,
  list,
  mark as markArg,
  policyConfig,
  policyId,
  u32,
  type WirePolicyId,
  type WireSelector,
} from './validate.js';

const DIR_NAMES = ['in', 'out', 'fwd'];

function describeSelector(s: WireSelector): string {
  const ports = `${s.sport !== undefined ? ` sport ${s.sport}` : ''}${s.dport !== undefined ? ` dport ${s.dport}` : ''}`;
  return `"${s.src}/${s.srcLen}" -> "${s.dst}/${s.dstLen}"${s.proto !== undefined ? ` proto ${s.proto}` : ''}${ports}`;
}

/** `dir out "10.0.0.0/16" -> "10.1.0.0/16" (mark 0x10/0xff)`, or `dir out index 8`. */
export function describePolicy(p: WirePolicyId | { selector: WireSelector; dir: number; mark?: { value: number; mask: number } }): string {
  const m = p.mark ? ` (mark 0x${p.mark.value.toString(16)}/0x${p.mark.mask.toString(16)})` : '';
  const where = 'index' in p && p.index ? `index ${p.index}` : describeSelector(p.selector);
  return `dir ${DIR_NAMES[p.dir] ?? p.dir} ${where}${m}`;
}

type DescribedPolicy = { selector: WireSelector; dir: number; mark?: { value: number; mask: number } };

export function policyBatchMessage(
  verb: 'add' | 'update',
  e: NetlinkError,
  count: number,
  at: (i: number) => DescribedPolicy | undefined,
): string | undefined {
  const p = e.index !== undefined && e.index < count ? at(e.index) : undefined;
  if (!p) return undefined;
  const what = `Cannot ${verb} XFRM policy ${e.index} of ${count}, ${describePolicy(p)}`;
  const tail = `${kernelSays(e)}; ${verb === 'add' ? 'no policy of this batch was left installed' : `policies before index ${e.index} were updated`}${rollbackNote(e)}`;
  switch (e.code) {
    case 'EEXIST':
      return `${what}: a policy with this direction, selector, mark and interface id already exists; delete it or use updatePolicies()${tail}`;
    case 'EINVAL':
      return `${what}: the kernel rejected its parameters${tail}`;
    default:
      return `${what}: ${detailOf(e)}${tail}`;
  }
}

/**
 * The validated form of policies[i], for naming it in an error (the packed batch keeps no
 * objects); undefined when the caller has since changed it into something invalid.
 */
function validatedAt(policies: readonly XfrmPolicyConfig[]): (i: number) => DescribedPolicy | undefined {
  return (i) => {
    try {
      return policyConfig(policies[i], `policies[${i}]`);
    } catch {
      return undefined;
    }
  };
}

async function apply(verb: 'add' | 'update', policies: readonly XfrmPolicyConfig[], opts: XfrmOptions): Promise<void> {
  const packed = packPolicies(policies);
  if (packed.count === 0) return;
  try {
    await callNative(`Cannot ${verb} XFRM policies`, () =>
      xfrmNative().xfrmPoliciesApply(nsOpts(opts), packed.buffer, packed.count, verb === 'update'),
    );
  } catch (err) {
    throw reword(err, (e) => policyBatchMessage(verb, e, packed.count, validatedAt(policies)));
  }
}

/**
 * Adds policies, failing on any that exists already. All or nothing: when one fails, those
 * created before it are deleted again.
 * `ip xfrm policy add src S/L dst D/L dir out priority P mark V mask M tmpl src A dst B proto esp reqid R mode tunnel`
 */
export function addPolicies(policies: readonly XfrmPolicyConfig[], opts: XfrmOptions = {}): Promise<void> {
  return apply('add', policies, opts);
}

/**
 * Adds or replaces policies (same dir, selector, mark, interface id). Stops at the first
 * failure; the error's index says which (those before it are applied).
 * `ip xfrm policy update src S/L dst D/L dir out ...`
 */
export function updatePolicies(policies: readonly XfrmPolicyConfig[], opts: XfrmOptions = {}): Promise<void> {
  return apply('update', policies, opts);
}

/** Reads one policy; null when it does not exist. `ip xfrm policy get src S/L dst D/L dir DIR [mark V mask M]` */
export async function getPolicy(id: XfrmPolicyId, opts: XfrmOptions = {}): Promise<XfrmPolicy | null> {
  const wire = policyId(id, 'id');
  const raw = (await callNative(`Cannot read XFRM policy ${describePolicy(wire)}`, () =>
    xfrmNative().xfrmPolicyGet(nsOpts(opts), wire),
  ));
  return raw ? decodePolicy(raw) : null;
}

function filterArg(f: unknown): (p: XfrmPolicy) => boolean {
  if (f === undefined) return () => true;
  if (typeof f !== 'object' || f === null) throw invalid('filter', f, 'use an XfrmPolicyFilter object');
  const v = f as XfrmPolicyFilter;
  if (v.dir !== undefined && !(v.dir in DIR_NUMBERS)) throw invalid('filter.dir', v.dir, 'use "in", "out" or "fwd"');
  if (v.action !== undefined && v.action !== 'allow' && v.action !== 'block') {
    throw invalid('filter.action', v.action, 'use "allow" or "block"');
  }
  if (v.family !== undefined && v.family !== 4 && v.family !== 6) throw invalid('filter.family', v.family, 'use 4 or 6');
  const priority = v.priority === undefined ? undefined : u32(v.priority, 'filter.priority');
  const reqid = v.reqid === undefined ? undefined : u32(v.reqid, 'filter.reqid');
  const ifId = v.ifId === undefined ? undefined : u32(v.ifId, 'filter.ifId');
  const mark = markArg(v.mark, 'filter.mark');
  const maskGiven = v.mark?.mask !== undefined;
  return (p) =>
    (v.dir === undefined || p.dir === v.dir) &&
    (v.action === undefined || p.action === v.action) &&
    (v.family === undefined || p.selector.family === v.family) &&
    (priority === undefined || p.priority === priority) &&
    (ifId === undefined || p.ifId === ifId) &&
    (reqid === undefined || p.templates.some((t) => t.reqid === reqid)) &&
    (mark === undefined || (p.mark !== null && p.mark.value === mark.value && (!maskGiven || p.mark.mask === mark.mask)));
}

/** Lists policies (optionally only those matching `filter`). `ip xfrm policy list` */
export async function listPolicies(filter?: XfrmPolicyFilter, opts: XfrmOptions = {}): Promise<XfrmPolicy[]> {
  const match = filterArg(filter);
  const raw = (await dumpWithRetry('Cannot list XFRM policies', () => xfrmNative().xfrmPoliciesList(nsOpts(opts))));
  return raw.map(decodePolicy).filter(match);
}

async function deleteWire(wire: WirePolicyId[], opts: XfrmOptions, ignoreMissing: boolean): Promise<number> {
  try {
    return (await callNative('Cannot delete XFRM policies', () =>
      xfrmNative().xfrmPoliciesDelete(nsOpts(opts), wire, ignoreMissing),
    ));
  } catch (err) {
    throw reword(err, (e) => {
      const p = e.index !== undefined ? wire[e.index] : undefined;
      if (!p) return undefined;
      const why = e.code === 'ENOENT' ? 'no such policy' : detailOf(e);
      return `Cannot delete XFRM policy ${e.index} of ${wire.length}, ${describePolicy(p)}: ${why}${kernelSays(e)}; pass ignoreMissing to skip policies that are already gone`;
    });
  }
}

/**
 * Deletes policies; resolves the number deleted. With ignoreMissing, policies already gone are
 * skipped; otherwise the first missing one fails with its index (the others are still deleted).
 * `ip xfrm policy delete src S/L dst D/L dir DIR [mark V mask M]` (or `... index N dir DIR`)
 */
export async function deletePolicies(
  ids: readonly XfrmPolicyId[],
  opts: XfrmOptions & { ignoreMissing?: boolean } = {},
): Promise<number> {
  const wire = list(ids, 'ids', policyId);
  if (wire.length === 0) return 0;
  return deleteWire(wire, opts, opts.ignoreMissing === true);
}

/**
 * Deletes every policy matching `filter` (for example all policies with one mark): one dump,
 * then pipelined deletes by index. Policies that vanish in between are not an error. An empty
 * filter is refused; use flushPolicies to remove everything.
 */
export async function deletePoliciesMatching(filter: XfrmPolicyFilter, opts: XfrmOptions = {}): Promise<number> {
  if (typeof filter !== 'object' || filter === null || Object.values(filter).every((v) => v === undefined)) {
    throw invalid('filter', filter, 'name at least one field to match (use flushPolicies() to delete every policy)');
  }
  const policies = (await listPolicies(filter, opts)).filter((p) => typeof p.dir === 'string');
  const ids = policies.map<WirePolicyId>((p) => ({
    selector: { src: '0.0.0.0', srcLen: 0, dst: '0.0.0.0', dstLen: 0 },
    dir: DIR_NUMBERS[p.dir as keyof typeof DIR_NUMBERS],
    index: p.index,
    ...(p.mark ? { mark: p.mark } : {}),
    ...(p.ifId !== null ? { ifId: p.ifId } : {}),
  }));
  if (ids.length === 0) return 0;
  return deleteWire(ids, opts, true);
}

/** Deletes every (main-type) policy. `ip xfrm policy flush` */
export async function flushPolicies(opts: XfrmOptions = {}): Promise<void> {
  await callNative('Cannot flush XFRM policies', () => xfrmNative().xfrmPoliciesFlush(nsOpts(opts)));
}

// ---------------------------------------------------------------------------------------------
// Encode-only and parse-only twins (same validation and C++ encoders; for byte-exact tests).

export function encodePolicies(policies: readonly XfrmPolicyConfig[], opts: { update?: boolean } = {}): Buffer[] {
  const packed = packPolicies(policies);
  return callNativeSync('Cannot encode XFRM policies', () => xfrmNative().encodeXfrmPolicies(packed.buffer, packed.count, opts.update === true));
}

export function encodePolicyIds(ids: readonly XfrmPolicyId[], kind: 'get' | 'delete'): Buffer[] {
  const wire = list(ids, 'ids', policyId);
  return callNativeSync('Cannot encode XFRM policy ids', () => xfrmNative().encodeXfrmPolicyIds(wire, kind));
}

export function encodePoliciesFlush(): Buffer[] {
  return callNativeSync('Cannot encode XFRM policy flush', () => xfrmNative().encodeXfrmPoliciesFlush());
}

export function encodePoliciesDump(): Buffer[] {
  return callNativeSync('Cannot encode XFRM policy dump', () => xfrmNative().encodeXfrmPoliciesDump());
}

/** Parses XFRM_MSG_NEWPOLICY messages (a dump or get reply) into policies. */
export function parsePolicies(buf: Buffer): XfrmPolicy[] {
  const raw = callNativeSync('Cannot parse XFRM policies', () => xfrmNative().parseXfrmPolicies(buf));
  return raw.map(decodePolicy);
}
