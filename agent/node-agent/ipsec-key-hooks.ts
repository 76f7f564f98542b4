/**
 * The key manager's kernel hooks in IPsec mode (agent/keys/kernel-key-hooks.ts; the WireGuard
 * counterpart is wireguard-key-hooks.ts). They keep the local node's keys (LocalIpsecKeys: node
 * key and hosted identities' key generations, `sending` = the active one) and the peers' verified
 * records, and drive the SA reconciler (agent/reconcile/ipsec-reconciler.ts) and the routes of
 * remote pod CIDRs (agent/reconcile/ipsec-routes.ts):
 *
 *   installLocalKey / activateLocalKey / retireLocalKey  → LocalIpsecKeys, then setLocal()
 *   installPeerKey / usePeerKey                          → update(node, record with the generations installed so far), routes
 *   removePeerKey                                        → update() without that generation; delete() + routes gone when none is left
 *
 * - The reconciler needs a node key to plan anything: it is made (adopt(): Veil's SAs and policies
 *   already in the kernel are taken over, nothing is flushed) with the first node key, from the
 *   key state directory after a restart (`restore()`, before the key manager starts) or from the
 *   first installLocalKey. Peer keys that arrive earlier are kept and applied then.
 * - Make-before-break comes from the order the key manager calls the hooks in: a new local
 *   generation gets its SAs at install (inbound SAs of a new node key exist before the key is
 *   published, cilium#44335), the datapath switches at activation, old SAs go at retirement.
 * - The datapath reads the key slot from here: `senderGeneration(identity)` (the sending
 *   generation of the local identity's key whose SAs are installed) goes into the endpoint map,
 *   `receiverGeneration(node)` (the remote node key generation the installed SAs send to) into
 *   the ipcache; from-pod combines them (docs/datapath.md). Both are read from what the
 *   reconciler applied, never from what was merely asked for, so the datapath never names an SA
 *   that does not exist yet.
 */
import type { KernelKeyHooks, LocalKey, PeerKey } from '../keys/kernel-key-hooks.js';
import { readPrivateKeyFile } from '../keys/key-file.js';
import { KeyStateDir } from '../keys/key-state-dir.js';
import type { SlotRef } from '../keys/key-store-paths.js';
import type { NodeRecord } from '../keys/node-record.js';
import type { Logger } from '../log/logger.js';
import type { IpsecOptions, LocalIpsecNode } from '../reconcile/ipsec-desired.js';
import { IpsecReconciler, type IpsecCounts } from '../reconcile/ipsec-reconciler.js';
import { IpsecRoutes } from '../reconcile/ipsec-routes.js';
import { identitySendingGeneration, LocalIpsecKeys, type LocalIpsecBase } from './ipsec-local-keys.js';

export interface IpsecKeyHooksOptions {
  local: LocalIpsecBase;
  /** Reconciler options (granularity, AEAD); defaults of agent/reconcile/ipsec-desired.ts otherwise. */
  options?: Partial<IpsecOptions>;
  /** The uplink: remote pod CIDRs are routed out of it toward their node. */
  uplink: string;
  /** Network namespace (tests); default the agent's own. */
  netns?: string;
  log: Logger;
  /** SAs or routes changed: the datapath re-reads the slots, metrics the counts. */
  onChanged(): void;
}

interface PeerState {
  record: NodeRecord;
  /** "kind/identity/generation" of every key generation installed so far. */
  installed: Set<string>;
}

const keyId = (k: SlotRef & { generation: number }): string => `${k.kind}/${k.kind === 'node' ? 0 : k.identity}/${k.generation}`;

/** Phases whose generation is held by the node (its key file exists and its SAs are wanted). */
const HELD_PHASES = new Set(['generated', 'published', 'acknowledged', 'active', 'superseded']);

export class IpsecKeyHooks implements KernelKeyHooks {
  readonly #o: IpsecKeyHooksOptions;
  readonly #local: LocalIpsecKeys;
  readonly #routes: IpsecRoutes;
  readonly #peers = new Map<string, PeerState>();
  #reconciler: IpsecReconciler | null = null;
  /** What the reconciler last applied for the local node. */
  #applied: LocalIpsecNode | null = null;

  constructor(opts: IpsecKeyHooksOptions) {
    this.#o = opts;
    this.#local = new LocalIpsecKeys(opts.local);
    this.#routes = new IpsecRoutes(opts.uplink, opts.netns ?? '');
  }

  /** The reconciler, once the first node key is held (null before). */
  get reconciler(): IpsecReconciler | null {
    return this.#reconciler;
  }

