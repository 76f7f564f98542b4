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
 *
 * WireGuard mode (`wireguard` option): the node key rotates over the two channel devices
 * (docs/wireguard-rotation.md) under the cluster-wide rotation lease (rotation-lock.ts):
 * generate → begin + publish (record: key "pending", channel d drains) → every peer acknowledged
 * it on channel d (ack "channels") → activate on d + publish → drainOther + publish → every peer
 * installed it on d̄ and moved → complete on d̄ → retire + publish → destroy → lease released.
 * The record carries the channel state; after a restart the phase follows from the published one.
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
import type { ChannelAcks, NodeKeyChannels } from './node-key-channels.js';
import { validateNodeRecord, type NodeRecord, type NodeRecordKey, type NodeRecordKeyState, type NodeRecordWireGuard } from './node-record.js';
import { NodeKeyRotationLock } from './rotation-lock.js';
import { localRotationPhase } from '../reconcile/wireguard-local-rotation.js';
import { steadyChannelState } from '../reconcile/wireguard-channel-state.js';
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
   * WireGuard mode: the node key rotates over two channels (node-key-channels.ts), one node of
   * the cluster at a time (the lease's TTL, default 10 s). Omitted: the generic rotation (IPsec,
   * control-plane tests).
   */
  wireguard?: { channels: NodeKeyChannels; lockTtlSeconds?: number };
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

/** How long the old channel's drain waits for this node's handshakes on the re-keyed one. */
const HANDSHAKE_WAIT_MS = 5_000;
/**
 * How long a channel stays as it is after traffic left it, before its key changes anywhere:
 * packets already encrypted for it (queued in a loaded wireguard-go, in flight) are still received
 * — setting a new key or removing a peer drops the sessions they belong to.
 */
const STEER_GRACE_MS = 1_000;

function sameChannels(a: NodeRecordWireGuard | undefined, b: NodeRecordWireGuard): boolean {
  return a !== undefined && a.generations[0] === b.generations[0] && a.generations[1] === b.generations[1] && a.draining === b.draining;
}

/** The record this node published earlier, or undefined when it cannot be read. */
function storedRecord(kv: KeyValue): NodeRecord | undefined {
  try {
    return validateNodeRecord((JSON.parse(kv.value.toString('utf8')) as { record?: unknown }).record);
  } catch {
    return undefined;
  }
}

