/**
 * Argument checks for the userspace WireGuard backend: device names, 32-byte keys, endpoints,
 * CIDRs and whole device configurations. Everything is checked before the first byte goes to
 * wireguard-go, because wireguard-go applies a `set` transaction line by line and would keep the
 * lines before a bad one.
 *
 * TO BE MERGED with agent/wireguard/keys.ts (written in parallel for the kernel backend) once
 * both branches land; the two backends must reject exactly the same input.
 */
import { isIP } from 'node:net';
import { ValidationError } from '../errors.js';
import { WG_KEY_LEN, type WgDeviceConfig } from './backend.js';

const IFNAMSIZ = 16;

/** Linux interface names: 1..15 bytes, no "/", whitespace or ":", not "." or "..". */
export function checkDeviceName(name: unknown): string {
  if (
    typeof name !== 'string' ||
    name.length === 0 ||
    Buffer.byteLength(name) >= IFNAMSIZ ||
    /[\s/:]/.test(name) ||
    name === '.' ||
    name === '..'
  ) {
    throw new ValidationError(
      'name',
      `Invalid WireGuard device name ${JSON.stringify(String(name))}: use 1 to 15 characters without "/", ":" or spaces`,
    );
  }
  return name;
}

/** A 32-byte key Buffer. The message names the field and length, never the bytes. */
export function checkKey(field: string, key: unknown): Buffer {
  if (!Buffer.isBuffer(key)) {
    throw new ValidationError(field, `Invalid ${field}: expected a ${WG_KEY_LEN}-byte Buffer, got ${typeof key}`);
  }
  if (key.length !== WG_KEY_LEN) {
    throw new ValidationError(field, `Invalid ${field}: expected ${WG_KEY_LEN} bytes, got ${key.length}`);
  }
  return key;
}

function checkInt(field: string, value: unknown, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > max) {
    throw new ValidationError(field, `Invalid ${field} ${JSON.stringify(value)}: expected an integer from 0 to ${max}`);
  }
  return value;
}

/** "192.0.2.1:51820" or "[2001:db8::1]:51820" (no host names, no zone ids). */
export function parseEndpoint(field: string, endpoint: unknown): { address: string; port: number; family: 4 | 6 } {
  const bad = (): never => {
    throw new ValidationError(
      field,
      `Invalid ${field} ${JSON.stringify(endpoint)}: expected "192.0.2.1:51820" or "[2001:db8::1]:51820"`,
    );
  };
  if (typeof endpoint !== 'string') return bad();
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([0-9.]+)):([0-9]{1,5})$/.exec(endpoint);
  if (!m) return bad();
  const address = (m[1] ?? m[2])!;
  const family = isIP(address);
  if ((m[1] !== undefined && family !== 6) || (m[2] !== undefined && family !== 4)) return bad();
  const port = Number(m[3]);
  if (port < 1 || port > 65535) return bad();
  return { address, port, family: family as 4 | 6 };
}

function addressBytes(address: string, family: 4 | 6): Buffer {
  if (family === 4) return Buffer.from(address.split('.').map(Number));
  const out = Buffer.alloc(16);
  let text = address;
  let tail: number[] = [];
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4) {
    const b = v4[1]!.split('.').map(Number);
    tail = [(b[0]! << 8) | b[1]!, (b[2]! << 8) | b[3]!];
    text = text.slice(0, -v4[1]!.length) + '0:0';
  }
  const [head, rest] = text.split('::') as [string, string | undefined];
  const h = head ? head.split(':') : [];
  const r = rest !== undefined && rest !== '' ? rest.split(':') : [];
  const groups = rest === undefined ? h : [...h, ...Array<string>(8 - h.length - r.length).fill('0'), ...r];
  groups.forEach((g, i) => out.writeUInt16BE(parseInt(g, 16), i * 2));
  if (tail.length) {
    out.writeUInt16BE(tail[0]!, 12);
    out.writeUInt16BE(tail[1]!, 14);
  }
  return out;
}

