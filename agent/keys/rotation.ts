/**
 * The key rotation state machine for node keys and identity keys: pure logic, no I/O, no clock
 * (the caller passes `now`). Each step takes a state and returns the next state together with the
 * audit event to emit — a plain object with fingerprints, never key material.
 *
 * One key slot (a node's node key, or one identity's key on a node) goes through generations:
 *
 *   generate → publish → (every known peer) acknowledge → activate → … → retire → destroy
 *
 * - generate: a new generation exists locally (private key in memory / state dir). Only one
 *   rotation at a time: refused while a generation is pending (generated, published) or an
 *   older one still awaits retirement (superseded).
 * - publish: it is in the signed node record. Peers install state for it (inbound first).
 * - acknowledge: a peer says it installed state for it. When every *current* peer has, the
 *   generation is "acknowledged"; a peer joining later makes it "published" again until it too
 *   acknowledges (advertising before peers are ready is Cilium #44335).
 * - activate: only when every known peer acknowledged. The generation becomes the one used to
 *   send; the previous active one becomes "superseded" (still accepted for receiving).
 * - peer moved: a peer reports it now uses the active generation.
 * - retire: the superseded generation stops being accepted — only after every known peer moved
 *   to the newer one (removing a key before every node has the new one is XfrmInNoStates).
 * - destroy: the retired generation's private key is wiped; it leaves the state.
 *
 * - abandon: a pending generation (generated, published) that will never be activated — a
 *   peer never acknowledges — is dropped; its private key is wiped. The active one stays.
 *
 * Steps out of order throw RotationError saying what must happen first. Rotation is due on a
 * schedule (`intervalMs` after activation) or on demand (`reason: "on-demand"`, `veil keys rotate`).
 */
import { RotationError } from './errors.js';
import { isFingerprint } from './fingerprint.js';

export type KeyKind = 'node' | 'identity';
export type KeyPhase = 'generated' | 'published' | 'acknowledged' | 'active' | 'superseded' | 'retired';
export type RotationReason = 'initial' | 'schedule' | 'on-demand';

export interface KeySlot {
  kind: KeyKind;
  node: string;
  /** Identity id for an identity key; 0 for the node key. */
  identity: number;
}

export interface KeyGeneration {
  generation: number;
  /** publicKeyFingerprint() of the generation's public key. */
  fingerprint: string;
  phase: KeyPhase;
  reason: RotationReason;
  /** Peers that acknowledged this generation (sorted). */
  acknowledgedBy: readonly string[];
  /** For the active generation: peers that moved to it (sorted). */
  movedPeers: readonly string[];
  generatedAt: number;
  activatedAt?: number;
}

export interface RotationState {
  readonly slot: KeySlot;
  /** Known peers (sorted, unique): the nodes that must acknowledge and move. */
  readonly peers: readonly string[];
  /** Live generations, oldest first (destroyed ones are dropped). */
  readonly generations: readonly KeyGeneration[];
  /** Highest generation ever generated (never reused, even after destroy). */
  readonly lastGeneration: number;
  /** Scheduled rotation interval after activation. */
  readonly intervalMs: number;
}

export type KeyAuditEventType =
  | 'key.generated'
  | 'key.published'
  | 'key.acknowledged'
  | 'key.activated'
  | 'key.peer_moved'
  | 'key.retired'
  | 'key.destroyed'
  | 'key.abandoned';

/** What the audit log records for one step. Never key material: only the public fingerprint. */
export interface KeyAuditEvent {
  type: KeyAuditEventType;
  kind: KeyKind;
  node: string;
  identity: number;
  generation: number;
  fingerprint: string;
  /** ISO 8601 time of the step. */
  time: string;
  reason?: RotationReason;
  peer?: string;
  /** For key.activated: the generation now superseded. */
  previousGeneration?: number;
  /** For key.acknowledged: whether every known peer has now acknowledged. */
  allAcknowledged?: boolean;
}

