/**
 * replaceAllowedIps without a gap, shared by both backends.
 *
 * Neither WireGuard implementation replaces a peer's allowed IPs atomically: the kernel
 * (WGPEER_F_REPLACE_ALLOWEDIPS, at least up to 6.1) and wireguard-go (replace_allowed_ips) both
 * remove every allowed IP of the peer and then insert the new ones one by one, and a packet to an
 * address in both the old and the new set that arrives in between is dropped (the failure of
 * cilium/cilium#34612). Allowed IPs are unique per device, so adding one to a peer takes it from
 * whichever peer held it in one step. The handover uses that:
 *  1. add the new set to the peer without the replace flag (addresses it already has stay put);
 *  2. give the departing addresses (old minus every address the configuration assigns) to a
 *     throwaway peer with a random public key nobody holds;
 *  3. remove the throwaway peer, and its addresses with it.
 * An address in use is never uncovered. The backends apply the plan in one request sequence
 * (kernel: the retirement peer added and removed after the real peers' additions; userspace:
 * the same three steps at the end of one UAPI transaction).
 *
 * The plan is computed from a read of the device taken just before: the backends serialise
 * their own calls per device, but a writer outside this process that changes the same peers
 * in between can make the plan stale (an address it gave the peer meanwhile stays; one it moved
 * away to another peer would be taken from that peer and removed).
 */
import { randomBytes } from 'node:crypto';
import { VeilError } from '../errors.js';
import { WG_KEY_LEN, type WgDeviceConfig, type WgPeerConfig } from './backend.js';
import { normalizeCidr } from './keys.js';

/** The device state the planner needs: every peer's public key and allowed IPs. */
export interface HandoverDeviceState {
  /** The device's own public key (a peer with that key is ignored by the kernel), if known. */
  publicKey?: Buffer | null;
  peers: readonly { publicKey: Buffer; allowedIps: readonly string[] }[];
}

/**
 * Allowed IPs to take away from peers: added to a throwaway peer `publicKey` (a random key
 * nobody holds, not one of the device's peers) which is then removed.
 */
export interface AllowedIpRetirement {
  publicKey: Buffer;
  /** Canonical CIDRs (normalizeCidr), never empty. */
  allowedIps: string[];
}

export interface AllowedIpHandoverPlan {
  /** The configuration to apply, with no peer asking to replace its allowed IPs. */
  config: WgDeviceConfig;
  /** What to retire after `config` is applied, or null when no address leaves any peer. */
  retire: AllowedIpRetirement | null;
}

/**
 * True when `config` asks to replace some peer's allowed IPs, so the backend must read the
 * device and plan a handover. Not with replacePeers: that rebuilds every peer anyway.
 */
export function needsAllowedIpHandover(config: WgDeviceConfig): boolean {
  if (config.replacePeers) return false;
  return (config.peers ?? []).some((p) => p.replaceAllowedIps === true && !p.remove);
}

/**
 * Rewrites every replaceAllowedIps of `config` (which must have passed validateWgDeviceConfig)
 * into "add the new set" plus one retirement of the addresses that leave those peers, given the
 * device's `current` state. Pure apart from drawing the throwaway key from `newKey`.
 */
export function planAllowedIpHandover(
  current: HandoverDeviceState,
  config: WgDeviceConfig,
  newKey: () => Buffer = () => randomBytes(WG_KEY_LEN),
): AllowedIpHandoverPlan {
  if (!needsAllowedIpHandover(config)) return { config, retire: null };
  const peers = config.peers ?? [];
  const now = new Map(current.peers.map((p) => [p.publicKey.toString('hex'), p.allowedIps]));
  // Every address the configuration gives to a peer: moving it there already takes it away.
  // Not an updateOnly peer that does not exist: it is ignored, and takes nothing.
  const assigned = new Set<string>();
  for (const p of peers) {
    if (p.remove || (p.updateOnly && !now.has(p.publicKey.toString('hex')))) continue;
    for (const a of p.allowedIps ?? []) assigned.add(normalizeCidr(a, 'allowedIps'));
  }
  const departing = new Set<string>();
  const rewritten = peers.map((p): WgPeerConfig => {
    if (!p.replaceAllowedIps || p.remove) return p;
    // A peer that does not exist has nothing to take away; updateOnly ones are then ignored.
    for (const a of now.get(p.publicKey.toString('hex')) ?? []) {
      const c = normalizeCidr(a, 'allowedIps');
      if (!assigned.has(c)) departing.add(c);
    }
    return { ...p, replaceAllowedIps: false, allowedIps: p.allowedIps ?? [] };
  });
  const plan: WgDeviceConfig = { ...config, peers: rewritten };
  if (departing.size === 0) return { config: plan, retire: null };
  return { config: plan, retire: { publicKey: throwawayKey(current, peers, newKey), allowedIps: [...departing] } };
}

/** A key from `newKey` that is no peer's, in the device or the configuration, nor the device's own. */
function throwawayKey(current: HandoverDeviceState, peers: readonly WgPeerConfig[], newKey: () => Buffer): Buffer {
  const taken = new Set<string>([...current.peers, ...peers].map((p) => p.publicKey.toString('hex')));
  if (current.publicKey) taken.add(current.publicKey.toString('hex'));
  for (let attempt = 0; attempt < 8; attempt++) {
    const key = newKey();
    if (key.length === WG_KEY_LEN && !taken.has(key.toString('hex'))) return key;
  }
  throw new VeilError('EINTERNAL', `Cannot draw a throwaway WireGuard peer key: 8 draws were taken or not ${WG_KEY_LEN} bytes; this is a bug in Veil`);
}
