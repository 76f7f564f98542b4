/**
 * Validates a set-device configuration and packs it for the addon in one pass: fixed-layout
 * records in three PackedBatches (agent/netlink/pack.ts) instead of one object per peer read
 * field by field through N-API. At 5,000 peers, validating into normalised objects and the
 * addon's per-field reads cost more user CPU than `wg setconf` spends in all; packed, crossing
 * costs three Buffers and a string. Mirrored by PackedDeviceSet in native/src/wireguard.cc,
 * which checks every length, count and range again.
 *
 * The fast check accepts only shapes it is sure of and writes the records directly; on anything
 * else (a bad or unusual value, a duplicate peer or CIDR) it gives up and the whole
 * configuration goes to validateWgDeviceConfig() (keys.ts), the one definition of what is valid,
 * which throws the precise ValidationError or returns the normalised configuration that is then
 * packed by the same writer. So the fast path never changes what is accepted, what is rejected,
 * or the message (tests/unit/wireguard/pack.test.ts compares both on random input).
 *
 * The records hold private and preshared keys: callers scrub() them as soon as the addon has
 * copied them (synchronously, before it returns), whether it accepted them or not.
 *
 * Device record (host byte order, 44 bytes, exactly one):
 *   0  32 bytes private key (zeros with the flag set: remove the key)
 *   32 u32 flags: 1 private key set, 2 listen port set, 4 fwmark set, 8 replace peers
 *   36 u32 listen port   40 u32 fwmark
 * Peer record (96 bytes, one per peer in order):
 *   0  32 bytes public key   32 32 bytes preshared key (zeros with the flag set: clear it)
 *   64 u32 flags: 1 remove, 2 update only, 4 replace allowed IPs, 8 preshared key set,
 *                 16 endpoint set, 32 endpoint is IPv6, 64 keepalive set
 *   68 u32 persistent keepalive   72 u32 endpoint port   76 u32 number of allowed IPs
 *   80 16 bytes endpoint address (network order; 4 used for IPv4)
 * Allowed IP record (20 bytes; each peer's, in peer order, host bits cleared):
 *   0  16 bytes address (network order)   16 u8 family (4 or 6)   17 u8 prefix length
 */
import { ValidationError, VeilError } from '../errors.js';
import { maskHostBits, parseIPv4Into, parseIPv6Into, parseIpInto, parsePrefixLen } from '../net/ip.js';
import { PackedBatch } from '../netlink/pack.js';
import type { AllowedIpRetirement } from './allowed-ip-handover.js';
import { WG_KEY_LEN } from './backend.js';
import { WG_MAX_PEERS, checkDeviceName, checkKey, normalizeCidr, validateWgDeviceConfig } from './keys.js';

export const WG_DEVICE_RECORD = 44;
export const WG_PEER_RECORD = 96;
export const WG_ALLOWED_IP_RECORD = 20;

const D_PRIVATE_KEY = 1;
const D_LISTEN_PORT = 2;
const D_FWMARK = 4;
const D_REPLACE_PEERS = 8;
const P_REMOVE = 1;
const P_UPDATE_ONLY = 2;
const P_REPLACE_ALLOWED_IPS = 4;
const P_PRESHARED_KEY = 8;
const P_ENDPOINT = 16;
const P_ENDPOINT_V6 = 32;
const P_KEEPALIVE = 64;