function formatAddress(bytes: Buffer, family: 4 | 6): string {
  if (family === 4) return [...bytes].join('.');
  const hex = Array.from({ length: 8 }, (_, i) => bytes.readUInt16BE(i * 2).toString(16)).join(':');
  // The WHATWG URL serialiser prints IPv6 hosts in RFC 5952 canonical form.
  return new URL(`http://[${hex}]/`).hostname.slice(1, -1);
}

/**
 * Parses "10.0.1.0/24" or "fd00::/64" and returns the canonical (masked, RFC 5952) form, which
 * is how wireguard-go reports allowed IPs.
 */
export function canonicalCidr(field: string, cidr: unknown): string {
  const bad = (): never => {
    throw new ValidationError(field, `Invalid ${field} ${JSON.stringify(cidr)}: expected a CIDR such as "10.0.1.0/24" or "fd00::/64"`);
  };
  if (typeof cidr !== 'string') return bad();
  // Fast path for IPv4 (the common case, thousands per configuration).
  const v4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/.exec(cidr);
  if (v4) {
    const o = [Number(v4[1]), Number(v4[2]), Number(v4[3]), Number(v4[4])];
    const bits = Number(v4[5]);
    if (bits > 32 || o.some((x) => x > 255) || /(^|[./])0\d/.test(cidr)) return bad();
    const mask = bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
    const n = ((((o[0]! << 24) | (o[1]! << 16) | (o[2]! << 8) | o[3]!) >>> 0) & mask) >>> 0;
    return `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}/${bits}`;
  }
  const m = /^([0-9A-Fa-f:.]+)\/(0|[1-9][0-9]{0,2})$/.exec(cidr);
  if (!m) return bad();
  const family = isIP(m[1]!);
  if (family !== 4 && family !== 6) return bad();
  const bits = Number(m[2]);
  if (bits > (family === 4 ? 32 : 128)) return bad();
  const bytes = addressBytes(m[1]!, family);
  for (let i = 0; i < bytes.length; i++) {
    const keep = Math.max(0, Math.min(8, bits - i * 8));
    bytes[i]! &= (0xff << (8 - keep)) & 0xff;
  }
  return `${formatAddress(bytes, family)}/${bits}`;
}

/** Checks a whole device configuration; throws the first problem found, naming its field. */
export function checkDeviceConfig(config: unknown): WgDeviceConfig {
  if (typeof config !== 'object' || config === null) {
    throw new ValidationError('config', 'Invalid WireGuard device configuration: expected an object');
  }
  const c = config as WgDeviceConfig;
  if (c.privateKey !== undefined && c.privateKey !== null) checkKey('privateKey', c.privateKey);
  if (c.listenPort !== undefined) checkInt('listenPort', c.listenPort, 65535);
  if (c.fwmark !== undefined) checkInt('fwmark', c.fwmark, 0xffffffff);
  if (c.replacePeers !== undefined && typeof c.replacePeers !== 'boolean') {
    throw new ValidationError('replacePeers', `Invalid replacePeers ${JSON.stringify(c.replacePeers)}: expected a boolean`);
  }
  if (c.peers !== undefined && !Array.isArray(c.peers)) {
    throw new ValidationError('peers', 'Invalid peers: expected an array');
  }
  (c.peers ?? []).forEach((p, i) => {
    const at = `peers[${i}]`;
    if (typeof p !== 'object' || p === null) throw new ValidationError(at, `Invalid ${at}: expected an object`);
    checkKey(`${at}.publicKey`, p.publicKey);
    if (p.remove) return;
    if (p.presharedKey !== undefined && p.presharedKey !== null) checkKey(`${at}.presharedKey`, p.presharedKey);
    if (p.endpoint !== undefined) parseEndpoint(`${at}.endpoint`, p.endpoint);
    if (p.persistentKeepalive !== undefined) checkInt(`${at}.persistentKeepalive`, p.persistentKeepalive, 65535);
    if (p.allowedIps !== undefined) {
      if (!Array.isArray(p.allowedIps)) throw new ValidationError(`${at}.allowedIps`, `Invalid ${at}.allowedIps: expected an array of CIDRs`);
      p.allowedIps.forEach((a, j) => canonicalCidr(`${at}.allowedIps[${j}]`, a));
    }
  });
  return c;
}
