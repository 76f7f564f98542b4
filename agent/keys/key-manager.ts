/**
 * The running half of key rotation: drives the pure state machine (rotation.ts) for this node's
 * key slots — the node key and one key per hosted identity — against the store, the state
 * directory, the audit log and the kernel hooks. Every node runs one; each is at once the owner
 * of its own keys and a peer of every other node's (docs/keys.md §Rotation as implemented).
 *
 * Owner, per slot:  generate (key file 0600, installLocalKey) → publish (signed record, CAS,
 * key "pending") → acknowledge (peers' ack documents list the generation as installed) →
 * activate (activateLocalKey; record: "active", previous "superseded") → peer moved (ack
 * documents list it as used) → retire (retireLocalKey; record drops it) → destroy (key file
 * overwritten and removed) → rotation.completed. A generation not acknowledged within
 * `acknowledgeTimeoutMs` is abandoned (record drops it, key wiped); the active one stays.
 *
 * Peer, per other node (peer-keys.ts): verify its signed record (a rejected record is an audit
 * event and changes nothing), call installPeerKey / usePeerKey / removePeerKey, then write the
 * ack document under keys/acks/<owner>/<this node>.
 *
 * Rotations start on a schedule (interval after activation, shortened by up to `jitter` so nodes
 * do not rotate in step), on demand (`rotateNow()` or a request key written by `veil keys
 * rotate`), and at once for a slot without a key. All work runs in one serialised pass, kicked by
 * store changes and a timer; a failed pass is logged and retried on the next tick.
 */
import type { KeyObject } from 'node:crypto';
import type { AuditEvent } from '../audit/events.js';
import type { Logger } from '../log/logger.js';
import { PrefixMirror } from '../store/prefix-mirror.js';
import type { KeyValue, Store } from '../store/store.js';
import { KeyFileError, NodeRecordError, RotationError } from './errors.js';
import { toAuditEvent, type KeyAuditExtra } from './key-audit.js';
import { destroySecretFile, readPrivateKeyFile, writePrivateKeyFile } from './key-file.js';
import { KeyStateDir, type KeyManagerState, type SlotState } from './key-state-dir.js';
import { KeyStorePaths, slotId, slotLabel, type SlotRef } from './key-store-paths.js';
import { NO_KERNEL_STATE, type KernelKeyHooks } from './kernel-key-hooks.js';
import { validateNodeRecord, type NodeRecord, type NodeRecordKey, type NodeRecordKeyState } from './node-record.js';
import { serializeSignedNodeRecord, signNodeRecord } from './node-record-sign.js';
import { ackHas, parsePeerAck, type PeerAck } from './peer-ack.js';
import { auditDetail, PeerKeys } from './peer-keys.js';
import * as rot from './rotation.js';
import { parseRotationRequest, type RotationRequest } from './rotation-request.js';
import { X25519PrivateKey } from './x25519.js';

export interface KeyManagerOptions {
  node: string;
  stateDir: string;
  store: Store;
  paths?: KeyStorePaths;
  /** The node's audit log (agent/audit). */
  audit: { record(event: AuditEvent): Promise<unknown> };
  /** Node certificate (PEM) and its private key: they sign the node record. */
  nodeCertificatePem: string;
  nodePrivateKey: KeyObject | string;
  /** CA certificates (PEM) peers' records must chain to. */
  trustAnchors: readonly string[];
  addresses: string[];
  podCidrs: string[];
  bootId: string;
  /** Identities hosted on this node (each gets a key slot). */
  identities?: readonly number[];
  rotationIntervalMs: number;
  acknowledgeTimeoutMs: number;
  /** Scheduled rotations come up to this fraction of the interval early (default 0.1). */
  jitter?: number;
  /** Timer of the periodic pass (default 1000 ms). */
  tickMs?: number;
  hooks?: KernelKeyHooks;
  /**
   * Whether a peer may publish a key for an identity (store-backed: agent/identity/hosting.ts
   * storeIdentityHosting). A record with a key for an identity its node does not host is
   * rejected whole. Omitted: not checked (tests of the rotation alone).
   */
  identityHosted?: (node: string, identity: number) => Promise<boolean>;
  log?: Logger;
  now?: () => number;
  random?: () => number;
}