/** A configuration packed for the addon's wgSetDevice / encodeWgSetDevice. */
export interface PackedWgSetDevice {
  name: string;
  device: Buffer;
  peers: Buffer;
  allowedIps: Buffer;
  /** Zeroes the records (they hold private and preshared keys). */
  scrub(): void;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isKey = (v: unknown): v is Uint8Array => v instanceof Uint8Array && v.length === WG_KEY_LEN;
const isInt = (v: unknown, max: number): v is number => typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= max;
const isOptBool = (v: unknown): boolean => v === undefined || typeof v === 'boolean';

const u16 = (b: Uint8Array, o: number): number => (b[o]! << 8) | b[o + 1]!;

/** A Map key for the 32 key bytes at b[o..]: 16 UTF-16 code units. */
function keyString(b: Uint8Array, o: number): string {
  return String.fromCharCode(
    u16(b, o), u16(b, o + 2), u16(b, o + 4), u16(b, o + 6), u16(b, o + 8), u16(b, o + 10), u16(b, o + 12), u16(b, o + 14),
    u16(b, o + 16), u16(b, o + 18), u16(b, o + 20), u16(b, o + 22), u16(b, o + 24), u16(b, o + 26), u16(b, o + 28), u16(b, o + 30),
  ); // prettier-ignore
}

/** A Map key for the masked prefix at b[o..] (equal exactly when the canonical CIDR texts are). */
function cidrKey(b: Uint8Array, o: number, family: number, len: number): number | string {
  if (family === 4) return ((b[o]! * 256 + b[o + 1]!) * 256 + b[o + 2]!) * 256 * 256 * 64 + b[o + 3]! * 64 + len;
  return String.fromCharCode(
    u16(b, o), u16(b, o + 2), u16(b, o + 4), u16(b, o + 6), u16(b, o + 8), u16(b, o + 10), u16(b, o + 12), u16(b, o + 14), len,
  ); // prettier-ignore
}

/**
 * "address:port" as checkEndpoint() (net/ip.ts) accepts it: writes the address at b[o..] and
 * returns the port, plus 65536 for IPv6; -1 when not sure.
 */
function fastEndpoint(v: unknown, b: Uint8Array, o: number): number {
  if (typeof v !== 'string') return -1;
  let from: number;
  let v6 = 0;
  if (v.charCodeAt(0) === 91) {
    const close = v.indexOf(']');
    if (close < 0 || v.charCodeAt(close + 1) !== 58 || !parseIPv6Into(v, b, o, 1, close)) return -1;
    from = close + 2;
    v6 = 65536;
  } else {
    const colon = v.lastIndexOf(':');
    if (colon < 1 || v.lastIndexOf(':', colon - 1) >= 0 || !parseIPv4Into(v, b, o, 0, colon)) return -1;
    from = colon + 1;
  }
  const digits = v.length - from;
  if (digits < 1 || digits > 5) return -1;
  let port = 0;
  for (let k = from; k < v.length; k++) {
    const c = v.charCodeAt(k) - 48;
    if (c < 0 || c > 9) return -1;
    port = port * 10 + c;
  }
  return port >= 1 && port <= 65535 ? port + v6 : -1;
}

/** Records being written, and what the device-wide uniqueness checks have seen so far. */
class Writer {
  readonly device = new PackedBatch(1, WG_DEVICE_RECORD);
  readonly peers: PackedBatch;
  readonly ips: PackedBatch;
  ipCount = 0;
  /** Public key → peer index. */
  readonly keys = new Map<string, number>();
  /** Masked prefix → peer index. */
  readonly cidrs = new Map<number | string, number>();

  constructor(peers: number, ips: number) {
    this.peers = new PackedBatch(peers, WG_PEER_RECORD);
    this.ips = new PackedBatch(ips, WG_ALLOWED_IP_RECORD);
  }

  scrub(): void {
    this.device.scrub();
    this.peers.scrub();
    this.ips.scrub();
  }

  /** "address/len" (prefix required) as the next allowed IP record, host bits cleared; its key, or undefined. */
  cidr(v: unknown): number | string | undefined {
    if (typeof v !== 'string' || this.ipCount >= this.ips.count) return undefined;
    const b = this.ips.bytes;
    const o = this.ipCount * WG_ALLOWED_IP_RECORD;
    const slash = v.indexOf('/');
    if (slash < 0) return undefined;
    const family = parseIpInto(v, b, o, 0, slash);
    if (family === 0) return undefined;
    const len = parsePrefixLen(v, slash + 1, v.length, family === 4 ? 32 : 128);
    if (len < 0) return undefined;
    maskHostBits(b.subarray(o, o + (family === 4 ? 4 : 16)), len);
    b[o + 16] = family;
    b[o + 17] = len;
    return cidrKey(b, o, family, len);
  }

