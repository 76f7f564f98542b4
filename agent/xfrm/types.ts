/**
 * Types of the XFRM (IPsec) API: what callers hand in (…Config, …Id, …Filter) and what the
 * kernel reports back (XfrmState, XfrmPolicy). Layouts follow /usr/include/linux/xfrm.h.
 *
 * Key material goes in only (XfrmStateConfig.aead.key); nothing read back carries a key, only
 * the algorithm's name and key length, so no read result can leak a key into a log.
 */

/** Every operation accepts a target network namespace (name under /run/netns or absolute path). */
export interface XfrmOptions {
  netns?: string;
}

export type XfrmDir = 'in' | 'out' | 'fwd';
export type XfrmMode = 'transport' | 'tunnel';
export type XfrmAction = 'allow' | 'block';
/** IPsec protocols the API creates. Read-backs may report others as a protocol number. */
export type XfrmProto = 'esp';

/** The AEAD algorithms Veil installs (kernel crypto names, as `ip xfrm` spells them). */
export type XfrmAeadAlgorithm = 'rfc4106(gcm(aes))' | 'rfc7539esp(chacha20,poly1305)';

/** Key lengths (bytes, key followed by the 4-byte salt/nonce) each algorithm accepts. */
export const AEAD_KEY_LENGTHS: Readonly<Record<XfrmAeadAlgorithm, readonly number[]>> = {
  // AES-128/192/256 key + 4-byte salt (RFC 4106).
  'rfc4106(gcm(aes))': [20, 28, 36],
  // ChaCha20 256-bit key + 4-byte salt (RFC 7634).
  'rfc7539esp(chacha20,poly1305)': [36],
};

/** ICV length in bits: 128 for both algorithms. */
export const AEAD_ICV_BITS = 128;

/** A mark (and mask) matched by a state or policy, or set on packets by a state. */
export interface XfrmMark {
  value: number;
  /** Defaults to 0xffffffff. */
  mask?: number;
}

/** Transport protocol of a selector: a name or an IP protocol number. */
export type XfrmSelectorProto = 'tcp' | 'udp' | 'icmp' | 'ipv6-icmp' | 'sctp' | number;

/** Traffic selector: which packets a policy (or a state) applies to. */
export interface XfrmSelector {
  /** Source prefix, "10.0.0.0/16" or "fd00::/64" (a bare address means a host prefix). */
  src: string;
  /** Destination prefix, same family as src. */
  dst: string;
  proto?: XfrmSelectorProto;
  /** Source port (tcp, udp, sctp, dccp, udplite only). */
  sport?: number;
  dport?: number;
}

/** Optional limits of a state. Byte and packet limits default to unlimited, times to none. */
export interface XfrmLifetimeLimits {
  softBytes?: bigint | number;
  hardBytes?: bigint | number;
  softPackets?: bigint | number;
  hardPackets?: bigint | number;
  softAddSeconds?: bigint | number;
  hardAddSeconds?: bigint | number;
  softUseSeconds?: bigint | number;
  hardUseSeconds?: bigint | number;
}

/** An ESP security association to install. */
export interface XfrmStateConfig {
  /** Outer source address (tunnel endpoint or host). */
  src: string;
  /** Outer destination address; the state's identity is (mark, dst, spi, proto). */
  dst: string;
  /** Security Parameter Index, 1..0xffffffff. */
  spi: number;
  proto?: XfrmProto;
  /** Defaults to "tunnel". */
  mode?: XfrmMode;
  /** Links the state to policy templates with the same reqid. Default 0. */
  reqid?: number;
  aead: {
    algorithm: XfrmAeadAlgorithm;
    /** Key followed by the 4-byte salt: see AEAD_KEY_LENGTHS. Never logged, never returned. */
    key: Buffer;
  };
  /** Only packets whose mark matches use this state (outbound) / find it (inbound). */
  mark?: XfrmMark;
  /** Mark set on packets this state processes, inbound (after decryption) and outbound. */
  setMark?: XfrmMark;
  /** XFRM interface id (xfrmi). */
  ifId?: number;
  /** Anti-replay window in packets (0..4096; default 0 = off; ESN needs at least 1). */
  replayWindow?: number;
  /** 64-bit extended sequence numbers (RFC 4303). */
  esn?: boolean;
  lifetime?: XfrmLifetimeLimits;
  /** Restrict the state to traffic matching this selector (default: any). */
  selector?: XfrmSelector;
}

/** Identifies one state: the kernel's SA lookup key. */
export interface XfrmStateId {
  dst: string;
  spi: number;
  proto?: XfrmProto;
  mark?: XfrmMark;
}

/** A selector as the kernel reports it. Addresses are null when the family is unspecified. */
export interface XfrmSelectorInfo {
  family: 4 | 6 | 0;
  src: string | null;
  srcLen: number;
  dst: string | null;
  dstLen: number;
  proto: number;
  sport: number;
  sportMask: number;
  dport: number;
  dportMask: number;
  ifindex: number;
}

export interface XfrmMarkInfo {
  value: number;
  mask: number;
}

