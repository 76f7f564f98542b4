import { describe, expect, it } from 'vitest';
import { SpiAllocator } from '../../../agent/keys/spi.js';
import {
  diffIpsec,
  isEmpty,
  kernelPolicyKey,
  kernelPolicySignature,
  kernelStateKey,
  kernelStateSignature,
  plannedPolicyObject,
  plannedPolicySignature,
  plannedStateObject,
  plannedStateSignature,
  type KernelObject,
} from '../../../agent/reconcile/ipsec-diff.js';
import { resolveIpsecOptions } from '../../../agent/reconcile/ipsec-desired.js';
import { planNode, type NodePlan } from '../../../agent/reconcile/ipsec-plan.js';
import type { XfrmPolicy, XfrmPolicyId, XfrmState, XfrmStateId } from '../../../agent/xfrm/types.js';
import { BOOT_B, localNode, recordOf, twoNodes } from '../../support/ipsec-nodes.js';

const opts = resolveIpsecOptions();

function kernelOf(p: NodePlan) {
  return {
    states: new Map<string, KernelObject<XfrmStateId>>(p.states.map((s) => [s.key, plannedStateObject(s)])),
    policies: new Map<string, KernelObject<XfrmPolicyId>>(p.policies.map((x) => [x.key, plannedPolicyObject(x)])),
  };
}
const ownedOf = (p: NodePlan) => ({ states: p.states.map((s) => s.key), policies: p.policies.map((x) => x.key) });