  /** Writes the device record; false when not sure of `c`. */
  fastDevice(c: Record<string, unknown>): boolean {
    const { bytes, words } = this.device;
    let flags = 0;
    const pk = c.privateKey;
    if (pk === null) flags |= D_PRIVATE_KEY;
    else if (isKey(pk)) {
      bytes.set(pk, 0);
      flags |= D_PRIVATE_KEY;
    } else if (pk !== undefined) return false;
    if (c.listenPort !== undefined) {
      if (!isInt(c.listenPort, 65535)) return false;
      flags |= D_LISTEN_PORT;
      words[9] = c.listenPort;
    }
    if (c.fwmark !== undefined) {
      if (!isInt(c.fwmark, 0xffffffff)) return false;
      flags |= D_FWMARK;
      words[10] = c.fwmark;
    }
    if (!isOptBool(c.replacePeers)) return false;
    if (c.replacePeers === true) flags |= D_REPLACE_PEERS;
    words[8] = flags;
    return true;
  }

  /** Writes peer record `i`; false when not sure of `v` or when it repeats a key or CIDR. */
  fastPeer(v: unknown, i: number): boolean {
    if (!isObject(v)) return false;
    const pk = v.publicKey;
    if (!isKey(pk)) return false;
    const { bytes, words } = this.peers;
    const o = i * WG_PEER_RECORD;
    const w = o >> 2;
    bytes.set(pk, o);
    const k = keyString(bytes, o);
    if (this.keys.has(k)) return false;
    this.keys.set(k, i);
    const remove = v.remove;
    if (!isOptBool(remove)) return false;
    if (remove === true) {
      // As validateWgDeviceConfig(): a removed peer is its public key; nothing else is read.
      words[w + 16] = P_REMOVE;
      return true;
    }
    let flags = 0;
    if (!isOptBool(v.updateOnly)) return false;
    if (v.updateOnly === true) flags |= P_UPDATE_ONLY;
    const psk = v.presharedKey;
    if (psk === null) flags |= P_PRESHARED_KEY;
    else if (isKey(psk)) {
      bytes.set(psk, o + 32);
      flags |= P_PRESHARED_KEY;
    } else if (psk !== undefined) return false;
    if (v.endpoint !== undefined) {
      const ep = fastEndpoint(v.endpoint, bytes, o + 80);
      if (ep < 0) return false;
      flags |= ep > 65535 ? P_ENDPOINT | P_ENDPOINT_V6 : P_ENDPOINT;
      words[w + 18] = ep & 0xffff;
    }
    const ka = v.persistentKeepalive;
    if (ka !== undefined) {
      if (!isInt(ka, 65535)) return false;
      flags |= P_KEEPALIVE;
      words[w + 17] = ka;
    }
    const ips = v.allowedIps;
    let n = 0;
    if (ips !== undefined) {
      if (!Array.isArray(ips)) return false;
      for (let j = 0; j < ips.length; j++) {
        const key = this.cidr(ips[j]);
        if (key === undefined) return false;
        const owner = this.cidrs.get(key);
        if (owner === undefined) {
          this.cidrs.set(key, i);
          this.ipCount++;
          n++;
        } else if (owner === i) {
          // The same CIDR twice in one peer: merged, as validateWgDeviceConfig() does.
          this.ips.bytes.fill(0, this.ipCount * WG_ALLOWED_IP_RECORD, (this.ipCount + 1) * WG_ALLOWED_IP_RECORD);
        } else return false;
      }
    }
    if (!isOptBool(v.replaceAllowedIps)) return false;
    if (v.replaceAllowedIps === true) flags |= P_REPLACE_ALLOWED_IPS;
    words[w + 16] = flags;
    words[w + 19] = n;
    return true;
  }

  /** Writes the whole configuration; false when the fast check was not sure of some part. */
  fast(config: unknown): boolean {
    if (!isObject(config) || !this.fastDevice(config)) return false;
    const peers = config.peers;
    if (peers === undefined) return true;
    if (!Array.isArray(peers) || peers.length > WG_MAX_PEERS) return false;
    for (let i = 0; i < peers.length; i++) if (!this.fastPeer(peers[i], i)) return false;
    return true;
  }

