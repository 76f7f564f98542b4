import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../../agent/errors.js';
import { SpiAllocator, spiCandidate } from '../../../agent/keys/spi.js';
import { resolveIpsecOptions, validateLocalNode, type IpsecOptions, type LocalIpsecNode } from '../../../agent/reconcile/ipsec-desired.js';
import { decryptedMark, encryptMark, keySlot } from '../../../agent/reconcile/ipsec-marks.js';
import { blockPolicies, planNode, type NodePlan, type PlannedState } from '../../../agent/reconcile/ipsec-plan.js';
import { BOOT_B, localNode, recordOf, twoNodes } from '../../support/ipsec-nodes.js';

const opts = resolveIpsecOptions();

function plan(local: LocalIpsecNode, remote: LocalIpsecNode, o: IpsecOptions = opts, table = new SpiAllocator()): NodePlan {
  return planNode(local, recordOf(remote), o, (r) => table.allocate(r));
}

const outOf = (p: NodePlan) => p.states.filter((s) => s.direction === 'out');
const inOf = (p: NodePlan) => p.states.filter((s) => s.direction === 'in');

/** The receiver's inbound state for a sender's outbound state (same SPI and identity). */
function peerOf(out: PlannedState, receiverPlan: NodePlan): PlannedState | undefined {
  return inOf(receiverPlan).find((s) => s.config.spi === out.config.spi && s.identity === out.identity);
}

describe('IPsec plan, per-identity SAs', () => {
  const { a, b } = twoNodes();
  const ab = plan(a, b);
  const ba = plan(b, a);

  it("has one outbound SA per local identity and one inbound SA per remote identity", () => {
    expect(outOf(ab).map((s) => s.identity).sort()).toEqual([300, 301]);
    expect(inOf(ab).map((s) => s.identity)).toEqual([400]);
    expect(outOf(ba).map((s) => s.identity)).toEqual([400]);
    expect(inOf(ba).map((s) => s.identity).sort()).toEqual([300, 301]);
  });

  it("makes each outbound SA equal to the receiver's inbound SA: SPI, key, ends, and the sender's identity in the set-mark", () => {
    for (const [sender, receiver] of [
      [ab, ba],
      [ba, ab],
    ] as const) {
      for (const out of outOf(sender)) {
        const inn = peerOf(out, receiver);
        expect(inn, `inbound SA for identity ${out.identity}`).toBeDefined();
        expect(inn!.config.aead.key.equals(out.config.aead.key)).toBe(true);
        expect(inn!.config.aead.key).toHaveLength(36);
        // One SA seen from its two ends: the same tunnel endpoints.
        expect({ src: inn!.config.src, dst: inn!.config.dst }).toEqual({ src: out.config.src, dst: out.config.dst });
        expect(out.config.mark).toEqual(encryptMark(out.identity, out.slot));
        expect(inn!.config.setMark).toEqual(decryptedMark(out.identity, out.slot));
        expect(inn!.config.mark).toBeUndefined();
        expect(inn!.slot).toBe(out.slot);
        for (const s of [out, inn!]) {
          expect(s.config).toMatchObject({ mode: 'tunnel', esn: true, replayWindow: 128, reqid: opts.reqid, lifetime: { softAddSeconds: 518400, hardAddSeconds: 604800 } });
        }
      }
    }
    // Different identities never share a key or an SPI.
    const [x, y] = outOf(ab);
    expect(x!.config.aead.key.equals(y!.config.aead.key)).toBe(false);
    expect(x!.config.spi).not.toBe(y!.config.spi);
  });

  it('selects each outbound SA by its encrypt mark to the remote pod CIDR, and requires ESP from the remote pods', () => {
    const out = ab.policies.filter((p) => p.config.dir === 'out');
    expect(out.map((p) => p.config)).toEqual(
      outOf(ab).map((s) => ({
        dir: 'out',
        selector: { src: '0.0.0.0/0', dst: '10.244.2.0/24' },
        mark: s.config.mark,
        priority: 100,
        templates: [{ src: '192.0.2.1', dst: '192.0.2.2', proto: 'esp', spi: s.config.spi, reqid: opts.reqid, mode: 'tunnel' }],
      })),
    );
    const inbound = ab.policies.filter((p) => p.config.dir !== 'out').map((p) => p.config);
    expect(inbound).toEqual(
      (['in', 'fwd'] as const).map((dir) => ({
        dir,
        selector: { src: '10.244.2.0/24', dst: '10.244.1.0/24' },
        priority: 100,
        templates: [{ src: '192.0.2.2', dst: '192.0.2.1', proto: 'esp', reqid: opts.reqid, mode: 'tunnel' }],
      })),
    );
    expect(new Set(ab.policies.map((p) => p.key)).size).toBe(ab.policies.length);
  });

  it('blocks anything with the encrypt mark at the lowest priority, per family', () => {
    expect(blockPolicies(opts).map((p) => p.config)).toEqual([
      { dir: 'out', selector: { src: '0.0.0.0/0', dst: '0.0.0.0/0' }, mark: { value: 0xe00, mask: 0xf00 }, priority: 0x7fffffff, action: 'block' },
      { dir: 'out', selector: { src: '::/0', dst: '::/0' }, mark: { value: 0xe00, mask: 0xf00 }, priority: 0x7fffffff, action: 'block' },
    ]);
  });

  it('is deterministic: planning again gives the same objects', () => {
    const again = plan(a, b);
    expect(again.states.map((s) => [s.key, s.config.aead.key.toString('hex')])).toEqual(ab.states.map((s) => [s.key, s.config.aead.key.toString('hex')]));
    expect(again.policies.map((p) => p.key)).toEqual(ab.policies.map((p) => p.key));
  });
});

