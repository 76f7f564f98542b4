/**
 * Validation and normalisation of WireGuard configuration, shared by both backends (kernel and
 * userspace): 32-byte keys, their base64 form, endpoints ("192.0.2.1:51820", "[2001:db8::1]:51820"),
 * CIDRs, device names, and a whole WgDeviceConfig. Pure functions; every failure is a
 * ValidationError naming the field, the bad value and the fix. Messages never contain private or
 * preshared key material (public keys appear only as a short base64 prefix).
 */
import { ValidationError } from '../errors.js';
import { WG_KEY_LEN, type WgDeviceConfig, type WgPeerConfig } from './backend.js';

/** The kernel's limit on peers per device. */
export const WG_MAX_PEERS = 1 << 20;
/** IFNAMSIZ - 1. */
export const MAX_IFNAME_LEN = 15;

const quote = (v: unknown): string => {
  const s = typeof v === 'string' ? v : typeof v === 'bigint' ? `${v}n` : String(v);
  return `"${s.length > 64 ? `${s.slice(0, 64)}…` : s}"`;
};

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

/** A short, non-secret label for a public key in messages and logs ("xTIBA5rb…"). */
export function keyFingerprint(publicKey: Buffer | Uint8Array): string {
  return `${Buffer.from(publicKey).toString('base64').slice(0, 8)}…`;
}

// ------------------------------------------------------------------------------------------
// Addresses

/** Parses a dotted-quad IPv4 address (no leading zeros) into 4 bytes, or undefined. */
export function parseIpv4(text: string): Uint8Array | undefined {
  const parts = text.split('.');
  if (parts.length !== 4) return undefined;
  const out = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    const p = parts[i]!;
    if (!/^(0|[1-9][0-9]{0,2})$/.test(p)) return undefined;
    const v = Number(p);
    if (v > 255) return undefined;
    out[i] = v;
  }
  return out;
}

/** Parses an IPv6 address (RFC 4291 text forms, no zone id) into 16 bytes, or undefined. */
export function parseIpv6(text: string): Uint8Array | undefined {
  if (text.length < 2 || text.length > 45) return undefined;
  let head = text;
  let v4: Uint8Array | undefined;
  const lastColon = text.lastIndexOf(':');
  if (text.indexOf('.', lastColon) >= 0) {
    v4 = parseIpv4(text.slice(lastColon + 1));
    if (!v4) return undefined;
    // Keep a trailing "::" ("::1.2.3.4"), drop a lone trailing ":" ("::ffff:1.2.3.4").
    head = text.slice(0, lastColon + 1);
    if (!head.endsWith('::')) head = head.slice(0, -1);
  }
  const wordsNeeded = v4 ? 6 : 8;
  const halves = head.split('::');
  if (halves.length > 2) return undefined;
  const parse = (s: string): number[] | undefined => {
    if (s === '') return [];
    const out: number[] = [];
    for (const g of s.split(':')) {
      if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return undefined;
      out.push(parseInt(g, 16));
    }
    return out;
  };
  let words: number[];
  if (halves.length === 2) {
    const a = parse(halves[0]!);
    const b = parse(halves[1]!);
    if (!a || !b || a.length + b.length > wordsNeeded - 1) return undefined;
    words = [...a, ...new Array<number>(wordsNeeded - a.length - b.length).fill(0), ...b];
  } else {
    const a = parse(head);
    if (!a || a.length !== wordsNeeded) return undefined;
    words = a;
  }
  const out = new Uint8Array(16);
  words.forEach((w, i) => {
    out[i * 2] = w >> 8;
    out[i * 2 + 1] = w & 0xff;
  });
  if (v4) out.set(v4, 12);
  return out;
}