/** The sequence of a record this node published earlier (0 when it cannot be read). */
function storedSequence(kv: KeyValue): number {
  return storedRecord(kv)?.sequence ?? 0;
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
  readonly #lock: NodeKeyRotationLock | undefined;
  /** The channel state in the record last published (WireGuard mode). */
  #publishedWg: NodeRecordWireGuard | undefined;
  /** When this process set the new node key on the re-keyed channel (WireGuard mode). */
  #channelKeyedAt: number | undefined;
  /** When traffic last moved off a channel that is re-keyed next (WireGuard mode). */
  #steeredAt: number | undefined;
  /** When every peer was seen to have left the old channel (WireGuard mode). */
  #oldAckedAt: number | undefined;
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
    if (o.wireguard) {
      this.#lock = new NodeKeyRotationLock({
        store: o.store,
        node: o.node,
        key: this.#paths.rotationLock(),
        ...(o.wireguard.lockTtlSeconds !== undefined ? { ttlSeconds: o.wireguard.lockTtlSeconds } : {}),
        ...(o.log ? { log: o.log } : {}),
      });
    }
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
    const wg = this.#o.wireguard?.channels;
    if (wg) {
      // Resume from the published channel state (the rotation's phase follows from it).
      const published = own ? storedRecord(own)?.wireguard : undefined;
      const active = this.#nodeSlot() ? rot.activeGeneration(this.#nodeSlot()!.rotation) : undefined;
      this.#publishedWg = published;
      if (published) await wg.restore(published);
      else if (active) await wg.restore(steadyChannelState(active.generation));
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
    // A rotation in progress keeps its lease key until the TTL; a restart takes it over (rotation-lock.ts).
  }

  #nodeSlot(): SlotState | undefined {
    return this.#slot({ kind: 'node', identity: 0 });
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
    for (const slot of this.#state.slots.filter((x) => slots.includes(x))) {
      const wg = this.#o.wireguard?.channels;
      if (wg && slot.rotation.slot.kind === 'node' && rot.activeGeneration(slot.rotation)) await this.#wireGuardNodeKey(slot, wg);
      else await this.#ownerSide(slot);
    }
    if (this.#republish && (await this.#publish(this.#state.slots.map((x) => x.rotation)))) {
      this.#republish = false;
      await this.#dir.save(this.#state);
    }
  }

  /**
   * A new generation for a slot: the private key written (0600) and handed to the kernel hooks
   * (`afterInstall` runs next, before the state is saved), the rotation state saved, the
   * `key.generated` audit event, the on-demand request consumed.
   */
  async #generate(
    slot: SlotState,
    ref: SlotRef,
    reason: rot.RotationReason,
    request: RotationRequest | undefined,
    now: number,
    afterInstall?: (generation: number) => Promise<void>,
  ): Promise<void> {
    const key = X25519PrivateKey.generate();
    const t = rot.generate(slot.rotation, { fingerprint: key.fingerprint, now, reason });
    const g = t.state.lastGeneration;
    await writePrivateKeyFile(this.#dir.keyPath(ref, g), key);
    this.#keys.set(keyId(ref, g), key);
    await this.#hooks.installLocalKey({ ...ref, generation: g, privateKey: key });
    await afterInstall?.(g);
    slot.rotation = t.state;
    slot.retireReason = reason === 'on-demand' ? 'on-demand' : 'rotation';
    await this.#dir.save(this.#state);
    await this.#record(toAuditEvent(t.event));
    const sid = slotId(ref);
    this.#onDemand.delete(sid);
    if (request) {
      await this.#o.store.delete(this.#paths.rotateRequest(this.#o.node, ref), request.modRevision);
      this.#requests.delete(sid);
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
      await this.#generate(slot, ref, reason, request, now, async (g) => {
        if (ref.kind === 'node' && !active) await this.#o.wireguard?.channels.restore(steadyChannelState(g));
      });
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
   * WireGuard mode, the node key once it has an active generation: one rotation step per call,
   * chosen from the rotation state and the channel state (so a restarted agent resumes where the
   * published state says). Every step that publishes or touches a device holds the lease.
   */
  async #wireGuardNodeKey(slot: SlotState, wg: NodeKeyChannels): Promise<void> {
    const now = this.#now();
    const ref: SlotRef = { kind: 'node', identity: 0 };
    const sid = slotId(ref);
    const lock = this.#lock!;
    const audit = async (e: rot.KeyAuditEvent, extra?: KeyAuditExtra) => this.#record(toAuditEvent(e, extra));
    const channelEvent = async (event: 'key.channel_draining' | 'key.channel_keyed', generation: number, channel: 0 | 1) => {
      const g = slot.rotation.generations.find((x) => x.generation === generation)!;
      await this.#record({ event, keyKind: 'node', generation, fingerprint: g.fingerprint, channel });
    };
    const needLock = async (): Promise<boolean> => {
      if (await lock.acquire()) return true;
      this.#o.log?.info({ holder: await lock.holder() }, 'Node key rotation waits for the cluster-wide rotation lease');
      return false;
    };

    for (const g of slot.rotation.generations.filter((x) => x.phase === 'retired')) await this.#destroy(slot, g.generation, now);

    // Start: scheduled or requested, one node of the cluster at a time.
    const request = this.#requests.get(sid);
    const busy = slot.rotation.generations.some((g) => g.phase !== 'active');
    const wanted = this.#onDemand.has(sid) || request !== undefined || (slot.dueAt !== null && now >= slot.dueAt);
    if (!busy && localRotationPhase(wg.state).phase === 'idle') {
      if (!wanted) {
        if (lock.held) await lock.release();
        return;
      }
      if (!(await needLock())) return;
      const reason: rot.RotationReason = this.#onDemand.has(sid) || request ? 'on-demand' : 'schedule';
      await this.#generate(slot, ref, reason, request, now);
    }

    // begin + publish: channel d drains and names the new generation.
    const pending = slot.rotation.generations.find((g) => g.phase === 'generated' || g.phase === 'published' || g.phase === 'acknowledged');
    if (pending?.phase === 'generated') {
      if (!(await needLock())) return;
      let state = wg.state;
      if (localRotationPhase(state).phase === 'idle') {
        state = await wg.begin(pending.generation);
        this.#steeredAt = this.#now();
        await channelEvent('key.channel_draining', pending.generation, localRotationPhase(state).channel!);
      }
      // Packets this node sent on the channel it just left are delivered before peers re-key it.
      if (this.#graceLeft()) return;
      const t = rot.publish(slot.rotation, { generation: pending.generation, now });
      if (!(await this.#publish(this.#with(slot, t.state), state))) return;
      slot.rotation = t.state;
      slot.publishedAt = now;
      await this.#dir.save(this.#state);
      await audit(t.event);
    }

    // Every peer installed it on channel d → the key is set there and activated.
    const current = slot.rotation.generations.find((g) => g.phase === 'published' || g.phase === 'acknowledged');
    if (current) {
      await this.#peerReports(slot, current.generation, 'installed', rot.acknowledge, now);
      const g = slot.rotation.generations.find((x) => x.generation === current.generation)!;
      const { channel } = localRotationPhase(wg.state);
      const acks = this.#channelAcks();
      const onChannel = channel !== null && slot.rotation.peers.every((p) => acks.get(p)?.[channel] === g.generation);
      if (g.phase === 'acknowledged' && onChannel) {
        if (!(await needLock())) return;
        const key = this.#keys.get(keyId(ref, g.generation))!;
        // Already set on the device when an earlier pass failed to publish the activation.
        const keyed = localRotationPhase(wg.state).phase === 'activated';
        // Before the key is set: the first handshake on the channel may complete at once.
        const keyedAt = this.#now();
        const state = keyed ? wg.state : await wg.activate(key, acks);
        if (!keyed) await channelEvent('key.channel_keyed', g.generation, channel);
        this.#channelKeyedAt = keyedAt;
        const t = rot.activate(slot.rotation, { generation: g.generation, now });
        if (!(await this.#publish(this.#with(slot, t.state), state))) return;
        slot.rotation = t.state;
        slot.publishedAt = null;
        slot.dueAt = this.#dueAfter(now);
        await this.#dir.save(this.#state);
        await audit(t.event);
      } else if (slot.publishedAt !== null && now - slot.publishedAt >= this.#o.acknowledgeTimeoutMs) {
        const missing = slot.rotation.peers.filter((p) => !g.acknowledgedBy.includes(p) || (channel !== null && acks.get(p)?.[channel] !== g.generation)).length;
        const state = localRotationPhase(wg.state).phase === 'published' ? await wg.abort() : wg.state;
        const t = rot.abandon(slot.rotation, { generation: g.generation, now });
        if (!(await this.#publish(this.#with(slot, t.state), state))) return;
        slot.rotation = t.state;
        slot.publishedAt = null;
        await this.#dir.save(this.#state);
        await this.#wipe(ref, g.generation);
        await this.#hooks.retireLocalKey({ ...ref, generation: g.generation });
        await audit(t.event, { abandonReason: 'not-acknowledged', missingPeers: missing });
        this.#steeredAt = undefined;
        await lock.release();
        this.#o.log?.warn({ slot: sid, generation: g.generation, missingPeers: missing }, 'Abandoned a node key generation that peers did not acknowledge on its channel in time');
        return;
      }
    }

    const act = rot.activeGeneration(slot.rotation)!;
    const superseded = slot.rotation.generations.find((g) => g.phase === 'superseded');
    if (!superseded) return;
    // drainOther + publish: peers steer to the re-keyed channel and re-key the old one.
    const drained = localRotationPhase(wg.state).phase === 'retiring';
    if (localRotationPhase(wg.state).phase === 'activated' || (drained && !sameChannels(this.#publishedWg, wg.state))) {
      if (!(await needLock())) return;
      // Peers move onto the re-keyed channel once this node's handshakes there are done (bounded:
      // a peer this node sends nothing to never handshakes, and then cannot cross one either).
      const since = (this.#channelKeyedAt ??= this.#now());
      if (!drained) {
        // This node moved to the re-keyed channel at activation: its packets still on the old
        // one are delivered before peers re-key it.
        this.#steeredAt = since;
        if (this.#graceLeft()) return;
        const waiting = await wg.withoutHandshake(since);
        if (waiting.length > 0 && this.#now() - since < HANDSHAKE_WAIT_MS) {
          this.#o.log?.debug({ peers: waiting }, 'Waiting for handshakes on the re-keyed WireGuard channel before draining the old one');
          setTimeout(() => this.#kick(), 100).unref?.();
          return;
        }
        this.#o.log?.info({ waitedMs: this.#now() - since, withoutHandshake: waiting }, 'Draining the old WireGuard channel');
      }
      const state = drained ? wg.state : await wg.drainOther();
      if (!(await this.#publish(this.#with(slot, slot.rotation), state))) return;
      await channelEvent('key.channel_draining', act.generation, state.draining!);
    }
    // Every peer installed it on the old channel and moved → complete, retire, destroy.
    await this.#peerReports(slot, act.generation, 'using', rot.peerMoved, now);
    const a = rot.activeGeneration(slot.rotation)!;
    const { phase, channel } = localRotationPhase(wg.state);
    const acks = this.#channelAcks();
    const old = phase === 'retiring' && channel !== null ? (channel === 0 ? 1 : 0) : null;
    const installed = old === null || slot.rotation.peers.every((p) => acks.get(p)?.[old] === a.generation);
    if (!installed || !slot.rotation.peers.every((p) => a.movedPeers.includes(p))) return;
    if (!(await needLock())) return;
    // The peers just moved off the old channel: what they sent on it arrives before its key changes.
    if (old !== null) {
      this.#oldAckedAt ??= this.#now();
      this.#steeredAt = this.#oldAckedAt;
      if (this.#graceLeft()) return;
    }
    let state = wg.state;
    if (old !== null) {
      state = await wg.complete(this.#keys.get(keyId(ref, a.generation))!, acks);
      await channelEvent('key.channel_keyed', a.generation, old);
    }
    await this.#hooks.retireLocalKey({ ...ref, generation: superseded.generation });
    const t = rot.retire(slot.rotation, { generation: superseded.generation, now });
    if (!(await this.#publish(this.#with(slot, t.state), state))) return;
    slot.rotation = t.state;
    await this.#dir.save(this.#state);
    await audit(t.event, { retireReason: slot.retireReason });
    await this.#destroy(slot, superseded.generation, now);
    await this.#record({
      event: 'rotation.completed',
      keyKind: 'node',
      fromGeneration: superseded.generation,
      toGeneration: a.generation,
      fingerprint: a.fingerprint,
      previousFingerprint: superseded.fingerprint,
      acknowledgedBy: a.acknowledgedBy.length,
    });
    this.#channelKeyedAt = undefined;
    this.#steeredAt = undefined;
    this.#oldAckedAt = undefined;
    await lock.release();
  }

  /**
   * Whether the steering grace since #steeredAt (or now, after a restart) has not run out yet;
   * then the pass is kicked again when it has.
   */
  #graceLeft(): boolean {
    const since = (this.#steeredAt ??= this.#now());
    const left = since + STEER_GRACE_MS - this.#now();
    if (left <= 0) return false;
    setTimeout(() => this.#kick(), left + 10).unref?.();
    return true;
  }

  /** Per peer, the channel generations its acknowledgement reports for this node's node key. */
  #channelAcks(): ChannelAcks {
    const out = new Map<string, readonly [number, number] | null>();
    for (const [peer, ack] of this.#acks) out.set(peer, ack.channels ?? null);
    return out;
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
  async #publish(rotations: rot.RotationState[], wireguardState?: NodeRecordWireGuard): Promise<boolean> {
    const keys: NodeRecordKey[] = [];
    for (const r of rotations) {
      for (const g of r.generations) {
        const state = recordKeyState(g.phase);
        const key = this.#keys.get(keyId(r.slot, g.generation));
        if (state && key) keys.push({ kind: r.slot.kind, identity: r.slot.identity, generation: g.generation, publicKey: key.publicKey.base64, state });
      }
    }
    if (!keys.some((k) => k.kind === 'node')) return false;
    const wireguard = wireguardState ?? this.#o.wireguard?.channels.state;
    const record: NodeRecord = {
      version: 1,
      name: this.#o.node,
      addresses: this.#o.addresses,
      podCidrs: this.#o.podCidrs,
      bootId: this.#o.bootId,
      keys,
      issuedAt: this.#now(),
      sequence: this.#state.sequence + 1,
      ...(wireguard ? { wireguard: { generations: [wireguard.generations[0], wireguard.generations[1]], draining: wireguard.draining } } : {}),
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
    this.#publishedWg = record.wireguard;
    return true;
  }
}

