/**
 * The WireGuard peer reconciler (Reconciler contract, reconciler.ts): verified node records of
 * the other nodes → on each channel device (wireguard-channel-devices.ts) one peer per node with
 * that node's key for that channel, and the node's pod CIDRs routed into the device of the
 * channel the local node steers that node's traffic on (wireguard-routes.ts).
 *
 * - adopt(): reads both devices and Veil's tunnel routes; later updates diff against that view,
 *   so a restarted agent changes nothing that is already right (no peer removed and re-added, no
 *   session lost).
 * - update(node, { record, channels }): verifies (optional callback), validates and checks for
 *   conflicts first — a bad record changes nothing — then applies, per channel, only the
 *   difference (wireguard-peer-plan.ts). Order: the peer of the channel the node will be steered
 *   on, then the routes (atomic `replace`), then the other channel — so traffic never moves onto a
 *   channel before its peer is right, and a channel is re-keyed only after traffic left it.
 * - delete(node): peers first (traffic to the node's CIDRs is then dropped by the device, never
 *   sent in clear), then its routes.
 * - prune(): after every source synced: removes device peers and tunnel routes no node claims.
 *
 * steeringChannel(node) is what the datapath writes as key_slot & 1 into the ipcache;
 * installedGenerations(node) is what the local node acknowledges to a rotating peer.
 * setLocalChannels() re-steers every node when the local node's own rotation drains a channel.
 */
import type { NodeRecord } from '../keys/node-record.js';
import { createRootLogger, moduleLogger, type Logger } from '../log/logger.js';
import type { IpFamily } from '../net/ip.js';
import { KeyedMutex } from '../util/keyed-mutex.js';
import type { WgPeerConfig, WireGuardBackend } from '../wireguard/backend.js';
import { publicKeyFingerprint } from '../keys/fingerprint.js';
import type { Reconciler } from './reconciler.js';
import { channelDeviceNames } from './wireguard-channel-devices.js';
import {
  otherChannel,
  steadyChannelState,
  steeringChannel,
  validateChannelState,
  WG_CHANNELS,
  type WgChannel,
  type WireGuardChannelState,
} from './wireguard-channel-state.js';
import { WireGuardReconcileError } from './wireguard-errors.js';
import {
  applyToView,
  findConflict,
  nodePeers,
  planNodeOnChannel,
  planPrune,
  type DeviceView,
  type NodePeers,
} from './wireguard-peer-plan.js';
import { deleteTunnelRoutes, listTunnelRoutes, replaceTunnelRoutes, type TunnelRouteSettings } from './wireguard-routes.js';

/** What update() takes for one remote node. */
export interface WireGuardPeerDesired {
  /** The node's record, already verified (signature, certificate, sequence) unless `verify` is set. */
  record: NodeRecord;
  /** The node's published channel state; omitted = both channels carry its only node key. */
  channels?: WireGuardChannelState;
}

export interface WireGuardPeerReconcilerOptions {
  backend: WireGuardBackend;
  /** Channel device prefix (devices `${deviceBase}0`, `${deviceBase}1`). */
  deviceBase: string;
  /** Base UDP port of every node (channel d on port + d). */
  port: number;
  /** This node's name: its own record is never a peer. */
  localNode: string;
  /** This node's pod CIDRs: a remote node claiming an overlapping one is refused. */
  localPodCidrs: readonly string[];
  /** This node's channel state (its own rotation); default steady at generation 1. */
  localChannels?: WireGuardChannelState;
  /** Seconds, 0 = off (default 0). */
  persistentKeepalive?: number;
  /** Underlay address family to reach peers on; default each record's first address. */
  underlayFamily?: IpFamily;
  routes?: TunnelRouteSettings;
  /**
   * Called (and awaited) whenever the channel some node is steered on changed, after its routes
   * moved and before the channel it left is re-keyed: the agent rewrites the datapath's key_slot
   * here, so pod traffic (which the eBPF program steers, not the routes) leaves the channel first.
   * A failure fails the update (retried by the caller) before anything is re-keyed.
   */
  onSteeringChanged?: () => Promise<void>;
  /** Called on every record before anything else; throw to reject it (for example verifyNodeRecord). */
  verify?: (record: NodeRecord) => NodeRecord | Promise<NodeRecord>;
  log?: Logger;
}

interface NodeEntry {
  peers: NodePeers;
  steering: WgChannel | null;
}

const hex = (k: Buffer): string => k.toString('hex');