/** One slot as `status()` shows it (no key material). */
export interface SlotStatus extends SlotRef {
  peers: string[];
  dueAt: number | null;
  generations: { generation: number; phase: rot.KeyPhase; fingerprint: string; acknowledgedBy: string[]; movedPeers: string[] }[];
}

const keyId = (s: SlotRef, generation: number) => `${s.kind}/${s.identity}/${generation}`;

function recordKeyState(phase: rot.KeyPhase): NodeRecordKeyState | undefined {
  if (phase === 'published' || phase === 'acknowledged') return 'pending';
  if (phase === 'active') return 'active';
  if (phase === 'superseded') return 'superseded';
  return undefined;
}

/** The sequence of a record this node published earlier (0 when it cannot be read). */
function storedSequence(kv: KeyValue): number {
  try {
    return validateNodeRecord((JSON.parse(kv.value.toString('utf8')) as { record?: unknown }).record).sequence;
  } catch {
    return 0;
  }
}

export class KeyManager {
  readonly #o: KeyManagerOptions;
  readonly #paths: KeyStorePaths;
  readonly #dir: KeyStateDir;
  readonly #hooks: KernelKeyHooks;
  readonly #now: () => number;
  readonly #random: () => number;
  #state: KeyManagerState;
  /** "kind/identity/generation" → private key of a live own generation. */
  readonly #keys = new Map<string, X25519PrivateKey>();
  readonly #acks = new Map<string, PeerAck>();
  readonly #requests = new Map<string, RotationRequest>();
  readonly #onDemand = new Set<string>();
  /** Identities hosted on this node (setIdentities). */
  #hosted = new Set<number>();
  /** Acknowledgements refused since the last pass (audited by the pass). */
  readonly #badAcks: { peer: string; err: NodeRecordError }[] = [];
  readonly #peerKeys: PeerKeys;
  #recordRevision: string | null = null;
  #mirrors: PrefixMirror[] = [];
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #again = false;
  #stopped = false;
  #lastError: Error | undefined;
  /** The node certificate and key that sign the record (replaced by a renewal). */
  #credentials: { certificatePem: string; privateKey: KeyObject | string };
  /** A renewed certificate must be published even without a key change. */
  #republish = false;

