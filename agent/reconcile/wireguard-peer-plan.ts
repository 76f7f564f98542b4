/**
 * What the WireGuard peer reconciler wants on each channel device for one remote node, and the
 * smallest device change that gets it there. Pure functions, no I/O: the reconciler
 * (wireguard-peers.ts) reads the devices once, keeps a view of them, and applies these plans.
 *
 * - nodePeers(): a verified node record plus its channel state → one peer per channel (that
 *   channel's key generation, endpoint = underlay address + base port + channel, AllowedIPs =
 *   the pod CIDRs of both families). Every check runs here, before anything touches a device.
 * - findConflict(): pod CIDRs overlapping another node's or the local node's, or a public key
 *   another node already uses, are refused (AllowedIPs are unique per device: installing them
 *   would silently steal another node's traffic).
 * - planNodeOnChannel(): the peer changes for one node on one device: nothing when it already
 *   matches; changed endpoint or keepalive set in place; changed AllowedIPs through the gapless
 *   handover (replaceAllowedIps); a new key as "add new, then remove old" in one request, so the
 *   CIDRs move from the old peer to the new one without an uncovered moment.
 * - planPrune(): every peer no known node claims.
 */
import type { NodeRecord } from '../keys/node-record.js';
import { validateNodeRecord } from '../keys/node-record.js';
import { formatEndpoint, parseIp, type IpFamily } from '../net/ip.js';
import type { WgPeerConfig } from '../wireguard/backend.js';
import { publicKeyFingerprint } from '../keys/fingerprint.js';
import { keyFromBase64, normalizeCidr } from '../wireguard/keys.js';
import {
  steadyChannelState,
  validateChannelState,
  type WgChannel,
  type WireGuardChannelState,
} from './wireguard-channel-state.js';
import { WireGuardReconcileError } from './wireguard-errors.js';

/** The peer one remote node should be on one channel device. */
export interface ChannelPeer {
  publicKey: Buffer;
  /** The node key generation `publicKey` belongs to. */
  generation: number;
  endpoint: string;
  persistentKeepalive: number;
  /** Canonical CIDRs (normalizeCidr), sorted. */
  allowedIps: string[];
}

/** Everything the reconciler installs for one remote node. */
export interface NodePeers {
  node: string;
  state: WireGuardChannelState;
  /** Canonical pod CIDRs, sorted. */
  podCidrs: string[];
  /** Index = channel. */
  channels: readonly [ChannelPeer, ChannelPeer];
}

export interface PeerSettings {
  /** Base UDP port: channel d listens on port + d, on every node. */
  port: number;
  /** Seconds; 0 = off. */
  persistentKeepalive: number;
  /** Use the record's first underlay address of this family; default its first address. */
  underlayFamily?: IpFamily;
}

/** The subset of a device peer the plans compare (WgPeer has more). */
export interface DevicePeerView {
  publicKey: Buffer;
  endpoint: string | null;
  persistentKeepalive: number;
  allowedIps: readonly string[];
}

/** A device's peers by hex public key. */
export type DeviceView = Map<string, DevicePeerView>;

const hex = (k: Buffer): string => k.toString('hex');

/**
 * Turns a (verified) node record and its published channel state into the peers to install.
 * Without a channel state the record must carry exactly one node key generation (both channels
 * use it). Throws NodeRecordError for a malformed record, WireGuardReconcileError
 * "VEIL_WG_BAD_RECORD" for a channel state the record cannot satisfy.
 */
