import { describe, expect, it } from 'vitest';
import { RotationError } from '../../../agent/keys/errors.js';
import {
  abandon,
  acknowledge,
  activate,
  activeGeneration,
  destroy,
  generate,
  initialRotationState,
  peerMoved,
  publish,
  retire,
  rotationDue,
  setPeers,
  type KeyAuditEvent,
  type RotationState,
} from '../../../agent/keys/rotation.js';
import { X25519PrivateKey } from '../../../agent/keys/x25519.js';

const HOUR = 3_600_000;
const T0 = Date.UTC(2026, 0, 1);
const slot = { kind: 'identity' as const, node: 'node-a', identity: 4242 };
const fp = (n: number) => `sha256:${n.toString(16).padStart(64, '0')}`;

function start(peers = ['node-b', 'node-c']): RotationState {
  return initialRotationState(slot, { peers, intervalMs: 24 * HOUR });
}

function rotationError(run: () => unknown, step: string): RotationError {
  try {
    run();
  } catch (err) {
    expect(err).toBeInstanceOf(RotationError);
    expect((err as RotationError).step).toBe(step);
    return err as RotationError;
  }
  throw new Error(`Expected a RotationError from ${step}`);
}

/** Drives one slot through a full first generation; returns the state and every event. */
function firstGeneration(peers = ['node-b', 'node-c']): { state: RotationState; events: KeyAuditEvent[] } {
  const events: KeyAuditEvent[] = [];
  let s = start(peers);
  const step = (t: { state: RotationState; event: KeyAuditEvent | null }) => {
    s = t.state;
    if (t.event) events.push(t.event);
  };
  step(generate(s, { fingerprint: fp(1), now: T0, reason: 'initial' }));
  step(publish(s, { generation: 1, now: T0 + 1 }));
  for (const p of peers) step(acknowledge(s, { peer: p, generation: 1, now: T0 + 2 }));
  step(activate(s, { generation: 1, now: T0 + 3 }));
  return { state: s, events };
}

/** Starts and completes the second generation up to activation. */
function secondActivated(): RotationState {
  let s = firstGeneration().state;
  s = generate(s, { fingerprint: fp(2), now: T0 + 10, reason: 'schedule' }).state;
  s = publish(s, { generation: 2, now: T0 + 11 }).state;
  s = acknowledge(s, { peer: 'node-b', generation: 2, now: T0 + 12 }).state;
  s = acknowledge(s, { peer: 'node-c', generation: 2, now: T0 + 12 }).state;
  return activate(s, { generation: 2, now: T0 + 13 }).state;
}

