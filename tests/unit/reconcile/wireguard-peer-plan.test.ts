import { describe, expect, it } from 'vitest';
import { NodeRecordError } from '../../../agent/keys/errors.js';
import { X25519PrivateKey } from '../../../agent/keys/x25519.js';
import { WireGuardReconcileError } from '../../../agent/reconcile/wireguard-errors.js';
import {
  applyToView,
  cidrsOverlap,
  findConflict,
  nodePeers,
  planNodeOnChannel,
  planPrune,
  type DeviceView,
} from '../../../agent/reconcile/wireguard-peer-plan.js';
import { sampleRecord } from '../keys/sample-record.js';

const settings = { port: 51870, persistentKeepalive: 0 };
const k1 = X25519PrivateKey.generate().publicKey;
const k2 = X25519PrivateKey.generate().publicKey;
const record = (over = {}) =>
  sampleRecord({
    name: 'node-b',
    keys: [{ kind: 'node', identity: 0, generation: 1, publicKey: k1.base64, state: 'active' }],
    ...over,
  });

function thrown(fn: () => unknown): Error {
  try {
    fn();
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected a throw');
}

describe('nodePeers()', () => {
  it('gives each channel the node key, the channel port on its first address and the pod CIDRs of both families', () => {
    const p = nodePeers(record(), undefined, settings);
    expect(p.state).toEqual({ generations: [1, 1], draining: null });
    expect(p.podCidrs).toEqual(['10.244.1.0/24', 'fd00:244:1::/64']);
    expect(p.channels.map((c) => [c.publicKey.equals(k1.raw), c.generation, c.endpoint, c.allowedIps])).toEqual([
      [true, 1, '192.0.2.10:51870', ['10.244.1.0/24', 'fd00:244:1::/64']],
      [true, 1, '192.0.2.10:51871', ['10.244.1.0/24', 'fd00:244:1::/64']],
    ]);
  });

  it('uses an IPv6 underlay address when asked, bracketed', () => {
    const p = nodePeers(record(), undefined, { ...settings, underlayFamily: 6 });
    expect(p.channels[1].endpoint).toBe('[2001:db8::a]:51871');
  });

  it('installs per channel the generation the channel state names', () => {
    const r = record({
      keys: [
        { kind: 'node', identity: 0, generation: 1, publicKey: k1.base64, state: 'active' },
        { kind: 'node', identity: 0, generation: 2, publicKey: k2.base64, state: 'pending' },
      ],
    });
    const p = nodePeers(r, { generations: [1, 2], draining: 1 }, settings);
    expect(p.channels[0].publicKey.equals(k1.raw)).toBe(true);
    expect(p.channels[1].publicKey.equals(k2.raw)).toBe(true);
  });

  it('refuses two node key generations without a channel state', () => {
    const r = record({
      keys: [
        { kind: 'node', identity: 0, generation: 1, publicKey: k1.base64, state: 'active' },
        { kind: 'node', identity: 0, generation: 2, publicKey: k2.base64, state: 'pending' },
      ],
    });
    const err = thrown(() => nodePeers(r, undefined, settings));
    expect(err).toBeInstanceOf(WireGuardReconcileError);
    expect(err.message).toContain('generations 1, 2 but no WireGuard channel state');
  });

  it('refuses a channel state naming a generation the record lacks', () => {
    const err = thrown(() => nodePeers(record(), { generations: [1, 2], draining: 1 }, settings));
    expect((err as WireGuardReconcileError).code).toBe('VEIL_WG_BAD_RECORD');
    expect(err.message).toContain('channel 1 carries node key generation 2');
  });

  it('refuses a key of the wrong length as a malformed record', () => {
    const short = Buffer.alloc(31, 7).toString('base64');
    const err = thrown(() => nodePeers(record({ keys: [{ kind: 'node', identity: 0, generation: 1, publicKey: short, state: 'active' }] }), undefined, settings));
    expect(err).toBeInstanceOf(NodeRecordError);
    expect(err.message).toContain('32-byte X25519 public key');
  });

  it('refuses a record without an address of the wanted family', () => {
    const err = thrown(() => nodePeers(record({ addresses: ['192.0.2.10'] }), undefined, { ...settings, underlayFamily: 6 }));
    expect(err.message).toContain('no IPv6 underlay address');
  });
});

describe('cidrsOverlap()', () => {
  it.each([
    ['10.0.0.0/8', '10.1.2.0/24', true],
    ['10.1.2.0/24', '10.1.3.0/24', false],
    ['10.1.2.0/24', '10.1.2.0/24', true],
    ['fd00::/64', 'fd00::1/128', true],
    ['fd00::/64', 'fd00:0:0:1::/64', false],
    ['0.0.0.0/0', '::/0', false],
  ])('%s and %s: %s', (a, b, want) => {
    expect(cidrsOverlap(a, b)).toBe(want);
    expect(cidrsOverlap(b, a)).toBe(want);
  });
});

describe('findConflict()', () => {
  const b = nodePeers(record(), undefined, settings);
  it('refuses pod CIDRs overlapping another node\'s', () => {
    const c = nodePeers(record({ name: 'node-c', podCidrs: ['10.244.0.0/16'], keys: [{ kind: 'node', identity: 0, generation: 1, publicKey: k2.base64, state: 'active' }] }), undefined, settings);
    const err = findConflict(c, [b], []);
    expect(err?.code).toBe('VEIL_WG_CONFLICT');
    expect(err?.message).toContain('pod CIDR "10.244.0.0/16" overlaps pod CIDR "10.244.1.0/24" of node "node-b"');
  });
  it('refuses pod CIDRs overlapping the local node\'s', () => {
    expect(findConflict(b, [], ['10.244.1.128/25'])?.message).toContain('overlaps this node\'s own pod CIDR');
  });
  it('refuses a public key another node has', () => {
    const c = nodePeers(record({ name: 'node-c', podCidrs: ['10.244.2.0/24'] }), undefined, settings);
    expect(findConflict(c, [b], [])?.message).toContain('is already node "node-b"\'s');
  });
  it('accepts the node itself and disjoint nodes', () => {
    const c = nodePeers(record({ name: 'node-c', podCidrs: ['10.244.2.0/24'], keys: [{ kind: 'node', identity: 0, generation: 1, publicKey: k2.base64, state: 'active' }] }), undefined, settings);
    expect(findConflict(b, [b, c], ['10.244.3.0/24'])).toBeNull();
  });
});

describe('planNodeOnChannel()', () => {
  const want = nodePeers(record(), undefined, settings).channels[0];
  const view = (...peers: { publicKey: Buffer; endpoint?: string; allowedIps: string[]; persistentKeepalive?: number }[]): DeviceView =>
    new Map(peers.map((p) => [p.publicKey.toString('hex'), { endpoint: null, persistentKeepalive: 0, ...p }]));

  it('adds a missing peer with everything', () => {
    expect(planNodeOnChannel(new Map(), want, [], new Set())).toEqual([
      { publicKey: want.publicKey, endpoint: '192.0.2.10:51870', persistentKeepalive: 0, allowedIps: want.allowedIps },
    ]);
  });

  it('changes nothing when the device already matches (adoption)', () => {
    const v = view({ publicKey: k1.raw, endpoint: want.endpoint, allowedIps: [...want.allowedIps].reverse() });
    expect(planNodeOnChannel(v, want, [k1.raw.toString('hex')], new Set())).toEqual([]);
  });

  it('hands AllowedIPs over without a gap and sets only what differs', () => {
    const v = view({ publicKey: k1.raw, endpoint: want.endpoint, allowedIps: ['10.244.1.0/24'], persistentKeepalive: 25 });
    expect(planNodeOnChannel(v, want, [], new Set())).toEqual([
      { publicKey: k1.raw, updateOnly: true, persistentKeepalive: 0, allowedIps: want.allowedIps, replaceAllowedIps: true },
    ]);
  });

  it('replaces a changed key by adding the new peer before removing the old one', () => {
    const v = view({ publicKey: k2.raw, endpoint: want.endpoint, allowedIps: want.allowedIps });
    const plan = planNodeOnChannel(v, want, [k2.raw.toString('hex')], new Set());
    expect(plan.map((c) => [c.publicKey.equals(k1.raw) ? 'new' : 'old', c.remove === true])).toEqual([
      ['new', false],
      ['old', true],
    ]);
  });

  it('removes an unowned stale peer holding the node\'s CIDRs (seen after a restart) but never another node\'s', () => {
    const other = X25519PrivateKey.generate().publicKey.raw;
    const v = view({ publicKey: k2.raw, allowedIps: ['10.244.1.0/25'] }, { publicKey: other, allowedIps: ['10.244.9.0/24'] });
    const plan = planNodeOnChannel(v, want, [], new Set([other.toString('hex')]));
    expect(plan.filter((c) => c.remove).map((c) => c.publicKey)).toEqual([k2.raw]);
  });

  it('removes the node\'s peers when it has none any more', () => {
    const v = view({ publicKey: k1.raw, allowedIps: want.allowedIps });
    expect(planNodeOnChannel(v, null, [k1.raw.toString('hex')], new Set())).toEqual([{ publicKey: k1.raw, remove: true }]);
  });
});

describe('planPrune() and applyToView()', () => {
  it('prunes unclaimed peers only', () => {
    const v: DeviceView = new Map([
      [k1.raw.toString('hex'), { publicKey: k1.raw, endpoint: null, persistentKeepalive: 0, allowedIps: [] }],
      [k2.raw.toString('hex'), { publicKey: k2.raw, endpoint: null, persistentKeepalive: 0, allowedIps: [] }],
    ]);
    expect(planPrune(v, new Set([k1.raw.toString('hex')]))).toEqual([{ publicKey: k2.raw, remove: true }]);
  });

  it('keeps the view equal to what the device does: CIDRs move to the peer that gets them', () => {
    const v: DeviceView = new Map([[k2.raw.toString('hex'), { publicKey: k2.raw, endpoint: null, persistentKeepalive: 0, allowedIps: ['10.1.0.0/24', '10.2.0.0/24'] }]]);
    applyToView(v, [{ publicKey: k1.raw, endpoint: '192.0.2.1:1', allowedIps: ['10.1.0.0/24'] }]);
    expect(v.get(k2.raw.toString('hex'))?.allowedIps).toEqual(['10.2.0.0/24']);
    expect(v.get(k1.raw.toString('hex'))).toMatchObject({ endpoint: '192.0.2.1:1', allowedIps: ['10.1.0.0/24'] });
    applyToView(v, [{ publicKey: k1.raw, updateOnly: true, allowedIps: ['10.3.0.0/24'], replaceAllowedIps: true }, { publicKey: k2.raw, remove: true }]);
    expect([...v.values()].map((p) => p.allowedIps)).toEqual([['10.3.0.0/24']]);
  });
});
