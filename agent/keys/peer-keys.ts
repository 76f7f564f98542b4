/**
 * The peer half of key rotation (docs/keys.md §Rotation as implemented): this node's view of
 * every other node's keys. For each record read from the store it
 *
 *   1. verifies it (NodeRecordVerifier: signature, node certificate, freshness) — a record that
 *      fails is an audit "record.rejected" and changes nothing;
 *   2. refuses it whole when it carries a key of an identity its node does not host
 *      ("identity-not-hosted", audited once per record revision; checked again at every sync,
 *      since the references can be written after the record);
 *   3. calls installPeerKey for each new generation, usePeerKey for each newly active one and
 *      removePeerKey for generations that left the record (all of them when the record is
 *      deleted: the node left the cluster);
 *   4. writes its acknowledgement document keys/acks/<owner>/<this node> when it changed.
 *
 * `onRecord` runs in the store watch (synchronous, verification only); `sync` does the rest in
 * the key manager's serialised pass.
 */
import type { AuditEvent } from '../audit/events.js';
import type { Logger } from '../log/logger.js';
import type { KeyValue, Store } from '../store/store.js';
import { NodeRecordError, RotationError, type NodeRecordRejectReason } from './errors.js';
import type { KernelKeyHooks, PeerKey } from './kernel-key-hooks.js';
import { slotId, type KeyStorePaths, type SlotRef } from './key-store-paths.js';
import type { NodeRecord, NodeRecordKey } from './node-record.js';
import { NodeRecordVerifier } from './node-record-verify.js';
import { encodePeerAck, type SlotGeneration } from './peer-ack.js';
import { X25519PublicKey } from './x25519.js';

export interface PeerKeysOptions {
  node: string;
  store: Store;
  paths: KeyStorePaths;
  trustAnchors: readonly string[];
  hooks: KernelKeyHooks;
  identityHosted?: (node: string, identity: number) => Promise<boolean>;
  /** Writes an audit event (and logs it). */
  record: (event: AuditEvent) => Promise<void>;
  log?: Logger;
  now: () => number;
}

interface PeerView {
  modRevision: string;
  record: NodeRecord;
  /** "kind/identity/generation" of the keys installed for this peer. */
  installed: Set<string>;
  /** slotId → generation used to send to this peer. */
  using: Map<string, number>;
  /** WireGuard mode: the record revision applyPeerRecord last ran for, and what it reported. */
  channelsApplied?: string;
  channels?: readonly [number, number] | null;
  ackWritten?: string;
}

type AuditRejectReason = 'unsigned' | 'bad-signature' | 'untrusted-certificate' | 'expired-certificate' | 'stale-generation' | 'malformed';

const REJECT_REASON: Record<NodeRecordRejectReason, AuditRejectReason> = {
  oversized: 'malformed',
  malformed: 'malformed',
  unsigned: 'unsigned',
  certificate_invalid: 'untrusted-certificate',
  certificate_untrusted: 'untrusted-certificate',
  certificate_expired: 'expired-certificate',
  certificate_name_mismatch: 'bad-signature',
  signature_invalid: 'bad-signature',
  stale_sequence: 'stale-generation',
  stale_issued_at: 'stale-generation',
  future_issued_at: 'malformed',
};

const keyId = (s: SlotRef, generation: number) => `${s.kind}/${s.identity}/${generation}`;

function parseKeyId(id: string): SlotRef & { generation: number } {
  const [kind, identity, generation] = id.split('/');
  return { kind: kind as SlotRef['kind'], identity: Number(identity), generation: Number(generation) };
}

/** An audit "detail": printable ASCII, at most 512 characters. */
export function auditDetail(message: string): string {
  return message.replace(/[^\x20-\x7e]/g, '?').slice(0, 512);
}

export class PeerKeys {
  readonly #o: PeerKeysOptions;
  readonly #verifier: NodeRecordVerifier;
  readonly #peers = new Map<string, PeerView>();
  /** Verified records not yet checked for identity hosting and applied. */
  readonly #incoming = new Map<string, { modRevision: string; record: NodeRecord }>();
  /** Nodes whose record was deleted (their keys are removed at the next sync). */
  readonly #gone = new Set<string>();
  /** Records refused since the last sync (audited by it). */
  readonly #rejected: { node: string; err: NodeRecordError }[] = [];
  /** node → revision of its record last audited as "identity-not-hosted" (audited once, retried every sync). */
  readonly #strayAudited = new Map<string, string>();

  constructor(o: PeerKeysOptions) {
    this.#o = o;
    this.#verifier = new NodeRecordVerifier({ trustAnchors: o.trustAnchors });
  }