export function nodePeers(record: NodeRecord, channels: WireGuardChannelState | undefined, settings: PeerSettings): NodePeers {
  const r = validateNodeRecord(record);
  const node = r.name;
  const nodeKeys = r.keys.filter((k) => k.kind === 'node');
  let state: WireGuardChannelState;
  if (channels === undefined) {
    const gens = [...new Set(nodeKeys.map((k) => k.generation))].sort((a, b) => a - b);
    if (gens.length !== 1) {
      throw new WireGuardReconcileError(
        'VEIL_WG_BAD_RECORD',
        node,
        `Cannot install WireGuard peers for node "${node}": its record lists node key generations ${gens.join(', ')} but no WireGuard channel state; publish { generations, draining } with the record during a rotation`,
      );
    }
    state = steadyChannelState(gens[0]!);
  } else {
    state = validateChannelState(channels, node);
  }
  const address = chooseAddress(r, settings.underlayFamily);
  const podCidrs = [...new Set(r.podCidrs.map((c, i) => normalizeCidr(c, `podCidrs[${i}]`)))].sort();
  const peer = (d: WgChannel): ChannelPeer => {
    const g = state.generations[d];
    const key = nodeKeys.find((k) => k.generation === g);
    if (!key) {
      throw new WireGuardReconcileError(
        'VEIL_WG_BAD_RECORD',
        node,
        `Cannot install WireGuard peers for node "${node}": channel ${d} carries node key generation ${g} but the record has no node key of that generation (it has ${nodeKeys.map((k) => k.generation).join(', ')}); publish the key with the channel state`,
      );
    }
    return {
      publicKey: keyFromBase64(key.publicKey, `${node}.keys[generation ${g}].publicKey`),
      generation: g,
      endpoint: formatEndpoint({ family: address.family, address: address.text, port: settings.port + d }),
      persistentKeepalive: settings.persistentKeepalive,
      allowedIps: podCidrs,
    };
  };
  return { node, state, podCidrs, channels: [peer(0), peer(1)] };
}

function chooseAddress(r: NodeRecord, family: IpFamily | undefined): { text: string; family: IpFamily } {
  for (const a of r.addresses) {
    const fam = parseIp(a)?.length === 4 ? 4 : 6;
    if (family === undefined || fam === family) return { text: a, family: fam };
  }
  throw new WireGuardReconcileError(
    'VEIL_WG_BAD_RECORD',
    r.name,
    `Cannot choose a WireGuard endpoint for node "${r.name}": it publishes no IPv${family} underlay address (it has ${r.addresses.map((a) => `"${a}"`).join(', ')}); give the node an IPv${family} address or change the underlay family`,
  );
}

/** True when two canonical CIDRs share at least one address. */
export function cidrsOverlap(a: string, b: string): boolean {
  const [aAddr, aLen] = a.split('/') as [string, string];
  const [bAddr, bLen] = b.split('/') as [string, string];
  const x = parseIp(aAddr);
  const y = parseIp(bAddr);
  if (!x || !y || x.length !== y.length) return false;
  const bits = Math.min(Number(aLen), Number(bLen));
  for (let i = 0; i < bits; i++) {
    const mask = 0x80 >> (i & 7);
    if ((x[i >> 3]! & mask) !== (y[i >> 3]! & mask)) return false;
  }
  return true;
}

/**
 * The first reason `candidate` cannot be installed next to `others` (the other remote nodes the
 * reconciler holds) and the local node's own pod CIDRs, or null.
 */
export function findConflict(candidate: NodePeers, others: Iterable<NodePeers>, localPodCidrs: readonly string[]): WireGuardReconcileError | null {
  const node = candidate.node;
  for (const mine of candidate.podCidrs) {
    for (const local of localPodCidrs) {
      if (cidrsOverlap(mine, normalizeCidr(local, 'localPodCidrs'))) {
        return new WireGuardReconcileError(
          'VEIL_WG_CONFLICT',
          node,
          `Refusing WireGuard peer for node "${node}": its pod CIDR "${mine}" overlaps this node's own pod CIDR "${local}"; fix the pod CIDR allocation`,
        );
      }
    }
  }
  const keys = new Set(candidate.channels.map((p) => hex(p.publicKey)));
  for (const other of others) {
    if (other.node === node) continue;
    for (const mine of candidate.podCidrs) {
      for (const theirs of other.podCidrs) {
        if (cidrsOverlap(mine, theirs)) {
          return new WireGuardReconcileError(
            'VEIL_WG_CONFLICT',
            node,
            `Refusing WireGuard peer for node "${node}": its pod CIDR "${mine}" overlaps pod CIDR "${theirs}" of node "${other.node}"; AllowedIPs are unique per device, so one node would take the other's traffic; fix the pod CIDR allocation`,
          );
        }
      }
    }
    for (const p of other.channels) {
      if (keys.has(hex(p.publicKey))) {
        return new WireGuardReconcileError(
          'VEIL_WG_CONFLICT',
          node,
          `Refusing WireGuard peer for node "${node}": its public key "${publicKeyFingerprint(p.publicKey)}" is already node "${other.node}"'s; every node needs its own key`,
        );
      }
    }
  }
  return null;
}

