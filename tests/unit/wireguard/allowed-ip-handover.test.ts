import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { needsAllowedIpHandover, planAllowedIpHandover, type HandoverDeviceState } from '../../../agent/wireguard/allowed-ip-handover.js';
import type { WgDeviceConfig } from '../../../agent/wireguard/backend.js';
import { validateWgDeviceConfig } from '../../../agent/wireguard/keys.js';

const key = (fill: number): Buffer => Buffer.alloc(32, fill);
const THROWAWAY = key(0xee);
const fixedKey = () => Buffer.from(THROWAWAY);

function device(peers: [number, string[]][], publicKey: Buffer | null = null): HandoverDeviceState {
  return { publicKey, peers: peers.map(([k, allowedIps]) => ({ publicKey: key(k), allowedIps })) };
}

describe('needsAllowedIpHandover()', () => {
  it('is true only when a peer that stays asks to replace its allowed IPs, and never with replacePeers', () => {
    expect(needsAllowedIpHandover({})).toBe(false);
    expect(needsAllowedIpHandover({ peers: [{ publicKey: key(1), allowedIps: ['10.0.0.0/24'] }] })).toBe(false);
    expect(needsAllowedIpHandover({ peers: [{ publicKey: key(1), replaceAllowedIps: true, allowedIps: [] }] })).toBe(true);
    expect(needsAllowedIpHandover({ peers: [{ publicKey: key(1), replaceAllowedIps: true, remove: true }] })).toBe(false);
    expect(needsAllowedIpHandover({ replacePeers: true, peers: [{ publicKey: key(1), replaceAllowedIps: true }] })).toBe(false);
  });
});