  /** Appends the retirement as packWgSetDevice() describes: the throwaway peer with its CIDRs, then its removal. */
  retire(retire: AllowedIpRetirement, at: number): void {
    // Not through the uniqueness checks of validateWgDeviceConfig(): the throwaway peer is listed twice on purpose.
    const publicKey = checkKey(retire.publicKey, 'retire.publicKey');
    const { bytes, words } = this.peers;
    const o = at * WG_PEER_RECORD;
    bytes.set(publicKey, o);
    if (this.keys.has(keyString(bytes, o))) {
      throw new ValidationError('retire.publicKey', 'Invalid retirement: its throwaway public key is one of the configured peers; draw a fresh random key');
    }
    const cidrs = retire.allowedIps.map((c, i) => normalizeCidr(c, `retire.allowedIps[${i}]`));
    for (const c of cidrs) {
      const key = this.cidr(c);
      if (key === undefined) throw internal('a normalised retirement CIDR');
      if (this.cidrs.has(key)) {
        throw new ValidationError('retire.allowedIps', `Invalid retirement: "${c}" is also given to a configured peer; retire only CIDRs that leave every peer`);
      }
      this.ipCount++;
    }
    words[(o >> 2) + 19] = cidrs.length;
    bytes.set(publicKey, o + WG_PEER_RECORD);
    words[((o + WG_PEER_RECORD) >> 2) + 16] = P_REMOVE;
  }

  packed(name: string): PackedWgSetDevice {
    return {
      name,
      device: this.device.buffer(),
      peers: this.peers.buffer(),
      allowedIps: this.ips.buffer(this.ipCount),
      scrub: () => this.scrub(),
    };
  }
}

function internal(what: string): VeilError {
  return new VeilError('EINTERNAL', `Cannot pack WireGuard configuration: the packer refused ${what}; this is a bug in Veil`);
}

/** Room for `config`'s peers and allowed IPs plus a retirement's (an upper bound: duplicates are merged). */
function writerFor(config: unknown, retire: AllowedIpRetirement | null | undefined): Writer {
  const peers = isObject(config) && Array.isArray(config.peers) ? (config.peers as unknown[]) : [];
  let ips = 0;
  for (let i = 0; i < peers.length; i++) {
    const p = peers[i];
    if (isObject(p) && Array.isArray(p.allowedIps)) ips += p.allowedIps.length;
  }
  const r = retire && retire.allowedIps.length > 0 ? retire : null;
  return new Writer(peers.length + (r ? 2 : 0), ips + (r ? r.allowedIps.length : 0));
}

function pack(name: string, config: unknown, retire: AllowedIpRetirement | null | undefined, fastFirst: boolean): PackedWgSetDevice {
  checkDeviceName(name);
  let w = writerFor(config, retire);
  if (!fastFirst || !w.fast(config)) {
    w.scrub();
    const valid = validateWgDeviceConfig(config);
    w = writerFor(valid, retire);
    if (!w.fast(valid)) {
      w.scrub();
      // validateWgDeviceConfig() keeps a hole of a sparse peers array as a hole.
      const peers = valid.peers ?? [];
      for (let i = 0; i < peers.length; i++) {
        if (!(i in peers)) throw new ValidationError(`config.peers[${i}]`, `Invalid peer at "config.peers[${i}]": expected an object, got nothing`);
      }
      throw internal('a validated configuration');
    }
  }
  try {
    if (retire && retire.allowedIps.length > 0) w.retire(retire, w.peers.count - 2);
  } catch (err) {
    w.scrub();
    throw err;
  }
  return w.packed(name);
}

/**
 * Validates `config` for device `name` (errors as validateWgDeviceConfig() words them, field
 * "config") and packs it. A `retire` (planAllowedIpHandover(), allowed-ip-handover.ts) becomes
 * two peer records after every peer of `config`: the throwaway peer with the departing CIDRs,
 * then its removal, so the kernel takes the CIDRs from their peers and drops them only after
 * the new ones are in.
 */
export function packWgSetDevice(name: string, config: unknown, retire?: AllowedIpRetirement | null): PackedWgSetDevice {
  return pack(name, config, retire, true);
}

/** The slow path alone (validateWgDeviceConfig() then packing), for tests comparing it with packWgSetDevice(). */
export function packWgSetDeviceChecked(name: string, config: unknown, retire?: AllowedIpRetirement | null): PackedWgSetDevice {
  return pack(name, config, retire, false);
}