export interface XfrmAlgorithmInfo {
  /** Kernel crypto name, e.g. "rfc4106(gcm(aes))". */
  algorithm: string;
  keyBits: number;
}

export interface XfrmLifetimeInfo {
  softBytes: bigint;
  hardBytes: bigint;
  softPackets: bigint;
  hardPackets: bigint;
  softAddSeconds: bigint;
  hardAddSeconds: bigint;
  softUseSeconds: bigint;
  hardUseSeconds: bigint;
}

/** Counters and replay state of one state (the figures of `ip -s xfrm state`). */
export interface XfrmStateStats {
  /** Bytes and packets processed (xfrm_lifetime_cur). */
  bytes: bigint;
  packets: bigint;
  /** Seconds since the epoch when the state was added / first used (0 = never). */
  addTime: bigint;
  useTime: bigint;
  /** Packets dropped as outside the replay window (xfrm_stats.replay_window). */
  replayWindowDrops: number;
  /** Packets dropped as replayed (xfrm_stats.replay). */
  replayDrops: number;
  /** Packets that failed integrity checking (xfrm_stats.integrity_failed). */
  integrityFailures: number;
  /** Outbound sequence number (64 bits with ESN; oseqHi:oseq). */
  outboundSeq: bigint;
  /** Highest inbound sequence number seen (64 bits with ESN; seqHi:seq). */
  inboundSeq: bigint;
  replayWindow: number;
  esn: boolean;
}

/** A state as read back from the kernel. No key material. */
export interface XfrmState {
  family: 4 | 6;
  src: string;
  dst: string;
  spi: number;
  /** "esp", or the IP protocol number of anything else (ah = 51, comp = 108). */
  proto: XfrmProto | number;
  /** "tunnel" / "transport", or the kernel's mode number for others (beet = 4). */
  mode: XfrmMode | number;
  reqid: number;
  mark: XfrmMarkInfo | null;
  setMark: XfrmMarkInfo | null;
  ifId: number | null;
  replayWindow: number;
  esn: boolean;
  /** XFRM_STATE_* flags of xfrm_usersa_info. */
  flags: number;
  aead: (XfrmAlgorithmInfo & { icvBits: number }) | null;
  /** Present only for states installed by other tools with separate algorithms. */
  crypt: XfrmAlgorithmInfo | null;
  auth: (XfrmAlgorithmInfo & { truncBits: number }) | null;
  selector: XfrmSelectorInfo;
  lifetime: XfrmLifetimeInfo;
  stats: XfrmStateStats;
}

/** Which states listStates / deleteStatesMatching select (every given field must match). */
export interface XfrmStateFilter {
  src?: string;
  dst?: string;
  spi?: number;
  reqid?: number;
  /** The state's mark must equal value (and mask, when given). */
  mark?: XfrmMark;
  setMark?: XfrmMark;
  ifId?: number;
  family?: 4 | 6;
}

/** A policy template: which state (by reqid / addresses) must process matching packets. */
export interface XfrmTemplate {
  /** Tunnel endpoints; required in tunnel mode, optional in transport mode. */
  src?: string;
  dst?: string;
  proto?: XfrmProto;
  /** 0 or absent: any SPI. */
  spi?: number;
  reqid?: number;
  /** Defaults to "tunnel". */
  mode?: XfrmMode;
  /** `level use`: packets pass even when no state matches. */
  optional?: boolean;
}

export interface XfrmPolicyConfig {
  dir: XfrmDir;
  selector: XfrmSelector;
  /** Lower values win. Default 0. */
  priority?: number;
  /** Default "allow". */
  action?: XfrmAction;
  mark?: XfrmMark;
  ifId?: number;
  /** Up to 6 templates (the kernel's XFRM_MAX_DEPTH). */
  templates?: XfrmTemplate[];
}

/**
 * Identifies one policy: by (dir, selector, mark, ifId), exactly as it was added, or by the
 * kernel-assigned index (from listPolicies).
 */
export type XfrmPolicyId =
  | { dir: XfrmDir; selector: XfrmSelector; mark?: XfrmMark; ifId?: number }
  | { dir: XfrmDir; index: number; mark?: XfrmMark; ifId?: number };

export interface XfrmTemplateInfo {
  family: 4 | 6 | 0;
  src: string | null;
  dst: string | null;
  proto: XfrmProto | number;
  spi: number;
  reqid: number;
  mode: XfrmMode | number;
  optional: boolean;
}

/** A policy as read back from the kernel. */
export interface XfrmPolicy {
  dir: XfrmDir | number;
  selector: XfrmSelectorInfo;
  priority: number;
  action: XfrmAction | number;
  /** Kernel-assigned index (usable as an XfrmPolicyId). */
  index: number;
  mark: XfrmMarkInfo | null;
  ifId: number | null;
  templates: XfrmTemplateInfo[];
}

export interface XfrmPolicyFilter {
  dir?: XfrmDir;
  priority?: number;
  action?: XfrmAction;
  mark?: XfrmMark;
  ifId?: number;
  /** Any template with this reqid. */
  reqid?: number;
  family?: 4 | 6;
}
