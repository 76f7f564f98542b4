import { describe, expect, it } from 'vitest';
import {
  chooseDrainChannel,
  steadyChannelState,
  steeringChannel,
  validateChannelState,
  type WireGuardChannelState,
} from '../../../agent/reconcile/wireguard-channel-state.js';
import { WireGuardReconcileError } from '../../../agent/reconcile/wireguard-errors.js';
import { localRotationPhase } from '../../../agent/reconcile/wireguard-local-rotation.js';

describe('steeringChannel()', () => {
  const steady = steadyChannelState(4);

  it('uses channel 0 when both sides are steady', () => {
    expect(steeringChannel(steady, steady)).toBe(0);
  });

  it('never steers onto a channel the remote drains', () => {
    expect(steeringChannel(steady, { generations: [5, 4], draining: 0 })).toBe(1);
    expect(steeringChannel(steady, { generations: [4, 5], draining: 1 })).toBe(0);
  });

  it('never steers onto a channel the local node drains', () => {
    expect(steeringChannel({ generations: [5, 4], draining: 0 }, steady)).toBe(1);
    expect(steeringChannel({ generations: [4, 5], draining: 1 }, steady)).toBe(0);
  });

  it('first chooses the channel carrying the remote node\'s newer key', () => {
    expect(steeringChannel(steady, { generations: [4, 5], draining: null })).toBe(1);
    expect(steeringChannel(steady, { generations: [5, 4], draining: null })).toBe(0);
  });

  it('stays on the current channel while it is usable', () => {
    expect(steeringChannel(steady, { generations: [4, 5], draining: null }, 0)).toBe(0);
    expect(steeringChannel(steady, steady, 1)).toBe(1);
    expect(steeringChannel(steady, { generations: [5, 5], draining: 1 }, 1)).toBe(0);
  });

  it('moves the rotating node first: its own newer channel wins over the current one', () => {
    expect(steeringChannel({ generations: [4, 5], draining: null }, steady, 0)).toBe(1);
  });

  it('returns null when the two sides drain opposite channels', () => {
    expect(steeringChannel({ generations: [5, 4], draining: 0 }, { generations: [4, 5], draining: 1 })).toBeNull();
  });

  /** Feeds each state in turn, with the channel chosen before as the current one. */
  function walk(pairs: [WireGuardChannelState, WireGuardChannelState][]): (0 | 1 | null)[] {
    let current: 0 | 1 | null = null;
    return pairs.map(([l, r]) => (current = steeringChannel(l, r, current)));
  }
  const rotation: WireGuardChannelState[] = [
    steadyChannelState(4),
    { generations: [4, 5], draining: 1 },
    { generations: [4, 5], draining: null },
    { generations: [5, 5], draining: 0 },
    steadyChannelState(5),
  ];

  it('a peer of a rotating node moves once, when the old channel drains: 0, 0, 0, 1, 1', () => {
    expect(walk(rotation.map((r) => [steady, r]))).toEqual([0, 0, 0, 1, 1]);
  });

  it('the rotating node moves once, when it activates the new key: 0, 0, 1, 1, 1', () => {
    expect(walk(rotation.map((l) => [l, steady]))).toEqual([0, 0, 1, 1, 1]);
  });

  it('the next rotation drains the channel nobody uses and moves everyone to the other once', () => {
    const next: WireGuardChannelState[] = [
      steadyChannelState(5),
      { generations: [6, 5], draining: 0 },
      { generations: [6, 5], draining: null },
      { generations: [6, 6], draining: 1 },
      steadyChannelState(6),
    ];
    let current: 0 | 1 | null = 1;
    expect(next.map((r) => (current = steeringChannel(steadyChannelState(9), r, current)))).toEqual([1, 1, 1, 0, 0]);
    current = 1;
    expect(next.map((l) => (current = steeringChannel(l, steadyChannelState(9), current)))).toEqual([1, 1, 0, 0, 0]);
  });
});

describe('chooseDrainChannel()', () => {
  it('drains the channel fewer peers steer on', () => {
    expect(chooseDrainChannel([0, 0, 1], 7)).toBe(1);
    expect(chooseDrainChannel([1, 1, null], 8)).toBe(0);
  });
  it('breaks ties with the next generation modulo 2', () => {
    expect(chooseDrainChannel([], 7)).toBe(1);
    expect(chooseDrainChannel([0, 1], 8)).toBe(0);
  });
});

describe('validateChannelState()', () => {
  it('accepts the states a rotation publishes', () => {
    expect(validateChannelState({ generations: [3, 4], draining: 1 }, 'n')).toEqual({ generations: [3, 4], draining: 1 });
  });
  it.each([
    [null, 'expected an object'],
    [{ generations: [1], draining: null }, 'use two generations'],
    [{ generations: [0, 1], draining: null }, 'is not an integer from 1'],
    [{ generations: [1, 1], draining: 2 }, 'use 0, 1 or null'],
  ])('refuses %j', (raw, text) => {
    let err: unknown;
    try {
      validateChannelState(raw, 'node-b');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(WireGuardReconcileError);
    expect((err as WireGuardReconcileError).code).toBe('VEIL_WG_BAD_RECORD');
    expect((err as Error).message).toContain('node "node-b"');
    expect((err as Error).message).toContain(text);
  });
});

describe('localRotationPhase()', () => {
  it('names each published state of a rotation and the channel re-keyed first', () => {
    expect(localRotationPhase(steadyChannelState(2))).toEqual({ phase: 'idle', channel: null });
    expect(localRotationPhase({ generations: [2, 3], draining: 1 })).toEqual({ phase: 'published', channel: 1 });
    expect(localRotationPhase({ generations: [2, 3], draining: null })).toEqual({ phase: 'activated', channel: 1 });
    expect(localRotationPhase({ generations: [3, 3], draining: 0 })).toEqual({ phase: 'retiring', channel: 1 });
  });
});
