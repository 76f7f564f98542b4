/**
 * Validation and normalisation of WireGuard configuration, shared by both backends (kernel and
 * userspace): 32-byte keys, their base64 form, endpoints ("192.0.2.1:51820", "[2001:db8::1]:51820"),
 * CIDRs, device names, and a whole WgDeviceConfig. Pure functions; every failure is a
 * ValidationError naming the field, the bad value and the fix. Messages never contain private or
 * preshared key material (public keys appear only as a short base64 prefix).
 */
import { publicKeyFingerprint } from '../keys/fingerprint.js';
import { ValidationError } from '../errors.js';
import { canonicalCidr, checkEndpoint, formatCidr, formatEndpoint, quote, type Invalid } from '../net/ip.js';
import { WG_KEY_LEN, type WgDeviceConfig, type WgPeerConfig } from './backend.js';

/** The kernel's limit on peers per device. */
export const WG_MAX_PEERS = 1 << 20;
/** IFNAMSIZ - 1. */
export const MAX_IFNAME_LEN = 15;

// ------------------------------------------------------------------------------------------
// Keys

function asBuffer(value: unknown): Buffer | undefined {
  if (Buffer.isBuffer(value)) return value;
  if (value instanceof Uint8Array) return Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  return undefined;
}

/**
 * Returns `value` as a Buffer when it is a 32-byte Buffer or Uint8Array; otherwise throws a
 * ValidationError that states the length but never the content.
 */
export function checkKey(value: unknown, field: string): Buffer {
  const buf = asBuffer(value);
  if (!buf) {
    throw new ValidationError(
      field,
      `Invalid WireGuard key at "${field}": expected a ${WG_KEY_LEN}-byte Buffer, got ${typeName(value)}; decode a base64 key with keyFromBase64()`,
    );
  }
  if (buf.length !== WG_KEY_LEN) {
    throw new ValidationError(
      field,
      `Invalid WireGuard key at "${field}": expected ${WG_KEY_LEN} bytes, got ${buf.length}; pass the raw 32-byte key`,
    );
  }
  return buf;
}

/** Decodes a key in WireGuard's base64 form (44 characters, as `wg genkey` prints). */
export function keyFromBase64(text: unknown, field = 'key'): Buffer {
  if (typeof text !== 'string' || !/^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$/.test(text)) {
    throw new ValidationError(
      field,
      `Invalid WireGuard key at "${field}": expected 44 characters of base64 encoding ${WG_KEY_LEN} bytes (as "wg genkey" prints)`,
    );
  }
  return Buffer.from(text, 'base64');
}

/** Encodes a 32-byte key in WireGuard's base64 form. */
export function keyToBase64(key: Buffer | Uint8Array): string {
  return checkKey(key, 'key').toString('base64');
}


// ------------------------------------------------------------------------------------------
// Addresses (parsed and formatted by agent/net/ip.ts; the messages keep this file's wording)

const cidrError: Invalid = (field, value, fix) => new ValidationError(field, `Invalid CIDR ${quote(value)} at "${field}": ${fix}`);
const endpointError: Invalid = (field, value, fix) =>
  new ValidationError(field, `Invalid endpoint ${quote(value)} at "${field}": ${fix}`);

/**
 * The canonical text of a CIDR: "10.0.1.7/24" → "10.0.1.0/24", "FD00:0:0:0:1::1/64" →
 * "fd00::/64". Host bits are cleared as the kernel and wireguard-go do when they store an
 * allowed IP, and the address is spelled as inet_ntop does, so configurations compare equal to
 * what reads return (from either backend).
 */
export function normalizeCidr(text: unknown, field = 'cidr'): string {
  return formatCidr(canonicalCidr(field, text, { requirePrefix: true }, cidrError));
}

/** The canonical text of an endpoint: "[2001:DB8:0::1]:51820" → "[2001:db8::1]:51820". */
export function normalizeEndpoint(text: unknown, field = 'endpoint'): string {
  return formatEndpoint(checkEndpoint(field, text, endpointError));
}

// ------------------------------------------------------------------------------------------
// Device names and whole configurations

/** A Linux interface name: 1..15 bytes, no "/", whitespace or ":", not "." or "..". */
export function checkDeviceName(name: unknown, field = 'name'): string {
  if (
    typeof name !== 'string' ||
    name.length === 0 ||
    Buffer.byteLength(name) > MAX_IFNAME_LEN ||
    /[/\s:\0]/.test(name) ||
    name === '.' ||
    name === '..'
  ) {
    throw new ValidationError(
      field,
      `Invalid device name ${quote(name)} at "${field}": use 1 to ${MAX_IFNAME_LEN} bytes without "/", ":" or whitespace (for example "veil_wg0")`,
    );
  }
  return name;
}

function checkInt(value: unknown, field: string, what: string, min: number, max: number, hint: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new ValidationError(field, `Invalid ${what} ${quote(value)} at "${field}": ${hint}`);
  }
  return value;
}

function checkBool(value: unknown, field: string): boolean | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'boolean') {
    throw new ValidationError(field, `Invalid flag ${quote(value)} at "${field}": use true or false`);
  }
  return value;
}