/**
 * The changes on one channel device that make `node`'s peer equal `want` (null: the node has no
 * peer there any more). `ownedKeys`: keys this node had on the device before (hex), removed when
 * they are not `want`'s; `othersKeys`: keys other known nodes hold, never touched. A peer no known
 * node owns that holds an address overlapping `want`'s CIDRs is the node's own stale peer (an
 * earlier key, seen after a restart) and is removed too. Additions come before removals, so the
 * CIDRs move from the old key to the new one without a gap.
 */
export function planNodeOnChannel(
  device: DeviceView,
  want: ChannelPeer | null,
  ownedKeys: Iterable<string>,
  othersKeys: ReadonlySet<string>,
): WgPeerConfig[] {
  const out: WgPeerConfig[] = [];
  const wantHex = want ? hex(want.publicKey) : null;
  if (want) {
    const cur = device.get(wantHex!);
    if (!cur) {
      out.push({ publicKey: want.publicKey, endpoint: want.endpoint, persistentKeepalive: want.persistentKeepalive, allowedIps: want.allowedIps });
    } else {
      const change: WgPeerConfig = { publicKey: want.publicKey, updateOnly: true };
      let changed = false;
      if (cur.endpoint !== want.endpoint) {
        change.endpoint = want.endpoint;
        changed = true;
      }
      if (cur.persistentKeepalive !== want.persistentKeepalive) {
        change.persistentKeepalive = want.persistentKeepalive;
        changed = true;
      }
      if (!sameSet(cur.allowedIps, want.allowedIps)) {
        change.allowedIps = want.allowedIps;
        change.replaceAllowedIps = true;
        changed = true;
      }
      if (changed) out.push(change);
    }
  }
  const stale = new Set<string>();
  for (const k of ownedKeys) if (k !== wantHex && device.has(k)) stale.add(k);
  if (want) {
    for (const [k, p] of device) {
      if (k === wantHex || othersKeys.has(k) || stale.has(k)) continue;
      if (p.allowedIps.some((a) => want.allowedIps.some((b) => cidrsOverlap(a, b)))) stale.add(k);
    }
  }
  for (const k of stale) out.push({ publicKey: device.get(k)!.publicKey, remove: true });
  return out;
}

/** Removals of every device peer whose key is not in `claimed` (hex). */
export function planPrune(device: DeviceView, claimed: ReadonlySet<string>): WgPeerConfig[] {
  const out: WgPeerConfig[] = [];
  for (const [k, p] of device) if (!claimed.has(k)) out.push({ publicKey: p.publicKey, remove: true });
  return out;
}

/** Applies changes (as planned above, already accepted by the device) to the reconciler's view. */
export function applyToView(device: DeviceView, changes: readonly WgPeerConfig[]): void {
  for (const c of changes) {
    const k = hex(c.publicKey);
    if (c.remove) {
      device.delete(k);
      continue;
    }
    const cur = device.get(k);
    if (!cur && c.updateOnly) continue;
    const next: DevicePeerView = cur
      ? { ...cur }
      : { publicKey: Buffer.from(c.publicKey), endpoint: null, persistentKeepalive: 0, allowedIps: [] };
    if (c.endpoint !== undefined) next.endpoint = c.endpoint;
    if (c.persistentKeepalive !== undefined) next.persistentKeepalive = c.persistentKeepalive;
    if (c.allowedIps !== undefined) {
      const taken = new Set(c.allowedIps);
      // AllowedIPs are unique per device: whatever this peer gets leaves every other peer.
      for (const [other, p] of device) {
        if (other !== k && p.allowedIps.some((a) => taken.has(a))) device.set(other, { ...p, allowedIps: p.allowedIps.filter((a) => !taken.has(a)) });
      }
      next.allowedIps = c.replaceAllowedIps ? [...c.allowedIps] : [...new Set([...next.allowedIps, ...c.allowedIps])];
    }
    device.set(k, next);
  }
}

function sameSet(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  const s = new Set(a);
  return b.every((x) => s.has(x));
}