export class WireGuardPeerReconciler implements Reconciler<WireGuardPeerDesired> {
  readonly name = 'wireguard-peers';
  private readonly backend: WireGuardBackend;
  private readonly devices: readonly [string, string];
  private readonly opts: WireGuardPeerReconcilerOptions;
  private readonly log: Logger;
  private readonly lock = new KeyedMutex();
  private readonly views: [DeviceView, DeviceView] = [new Map(), new Map()];
  /** Tunnel routes: CIDR → device. */
  private routes = new Map<string, string>();
  private readonly nodes = new Map<string, NodeEntry>();
  private local: WireGuardChannelState;
  private adopted = false;

  constructor(opts: WireGuardPeerReconcilerOptions) {
    this.opts = opts;
    this.backend = opts.backend;
    this.devices = channelDeviceNames(opts.deviceBase);
    this.local = opts.localChannels ? validateChannelState(opts.localChannels, opts.localNode) : steadyChannelState(1);
    this.log = opts.log ?? moduleLogger(createRootLogger(), 'wireguard-peers');
  }

  /** The channel device names, index = channel. */
  get deviceNames(): readonly [string, string] {
    return this.devices;
  }

  async adopt(): Promise<void> {
    await this.lock.run('all', async () => {
      for (const d of WG_CHANNELS) {
        const dev = await this.backend.getDevice(this.devices[d]);
        const view: DeviceView = new Map();
        for (const p of dev.peers) {
          view.set(hex(p.publicKey), { publicKey: p.publicKey, endpoint: p.endpoint, persistentKeepalive: p.persistentKeepalive, allowedIps: p.allowedIps });
        }
        this.views[d] = view;
      }
      this.routes = await listTunnelRoutes(this.devices, this.opts.routes ?? {}, this.backend.netns);
      this.adopted = true;
      this.log.info({ peers: [this.views[0].size, this.views[1].size], routes: this.routes.size }, 'Adopted WireGuard channel devices');
    });
  }

  /** The channel to send to `node` on (the datapath's key_slot & 1), or null when unknown or none is usable. */
  steeringChannel(node: string): WgChannel | null {
    return this.nodes.get(node)?.steering ?? null;
  }

  /** The node key generation installed for `node` on each channel (what to acknowledge), or null. */
  installedGenerations(node: string): readonly [number, number] | null {
    const e = this.nodes.get(node);
    return e ? [e.peers.channels[0].generation, e.peers.channels[1].generation] : null;
  }

  /** The local node's channel state, as last set. */
  get localChannels(): WireGuardChannelState {
    return this.local;
  }

  /** Names of the nodes installed. */
  knownNodes(): string[] {
    return [...this.nodes.keys()].sort();
  }

  /**
   * Sets the local node's channel state (its own rotation) and moves every node's routes to the
   * channel it is now steered on.
   */
  async setLocalChannels(state: WireGuardChannelState): Promise<void> {
    const next = validateChannelState(state, this.opts.localNode);
    await this.lock.run('all', async () => {
      let moved = false;
      this.local = next;
      for (const [node, e] of this.nodes) {
        const steering = steeringChannel(next, e.peers.state, e.steering);
        if (steering === null) {
          this.log.error({ node }, 'No WireGuard channel usable toward node: both sides drain; keeping the old route');
          continue;
        }
        await this.steer(e.peers, steering);
        if (steering !== e.steering) {
          this.log.info({ node, channel: steering }, 'Steering node traffic to another WireGuard channel');
          moved = true;
        }
        e.steering = steering;
      }
      if (moved) await this.opts.onSteeringChanged?.();
    });
  }

  async update(key: string, desired: WireGuardPeerDesired): Promise<void> {
    this.requireAdopted('update');
    if (key === this.opts.localNode) return;
    const record = this.opts.verify ? await this.opts.verify(desired.record) : desired.record;
    if (record?.name !== key) {
      throw new WireGuardReconcileError(
        'VEIL_WG_BAD_RECORD',
        key,
        `Cannot install WireGuard peers for node "${key}": the record is named ${JSON.stringify(record?.name)}; store each node's record under its own name`,
      );
    }
    const peers = nodePeers(record, desired.channels, {
      port: this.opts.port,
      persistentKeepalive: this.opts.persistentKeepalive ?? 0,
      ...(this.opts.underlayFamily ? { underlayFamily: this.opts.underlayFamily } : {}),
    });
    await this.lock.run('all', async () => {
      const conflict = findConflict(peers, [...this.nodes.values()].map((e) => e.peers), this.opts.localPodCidrs);
      if (conflict) throw conflict;
      const prev = this.nodes.get(key);
      const steering = steeringChannel(this.local, peers.state, prev ? prev.steering : this.adoptedSteering(peers.podCidrs));
      if (steering === null) {
        throw new WireGuardReconcileError(
          'VEIL_WG_BAD_RECORD',
          key,
          `Cannot steer traffic to node "${key}": it drains channel ${peers.state.draining} while this node drains channel ${this.local.draining}; node key rotations must hold the cluster-wide rotation lease, one at a time`,
        );
      }
      const others = this.othersKeys(key);
      const plans = WG_CHANNELS.map((d) => planNodeOnChannel(this.views[d], peers.channels[d], prev ? [hex(prev.peers.channels[d].publicKey)] : [], others));
      const first = steering;
      // 1) the channel traffic goes to, 2) routes onto it, 3) the other channel.
      await this.apply(first, plans[first]!, key);
      await this.steer(peers, steering, prev?.peers.podCidrs);
      this.nodes.set(key, { peers: prev?.peers ?? peers, steering });
      if (steering !== prev?.steering) {
        this.log.info({ node: key, channel: steering }, 'Steering node traffic to WireGuard channel');
        await this.opts.onSteeringChanged?.();
      }
      await this.apply(otherChannel(first), plans[otherChannel(first)]!, key);
      this.nodes.set(key, { peers, steering });
    });
  }