/** Formats 4 or 16 address bytes as the C library's inet_ntop does (RFC 5952 for IPv6). */
export function formatIp(bytes: Uint8Array): string {
  if (bytes.length === 4) return Array.from(bytes).join('.');
  const words: number[] = [];
  for (let i = 0; i < 8; i++) words.push((bytes[i * 2]! << 8) | bytes[i * 2 + 1]!);
  // Longest run of zero words (the first on a tie), compressed only when at least two long.
  let best = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (words[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && words[j] === 0) j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  if (bestLen < 2) best = -1;
  // IPv4-compatible (::a.b.c.d) and IPv4-mapped (::ffff:a.b.c.d) forms, as inet_ntop writes them.
  if (best === 0 && (bestLen === 6 || (bestLen === 5 && words[5] === 0xffff))) {
    return `::${bestLen === 5 ? 'ffff:' : ''}${Array.from(bytes.subarray(12)).join('.')}`;
  }
  let out = '';
  for (let i = 0; i < 8; i++) {
    if (i === best) {
      out += '::';
      i += bestLen - 1;
      continue;
    }
    if (out !== '' && !out.endsWith(':')) out += ':';
    out += words[i]!.toString(16);
  }
  return out;
}

export interface Endpoint {
  family: 4 | 6;
  /** Canonical address text (RFC 5952 for IPv6). */
  address: string;
  port: number;
}

/** Parses "192.0.2.1:51820" or "[2001:db8::1]:51820" (port 1..65535). */
export function parseEndpoint(text: unknown, field = 'endpoint'): Endpoint {
  const fail = (why: string): never => {
    throw new ValidationError(
      field,
      `Invalid endpoint ${quote(text)} at "${field}": ${why}; use "192.0.2.1:51820" or "[2001:db8::1]:51820"`,
    );
  };
  if (typeof text !== 'string') return fail(`expected a string, got ${typeName(text)}`);
  let host: string;
  let portText: string;
  let bytes: Uint8Array | undefined;
  if (text.startsWith('[')) {
    const close = text.indexOf(']');
    if (close < 0 || text[close + 1] !== ':') return fail('an IPv6 endpoint needs "]:port" after the address');
    host = text.slice(1, close);
    portText = text.slice(close + 2);
    bytes = parseIpv6(host);
    if (!bytes) return fail(`${quote(host)} is not an IPv6 address`);
  } else {
    const colon = text.lastIndexOf(':');
    if (colon < 0) return fail('the port is missing');
    host = text.slice(0, colon);
    portText = text.slice(colon + 1);
    if (host.includes(':')) return fail('an IPv6 address needs brackets');
    bytes = parseIpv4(host);
    if (!bytes) return fail(`${quote(host)} is not an IPv4 address`);
  }
  if (!/^[0-9]{1,5}$/.test(portText) || Number(portText) < 1 || Number(portText) > 65535) {
    return fail(`port ${quote(portText)} is not between 1 and 65535`);
  }
  return { family: bytes.length === 4 ? 4 : 6, address: formatIp(bytes), port: Number(portText) };
}

/** "192.0.2.1:51820" / "[2001:db8::1]:51820". */
export function formatEndpoint(ep: Endpoint): string {
  return ep.family === 6 ? `[${ep.address}]:${ep.port}` : `${ep.address}:${ep.port}`;
}

export interface Cidr {
  family: 4 | 6;
  /** The network address (host bits cleared), canonical text. */
  address: string;
  prefix: number;
}

/**
 * Parses "10.0.1.0/24" or "fd00::/64". Host bits are cleared ("10.0.1.7/24" → 10.0.1.0/24), as
 * the kernel does when it stores an allowed IP, so configurations compare equal to what reads
 * return.
 */
export function parseCidr(text: unknown, field = 'cidr'): Cidr {
  const fail = (why: string): never => {
    throw new ValidationError(field, `Invalid CIDR ${quote(text)} at "${field}": ${why}; use "10.0.1.0/24" or "fd00::/64"`);
  };
  if (typeof text !== 'string') return fail(`expected a string, got ${typeName(text)}`);
  const slash = text.indexOf('/');
  if (slash < 0) return fail('the prefix length is missing');
  const host = text.slice(0, slash);
  const prefixText = text.slice(slash + 1);
  const bytes = host.includes(':') ? parseIpv6(host) : parseIpv4(host);
  if (!bytes) return fail(`${quote(host)} is not an IPv4 or IPv6 address`);
  const max = bytes.length * 8;
  if (!/^(0|[1-9][0-9]{0,2})$/.test(prefixText) || Number(prefixText) > max) {
    return fail(`prefix length ${quote(prefixText)} is not between 0 and ${max}`);
  }
  const prefix = Number(prefixText);
  for (let bit = prefix; bit < max; bit++) bytes[bit >> 3]! &= ~(0x80 >> (bit & 7));
  return { family: bytes.length === 4 ? 4 : 6, address: formatIp(bytes), prefix };
}

export function formatCidr(c: Cidr): string {
  return `${c.address}/${c.prefix}`;
}

/** parseCidr() then formatCidr(): the canonical text of a CIDR. */
export function normalizeCidr(text: unknown, field = 'cidr'): string {
  return formatCidr(parseCidr(text, field));
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
  if (p.endpoint !== undefined) out.endpoint = formatEndpoint(parseEndpoint(p.endpoint, `${field}.endpoint`));
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
          `Duplicate peer "${keyFingerprint(peer.publicKey)}" at "${pf}": it is also "${field}.peers[${prev}]"; list each peer once`,
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
