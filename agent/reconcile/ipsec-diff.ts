/**
 * Diff between planned IPsec objects and what the kernel holds, by the kernel's own identity of
 * each object ((dst, SPI, mark) for states, (dir, selector, mark) for policies) and a signature
 * of everything else Veil sets. Pure: the kernel side is what adopt() read, kept up to date
 * after every change.
 *
 * A state's key cannot be read back, and does not need to be: its SPI is derived from every
 * input of the key (ipsec-sa-spi.ts), so a changed key always comes with a new SPI (a new
 * object). A state whose other attributes differ is replaced (delete, add); a policy is updated
 * in place (XFRM_MSG_UPDPOLICY replaces it atomically).
 */
import type { XfrmPolicy, XfrmPolicyConfig, XfrmPolicyId, XfrmState, XfrmStateConfig, XfrmStateId } from '../xfrm/types.js';
import { policyKey, stateKey, type PlannedPolicy, type PlannedState } from './ipsec-plan.js';

/** A kernel object as the diff sees it: its id, for deletes, and its signature. */
export interface KernelObject<Id> {
  id: Id;
  signature: string;
}

const markSig = (m: { value: number; mask?: number } | null | undefined): string =>
  m && (m.mask ?? 0xffffffff) !== 0 ? `${m.value >>> 0}/${(m.mask ?? 0xffffffff) >>> 0}` : '-';

export function plannedStateSignature(c: XfrmStateConfig): string {
  return JSON.stringify([
    c.src,
    c.reqid ?? 0,
    c.mode ?? 'tunnel',
    markSig(c.setMark),
    c.esn === true,
    c.replayWindow ?? 0,
    c.aead.algorithm,
    c.aead.key.length * 8,
    Number(c.lifetime?.softAddSeconds ?? 0),
    Number(c.lifetime?.hardAddSeconds ?? 0),
  ]);
}

export function kernelStateSignature(s: XfrmState): string {
  return JSON.stringify([
    s.src,
    s.reqid,
    s.mode,
    markSig(s.setMark),
    s.esn,
    s.replayWindow,
    s.aead?.algorithm ?? null,
    s.aead?.keyBits ?? 0,
    Number(s.lifetime.softAddSeconds),
    Number(s.lifetime.hardAddSeconds),
  ]);
}

export function kernelStateKey(s: XfrmState): string {
  return stateKey(s.dst, s.spi, s.mark);
}

export function kernelStateObject(s: XfrmState): KernelObject<XfrmStateId> {
  return { id: { dst: s.dst, spi: s.spi, ...(s.mark && s.mark.mask !== 0 ? { mark: { ...s.mark } } : {}) }, signature: kernelStateSignature(s) };
}

export function plannedStateObject(p: PlannedState): KernelObject<XfrmStateId> {
  const c = p.config;
  return { id: { dst: c.dst, spi: c.spi, ...(c.mark ? { mark: { value: c.mark.value, mask: c.mark.mask ?? 0xffffffff } } : {}) }, signature: plannedStateSignature(c) };
}

const tmplSig = (t: { src?: string | null; dst?: string | null; spi?: number; reqid?: number; mode?: string | number }) =>
  [t.src ?? null, t.dst ?? null, t.spi ?? 0, t.reqid ?? 0, t.mode ?? 'tunnel'];

export function plannedPolicySignature(c: XfrmPolicyConfig): string {
  return JSON.stringify([c.priority ?? 0, c.action ?? 'allow', (c.templates ?? []).map(tmplSig)]);
}

export function kernelPolicySignature(p: XfrmPolicy): string {
  return JSON.stringify([p.priority, p.action, p.templates.map(tmplSig)]);
}

export function kernelPolicyKey(p: XfrmPolicy): string {
  return policyKey(String(p.dir), p.selector.src ?? '', p.selector.srcLen, p.selector.dst ?? '', p.selector.dstLen, p.mark);
}

export function kernelPolicyObject(p: XfrmPolicy): KernelObject<XfrmPolicyId> {
  return {
    id: { dir: p.dir as 'in' | 'out' | 'fwd', index: p.index, ...(p.mark && p.mark.mask !== 0 ? { mark: { ...p.mark } } : {}) },
    signature: kernelPolicySignature(p),
  };
}

export function plannedPolicyObject(p: PlannedPolicy): KernelObject<XfrmPolicyId> {
  const c = p.config;
  return {
    id: { dir: c.dir, selector: c.selector, ...(c.mark ? { mark: { value: c.mark.value, mask: c.mark.mask ?? 0xffffffff } } : {}) },
    signature: plannedPolicySignature(c),
  };
}

export interface IpsecChanges {
  addStates: PlannedState[];
  /** States whose attributes differ: deleted, then added again. */
  replaceStates: { old: XfrmStateId; planned: PlannedState }[];
  deleteStates: { key: string; id: XfrmStateId }[];
  addPolicies: PlannedPolicy[];
  updatePolicies: PlannedPolicy[];
  deletePolicies: { key: string; id: XfrmPolicyId }[];
}

export function isEmpty(c: IpsecChanges): boolean {
  return Object.values(c).every((l: unknown[]) => l.length === 0);
}

/**
 * What turns `kernel` into `planned`, for the objects of one scope: `owned` are the keys this
 * scope had installed before (deleted when no longer planned); kernel objects outside the plan
 * and outside `owned` are left alone (another scope's, or stale ones for prune()).
 */
export function diffIpsec(
  planned: { states: readonly PlannedState[]; policies: readonly PlannedPolicy[] },
  kernel: { states: ReadonlyMap<string, KernelObject<XfrmStateId>>; policies: ReadonlyMap<string, KernelObject<XfrmPolicyId>> },
  owned: { states: Iterable<string>; policies: Iterable<string> },
): IpsecChanges {
  const out: IpsecChanges = { addStates: [], replaceStates: [], deleteStates: [], addPolicies: [], updatePolicies: [], deletePolicies: [] };
  const wantStates = new Set<string>();
  for (const p of planned.states) {
    if (wantStates.has(p.key)) continue;
    wantStates.add(p.key);
    const have = kernel.states.get(p.key);
    if (!have) out.addStates.push(p);
    else if (have.signature !== plannedStateSignature(p.config)) out.replaceStates.push({ old: have.id, planned: p });
  }
  const wantPolicies = new Set<string>();
  for (const p of planned.policies) {
    if (wantPolicies.has(p.key)) continue;
    wantPolicies.add(p.key);
    const have = kernel.policies.get(p.key);
    if (!have) out.addPolicies.push(p);
    else if (have.signature !== plannedPolicySignature(p.config)) out.updatePolicies.push(p);
  }
  for (const key of new Set(owned.states)) {
    const have = kernel.states.get(key);
    if (have && !wantStates.has(key)) out.deleteStates.push({ key, id: have.id });
  }
  for (const key of new Set(owned.policies)) {
    const have = kernel.policies.get(key);
    if (have && !wantPolicies.has(key)) out.deletePolicies.push({ key, id: have.id });
  }
  // Inbound before outbound: a peer may start using an SA as soon as ours exists.
  out.addStates.sort((a, b) => (a.direction === b.direction ? 0 : a.direction === 'in' ? -1 : 1));
  return out;
}