export interface Transition {
  state: RotationState;
  event: KeyAuditEvent;
}

/** A peer's acknowledgement or move that was already recorded changes nothing and emits nothing. */
export interface PeerReport {
  state: RotationState;
  event: KeyAuditEvent | null;
}


function slotName(s: KeySlot): string {
  return s.kind === 'node' ? `node key of "${s.node}"` : `identity ${s.identity} key of "${s.node}"`;
}

function sortedUnique(xs: readonly string[]): string[] {
  return [...new Set(xs)].sort();
}

function listed(names: readonly string[], max = 5): string {
  const q = names.slice(0, max).map((n) => `"${n}"`);
  return names.length > max ? `${q.join(', ')} and ${names.length - max} more` : q.join(', ');
}

function checkTime(now: number, step: string): void {
  if (!Number.isSafeInteger(now) || now < 0) throw new RotationError(step, `Invalid time ${String(now)} for ${step}: pass milliseconds since the Unix epoch`);
}

function eventFor(state: RotationState, g: KeyGeneration, type: KeyAuditEventType, now: number, extra: Partial<KeyAuditEvent> = {}): KeyAuditEvent {
  return {
    type,
    kind: state.slot.kind,
    node: state.slot.node,
    identity: state.slot.identity,
    generation: g.generation,
    fingerprint: g.fingerprint,
    time: new Date(now).toISOString(),
    ...extra,
  };
}

/** Phase of a pending (published/acknowledged) generation given the current peers. */
function pendingPhase(g: KeyGeneration, peers: readonly string[]): KeyPhase {
  if (g.phase !== 'published' && g.phase !== 'acknowledged') return g.phase;
  return peers.every((p) => g.acknowledgedBy.includes(p)) ? 'acknowledged' : 'published';
}

function replace(state: RotationState, g: KeyGeneration): RotationState {
  return { ...state, generations: state.generations.map((x) => (x.generation === g.generation ? g : x)) };
}

function find(state: RotationState, generation: number, step: string): KeyGeneration {
  const g = state.generations.find((x) => x.generation === generation);
  if (!g) {
    throw new RotationError(
      step,
      `Cannot ${step} generation ${generation} of the ${slotName(state.slot)}: it does not exist (live generations: ${state.generations.map((x) => x.generation).join(', ') || 'none'})`,
    );
  }
  return g;
}

function requirePhase(state: RotationState, g: KeyGeneration, step: string, phases: KeyPhase[], fix: string): void {
  if (!phases.includes(g.phase)) {
    throw new RotationError(step, `Cannot ${step} generation ${g.generation} of the ${slotName(state.slot)}: it is ${g.phase}, not ${phases.join(' or ')}; ${fix}`);
  }
}

function requirePeer(state: RotationState, peer: string, step: string): void {
  if (!state.peers.includes(peer)) {
    throw new RotationError(step, `Cannot record "${peer}" for the ${slotName(state.slot)}: it is not a known peer; add it with setPeers() first`);
  }
}

export interface InitialRotationOptions {
  peers?: readonly string[];
  intervalMs: number;
}

/** A slot with no key yet (its first generate() has reason "initial"). */
export function initialRotationState(slot: KeySlot, opts: InitialRotationOptions): RotationState {
  if (!Number.isSafeInteger(opts.intervalMs) || opts.intervalMs <= 0) {
    throw new RotationError('init', `Invalid rotation interval ${String(opts.intervalMs)}: use a positive number of milliseconds`);
  }
  return { slot: { ...slot }, peers: sortedUnique(opts.peers ?? []), generations: [], lastGeneration: 0, intervalMs: opts.intervalMs };
}

export function activeGeneration(state: RotationState): KeyGeneration | undefined {
  return state.generations.find((g) => g.phase === 'active');
}

function inProgress(state: RotationState): KeyGeneration | undefined {
  return state.generations.find((g) => g.phase === 'generated' || g.phase === 'published' || g.phase === 'acknowledged' || g.phase === 'superseded');
}