function checkSecret(value: unknown, field: string): Buffer | null | undefined {
  if (value === undefined || value === null) return value;
  return checkKey(value, field);
}

function typeName(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  return typeof v === 'object' ? 'an object' : `a ${typeof v}`;
}

function checkPeer(raw: unknown, field: string): WgPeerConfig {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new ValidationError(field, `Invalid peer at "${field}": expected an object, got ${typeName(raw)}`);
  }
  const p = raw as Record<string, unknown>;
  const publicKey = checkKey(p.publicKey, `${field}.publicKey`);
  const remove = checkBool(p.remove, `${field}.remove`);
  if (remove) return { publicKey, remove: true };
  const out: WgPeerConfig = { publicKey };
  const updateOnly = checkBool(p.updateOnly, `${field}.updateOnly`);
  if (updateOnly !== undefined) out.updateOnly = updateOnly;
  const psk = checkSecret(p.presharedKey, `${field}.presharedKey`);
  if (psk !== undefined) out.presharedKey = psk;
  if (p.endpoint !== undefined) out.endpoint = normalizeEndpoint(p.endpoint, `${field}.endpoint`);
  if (p.persistentKeepalive !== undefined) {
    out.persistentKeepalive = checkInt(
      p.persistentKeepalive,
      `${field}.persistentKeepalive`,
      'persistent keepalive',
      0,
      65535,
      'use whole seconds from 0 (off) to 65535',
    );
  }
  if (p.allowedIps !== undefined) {
    if (!Array.isArray(p.allowedIps)) {
      throw new ValidationError(
        `${field}.allowedIps`,
        `Invalid allowed IPs at "${field}.allowedIps": expected an array of CIDR strings, got ${typeName(p.allowedIps)}`,
      );
    }
    const seen = new Set<string>();
    out.allowedIps = [];
    p.allowedIps.forEach((c, i) => {
      const n = normalizeCidr(c, `${field}.allowedIps[${i}]`);
      if (!seen.has(n)) out.allowedIps!.push(n);
      seen.add(n);
    });
  }
  const replace = checkBool(p.replaceAllowedIps, `${field}.replaceAllowedIps`);
  if (replace !== undefined) out.replaceAllowedIps = replace;
  return out;
}

/**
 * Validates a whole device configuration and returns it normalised (canonical endpoint and CIDR
 * text, duplicate CIDRs of one peer merged, removed peers reduced to their public key). Refuses
 * a peer listed twice and a CIDR given to two peers (allowed IPs are unique per device: the
 * second would silently take it from the first).
 */
export function validateWgDeviceConfig(config: unknown, field = 'config'): WgDeviceConfig {
  if (typeof config !== 'object' || config === null || Array.isArray(config)) {
    throw new ValidationError(field, `Invalid WireGuard configuration at "${field}": expected an object, got ${typeName(config)}`);
  }
  const c = config as Record<string, unknown>;
  const out: WgDeviceConfig = {};
  const pk = checkSecret(c.privateKey, `${field}.privateKey`);
  if (pk !== undefined) out.privateKey = pk;
  if (c.listenPort !== undefined) {
    out.listenPort = checkInt(c.listenPort, `${field}.listenPort`, 'listen port', 0, 65535, 'use 1..65535, or 0 for a random port');
  }
  if (c.fwmark !== undefined) {
    out.fwmark = checkInt(c.fwmark, `${field}.fwmark`, 'fwmark', 0, 0xffffffff, 'use an unsigned 32-bit integer, 0 to clear');
  }
  const replacePeers = checkBool(c.replacePeers, `${field}.replacePeers`);
  if (replacePeers !== undefined) out.replacePeers = replacePeers;
  if (c.peers !== undefined) {
    if (!Array.isArray(c.peers)) {
      throw new ValidationError(`${field}.peers`, `Invalid peers at "${field}.peers": expected an array, got ${typeName(c.peers)}`);
    }
    if (c.peers.length > WG_MAX_PEERS) {
      throw new ValidationError(
        `${field}.peers`,
        `Too many peers at "${field}.peers": ${c.peers.length} exceeds WireGuard's limit of ${WG_MAX_PEERS} per device`,
      );
    }
    const byKey = new Map<string, number>();
    const byCidr = new Map<string, number>();
    out.peers = c.peers.map((raw, i) => {
      const pf = `${field}.peers[${i}]`;
      const peer = checkPeer(raw, pf);
      const k = peer.publicKey.toString('base64');
      const prev = byKey.get(k);
      if (prev !== undefined) {
        throw new ValidationError(
          `${pf}.publicKey`,
          `Duplicate peer "${publicKeyFingerprint(peer.publicKey)}" at "${pf}": it is also "${field}.peers[${prev}]"; list each peer once`,
        );
      }
      byKey.set(k, i);
      for (const cidr of peer.allowedIps ?? []) {
        const owner = byCidr.get(cidr);
        if (owner !== undefined) {
          throw new ValidationError(
            `${pf}.allowedIps`,
            `Allowed IP "${cidr}" is given to two peers, "${field}.peers[${owner}]" and "${pf}": an allowed IP belongs to one peer per device`,
          );
        }
        byCidr.set(cidr, i);
      }
      return peer;
    });
  }
  return out;
}