  /**
   * After a restart: holds every live generation of the key state directory (the active one
   * sending) and adopts the kernel's SAs with them, before the key manager starts (it does not
   * call installLocalKey again for keys it already had). False on a first start (no node key).
   */
  async restore(stateDir: string): Promise<boolean> {
    const dir = new KeyStateDir(stateDir);
    const state = await dir.load();
    if (!state) return false;
    for (const slot of state.slots) {
      const ref: SlotRef = { kind: slot.rotation.slot.kind, identity: slot.rotation.slot.identity };
      for (const g of slot.rotation.generations) {
        if (!HELD_PHASES.has(g.phase)) continue;
        const key = await readPrivateKeyFile(dir.keyPath(ref, g.generation)).catch((err: unknown) => {
          // A pending generation whose file is gone: the key manager abandons it at open.
          if (g.phase !== 'active' && g.phase !== 'superseded') return null;
          throw err;
        });
        if (!key) continue;
        if (g.phase === 'active') this.#local.activate(ref, g.generation, key);
        else this.#local.install(ref, g.generation, key);
      }
    }
    if (!this.#local.node()) return false;
    await this.#syncLocal();
    return true;
  }

  /** Identities whose keys this node holds (after restore(): the ones it hosted before the restart). */
  localIdentities(): number[] {
    return this.#local.identities();
  }

  async installLocalKey(key: LocalKey): Promise<void> {
    this.#local.install(key, key.generation, key.privateKey);
    await this.#syncLocal();
  }

  async activateLocalKey(key: LocalKey): Promise<void> {
    this.#local.activate(key, key.generation, key.privateKey);
    await this.#syncLocal();
  }

  async retireLocalKey(key: SlotRef & { generation: number }): Promise<void> {
    if (!this.#local.retire(key, key.generation)) return;
    await this.#syncLocal();
  }

  async installPeerKey(key: PeerKey): Promise<void> {
    const p = this.#peers.get(key.node) ?? { record: key.record, installed: new Set<string>() };
    p.record = key.record;
    p.installed.add(keyId(key));
    this.#peers.set(key.node, p);
    await this.#applyPeer(key.node);
  }

  /** Senders use every published generation of a peer's keys already (newest node key): the record is what changes. */
  async usePeerKey(key: PeerKey): Promise<void> {
    await this.installPeerKey(key);
  }

  async removePeerKey(key: SlotRef & { node: string; generation: number }): Promise<void> {
    const p = this.#peers.get(key.node);
    if (!p || !p.installed.delete(keyId(key))) return;
    if (p.installed.size > 0) {
      await this.#applyPeer(key.node);
      return;
    }
    this.#peers.delete(key.node);
    if (!this.#reconciler) return;
    await this.#reconciler.delete(key.node);
    await this.#routes.delete(key.node);
    this.#o.log.info({ node: key.node }, 'Removed the IPsec SAs and routes of a node that left');
    this.#o.onChanged();
  }

  /** Periodic job: re-reads the kernel and re-creates SAs that went missing behind our back. */
  async resync(): Promise<void> {
    if (!this.#reconciler) return;
    await this.#reconciler.resync();
    for (const [node, p] of this.#peers) if (this.#reconciler.planOf(node)) await this.#routes.update(node, p.record);
  }

  /** Removes SAs, policies and routes no known node accounts for; only after every source synced. */
  async prune(): Promise<void> {
    if (!this.#reconciler) return;
    await this.#reconciler.prune();
    const routes = await this.#routes.prune();
    if (routes > 0) this.#o.log.info({ routes }, 'Pruned IPsec routes no node accounts for');
  }

  /**
   * The generation (mod 4) the local identity's installed SAs send with: the activated one (every
   * peer acknowledged it, so every receiver has its inbound SA), or null before the first
   * activation (the datapath then writes 0, a slot without an SA: the block policy drops).
   */
  senderGeneration(identity: number): number | null {
    const g = identitySendingGeneration(this.#applied, identity);
    return g === null ? null : g % 4;
  }

  /** The remote node key generation (mod 4) the installed SAs toward `node` use, or null without SAs. */
  receiverGeneration(node: string): number | null {
    const s = this.#reconciler?.planOf(node)?.sendingSlots[0];
    return s === undefined ? null : s.slot & 3;
  }

  counts(): IpsecCounts {
    return this.#reconciler?.counts() ?? { nodes: 0, inStates: 0, outStates: 0, policies: 0, spiCollisions: 0 };
  }

  /** For `veil status`: per node, the slots the datapath sends with and the routed CIDRs. */
  status(): { nodes: { node: string; sendingSlots: { identity: number; family: number; slot: number }[]; routes: string[] }[]; identities: number[] } {
    const routes = this.#routes.routed();
    return {
      identities: this.#local.identities(),
      nodes: [...this.#peers.keys()].sort().map((node) => ({ node, sendingSlots: this.#reconciler?.planOf(node)?.sendingSlots ?? [], routes: routes[node] ?? [] })),
    };
  }

  async #syncLocal(): Promise<void> {
    const local = this.#local.node();
    if (!local) return;
    if (!this.#reconciler) {
      const r = new IpsecReconciler(local, { log: this.#o.log, ...(this.#o.netns ? { netns: this.#o.netns } : {}), ...(this.#o.options ? { options: this.#o.options } : {}) });
      await r.adopt();
      await this.#routes.adopt();
      this.#reconciler = r;
      this.#applied = local;
      for (const node of this.#peers.keys()) await this.#applyPeer(node);
    } else {
      await this.#reconciler.setLocal(local);
      this.#applied = local;
    }
    this.#o.onChanged();
  }

  /** Installs the peer's SAs for the generations installed so far, then its routes. */
  async #applyPeer(node: string): Promise<void> {
    const p = this.#peers.get(node);
    if (!p || !this.#reconciler) return;
    const keys = p.record.keys.filter((k) => p.installed.has(keyId(k)));
    if (!keys.some((k) => k.kind === 'node')) return;
    await this.#reconciler.update(node, { ...p.record, keys });
    await this.#routes.update(node, p.record);
    this.#o.onChanged();
  }
}