/** True when a scheduled rotation should start now: no key yet, or the active one is `intervalMs` old. */
export function rotationDue(state: RotationState, now: number): boolean {
  if (inProgress(state)) return false;
  const active = activeGeneration(state);
  return !active || now >= (active.activatedAt ?? active.generatedAt) + state.intervalMs;
}

/** The known peers changed (a node joined or left). Pending and moved sets follow. */
export function setPeers(state: RotationState, peers: readonly string[]): RotationState {
  const next = sortedUnique(peers);
  return {
    ...state,
    peers: next,
    generations: state.generations.map((g) => ({ ...g, phase: pendingPhase(g, next) })),
  };
}

/** A new generation exists (its key was generated by the caller; `fingerprint` is its public fingerprint). */
export function generate(state: RotationState, input: { fingerprint: string; now: number; reason: RotationReason }): Transition {
  checkTime(input.now, 'generate');
  if (!isFingerprint(input.fingerprint)) {
    throw new RotationError('generate', 'Invalid key fingerprint: pass publicKeyFingerprint() of the new public key ("sha256:" and 64 hex digits)');
  }
  if (!['initial', 'schedule', 'on-demand'].includes(input.reason)) {
    throw new RotationError('generate', `Invalid rotation reason "${String(input.reason)}": use "initial", "schedule" or "on-demand"`);
  }
  const busy = inProgress(state);
  if (busy) {
    throw new RotationError(
      'generate',
      `Cannot start a rotation of the ${slotName(state.slot)}: generation ${busy.generation} is still ${busy.phase}; ${busy.phase === 'superseded' ? 'retire it first' : 'finish or abandon that rotation first'}`,
    );
  }
  if (state.lastGeneration >= 0xffffffff) throw new RotationError('generate', `Cannot rotate the ${slotName(state.slot)}: generation numbers are exhausted`);
  const g: KeyGeneration = {
    generation: state.lastGeneration + 1,
    fingerprint: input.fingerprint,
    phase: 'generated',
    reason: input.reason,
    acknowledgedBy: [],
    movedPeers: [],
    generatedAt: input.now,
  };
  const next = { ...state, generations: [...state.generations, g], lastGeneration: g.generation };
  return { state: next, event: eventFor(next, g, 'key.generated', input.now, { reason: input.reason }) };
}

/** The generation is now in the node's published (signed) record. */
export function publish(state: RotationState, input: { generation: number; now: number }): Transition {
  checkTime(input.now, 'publish');
  const g = find(state, input.generation, 'publish');
  requirePhase(state, g, 'publish', ['generated'], 'generate a new generation to publish');
  const published: KeyGeneration = { ...g, phase: 'published' };
  const updated: KeyGeneration = { ...published, phase: pendingPhase(published, state.peers) };
  const next = replace(state, updated);
  return { state: next, event: eventFor(next, updated, 'key.published', input.now) };
}

/** A peer installed state for the generation. */
export function acknowledge(state: RotationState, input: { peer: string; generation: number; now: number }): PeerReport {
  checkTime(input.now, 'acknowledge');
  const g = find(state, input.generation, 'acknowledge');
  requirePhase(state, g, 'acknowledge', ['published', 'acknowledged'], g.phase === 'generated' ? 'publish it first' : 'only a pending generation is acknowledged');
  requirePeer(state, input.peer, 'acknowledge');
  if (g.acknowledgedBy.includes(input.peer)) return { state, event: null };
  const acked: KeyGeneration = { ...g, acknowledgedBy: sortedUnique([...g.acknowledgedBy, input.peer]) };
  const updated: KeyGeneration = { ...acked, phase: pendingPhase(acked, state.peers) };
  const next = replace(state, updated);
  return {
    state: next,
    event: eventFor(next, updated, 'key.acknowledged', input.now, { peer: input.peer, allAcknowledged: updated.phase === 'acknowledged' }),
  };
}