describe('IPsec plan, per-node-pair SAs', () => {
  it('has one SA each way between node keys, identity 0 in the marks', () => {
    const { a, b } = twoNodes();
    const o = resolveIpsecOptions({ granularity: 'node-pair' });
    const ab = plan(a, b, o);
    const ba = plan(b, a, o);
    expect(ab.states.map((s) => [s.direction, s.identity])).toEqual([
      ['out', 0],
      ['in', 0],
    ]);
    const out = outOf(ab)[0]!;
    expect(out.config.mark).toEqual(encryptMark(0, keySlot(1, 1)));
    const inn = peerOf(out, ba)!;
    expect(inn.config.aead.key.equals(out.config.aead.key)).toBe(true);
    // Direction matters even though the X25519 secret is symmetric.
    expect(outOf(ba)[0]!.config.aead.key.equals(out.config.aead.key)).toBe(false);
    expect(ab.sendingSlots).toEqual([{ identity: 0, family: 4, slot: keySlot(1, 1) }]);
  });
});

describe('IPsec plan during rotations', () => {
  it('installs SAs for a new identity key before it sends, in another slot and under another SPI', () => {
    const { a, b } = twoNodes();
    const before = plan(a, b);
    const x = a.identities[0]!;
    x.generations.push({ generation: 2, privateKey: localNode('n', BOOT_B, ['192.0.2.9'], [], {}).nodeKey.generations[0]!.privateKey });
    x.sending = 1;
    const during = plan(a, b);
    const xs = outOf(during).filter((s) => s.identity === x.identity);
    expect(xs.map((s) => s.senderGeneration)).toEqual([1, 2]);
    expect(new Set(xs.map((s) => s.slot)).size).toBe(2);
    expect(new Set(xs.map((s) => s.config.spi)).size).toBe(2);
    // Generation 1's SA is unchanged: same object, same key.
    const old = outOf(before).find((s) => s.identity === x.identity)!;
    expect(xs[0]!.key).toBe(old.key);
    expect(xs[0]!.config.aead.key.equals(old.config.aead.key)).toBe(true);
    expect(during.sendingSlots.find((s) => s.identity === x.identity)!.slot).toBe(keySlot(1, 1));
    // The receiver installs an inbound SA for each published generation.
    const bSide = plan(b, a);
    expect(inOf(bSide).filter((s) => s.identity === x.identity).map((s) => s.senderGeneration)).toEqual([1, 2]);
    for (const s of xs) expect(peerOf(s, bSide)!.config.aead.key.equals(s.config.aead.key)).toBe(true);
    // Switching the sending generation moves the slot only.
    x.sending = 2;
    const after = plan(a, b);
    expect(after.sendingSlots.find((s) => s.identity === x.identity)!.slot).toBe(keySlot(2, 1));
    expect(after.states.map((s) => s.key)).toEqual(during.states.map((s) => s.key));
  });

  it("sends with the receiver's newest node key and keeps SAs for every published one", () => {
    const { a, b } = twoNodes();
    b.nodeKey.generations.push({ generation: 2, privateKey: localNode('n', BOOT_B, ['192.0.2.9'], [], {}).nodeKey.generations[0]!.privateKey });
    const ab = plan(a, b);
    expect(outOf(ab).filter((s) => s.identity === 300).map((s) => s.receiverGeneration)).toEqual([1, 2]);
    expect(ab.sendingSlots.find((s) => s.identity === 300)!.slot).toBe(keySlot(1, 2));
    const ba = plan(b, a);
    expect(inOf(ba).filter((s) => s.identity === 300).map((s) => s.receiverGeneration)).toEqual([1, 2]);
  });

  it('changes every SPI and key after a reboot of either end (new boot id)', () => {
    const { a, b } = twoNodes();
    const before = plan(a, b);
    const rebooted = { ...b, bootId: '2b3c4d5e-6f70-4182-93a4-b5c6d7e8f901' };
    const after = plan(a, rebooted);
    for (const s of after.states) {
      const same = before.states.find((o) => o.config.spi === s.config.spi);
      expect(same).toBeUndefined();
    }
    expect(after.states.some((s) => before.states.some((o) => o.config.aead.key.equals(s.config.aead.key)))).toBe(false);
  });
});