  async delete(key: string): Promise<void> {
    this.requireAdopted('delete');
    await this.lock.run('all', async () => {
      const prev = this.nodes.get(key);
      if (!prev) return;
      const others = this.othersKeys(key);
      for (const d of WG_CHANNELS) await this.apply(d, planNodeOnChannel(this.views[d], null, [hex(prev.peers.channels[d].publicKey)], others), key);
      const gone = prev.peers.podCidrs.filter((c) => this.routes.has(c));
      await deleteTunnelRoutes(gone, this.opts.routes ?? {}, this.backend.netns);
      for (const c of gone) this.routes.delete(c);
      this.nodes.delete(key);
      this.log.info({ node: key }, 'Removed WireGuard peers of node');
    });
  }

  async prune(): Promise<void> {
    this.requireAdopted('prune');
    await this.lock.run('all', async () => {
      const claimed = this.othersKeys(undefined);
      for (const d of WG_CHANNELS) await this.apply(d, planPrune(this.views[d], claimed), undefined);
      const wanted = new Set<string>();
      for (const e of this.nodes.values()) for (const c of e.peers.podCidrs) wanted.add(c);
      const stale = [...this.routes.keys()].filter((c) => !wanted.has(c));
      if (stale.length > 0) {
        await deleteTunnelRoutes(stale, this.opts.routes ?? {}, this.backend.netns);
        for (const c of stale) this.routes.delete(c);
        this.log.info({ routes: stale }, 'Pruned WireGuard tunnel routes no node claims');
      }
    });
  }

  /** Hex keys of every channel peer of every known node except `except`. */
  private othersKeys(except: string | undefined): Set<string> {
    const out = new Set<string>();
    for (const [node, e] of this.nodes) if (node !== except) for (const p of e.peers.channels) out.add(hex(p.publicKey));
    return out;
  }

  private async apply(d: WgChannel, changes: WgPeerConfig[], node: string | undefined): Promise<void> {
    if (changes.length === 0) return;
    await this.backend.setDevice(this.devices[d], { peers: changes });
    applyToView(this.views[d], changes);
    for (const c of changes) {
      this.log.info(
        { device: this.devices[d], channel: d, node, peer: publicKeyFingerprint(c.publicKey), allowedIps: c.allowedIps },
        c.remove ? 'Removed WireGuard peer' : c.updateOnly ? 'Updated WireGuard peer' : 'Added WireGuard peer',
      );
    }
  }

  /** The channel the adopted routes of these CIDRs point into (a restarted agent keeps steering there), or null. */
  private adoptedSteering(cidrs: readonly string[]): WgChannel | null {
    for (const c of cidrs) {
      const dev = this.routes.get(c);
      if (dev === this.devices[0]) return 0;
      if (dev === this.devices[1]) return 1;
    }
    return null;
  }

  /** Routes the node's CIDRs into the steering channel's device; drops routes of CIDRs it no longer has. */
  private async steer(peers: NodePeers, channel: WgChannel, previousCidrs: readonly string[] = []): Promise<void> {
    const dev = this.devices[channel];
    const settings = this.opts.routes ?? {};
    const move = peers.podCidrs.filter((c) => this.routes.get(c) !== dev);
    await replaceTunnelRoutes(move, dev, settings, this.backend.netns);
    for (const c of move) this.routes.set(c, dev);
    const gone = previousCidrs.filter((c) => !peers.podCidrs.includes(c) && this.routes.has(c));
    await deleteTunnelRoutes(gone, settings, this.backend.netns);
    for (const c of gone) this.routes.delete(c);
  }

  private requireAdopted(op: string): void {
    if (!this.adopted) {
      throw new WireGuardReconcileError('VEIL_WG_NOT_ADOPTED', undefined, `Cannot ${op} WireGuard peers before adopt(): call adopt() once after setting up the channel devices`);
    }
  }
}