describe('planAllowedIpHandover()', () => {
  it('adds the new set without the replace flag and retires only the CIDRs that leave the peer', () => {
    const config = validateWgDeviceConfig({
      peers: [{ publicKey: key(1), endpoint: '192.0.2.1:51820', replaceAllowedIps: true, allowedIps: ['10.0.2.0/24', '10.0.3.0/24'] }],
    });
    const plan = planAllowedIpHandover(device([[1, ['10.0.1.0/24', '10.0.2.0/24', 'fd00::/64']]]), config, fixedKey);
    expect(plan.config.peers).toEqual([
      { publicKey: key(1), endpoint: '192.0.2.1:51820', replaceAllowedIps: false, allowedIps: ['10.0.2.0/24', '10.0.3.0/24'] },
    ]);
    expect(plan.retire).toEqual({ publicKey: THROWAWAY, allowedIps: ['10.0.1.0/24', 'fd00::/64'] });
  });

  it('retires nothing when the new set keeps every current CIDR', () => {
    const config = validateWgDeviceConfig({ peers: [{ publicKey: key(1), replaceAllowedIps: true, allowedIps: ['10.0.1.0/24', '10.0.2.0/24'] }] });
    const plan = planAllowedIpHandover(device([[1, ['10.0.1.0/24']]]), config, fixedKey);
    expect(plan.retire).toBeNull();
    expect(plan.config.peers?.[0]?.replaceAllowedIps).toBe(false);
  });

  it('retires every current CIDR when the new set is empty or absent', () => {
    const config = validateWgDeviceConfig({ peers: [{ publicKey: key(1), replaceAllowedIps: true }] });
    const plan = planAllowedIpHandover(device([[1, ['10.0.1.0/24', 'fd00::/64']]]), config, fixedKey);
    expect(plan.config.peers).toEqual([{ publicKey: key(1), replaceAllowedIps: false, allowedIps: [] }]);
    expect(plan.retire?.allowedIps).toEqual(['10.0.1.0/24', 'fd00::/64']);
  });

  it('does not retire a CIDR the configuration moves to another peer (the move takes it away already)', () => {
    const config = validateWgDeviceConfig({
      peers: [
        { publicKey: key(1), replaceAllowedIps: true, allowedIps: ['10.0.2.0/24'] },
        { publicKey: key(2), allowedIps: ['10.0.1.0/24'] },
      ],
    });
    const plan = planAllowedIpHandover(device([[1, ['10.0.1.0/24', '10.0.2.0/24']]]), config, fixedKey);
    expect(plan.retire).toBeNull();
  });

  it('retires a CIDR given to an updateOnly peer that does not exist (the kernel ignores that peer)', () => {
    const config = validateWgDeviceConfig({
      peers: [
        { publicKey: key(5), updateOnly: true, allowedIps: ['10.0.9.0/24'] },
        { publicKey: key(3), replaceAllowedIps: true, allowedIps: [] },
      ],
    });
    const plan = planAllowedIpHandover(device([[3, ['10.0.9.0/24']]]), config, fixedKey);
    expect(plan.retire?.allowedIps).toEqual(['10.0.9.0/24']);
  });

  it('plans nothing to retire for a peer that does not exist yet, and drops its replace flag', () => {
    const config = validateWgDeviceConfig({ peers: [{ publicKey: key(3), replaceAllowedIps: true, allowedIps: ['10.0.3.0/24'] }] });
    const plan = planAllowedIpHandover(device([[1, ['10.0.1.0/24']]]), config, fixedKey);
    expect(plan.retire).toBeNull();
    expect(plan.config.peers).toEqual([{ publicKey: key(3), replaceAllowedIps: false, allowedIps: ['10.0.3.0/24'] }]);
  });

  it('leaves peers without the flag, removed peers and device settings untouched', () => {
    const config = validateWgDeviceConfig({
      listenPort: 51820,
      fwmark: 0x99,
      peers: [
        { publicKey: key(1), replaceAllowedIps: true, allowedIps: [] },
        { publicKey: key(2), remove: true },
        { publicKey: key(3), allowedIps: ['10.0.3.0/24'] },
      ],
    });
    const plan = planAllowedIpHandover(device([[1, ['10.0.1.0/24']], [2, ['10.0.2.0/24']]]), config, fixedKey);
    expect(plan.config.listenPort).toBe(51820);
    expect(plan.config.fwmark).toBe(0x99);
    expect(plan.config.peers?.[1]).toBe(config.peers?.[1]);
    expect(plan.config.peers?.[2]).toBe(config.peers?.[2]);
    expect(plan.retire?.allowedIps).toEqual(['10.0.1.0/24']); // 10.0.2.0/24 goes with its removed peer
  });

  it('compares CIDRs in canonical form, whatever spelling the read returned', () => {
    const config = validateWgDeviceConfig({ peers: [{ publicKey: key(1), replaceAllowedIps: true, allowedIps: ['fd00:0:0:0::/64'] }] });
    const plan = planAllowedIpHandover(device([[1, ['FD00::/64', '10.0.1.5/24']]]), config, fixedKey);
    expect(plan.retire?.allowedIps).toEqual(['10.0.1.0/24']);
  });

  it('never uses a key that is already a peer, in the device or the configuration, or the device\'s own', () => {
    const config = validateWgDeviceConfig({ peers: [{ publicKey: key(1), replaceAllowedIps: true, allowedIps: [] }, { publicKey: key(2) }] });
    const draws = [key(1), key(2), key(3), key(4)];
    const plan = planAllowedIpHandover(device([[1, ['10.0.1.0/24']]], key(3)), config, () => draws.shift()!);
    expect(plan.retire?.publicKey).toEqual(key(4));
    expect(() => planAllowedIpHandover(device([[1, ['10.0.1.0/24']]]), config, () => key(1))).toThrow(/throwaway WireGuard peer key/);
  });

  it('draws a random throwaway key by default', () => {
    const config = validateWgDeviceConfig({ peers: [{ publicKey: key(1), replaceAllowedIps: true, allowedIps: [] }] });
    const a = planAllowedIpHandover(device([[1, ['10.0.1.0/24']]]), config).retire!.publicKey;
    const b = planAllowedIpHandover(device([[1, ['10.0.1.0/24']]]), config).retire!.publicKey;
    expect(a).toHaveLength(32);
    expect(a.equals(b)).toBe(false);
  });

  /**
   * A model of a device's allowed-IP table (unique per device: CIDR -> peer) that applies a
   * configuration one CIDR at a time, as both implementations do, and calls `step` after each.
   */
  function apply(table: Map<string, string>, peersPresent: Set<string>, config: WgDeviceConfig, step: () => void): void {
    for (const p of config.peers ?? []) {
      const k = p.publicKey.toString('hex');
      const drop = () => {
        for (const [c, owner] of [...table]) if (owner === k) table.delete(c);
        step();
      };
      if (p.remove) {
        drop();
        peersPresent.delete(k);
        continue;
      }
      if (!peersPresent.has(k)) {
        if (p.updateOnly) continue;
        peersPresent.add(k);
      }
      if (p.replaceAllowedIps) drop();
      for (const c of p.allowedIps ?? []) {
        table.set(c, k);
        step();
      }
    }
  }

  it('property: the handover ends where an atomic replace would, and never uncovers a CIDR a peer keeps', () => {
    const cidrs = Array.from({ length: 12 }, (_, i) => `10.0.${i}.0/24`);
    const owners = fc.array(fc.option(fc.integer({ min: 1, max: 4 }), { nil: undefined }), { minLength: cidrs.length, maxLength: cidrs.length });
    const peerChange = fc.record({
      peer: fc.integer({ min: 1, max: 5 }),
      remove: fc.boolean(),
      updateOnly: fc.boolean(),
      replaceAllowedIps: fc.boolean(),
      allowedIps: fc.subarray(cidrs),
    });
    fc.assert(
      fc.property(owners, fc.array(peerChange, { maxLength: 5 }), (owned, changes) => {
        // The current device: peers 1..4 exist; CIDR i belongs to owned[i] if set.
        const current = device([1, 2, 3, 4].map((k) => [k, cidrs.filter((_, i) => owned[i] === k)]));
        // A valid configuration: each peer once, each CIDR given to at most one peer.
        const seenPeers = new Set<number>();
        const given = new Set<string>();
        const peers = changes
          .filter((c) => !seenPeers.has(c.peer) && seenPeers.add(c.peer))
          .map((c) => {
            const allowedIps = c.allowedIps.filter((x) => !given.has(x));
            allowedIps.forEach((x) => given.add(x));
            return { publicKey: key(c.peer), remove: c.remove, updateOnly: c.updateOnly, replaceAllowedIps: c.replaceAllowedIps, allowedIps };
          });
        const config = validateWgDeviceConfig({ peers });

        const start = () => {
          const table = new Map<string, string>();
          for (const p of current.peers) for (const c of p.allowedIps) table.set(c, p.publicKey.toString('hex'));
          return { table, present: new Set(current.peers.map((p) => p.publicKey.toString('hex'))) };
        };
        const want = start();
        apply(want.table, want.present, config, () => {});

        // CIDRs that stay with the same peer across the change must be covered at every step.
        const kept = [...want.table].filter(([c, k]) => start().table.get(c) === k);
        const got = start();
        const plan = planAllowedIpHandover(current, config, fixedKey);
        expect(plan.config.peers?.some((p) => p.replaceAllowedIps)).toBe(false);
        const check = () => {
          for (const [c, k] of kept) expect(got.table.get(c), `CIDR ${c} left peer ${k.slice(0, 2)} mid-change`).toBe(k);
        };
        const retirement: WgDeviceConfig = plan.retire
          ? { peers: [{ publicKey: plan.retire.publicKey, allowedIps: plan.retire.allowedIps }, { publicKey: plan.retire.publicKey, remove: true }] }
          : {};
        apply(got.table, got.present, plan.config, check);
        apply(got.table, got.present, retirement, check);
        expect(new Map([...got.table].sort())).toEqual(new Map([...want.table].sort()));
        expect(got.present).toEqual(want.present);
      }),
      { numRuns: 500 },
    );
  });
});