describe('IPsec plan, families and SPI collisions', () => {
  it('plans one set of SAs per family both nodes have an underlay address and pod CIDRs in', () => {
    const a = localNode('node-a', BOOT_B, ['192.0.2.1', '2001:db8::1'], ['10.244.1.0/24', 'fd00:1::/64'], { 300: [1] });
    const b = localNode('node-b', BOOT_B, ['192.0.2.2', '2001:db8::2'], ['10.244.2.0/24', 'fd00:2::/64'], { 400: [1] });
    const p = plan(a, b);
    expect(p.states.map((s) => [s.direction, s.family, s.config.dst])).toEqual([
      ['out', 4, '192.0.2.2'],
      ['in', 4, '192.0.2.1'],
      ['out', 6, '2001:db8::2'],
      ['in', 6, '2001:db8::1'],
    ]);
    expect(p.policies.filter((x) => x.config.dir === 'out').map((x) => x.config.selector)).toEqual([
      { src: '0.0.0.0/0', dst: '10.244.2.0/24' },
      { src: '::/0', dst: 'fd00:2::/64' },
    ]);
    // No IPv6 underlay on one side: no IPv6 SAs, and the IPv6 pod CIDR gets no policy.
    const v4only = plan({ ...a, addresses: ['192.0.2.1'] }, b);
    expect(v4only.states.every((s) => s.family === 4)).toBe(true);
    expect(v4only.policies.some((x) => x.config.selector.dst.includes(':'))).toBe(false);
  });

  it('reports an inbound SPI that collided in the receiver table', () => {
    const { a, b } = twoNodes();
    const clean = plan(b, a);
    const first = inOf(clean)[0]!;
    const table = new SpiAllocator();
    table.reserve(first.config.spi);
    const p = plan(b, a, opts, table);
    const moved = inOf(p).find((s) => s.identity === first.identity)!;
    expect(moved.config.spi).toBe(first.config.spi + 1);
    expect(moved.spiCollision).toEqual({ candidate: first.config.spi });
    expect(inOf(p).filter((s) => s.spiCollision)).toHaveLength(1);
    expect(spiCandidate({ senderIdentity: 0, senderNode: 'x', generation: 0, direction: 'in' })).toBeGreaterThan(255);
  });

  it('plans nothing for a node without a node key or without pod CIDRs', () => {
    const { a, b } = twoNodes();
    expect(plan(a, { ...b, podCidrs: [] }).states).toEqual([]);
    const rec = recordOf(b);
    expect(planNode(a, { ...rec, keys: rec.keys.filter((k) => k.kind !== 'node') }, opts, () => 300).states).toEqual([]);
  });
});

describe('IPsec desired state validation', () => {
  it('refuses more than three generations of a key, a sending generation it does not hold, and a block priority above the SAs', () => {
    const a = localNode('node-a', BOOT_B, ['192.0.2.1'], ['10.244.1.0/24'], { 300: [1, 2, 3, 4] });
    expect(() => validateLocalNode(a)).toThrow('local.identities[0] holds 4 generations: at most 3 may coexist (key slots tell 4 apart); retire old generations first');
    const b = localNode('node-a', BOOT_B, ['192.0.2.1'], ['10.244.1.0/24'], { 300: [1] });
    b.identities[0]!.sending = 2;
    expect(() => validateLocalNode(b)).toThrow(ValidationError);
    expect(() => validateLocalNode({ ...b, identities: [], addresses: ['192.000.2.1'] })).toThrow(ValidationError);
    expect(() => resolveIpsecOptions({ priority: 10, blockPriority: 10 })).toThrow(/lower priority\) than priority 10/);
    expect(() => resolveIpsecOptions({ granularity: 'pod' as never })).toThrow('Invalid granularity "pod": use "identity" or "node-pair"');
  });
});