  private constructor(o: KeyManagerOptions, state: KeyManagerState) {
    this.#o = o;
    this.#credentials = { certificatePem: o.nodeCertificatePem, privateKey: o.nodePrivateKey };
    this.#paths = o.paths ?? new KeyStorePaths();
    this.#dir = new KeyStateDir(o.stateDir);
    this.#hooks = o.hooks ?? NO_KERNEL_STATE;
    this.#now = o.now ?? Date.now;
    this.#random = o.random ?? Math.random;
    this.#state = state;
    this.#peerKeys = new PeerKeys({
      node: o.node,
      store: o.store,
      paths: this.#paths,
      trustAnchors: o.trustAnchors,
      hooks: this.#hooks,
      ...(o.identityHosted ? { identityHosted: o.identityHosted } : {}),
      record: (e) => this.#record(e),
      ...(o.log ? { log: o.log } : {}),
      now: this.#now,
    });
  }

  /**
   * Opens the state directory (creating it 0700), loads the saved state and the key files of
   * every live generation. A pending generation whose key file is gone is abandoned
   * ("key-lost"); an active or superseded one whose key is gone is a KeyFileError.
   */
  static async open(o: KeyManagerOptions): Promise<KeyManager> {
    for (const [name, v] of [['rotationIntervalMs', o.rotationIntervalMs], ['acknowledgeTimeoutMs', o.acknowledgeTimeoutMs]] as const) {
      if (!Number.isSafeInteger(v) || v <= 0) throw new RotationError('init', `Invalid ${name} ${String(v)}: use a positive number of milliseconds`);
    }
    const jitter = o.jitter ?? 0.1;
    if (!(jitter >= 0 && jitter <= 0.5)) throw new RotationError('init', `Invalid jitter ${String(jitter)}: use a fraction from 0 to 0.5`);
    const dir = new KeyStateDir(o.stateDir);
    await dir.prepare();
    const saved = await dir.load();
    if (saved && saved.node !== o.node) {
      throw new KeyFileError(dir.statePath, `Key state "${dir.statePath}" belongs to node "${saved.node}", not "${o.node}": use the state directory of "${o.node}"`);
    }
    const m = new KeyManager(o, saved ?? { v: 1, node: o.node, sequence: 0, slots: [] });
    await m.#loadKeys();
    m.#applyInterval();
    m.setIdentities(o.identities ?? []);
    return m;
  }

  /** A changed `rotationIntervalMs` takes effect at start: the next rotation is rescheduled from the last activation. */
  #applyInterval(): void {
    const interval = this.#o.rotationIntervalMs;
    for (const slot of this.#state.slots) {
      if (slot.rotation.intervalMs === interval) continue;
      slot.rotation = { ...slot.rotation, intervalMs: interval };
      const active = rot.activeGeneration(slot.rotation);
      if (active) slot.dueAt = this.#dueAfter(active.activatedAt ?? active.generatedAt);
    }
  }

  /** When a generation activated at `t` is due for its scheduled rotation (interval minus jitter). */
  #dueAfter(t: number): number {
    return t + Math.round(this.#o.rotationIntervalMs * (1 - (this.#o.jitter ?? 0.1) * this.#random()));
  }

  async #loadKeys(): Promise<void> {
    for (const slot of this.#state.slots) {
      for (const g of [...slot.rotation.generations]) {
        const ref = slot.rotation.slot;
        const path = this.#dir.keyPath(ref, g.generation);
        let key: X25519PrivateKey | undefined;
        try {
          key = await readPrivateKeyFile(path);
        } catch (err) {
          if (!(err instanceof KeyFileError) || (err.cause as NodeJS.ErrnoException | undefined)?.code !== 'ENOENT') throw err;
        }
        if (key && key.fingerprint !== g.fingerprint) {
          throw new KeyFileError(path, `Key file "${path}" holds key ${key.fingerprint}, but the state names ${g.fingerprint} for generation ${g.generation}: restore the right file or move the key directory aside`);
        }
        if (key) {
          this.#keys.set(keyId(ref, g.generation), key);
          continue;
        }
        if (g.phase === 'retired') {
          slot.rotation = rot.destroy(slot.rotation, { generation: g.generation, now: this.#now() }).state;
        } else if (['generated', 'published', 'acknowledged'].includes(g.phase)) {
          const t = rot.abandon(slot.rotation, { generation: g.generation, now: this.#now() });
          slot.rotation = t.state;
          slot.publishedAt = null;
          await this.#record(toAuditEvent(t.event, { abandonReason: 'key-lost' }));
        } else {
          throw new KeyFileError(path, `Key file "${path}" of the ${g.phase} generation ${g.generation} of the ${slotLabel(ref)} is missing: restore it, or move the key directory aside to start with new keys`);
        }
      }
    }
    await this.#dir.save(this.#state);
  }

  /**
   * The identities hosted on this node. A new one gets a key slot (its key is generated at the
   * next pass); one no longer listed has its keys retired ("identity-removed") and destroyed.
   */
  setIdentities(ids: readonly number[]): void {
    for (const id of ids) {
      if (!Number.isInteger(id) || id < 1 || id > 65535) throw new RotationError('init', `Invalid identity ${String(id)}: use an identity id from 1 to 65535`);
    }
    this.#hosted = new Set(ids);
    const want: SlotRef[] = [{ kind: 'node', identity: 0 }, ...ids.map((id) => ({ kind: 'identity' as const, identity: id }))];
    for (const ref of want) {
      if (this.#slot(ref)) continue;
      this.#state.slots.push({
        rotation: rot.initialRotationState({ ...ref, node: this.#o.node }, { intervalMs: this.#o.rotationIntervalMs, peers: this.#peerKeys.names() }),
        dueAt: null,
        publishedAt: null,
        retireReason: 'rotation',
      });
    }
    this.#kick();
  }

  /** Slots of identities no longer hosted: out of the record first, then their keys are retired and destroyed. */
  async #removeUnhosted(): Promise<void> {
    const gone = this.#state.slots.filter((s) => s.rotation.slot.kind === 'identity' && !this.#hosted.has(s.rotation.slot.identity));
    if (gone.length === 0) return;
    const kept = this.#state.slots.filter((s) => !gone.includes(s));
    if (!(await this.#publish(kept.map((s) => s.rotation)))) return;
    this.#state.slots = kept;
    await this.#dir.save(this.#state);
    for (const slot of gone) {
      const ref: SlotRef = { kind: 'identity', identity: slot.rotation.slot.identity };
      for (const g of slot.rotation.generations) {
        const key = { keyKind: 'identity' as const, identity: ref.identity, generation: g.generation, fingerprint: g.fingerprint };
        await this.#hooks.retireLocalKey({ ...ref, generation: g.generation });
        await this.#record({ event: 'key.retired', ...key, reason: 'identity-removed' });
        await this.#wipe(ref, g.generation);
        await this.#record({ event: 'key.destroyed', ...key });
      }
    }
  }

  #slot(ref: SlotRef): SlotState | undefined {
    return this.#state.slots.find((s) => s.rotation.slot.kind === ref.kind && s.rotation.slot.identity === ref.identity);
  }

  /** Lists and watches the store, then runs passes until stop(). */
  async start(): Promise<void> {
    const me = this.#o.node;
    const own = await this.#o.store.get(this.#paths.record(me));
    if (own) {
      this.#recordRevision = own.modRevision;
      const seq = storedSequence(own);
      if (seq > this.#state.sequence) this.#state.sequence = seq;
    }
    this.#mirrors = [
      new PrefixMirror({ store: this.#o.store, prefix: this.#paths.recordsPrefix(), onChange: (k, kv) => {
          if (this.#peerKeys.onRecord(k, kv)) this.#kick();
        }, onResync: (e) => this.#warn(e, 'Re-listing node records') }),
      new PrefixMirror({ store: this.#o.store, prefix: this.#paths.acksOf(me), onChange: (k, kv) => this.#onAck(k, kv), onResync: (e) => this.#warn(e, 'Re-listing acknowledgements') }),
      new PrefixMirror({ store: this.#o.store, prefix: this.#paths.rotateRequestsOf(me), onChange: (k, kv) => this.#onRequest(k, kv), onResync: (e) => this.#warn(e, 'Re-listing rotation requests') }),
    ];
    for (const m of this.#mirrors) await m.start();
    this.#timer = setInterval(() => this.#kick(), this.#o.tickMs ?? 1000);
    this.#timer.unref?.();
    this.#kick();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer) clearInterval(this.#timer);
    for (const m of this.#mirrors) await m.stop();
    await this.#running;
  }

  /** Starts an on-demand rotation of a slot at the next pass (after a running one finished). */
  rotateNow(ref: SlotRef): void {
    if (!this.#slot(ref)) throw new RotationError('request', `Cannot rotate the ${slotLabel(ref)} of "${this.#o.node}": this node has no such key slot`);
    this.#onDemand.add(slotId(ref));
    this.#kick();
  }

  /** The last error of a pass (cleared by a successful pass); for health. */
  get lastError(): Error | undefined {
    return this.#lastError;
  }

  status(): SlotStatus[] {
    return this.#state.slots.map((s) => ({
      kind: s.rotation.slot.kind,
      identity: s.rotation.slot.identity,
      peers: [...s.rotation.peers],
      dueAt: s.dueAt,
      generations: s.rotation.generations.map((g) => ({ generation: g.generation, phase: g.phase, fingerprint: g.fingerprint, acknowledgedBy: [...g.acknowledgedBy], movedPeers: [...g.movedPeers] })),
    }));
  }

  // -------------------------------------------------------------------------------------------
  // Store changes

  #onAck(key: string, kv: KeyValue | null): void {
    const peer = key.slice(this.#paths.acksOf(this.#o.node).length);
    if (!kv) {
      this.#acks.delete(peer);
    } else {
      try {
        this.#acks.set(peer, parsePeerAck(kv.value, { owner: this.#o.node, peer }));
      } catch (err) {
        this.#acks.delete(peer);
        if (err instanceof NodeRecordError) this.#badAcks.push({ peer, err });
        else this.#warn(err as Error, 'Cannot read an acknowledgement');
      }
    }
    this.#kick();
  }

  #onRequest(key: string, kv: KeyValue | null): void {
    const ref = this.#paths.rotateRequestSlot(this.#o.node, key);
    if (!ref) return;
    if (!kv) {
      this.#requests.delete(slotId(ref));
      return;
    }
    try {
      const r = parseRotationRequest(this.#paths, this.#o.node, key, kv.value, kv.modRevision);
      if (r) this.#requests.set(slotId(ref), r);
    } catch (err) {
      this.#warn(err as Error, 'Ignoring a malformed rotation request');
    }
    this.#kick();
  }

  /** Writes an audit event and logs it (events carry fingerprints only, never key material). */
  async #record(event: AuditEvent): Promise<void> {
    await this.#o.audit.record(event);
    if (event.event === 'record.rejected') this.#o.log?.warn(event, 'Rejected a node record');
    else this.#o.log?.info(event, `Key lifecycle: ${event.event}`);
  }

  #warn(err: Error, msg: string): void {
    this.#o.log?.warn({ err }, msg);
  }

  // -------------------------------------------------------------------------------------------
  // The pass

  #kick(): void {
    if (this.#stopped && this.#running === undefined) return;
    if (this.#running) {
      this.#again = true;
      return;
    }
    this.#running = (async () => {
      do {
        this.#again = false;
        if (this.#stopped) break;
        try {
          await this.#pass();
          this.#lastError = undefined;
        } catch (err) {
          this.#lastError = err as Error;
          this.#o.log?.error({ err }, 'Key manager pass failed; retrying at the next tick');
          break;
        }
      } while (this.#again);
    })().finally(() => {
      this.#running = undefined;
    });
  }

  /** Waits until the current pass (if any) finished; for tests and orderly shutdown. */
  async settled(): Promise<void> {
    while (this.#running) await this.#running;
  }

  /**
   * Switches to a renewed node certificate and its key (agent/node-cert): the record is published
   * again at the next pass, signed with them, so peers hold the new certificate before the old
   * one expires. Retried every pass until it succeeds.
   */
  replaceNodeCertificate(certificatePem: string, privateKey: KeyObject | string): void {
    this.#credentials = { certificatePem, privateKey };
    this.#republish = true;
    this.#kick();
  }

  async #pass(): Promise<void> {
    for (const { peer, err } of this.#badAcks.splice(0)) {
      await this.#record({ event: 'record.rejected', peerNode: peer, reason: 'malformed', detail: auditDetail(err.message) });
    }
    await this.#peerKeys.sync();
    const peers = this.#peerKeys.names();
    for (const slot of this.#state.slots) {
      if (slot.rotation.peers.join(',') !== peers.join(',')) slot.rotation = rot.setPeers(slot.rotation, peers);
    }
    // The node key first: a record must carry a node key before identity keys can be published.
    const slots = [...this.#state.slots].sort((a, b) => (a.rotation.slot.kind === 'node' ? -1 : 0) - (b.rotation.slot.kind === 'node' ? -1 : 0));
    await this.#removeUnhosted();
    for (const slot of this.#state.slots.filter((x) => slots.includes(x))) await this.#ownerSide(slot);
    if (this.#republish && (await this.#publish(this.#state.slots.map((x) => x.rotation)))) {
      this.#republish = false;
      await this.#dir.save(this.#state);
    }
  }

  // Owner side: one slot's rotation.
  async #ownerSide(slot: SlotState): Promise<void> {
    const now = this.#now();
    const ref: SlotRef = { kind: slot.rotation.slot.kind, identity: slot.rotation.slot.identity };
    const sid = slotId(ref);
    const audit = async (e: rot.KeyAuditEvent, extra?: KeyAuditExtra) => this.#record(toAuditEvent(e, extra));

    // Retired leftovers (a crash between retire and destroy).
    for (const g of slot.rotation.generations.filter((x) => x.phase === 'retired')) await this.#destroy(slot, g.generation, now);

    // Start a rotation: no key yet, scheduled, or requested.
    const request = this.#requests.get(sid);
    const busy = slot.rotation.generations.some((g) => g.phase !== 'active');
    const active = rot.activeGeneration(slot.rotation);
    const wanted = !active || this.#onDemand.has(sid) || request !== undefined || (slot.dueAt !== null && now >= slot.dueAt);
    if (!busy && wanted) {
      const reason: rot.RotationReason = !active ? 'initial' : this.#onDemand.has(sid) || request ? 'on-demand' : 'schedule';
      const key = X25519PrivateKey.generate();
      const t = rot.generate(slot.rotation, { fingerprint: key.fingerprint, now, reason });
      const g = t.state.lastGeneration;
      await writePrivateKeyFile(this.#dir.keyPath(ref, g), key);
      this.#keys.set(keyId(ref, g), key);
      await this.#hooks.installLocalKey({ ...ref, generation: g, privateKey: key });
      slot.rotation = t.state;
      slot.retireReason = reason === 'on-demand' ? 'on-demand' : 'rotation';
      await this.#dir.save(this.#state);
      await audit(t.event);
      this.#onDemand.delete(sid);
      if (request) {
        await this.#o.store.delete(this.#paths.rotateRequest(this.#o.node, ref), request.modRevision);
        this.#requests.delete(sid);
      }
    }

    const pending = slot.rotation.generations.find((g) => g.phase === 'generated' || g.phase === 'published' || g.phase === 'acknowledged');
    if (pending?.phase === 'generated') {
      const t = rot.publish(slot.rotation, { generation: pending.generation, now });
      if (!(await this.#publish(this.#with(slot, t.state)))) return;
      slot.rotation = t.state;
      slot.publishedAt = now;
      await this.#dir.save(this.#state);
      await audit(t.event);
    }
    const current = slot.rotation.generations.find((g) => g.phase === 'published' || g.phase === 'acknowledged');
    if (current) {
      await this.#peerReports(slot, current.generation, 'installed', rot.acknowledge, now);
      const g = slot.rotation.generations.find((x) => x.generation === current.generation)!;
      if (g.phase === 'acknowledged') {
        const key = this.#keys.get(keyId(ref, g.generation))!;
        await this.#hooks.activateLocalKey({ ...ref, generation: g.generation, privateKey: key });
        const t = rot.activate(slot.rotation, { generation: g.generation, now });
        if (!(await this.#publish(this.#with(slot, t.state)))) return;
        slot.rotation = t.state;
        slot.publishedAt = null;
        slot.dueAt = this.#dueAfter(now);
        await this.#dir.save(this.#state);
        await audit(t.event);
      } else if (slot.publishedAt !== null && now - slot.publishedAt >= this.#o.acknowledgeTimeoutMs) {
        const missing = slot.rotation.peers.filter((p) => !g.acknowledgedBy.includes(p)).length;
        const t = rot.abandon(slot.rotation, { generation: g.generation, now });
        if (!(await this.#publish(this.#with(slot, t.state)))) return;
        slot.rotation = t.state;
        slot.publishedAt = null;
        await this.#dir.save(this.#state);
        await this.#wipe(ref, g.generation);
        await this.#hooks.retireLocalKey({ ...ref, generation: g.generation });
        await audit(t.event, { abandonReason: 'not-acknowledged', missingPeers: missing });
        this.#o.log?.warn({ slot: sid, generation: g.generation, missingPeers: missing }, 'Abandoned a key generation that peers did not acknowledge in time');
      }
    }

    // Peers move to the active generation; then the superseded one is retired and destroyed.
    const act = rot.activeGeneration(slot.rotation);
    const superseded = slot.rotation.generations.find((g) => g.phase === 'superseded');
    if (act && superseded) {
      await this.#peerReports(slot, act.generation, 'using', rot.peerMoved, now);
      const a = rot.activeGeneration(slot.rotation)!;
      if (slot.rotation.peers.every((p) => a.movedPeers.includes(p))) {
        await this.#hooks.retireLocalKey({ ...ref, generation: superseded.generation });
        const t = rot.retire(slot.rotation, { generation: superseded.generation, now });
        if (!(await this.#publish(this.#with(slot, t.state)))) return;
        slot.rotation = t.state;
        await this.#dir.save(this.#state);
        await audit(t.event, { retireReason: slot.retireReason });
        await this.#destroy(slot, superseded.generation, now);
        await this.#record({
          event: 'rotation.completed',
          keyKind: ref.kind,
          ...(ref.kind === 'identity' ? { identity: ref.identity } : {}),
          fromGeneration: superseded.generation,
          toGeneration: a.generation,
          fingerprint: a.fingerprint,
          previousFingerprint: superseded.fingerprint,
          acknowledgedBy: a.acknowledgedBy.length,
        });
      }
    }
  }

  /**
   * Records what peers' acknowledgement documents report for `generation`: "installed" ones
   * acknowledge it, "using" ones moved to it. Each new report is saved and audited.
   */
  async #peerReports(
    slot: SlotState,
    generation: number,
    list: 'installed' | 'using',
    step: (s: rot.RotationState, input: { peer: string; generation: number; now: number }) => rot.PeerReport,
    now: number,
  ): Promise<void> {
    const ref: SlotRef = { kind: slot.rotation.slot.kind, identity: slot.rotation.slot.identity };
    for (const peer of slot.rotation.peers) {
      const ack = this.#acks.get(peer);
      if (!ack || !ackHas(ack[list], ref, generation)) continue;
      const r = step(slot.rotation, { peer, generation, now });
      if (!r.event) continue;
      slot.rotation = r.state;
      await this.#dir.save(this.#state);
      await this.#record(toAuditEvent(r.event));
    }
  }

  async #destroy(slot: SlotState, generation: number, now: number): Promise<void> {
    const ref: SlotRef = { kind: slot.rotation.slot.kind, identity: slot.rotation.slot.identity };
    await this.#wipe(ref, generation);
    const t = rot.destroy(slot.rotation, { generation, now });
    slot.rotation = t.state;
    await this.#dir.save(this.#state);
    await this.#record(toAuditEvent(t.event));
  }

  async #wipe(ref: SlotRef, generation: number): Promise<void> {
    await destroySecretFile(this.#dir.keyPath(ref, generation));
    this.#keys.delete(keyId(ref, generation));
  }

  /** Every slot's rotation state, with `next` in place of `slot`'s. */
  #with(slot: SlotState, next: rot.RotationState): rot.RotationState[] {
    return this.#state.slots.map((s) => (s === slot ? next : s.rotation));
  }

  /**
   * Signs and writes the node record carrying the published generations of `rotations`. False
   * when it cannot be published yet (no node key in it).
   */
  async #publish(rotations: rot.RotationState[]): Promise<boolean> {
    const keys: NodeRecordKey[] = [];
    for (const r of rotations) {
      for (const g of r.generations) {
        const state = recordKeyState(g.phase);
        const key = this.#keys.get(keyId(r.slot, g.generation));
        if (state && key) keys.push({ kind: r.slot.kind, identity: r.slot.identity, generation: g.generation, publicKey: key.publicKey.base64, state });
      }
    }
    if (!keys.some((k) => k.kind === 'node')) return false;
    const record: NodeRecord = {
      version: 1,
      name: this.#o.node,
      addresses: this.#o.addresses,
      podCidrs: this.#o.podCidrs,
      bootId: this.#o.bootId,
      keys,
      issuedAt: this.#now(),
      sequence: this.#state.sequence + 1,
    };
    const wire = Buffer.from(serializeSignedNodeRecord(signNodeRecord(record, { privateKey: this.#credentials.privateKey, certificate: this.#credentials.certificatePem })));
    const key = this.#paths.record(this.#o.node);
    const r = this.#recordRevision === null ? await this.#o.store.create(key, wire) : await this.#o.store.update(key, wire, this.#recordRevision);
    const ok = 'updated' in r ? r.updated : r.created;
    if (!ok) {
      // Someone else wrote our record (a second agent, or state restored from a backup): take
      // its revision and sequence so the next pass publishes above it.
      const cur = r.kv;
      this.#recordRevision = cur?.modRevision ?? null;
      const seq = cur ? storedSequence(cur) : 0;
      if (seq > this.#state.sequence) this.#state.sequence = seq;
      throw new RotationError('publish', `Cannot publish the record of "${this.#o.node}": it changed in the store under this agent (revision ${cur?.modRevision ?? 'deleted'}); retrying; is a second agent running as "${this.#o.node}"?`);
    }
    this.#recordRevision = ('updated' in r ? r.kv! : r.kv).modRevision;
    this.#state.sequence = record.sequence;
    return true;
  }
}