describe('IPsec diff', () => {
  const { a, b } = twoNodes();
  const table = new SpiAllocator();
  const p = planNode(a, recordOf(b), opts, (r) => table.allocate(r));

  it('adds everything to an empty kernel, inbound states before outbound ones', () => {
    const c = diffIpsec(p, { states: new Map(), policies: new Map() }, { states: [], policies: [] });
    expect(c.addStates).toHaveLength(p.states.length);
    expect(c.addStates.map((s) => s.direction)).toEqual(['in', 'out', 'out']);
    expect(c.addPolicies).toHaveLength(p.policies.length);
    expect([c.replaceStates, c.deleteStates, c.updatePolicies, c.deletePolicies]).toEqual([[], [], [], []]);
  });

  it('changes nothing when the kernel already holds the plan (restart adoption)', () => {
    expect(isEmpty(diffIpsec(p, kernelOf(p), ownedOf(p)))).toBe(true);
    // Adopted but not yet claimed by this scope: still nothing to do.
    expect(isEmpty(diffIpsec(p, kernelOf(p), { states: [], policies: [] }))).toBe(true);
  });

  it('removes only what this scope owned and no longer plans, and leaves others alone', () => {
    const kernel = kernelOf(p);
    const foreign = { id: { dst: '192.0.2.9', spi: 0x999 }, signature: '[]' };
    kernel.states.set('192.0.2.9|2457|-', foreign);
    const shrunk = { states: p.states.filter((s) => s.identity !== 301), policies: p.policies.filter((x) => !x.config.mark || (x.config.mark.value >>> 16) !== 301) };
    const c = diffIpsec(shrunk, kernel, ownedOf(p));
    expect(c.deleteStates.map((d) => d.key)).toEqual(p.states.filter((s) => s.identity === 301).map((s) => s.key));
    expect(c.deletePolicies).toHaveLength(1);
    expect(c.addStates).toEqual([]);
    expect(c.deleteStates.some((d) => d.id.dst === '192.0.2.9')).toBe(false);
  });

  it('replaces a state whose attributes differ and updates a policy in place', () => {
    const kernel = kernelOf(p);
    const s0 = p.states[0]!;
    kernel.states.set(s0.key, { ...kernel.states.get(s0.key)!, signature: plannedStateSignature({ ...s0.config, replayWindow: 32 }) });
    const p0 = p.policies[0]!;
    kernel.policies.set(p0.key, { ...kernel.policies.get(p0.key)!, signature: plannedPolicySignature({ ...p0.config, priority: 7 }) });
    const c = diffIpsec(p, kernel, ownedOf(p));
    expect(c.replaceStates.map((r) => r.planned.key)).toEqual([s0.key]);
    expect(c.replaceStates[0]!.old).toEqual(plannedStateObject(s0).id);
    expect(c.updatePolicies.map((x) => x.key)).toEqual([p0.key]);
    expect([c.addStates, c.deleteStates, c.addPolicies, c.deletePolicies]).toEqual([[], [], [], []]);
  });

  it('adds the new generation and deletes nothing while both generations are held (make-before-break)', () => {
    const x = a.identities[0]!;
    const rotated = { ...a, identities: [{ ...x, generations: [...x.generations, { generation: 2, privateKey: localNode('n', BOOT_B, ['192.0.2.9'], [], {}).nodeKey.generations[0]!.privateKey }] }, a.identities[1]!] };
    const q = planNode(rotated, recordOf(b), opts, (r) => table.allocate(r));
    const c = diffIpsec(q, kernelOf(p), ownedOf(p));
    expect(c.addStates.map((s) => [s.direction, s.identity, s.senderGeneration])).toEqual([['out', 300, 2]]);
    expect(c.addPolicies).toHaveLength(1);
    expect([c.deleteStates, c.deletePolicies, c.replaceStates, c.updatePolicies]).toEqual([[], [], [], []]);
    // Retiring generation 1 afterwards removes exactly its SA and policy.
    const retired = { ...rotated, identities: [{ ...rotated.identities[0]!, generations: rotated.identities[0]!.generations.slice(1) }, a.identities[1]!] };
    const r = planNode(retired, recordOf(b), opts, (req) => table.allocate(req));
    const c2 = diffIpsec(r, kernelOf(q), ownedOf(q));
    expect(c2.deleteStates.map((d) => d.key)).toEqual(p.states.filter((s) => s.identity === 300 && s.direction === 'out').map((s) => s.key));
    expect(c2.deletePolicies).toHaveLength(1);
    expect(c2.addStates).toEqual([]);
  });

  it("reads the kernel's objects into the same keys and signatures as the plan's", () => {
    const s = p.states.find((x) => x.direction === 'in')!;
    const kernelState = {
      family: 4,
      src: s.config.src,
      dst: s.config.dst,
      spi: s.config.spi,
      proto: 'esp',
      mode: 'tunnel',
      reqid: opts.reqid,
      mark: null,
      setMark: { value: s.config.setMark!.value, mask: s.config.setMark!.mask! },
      ifId: null,
      replayWindow: 128,
      esn: true,
      flags: 0,
      aead: { algorithm: 'rfc4106(gcm(aes))', keyBits: 288, icvBits: 128 },
      crypt: null,
      auth: null,
      lifetime: { softAddSeconds: 518400n, hardAddSeconds: 604800n, softBytes: 0n, hardBytes: 0n, softPackets: 0n, hardPackets: 0n, softUseSeconds: 0n, hardUseSeconds: 0n },
    } as unknown as XfrmState;
    expect(kernelStateKey(kernelState)).toBe(s.key);
    expect(kernelStateSignature(kernelState)).toBe(plannedStateSignature(s.config));
    const pol = p.policies.find((x) => x.config.dir === 'out')!;
    const kernelPolicy = {
      dir: 'out',
      selector: { family: 4, src: '0.0.0.0', srcLen: 0, dst: '10.244.2.0', dstLen: 24 },
      priority: 100,
      action: 'allow',
      index: 8,
      mark: { ...pol.config.mark! },
      ifId: null,
      templates: [{ family: 4, src: '192.0.2.1', dst: '192.0.2.2', proto: 'esp', spi: pol.config.templates![0]!.spi, reqid: opts.reqid, mode: 'tunnel', optional: false }],
    } as unknown as XfrmPolicy;
    expect(kernelPolicyKey(kernelPolicy)).toBe(pol.key);
    expect(kernelPolicySignature(kernelPolicy)).toBe(plannedPolicySignature(pol.config));
    const inPol = p.policies.find((x) => x.config.dir === 'in')!;
    expect(kernelPolicyKey({ ...kernelPolicy, dir: 'in', mark: null, selector: { ...kernelPolicy.selector, src: '10.244.2.0', srcLen: 24, dst: '10.244.1.0', dstLen: 24 } })).toBe(inPol.key);
  });
});