/** The generation becomes the one used to send; the previous active one is superseded. */
export function activate(state: RotationState, input: { generation: number; now: number }): Transition {
  checkTime(input.now, 'activate');
  const g = find(state, input.generation, 'activate');
  if (g.phase === 'published') {
    const missing = state.peers.filter((p) => !g.acknowledgedBy.includes(p));
    throw new RotationError(
      'activate',
      `Cannot activate generation ${g.generation} of the ${slotName(state.slot)}: ${missing.length} of ${state.peers.length} peers have not acknowledged it (${listed(missing)}); wait for their acknowledgement`,
    );
  }
  requirePhase(state, g, 'activate', ['acknowledged'], g.phase === 'generated' ? 'publish it and wait for every peer to acknowledge it' : 'only a pending generation is activated');
  const previous = activeGeneration(state);
  const updated: KeyGeneration = { ...g, phase: 'active', activatedAt: input.now, movedPeers: [] };
  let next = replace(state, updated);
  if (previous) next = replace(next, { ...previous, phase: 'superseded' });
  return {
    state: next,
    event: eventFor(next, updated, 'key.activated', input.now, previous ? { previousGeneration: previous.generation } : {}),
  };
}

/** A peer now uses the active generation. */
export function peerMoved(state: RotationState, input: { peer: string; generation: number; now: number }): PeerReport {
  checkTime(input.now, 'record a peer move to');
  const g = find(state, input.generation, 'record a peer move to');
  requirePhase(state, g, 'record a peer move to', ['active'], 'peers move only to the active generation');
  requirePeer(state, input.peer, 'peer moved');
  if (g.movedPeers.includes(input.peer)) return { state, event: null };
  const updated: KeyGeneration = { ...g, movedPeers: sortedUnique([...g.movedPeers, input.peer]) };
  const next = replace(state, updated);
  return { state: next, event: eventFor(next, updated, 'key.peer_moved', input.now, { peer: input.peer }) };
}

/** The superseded generation is no longer accepted; only after every known peer moved on. */
export function retire(state: RotationState, input: { generation: number; now: number }): Transition {
  checkTime(input.now, 'retire');
  const g = find(state, input.generation, 'retire');
  requirePhase(state, g, 'retire', ['superseded'], g.phase === 'active' ? 'activate a newer generation first' : 'only a superseded generation is retired');
  const active = activeGeneration(state);
  const missing = active ? state.peers.filter((p) => !active.movedPeers.includes(p)) : [];
  if (!active || missing.length) {
    throw new RotationError(
      'retire',
      `Cannot retire generation ${g.generation} of the ${slotName(state.slot)}: ${missing.length} of ${state.peers.length} peers have not moved to generation ${active?.generation ?? '?'} (${listed(missing)}); wait until they have`,
    );
  }
  const updated: KeyGeneration = { ...g, phase: 'retired' };
  const next = replace(state, updated);
  return { state: next, event: eventFor(next, updated, 'key.retired', input.now) };
}

/** The retired generation's private key is wiped (by the caller); it leaves the state. */
export function destroy(state: RotationState, input: { generation: number; now: number }): Transition {
  checkTime(input.now, 'destroy');
  const g = find(state, input.generation, 'destroy');
  requirePhase(state, g, 'destroy', ['retired'], 'retire it first');
  const next = { ...state, generations: state.generations.filter((x) => x.generation !== g.generation) };
  return { state: next, event: eventFor(next, g, 'key.destroyed', input.now) };
}

/** Drops a pending generation that will not be activated (its private key is wiped by the caller). */
export function abandon(state: RotationState, input: { generation: number; now: number }): Transition {
  checkTime(input.now, 'abandon');
  const g = find(state, input.generation, 'abandon');
  requirePhase(state, g, 'abandon', ['generated', 'published', 'acknowledged'], 'only a pending generation is abandoned');
  const next = { ...state, generations: state.generations.filter((x) => x.generation !== g.generation) };
  return { state: next, event: eventFor(next, g, 'key.abandoned', input.now) };
}
