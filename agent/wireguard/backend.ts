/**
 * The one WireGuard interface the agent programs against. Two implementations sit below it:
 * the kernel (generic netlink, agent/wireguard/kernel-backend.ts) and userspace `wireguard-go`
 * driven through the WireGuard cross-platform UAPI socket (agent/wireguard/userspace-backend.ts).
 * agent/wireguard/select.ts picks one automatically (kernel when the kernel has WireGuard) or as
 * forced by configuration.
 *
 * Keys cross this interface as 32-byte Buffers. Private and preshared keys go in only: reads
 * report whether one is set, never the key itself, so no read result can leak one into a log.
 */

export const WG_KEY_LEN = 32;

export interface WgPeerConfig {
  /** The peer's static public key (identifies the peer). */
  publicKey: Buffer;
  /** Remove this peer (all other fields ignored). */
  remove?: boolean;
  /** Only update an existing peer; never create it. */
  updateOnly?: boolean;
  /** Preshared key; `null` clears it. */
  presharedKey?: Buffer | null;
  /** "192.0.2.1:51820" or "[2001:db8::1]:51820". */
  endpoint?: string;
  /** Seconds; 0 disables. */
  persistentKeepalive?: number;
  /** CIDRs routed to this peer ("10.0.1.0/24", "fd00::/64"). */
  allowedIps?: string[];
  /**
   * Replace the peer's allowed IPs with `allowedIps`, without a gap, on both backends: an address
   * in both the old and the new set stays routed to the peer throughout. Neither the kernel's
   * WGPEER_F_REPLACE_ALLOWEDIPS nor wireguard-go's replace_allowed_ips does that (both empty the
   * set before refilling it), so the backends hand over instead (allowed-ip-handover.ts): the new
   * set is added, then the departing addresses are moved to a throwaway peer that is removed in
   * the same call. Costs one read of the device per call that uses it. Without it, `allowedIps`
   * are added.
   */
  replaceAllowedIps?: boolean;
}

export interface WgDeviceConfig {
  /** The device's private key; `null` removes it. */
  privateKey?: Buffer | null;
  listenPort?: number;
  /** Mark set on the device's own encrypted UDP packets; 0 clears it. */
  fwmark?: number;
  /** Remove every peer not listed in `peers` (atomically with adding the listed ones). */
  replacePeers?: boolean;
  peers?: WgPeerConfig[];
}

export interface WgPeer {
  publicKey: Buffer;
  hasPresharedKey: boolean;
  endpoint: string | null;
  persistentKeepalive: number;
  allowedIps: string[];
  /** Milliseconds since the epoch of the last handshake, or null if none. */
  lastHandshakeMs: number | null;
  rxBytes: bigint;
  txBytes: bigint;
  protocolVersion: number;
}

export interface WgDevice {
  name: string;
  ifindex: number;
  publicKey: Buffer | null;
  hasPrivateKey: boolean;
  listenPort: number;
  fwmark: number;
  peers: WgPeer[];
}

export type WgBackendKind = 'kernel' | 'userspace';

/**
 * The link operations a backend needs, injected by agent/wireguard/select.ts from the rtnetlink
 * API (agent/netlink/link.ts). Backends create and remove devices; MTU, addresses and up/down
 * are the caller's (the same code for both backends).
 */
export interface WgLinkOps {
  /** Creates a link of kind "wireguard" (`ip link add NAME type wireguard`). */
  addWireGuardLink(name: string, netns: string): Promise<void>;
  /** Deletes a link (`ip link del NAME`). */
  deleteLink(name: string, netns: string): Promise<void>;
  /** The link's ifindex and kind (IFLA_INFO_KIND, null when it has none), or null if absent. */
  linkInfo(name: string, netns: string): Promise<{ ifindex: number; kind: string | null } | null>;
}

export interface WireGuardBackend {
  readonly kind: WgBackendKind;
  /** The network namespace this backend manages ("" = the agent's own). */
  readonly netns: string;
  /**
   * Creates the device, down, with no configuration (idempotent: an existing device of this
   * backend's kind is adopted, keeping its configuration and sessions).
   */
  createDevice(name: string): Promise<void>;
  /** Deletes the device; ENODEV-style NetlinkError when it does not exist. */
  deleteDevice(name: string): Promise<void>;
  getDevice(name: string): Promise<WgDevice>;
  /** Applies a configuration; large peer sets are split across as many requests as needed. */
  setDevice(name: string, config: WgDeviceConfig): Promise<void>;
  /** Releases resources held by the backend (the userspace backend stops nothing it adopted). */
  close(): Promise<void>;
}