describe('key rotation state machine', () => {
  it('runs generate → publish → acknowledge → activate and emits one event per step', () => {
    const { state, events } = firstGeneration();
    expect(events.map((e) => e.type)).toEqual(['key.generated', 'key.published', 'key.acknowledged', 'key.acknowledged', 'key.activated']);
    expect(events[0]).toEqual({ type: 'key.generated', kind: 'identity', node: 'node-a', identity: 4242, generation: 1, fingerprint: fp(1), time: new Date(T0).toISOString(), reason: 'initial' });
    expect(events[2]).toMatchObject({ peer: 'node-b', allAcknowledged: false });
    expect(events[3]).toMatchObject({ peer: 'node-c', allAcknowledged: true });
    expect(events[4]).not.toHaveProperty('previousGeneration');
    expect(activeGeneration(state)).toMatchObject({ generation: 1, phase: 'active', activatedAt: T0 + 3 });
  });

  it('continues activate → peers move → retire → destroy for the previous generation', () => {
    let s = secondActivated();
    expect(s.generations.map((g) => [g.generation, g.phase])).toEqual([
      [1, 'superseded'],
      [2, 'active'],
    ]);
    const moved = peerMoved(s, { peer: 'node-b', generation: 2, now: T0 + 20 });
    expect(moved.event).toMatchObject({ type: 'key.peer_moved', peer: 'node-b', generation: 2 });
    s = peerMoved(moved.state, { peer: 'node-c', generation: 2, now: T0 + 21 }).state;
    const retired = retire(s, { generation: 1, now: T0 + 22 });
    expect(retired.event).toMatchObject({ type: 'key.retired', generation: 1, fingerprint: fp(1) });
    const destroyed = destroy(retired.state, { generation: 1, now: T0 + 23 });
    expect(destroyed.event).toMatchObject({ type: 'key.destroyed', generation: 1, fingerprint: fp(1) });
    expect(destroyed.state.generations.map((g) => g.generation)).toEqual([2]);
    expect(destroyed.state.lastGeneration).toBe(2);
  });

  it('records the superseded generation in the activation event', () => {
    let s = firstGeneration().state;
    s = generate(s, { fingerprint: fp(2), now: T0, reason: 'on-demand' }).state;
    s = publish(s, { generation: 2, now: T0 }).state;
    s = acknowledge(s, { peer: 'node-b', generation: 2, now: T0 }).state;
    s = acknowledge(s, { peer: 'node-c', generation: 2, now: T0 }).state;
    expect(activate(s, { generation: 2, now: T0 }).event).toMatchObject({ type: 'key.activated', generation: 2, previousGeneration: 1 });
  });

  it('refuses to activate before every known peer acknowledged', () => {
    let s = start();
    s = generate(s, { fingerprint: fp(1), now: T0, reason: 'initial' }).state;
    s = publish(s, { generation: 1, now: T0 }).state;
    s = acknowledge(s, { peer: 'node-b', generation: 1, now: T0 }).state;
    const err = rotationError(() => activate(s, { generation: 1, now: T0 }), 'activate');
    expect(err.message).toBe('Cannot activate generation 1 of the identity 4242 key of "node-a": 1 of 2 peers have not acknowledged it ("node-c"); wait for their acknowledgement');
    expect(err.code).toBe('VEIL_ROTATION_ORDER');
  });

  it('requires a peer that joins during a rotation to acknowledge too; a peer that leaves is no longer waited for', () => {
    let s = start(['node-b']);
    s = generate(s, { fingerprint: fp(1), now: T0, reason: 'initial' }).state;
    s = publish(s, { generation: 1, now: T0 }).state;
    s = acknowledge(s, { peer: 'node-b', generation: 1, now: T0 }).state;
    expect(s.generations[0]!.phase).toBe('acknowledged');
    s = setPeers(s, ['node-b', 'node-d']);
    expect(s.generations[0]!.phase).toBe('published');
    rotationError(() => activate(s, { generation: 1, now: T0 }), 'activate');
    s = setPeers(s, ['node-b']);
    expect(activate(s, { generation: 1, now: T0 }).state.generations[0]!.phase).toBe('active');
  });

  it('refuses to retire before every known peer moved to the newer generation', () => {
    let s = secondActivated();
    s = peerMoved(s, { peer: 'node-c', generation: 2, now: T0 }).state;
    const err = rotationError(() => retire(s, { generation: 1, now: T0 }), 'retire');
    expect(err.message).toBe('Cannot retire generation 1 of the identity 4242 key of "node-a": 1 of 2 peers have not moved to generation 2 ("node-b"); wait until they have');
  });

  it('moves with no peers at all (a single-node cluster)', () => {
    const { state } = firstGeneration([]);
    let s = generate(state, { fingerprint: fp(2), now: T0, reason: 'schedule' }).state;
    s = publish(s, { generation: 2, now: T0 }).state;
    expect(s.generations[1]!.phase).toBe('acknowledged');
    s = activate(s, { generation: 2, now: T0 }).state;
    s = retire(s, { generation: 1, now: T0 }).state;
    expect(destroy(s, { generation: 1, now: T0 }).state.generations).toHaveLength(1);
  });

  it('refuses every step out of order', () => {
    const fresh = start();
    const gen1 = generate(fresh, { fingerprint: fp(1), now: T0, reason: 'initial' }).state;
    const pub1 = publish(gen1, { generation: 1, now: T0 }).state;
    const act1 = firstGeneration().state;
    const act2 = secondActivated();
    const cases: [string, () => unknown, RegExp][] = [
      ['publish', () => publish(fresh, { generation: 1, now: T0 }), /it does not exist \(live generations: none\)/],
      ['publish', () => publish(pub1, { generation: 1, now: T0 }), /it is published, not generated/],
      ['acknowledge', () => acknowledge(gen1, { peer: 'node-b', generation: 1, now: T0 }), /it is generated, not published or acknowledged; publish it first/],
      ['activate', () => activate(gen1, { generation: 1, now: T0 }), /it is generated, not acknowledged; publish it and wait/],
      ['retire', () => retire(act1, { generation: 1, now: T0 }), /it is active, not superseded; activate a newer generation first/],
      ['destroy', () => destroy(act1, { generation: 1, now: T0 }), /it is active, not retired; retire it first/],
      ['destroy', () => destroy(act2, { generation: 1, now: T0 }), /it is superseded, not retired; retire it first/],
      ['generate', () => generate(gen1, { fingerprint: fp(2), now: T0, reason: 'on-demand' }), /generation 1 is still generated; finish or abandon/],
      ['generate', () => generate(act2, { fingerprint: fp(3), now: T0, reason: 'on-demand' }), /generation 1 is still superseded; retire it first/],
      ['acknowledge', () => acknowledge(act1, { peer: 'node-b', generation: 1, now: T0 }), /it is active, not published or acknowledged/],
      ['record a peer move to', () => peerMoved(pub1, { peer: 'node-b', generation: 1, now: T0 }), /it is published, not active/],
      ['record a peer move to', () => peerMoved(act2, { peer: 'node-b', generation: 1, now: T0 }), /it is superseded, not active/],
      ['acknowledge', () => acknowledge(pub1, { peer: 'node-x', generation: 1, now: T0 }), /Cannot record "node-x" for the identity 4242 key of "node-a": it is not a known peer/],
      ['abandon', () => abandon(act1, { generation: 1, now: T0 }), /it is active, not generated or published or acknowledged/],
      ['generate', () => generate(fresh, { fingerprint: 'abc', now: T0, reason: 'initial' }), /Invalid key fingerprint/],
      ['generate', () => generate(fresh, { fingerprint: fp(1), now: T0, reason: 'whim' as never }), /Invalid rotation reason "whim"/],
      ['publish', () => publish(gen1, { generation: 1, now: Number.NaN }), /Invalid time NaN/],
    ];
    for (const [step, run, re] of cases) expect(rotationError(run, step).message).toMatch(re);
  });

  it('treats a repeated acknowledgement or move as no change and no event', () => {
    let s = start();
    s = generate(s, { fingerprint: fp(1), now: T0, reason: 'initial' }).state;
    s = publish(s, { generation: 1, now: T0 }).state;
    s = acknowledge(s, { peer: 'node-b', generation: 1, now: T0 }).state;
    const again = acknowledge(s, { peer: 'node-b', generation: 1, now: T0 });
    expect(again).toEqual({ state: s, event: null });
    const a = secondActivated();
    const m = peerMoved(a, { peer: 'node-b', generation: 2, now: T0 }).state;
    expect(peerMoved(m, { peer: 'node-b', generation: 2, now: T0 })).toEqual({ state: m, event: null });
  });

  it('abandons a pending generation, never reusing its number', () => {
    let s = firstGeneration().state;
    s = generate(s, { fingerprint: fp(2), now: T0, reason: 'on-demand' }).state;
    s = publish(s, { generation: 2, now: T0 }).state;
    const t = abandon(s, { generation: 2, now: T0 + 5 });
    expect(t.event).toMatchObject({ type: 'key.abandoned', generation: 2, fingerprint: fp(2) });
    expect(activeGeneration(t.state)?.generation).toBe(1);
    expect(generate(t.state, { fingerprint: fp(3), now: T0, reason: 'on-demand' }).state.lastGeneration).toBe(3);
  });

  it('is due on schedule after the interval, never during a rotation, and at once without a key', () => {
    const fresh = start();
    expect(rotationDue(fresh, T0)).toBe(true);
    const { state } = firstGeneration();
    expect(rotationDue(state, T0 + 3 + 24 * HOUR - 1)).toBe(false);
    expect(rotationDue(state, T0 + 3 + 24 * HOUR)).toBe(true);
    const pending = generate(state, { fingerprint: fp(2), now: T0, reason: 'schedule' }).state;
    expect(rotationDue(pending, T0 + 100 * HOUR)).toBe(false);
    expect(() => initialRotationState(slot, { intervalMs: 0 })).toThrow(RotationError);
  });

  it('does not mutate the state it is given', () => {
    const s = start();
    const frozen = JSON.stringify(s);
    generate(s, { fingerprint: fp(1), now: T0, reason: 'initial' });
    expect(JSON.stringify(s)).toBe(frozen);
  });

  it('emits events with fingerprints only, never key material', () => {
    const key = X25519PrivateKey.generate();
    const raw = key.exportRaw();
    let s = initialRotationState({ kind: 'node', node: 'node-a', identity: 0 }, { peers: ['node-b'], intervalMs: HOUR });
    const events: unknown[] = [];
    for (const t of [generate(s, { fingerprint: key.fingerprint, now: T0, reason: 'initial' })]) {
      s = t.state;
      events.push(t.event);
    }
    const p = publish(s, { generation: 1, now: T0 });
    events.push(p.event);
    const text = JSON.stringify(events);
    expect(text).toContain(key.fingerprint);
    for (const secret of [raw.toString('base64'), raw.toString('hex'), key.publicKey.toBase64()]) expect(text).not.toContain(secret);
  });
});