  /** The peers with an accepted record, sorted. */
  names(): string[] {
    return [...this.#peers.keys()].sort();
  }

  /** A record key changed in the store. Returns whether a sync is needed. */
  onRecord(key: string, kv: KeyValue | null): boolean {
    const node = this.#o.paths.recordNode(key);
    if (!node || node === this.#o.node) return false;
    if (!kv) {
      this.#gone.add(node);
      return true;
    }
    if ((this.#incoming.get(node) ?? this.#peers.get(node))?.modRevision === kv.modRevision) return false;
    try {
      const v = this.#verifier.verify(kv.value, { expectedNode: node, now: this.#o.now() });
      this.#gone.delete(node);
      this.#incoming.set(node, { modRevision: kv.modRevision, record: v.record });
    } catch (err) {
      if (err instanceof NodeRecordError) this.#rejected.push({ node, err });
      else this.#o.log?.warn({ err, peer: node }, 'Cannot verify a node record');
    }
    return true;
  }

  /** Audits rejections, applies accepted records to the kernel hooks and acknowledges. */
  async sync(): Promise<void> {
    for (const { node, err } of this.#rejected.splice(0)) {
      await this.#o.record({ event: 'record.rejected', peerNode: node, reason: REJECT_REASON[err.reason], detail: auditDetail(err.message) });
    }
    await this.#applyIncoming();
    for (const node of [...this.#gone]) await this.#forget(node);
    for (const [node, view] of this.#peers) await this.#syncPeer(node, view);
  }

  async #applyIncoming(): Promise<void> {
    for (const [node, { modRevision, record }] of [...this.#incoming]) {
      this.#incoming.delete(node);
      if (this.#gone.has(node)) continue;
      const check = this.#o.identityHosted;
      const stray: NodeRecordKey[] = [];
      if (check) for (const k of record.keys) if (k.kind === 'identity' && !(await check(node, k.identity))) stray.push(k);
      if (stray.length) {
        // Kept and checked again at every sync: the hosting node writes its identity references on
        // its lease, which after an agent restart (or a lost lease) can come after the record
        // that carries the identity's key. Accepted once the references exist, never before.
        this.#incoming.set(node, { modRevision, record });
        if (this.#strayAudited.get(node) === modRevision) continue;
        this.#strayAudited.set(node, modRevision);
        const k = stray[0]!;
        await this.#o.record({
          event: 'record.rejected',
          peerNode: node,
          reason: 'identity-not-hosted',
          detail: `Record sequence ${record.sequence} carries keys of identities the node does not reference: ${stray.slice(0, 8).map((x) => x.identity).join(', ')}`,
          generation: k.generation,
          fingerprint: X25519PublicKey.fromBase64(k.publicKey).fingerprint,
        });
        continue;
      }
      this.#strayAudited.delete(node);
      const prev = this.#peers.get(node);
      this.#peers.set(node, {
        modRevision,
        record,
        installed: prev?.installed ?? new Set(),
        using: prev?.using ?? new Map(),
        ...(prev?.channelsApplied !== undefined ? { channelsApplied: prev.channelsApplied, channels: prev.channels ?? null } : {}),
        ...(prev?.ackWritten !== undefined ? { ackWritten: prev.ackWritten } : {}),
      });
    }
  }

  /** A node left the cluster: remove its keys and this node's acknowledgement of them. */
  async #forget(node: string): Promise<void> {
    const view = this.#peers.get(node);
    if (view) {
      for (const id of view.installed) await this.#o.hooks.removePeerKey({ node, ...parseKeyId(id) });
      this.#peers.delete(node);
      this.#verifier.forget(node);
    }
    await this.#o.store.delete(this.#o.paths.ack(node, this.#o.node));
    this.#gone.delete(node);
  }

  async #syncPeer(node: string, view: PeerView): Promise<void> {
    const keys = view.record.keys;
    const peerKey = (k: NodeRecordKey): PeerKey => ({ node, kind: k.kind, identity: k.identity, generation: k.generation, publicKey: X25519PublicKey.fromBase64(k.publicKey), record: view.record });
    for (const k of keys) {
      if (view.installed.has(keyId(k, k.generation))) continue;
      await this.#o.hooks.installPeerKey(peerKey(k));
      view.installed.add(keyId(k, k.generation));
    }
    for (const k of keys) {
      if (k.state !== 'active' || view.using.get(slotId(k)) === k.generation) continue;
      await this.#o.hooks.usePeerKey(peerKey(k));
      view.using.set(slotId(k), k.generation);
    }
    const present = new Set(keys.map((k) => keyId(k, k.generation)));
    for (const id of [...view.installed]) {
      if (present.has(id)) continue;
      await this.#o.hooks.removePeerKey({ node, ...parseKeyId(id) });
      view.installed.delete(id);
    }
    for (const [sid, gen] of [...view.using]) {
      if (!keys.some((k) => slotId(k) === sid && k.generation === gen)) view.using.delete(sid);
    }
    // WireGuard mode: the record's channel state (it changes without any key changing while the
    // owner drains its old channel); acknowledged only after the device peers were updated.
    const apply = this.#o.hooks.applyPeerRecord;
    if (apply && (view.channelsApplied !== view.modRevision || view.channels === null)) {
      view.channels = await apply.call(this.#o.hooks, node, view.record);
      view.channelsApplied = view.modRevision;
    }
    const entry = (k: NodeRecordKey): SlotGeneration => ({ kind: k.kind, identity: k.identity, generation: k.generation });
    const installed = keys.filter((k) => view.installed.has(keyId(k, k.generation))).map(entry);
    const using = keys.filter((k) => view.using.get(slotId(k)) === k.generation).map(entry);
    const doc = encodePeerAck({ v: 1, owner: node, peer: this.#o.node, installed, using, ...(view.channels ? { channels: view.channels } : {}) });
    if (view.ackWritten === doc.toString('utf8')) return;
    await this.#put(this.#o.paths.ack(node, this.#o.node), doc);
    view.ackWritten = doc.toString('utf8');
  }

  /** Writes a key this node alone writes: create, or update at the revision just read. */
  async #put(key: string, value: Buffer): Promise<void> {
    for (let attempt = 0; attempt < 8; attempt++) {
      const cur = await this.#o.store.get(key);
      if (cur?.value.equals(value)) return;
      const r = cur ? await this.#o.store.update(key, value, cur.modRevision) : await this.#o.store.create(key, value);
      if ('updated' in r ? r.updated : r.created) return;
    }
    throw new RotationError('acknowledge', `Cannot write "${key}": it kept changing under this node; is a second agent running as "${this.#o.node}"?`);
  }
}
