/**
 * The WireGuard cross-platform userspace API (https://www.wireguard.com/xplatform/): the text
 * protocol that wireguard-go speaks on its UNIX socket (`/var/run/wireguard/NAME.sock`).
 *
 * A request is `set=1` or `get=1`, then `key=value` lines, then an empty line; the answer to a
 * `get` is `key=value` lines; both answers end with `errno=N` and an empty line (wireguard-go
 * sends N negative, e.g. `errno=-22`). Keys travel as lowercase hex.
 *
 * Key hygiene: requests are built directly into one Buffer (hex digits written byte by byte, no
 * intermediate string) that the caller zeroes once it has been written to the socket. Responses
 * are parsed from the Buffer too: a `private_key` line is decoded into a scratch Buffer, turned
 * into the public key and zeroed; preshared keys are only checked for being non-zero.
 *
 * The encoder and the parser are used by agent/wireguard/userspace-backend.ts and by the unit
 * tests: one code path.
 */
import { createPrivateKey, createPublicKey } from 'node:crypto';
import { constants as osConstants } from 'node:os';
import { UapiError } from '../errors.js';
import type { AllowedIpRetirement } from './allowed-ip-handover.js';
import { WG_KEY_LEN, type WgDeviceConfig, type WgPeer } from './backend.js';
import { normalizeCidr } from './keys.js';

const HEX = Buffer.from('0123456789abcdef', 'latin1');
const NL = 0x0a;

/** Appends ASCII lines to a growing Buffer; old backing buffers are zeroed when it grows. */
class RequestWriter {
  private buf = Buffer.alloc(1024);
  private len = 0;

  private ensure(extra: number): void {
    if (this.len + extra <= this.buf.length) return;
    const next = Buffer.alloc(Math.max(this.buf.length * 2, this.len + extra));
    this.buf.copy(next, 0, 0, this.len);
    this.buf.fill(0);
    this.buf = next;
  }

  line(key: string, value: string | number): void {
    const text = `${key}=${value}\n`;
    this.ensure(text.length);
    this.len += this.buf.write(text, this.len, 'latin1');
  }

  /** `key=<64 hex digits>\n`; an absent key (null) is sent as all zeros, meaning "remove". */
  keyLine(key: string, bytes: Buffer | null): void {
    this.ensure(key.length + 2 + WG_KEY_LEN * 2);
    this.len += this.buf.write(`${key}=`, this.len, 'latin1');
    for (let i = 0; i < WG_KEY_LEN; i++) {
      const b = bytes ? bytes[i]! : 0;
      this.buf[this.len++] = HEX[b >> 4]!;
      this.buf[this.len++] = HEX[b & 15]!;
    }
    this.buf[this.len++] = NL;
  }

  finish(): Buffer {
    this.ensure(1);
    this.buf[this.len++] = NL;
    return this.buf.subarray(0, this.len);
  }
}

/**
 * Encodes a `set=1` transaction (what `wg set` / `wg setconf` send). Line order: listen_port
 * first (the one device line that can fail at run time, EADDRINUSE, so a failure there changes
 * nothing), fwmark, private_key, replace_peers, then each peer: public_key, remove | update_only,
 * preshared_key, endpoint, persistent_keepalive_interval, replace_allowed_ips, allowed_ip...
 *
 * `retire` appends: public_key=<throwaway>, allowed_ip=<each>, remove=true — the handover planned
 * by planAllowedIpHandover() (allowed-ip-handover.ts), which implements replaceAllowedIps without
 * a gap: the new set is added to the peer first, then only the addresses that leave it are moved
 * away, all in this one transaction.
 *
 * The input must have passed validateWgDeviceConfig() (keys.ts); the returned Buffer holds key material and
 * must be zeroed by the caller (`buf.fill(0)`) as soon as it has been written.
 */
export function encodeUapiSet(config: WgDeviceConfig, retire?: AllowedIpRetirement | null): Buffer {
  const w = new RequestWriter();
  w.line('set', 1);
  if (config.listenPort !== undefined) w.line('listen_port', config.listenPort);
  if (config.fwmark !== undefined) w.line('fwmark', config.fwmark);
  if (config.privateKey !== undefined) w.keyLine('private_key', config.privateKey);
  if (config.replacePeers) w.line('replace_peers', 'true');
  for (const p of config.peers ?? []) {
    w.keyLine('public_key', p.publicKey);
    if (p.remove) {
      w.line('remove', 'true');
      continue;
    }
    if (p.updateOnly) w.line('update_only', 'true');
    if (p.presharedKey !== undefined) w.keyLine('preshared_key', p.presharedKey);
    if (p.endpoint !== undefined) w.line('endpoint', p.endpoint);
    if (p.persistentKeepalive !== undefined) w.line('persistent_keepalive_interval', p.persistentKeepalive);
    if (p.replaceAllowedIps) w.line('replace_allowed_ips', 'true');
    for (const a of p.allowedIps ?? []) w.line('allowed_ip', normalizeCidr(a, 'allowedIps'));
  }
  if (retire && retire.allowedIps.length > 0) {
    w.keyLine('public_key', retire.publicKey);
    for (const a of retire.allowedIps) w.line('allowed_ip', a);
    w.line('remove', 'true');
  }
  return w.finish();
}

/** The `get=1` request. */
export function encodeUapiGet(): Buffer {
  return Buffer.from('get=1\n\n', 'latin1');
}

/** True once `response` holds a complete answer (it ends with an empty line). */
export function isUapiResponseComplete(response: Buffer): boolean {
  const n = response.length;
  return n >= 2 && response[n - 1] === NL && response[n - 2] === NL;
}

/** Errno name for a positive errno value ("EINVAL"), or "EUNKNOWN". */
function errnoName(errno: number): string {
  for (const [name, value] of Object.entries(osConstants.errno)) {
    if (value === errno) return name;
  }
  return 'EUNKNOWN';
}

const ERRNO_HINTS: Record<string, string> = {
  EADDRINUSE: 'the listen port is already in use; choose another listenPort',
  EINVAL: 'wireguard-go found an invalid value; check the configuration (the daemon log names the line)',
  EPROTO: 'wireguard-go could not parse the request; this is a bug in Veil, please report it',
  EIO: 'wireguard-go failed to apply it; see the daemon log',
};

/** The typed error for a non-zero `errno=N` (sign ignored: wireguard-go sends it negative). */
export function uapiErrnoError(errno: number, context: string): UapiError {
  const positive = Math.abs(errno);
  const code = errnoName(positive);
  const hint = ERRNO_HINTS[code] ?? 'see the daemon log';
  return new UapiError(code, positive, `${context}: wireguard-go answered errno ${positive} (${code}): ${hint}`);
}

function protocolError(detail: string): UapiError {
  return new UapiError('EPROTO', osConstants.errno.EPROTO, `Malformed answer from wireguard-go: ${detail}`);
}

/** Splits a complete response into [key, valueStart, valueEnd] triples (the errno line included). */
function* responseLines(response: Buffer): Generator<[string, number, number]> {
  if (!isUapiResponseComplete(response)) throw protocolError('it does not end with an empty line (truncated)');
  const end = response.length - 1; // the final empty line
  let start = 0;
  while (start < end) {
    const nl = response.indexOf(NL, start);
    if (nl < 0 || nl > end) throw protocolError('unterminated line');
    if (nl === start) throw protocolError('empty line before the end of the answer');
    const eq = response.indexOf(0x3d /* = */, start);
    if (eq < 0 || eq > nl) throw protocolError(`line ${JSON.stringify(response.toString('latin1', start, Math.min(nl, start + 40)))} has no "="`);
    yield [response.toString('latin1', start, eq), eq + 1, nl];
    start = nl + 1;
  }
}

function parseErrnoValue(text: string): number {
  if (!/^-?[0-9]{1,10}$/.test(text)) throw protocolError(`errno ${JSON.stringify(text.slice(0, 20))} is not a number`);
  return Number(text);
}

/**
 * Parses the answer to a `set=1`: exactly `errno=N\n\n`. Returns N (0 = success); the caller
 * turns non-zero into uapiErrnoError().
 */
export function parseUapiSetResponse(response: Buffer): number {
  let errno: number | undefined;
  for (const [key, vs, ve] of responseLines(response)) {
    if (key !== 'errno' || errno !== undefined) throw protocolError(`unexpected key ${JSON.stringify(key.slice(0, 40))} in the answer to set`);
    errno = parseErrnoValue(response.toString('latin1', vs, ve));
  }
  if (errno === undefined) throw protocolError('no errno line');
  return errno;
}

/** The device as wireguard-go reports it (name and ifindex are the backend's to add). */
export interface UapiDeviceState {
  publicKey: Buffer | null;
  hasPrivateKey: boolean;
  listenPort: number;
  fwmark: number;
  peers: WgPeer[];
}

function hexNibble(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x61 && c <= 0x66) return c - 0x57;
  if (c >= 0x41 && c <= 0x46) return c - 0x37;
  return -1;
}

/** Decodes a 64-hex-digit value from the response bytes into a fresh 32-byte Buffer. */
function decodeKey(response: Buffer, vs: number, ve: number, key: string): Buffer {
  if (ve - vs !== WG_KEY_LEN * 2) throw protocolError(`${key} is not ${WG_KEY_LEN * 2} hex digits`);
  const out = Buffer.alloc(WG_KEY_LEN);
  for (let i = 0; i < WG_KEY_LEN; i++) {
    const hi = hexNibble(response[vs + 2 * i]!);
    const lo = hexNibble(response[vs + 2 * i + 1]!);
    if (hi < 0 || lo < 0) {
      out.fill(0);
      throw protocolError(`${key} is not hex`);
    }
    out[i] = (hi << 4) | lo;
  }
  return out;
}

const X25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b656e04220420', 'hex');

/** X25519 public key of a private key; the scratch DER copy is zeroed. */
export function x25519PublicKey(privateKey: Buffer): Buffer {
  const der = Buffer.concat([X25519_PKCS8_PREFIX, privateKey]);
  try {
    const spki = createPublicKey(createPrivateKey({ key: der, format: 'der', type: 'pkcs8' })).export({
      format: 'der',
      type: 'spki',
    });
    return Buffer.from(spki.subarray(spki.length - WG_KEY_LEN));
  } finally {
    der.fill(0);
  }
}

function parseUint(text: string, key: string, max: number): number {
  if (!/^[0-9]{1,20}$/.test(text) || Number(text) > max) {
    throw protocolError(`${key} ${JSON.stringify(text.slice(0, 24))} is not an integer from 0 to ${max}`);
  }
  return Number(text);
}

function parseCounter(text: string, key: string): bigint {
  if (!/^[0-9]{1,20}$/.test(text)) throw protocolError(`${key} ${JSON.stringify(text.slice(0, 24))} is not a counter`);
  return BigInt(text);
}

function isZero(buf: Buffer, vs: number, ve: number): boolean {
  for (let i = vs; i < ve; i++) if (buf[i] !== 0x30) return false;
  return true;
}

/**
 * Parses the answer to a `get=1` into the device's state. Throws uapiErrnoError() for a non-zero
 * errno and a UapiError with code EPROTO for anything malformed (never another exception).
 * Unknown keys are ignored, as the protocol asks, so newer daemons stay readable.
 */
export function parseUapiGet(response: Buffer, context = 'Cannot read WireGuard device'): UapiDeviceState {
  const dev: UapiDeviceState = { publicKey: null, hasPrivateKey: false, listenPort: 0, fwmark: 0, peers: [] };
  let peer: WgPeer | undefined;
  let hsSec = 0;
  let hsNsec = 0;
  let errno: number | undefined;
  const finishPeer = (): void => {
    if (!peer) return;
    peer.lastHandshakeMs = hsSec === 0 && hsNsec === 0 ? null : hsSec * 1000 + Math.floor(hsNsec / 1e6);
    dev.peers.push(peer);
    peer = undefined;
  };
  for (const [key, vs, ve] of responseLines(response)) {
    if (errno !== undefined) throw protocolError(`key ${JSON.stringify(key.slice(0, 40))} after errno`);
    if (key === 'errno') {
      errno = parseErrnoValue(response.toString('latin1', vs, ve));
      continue;
    }
    if (key === 'private_key') {
      if (peer) throw protocolError('private_key inside a peer');
      const priv = decodeKey(response, vs, ve, key);
      try {
        const zero = priv.every((b) => b === 0);
        dev.hasPrivateKey = !zero;
        dev.publicKey = zero ? null : x25519PublicKey(priv);
      } finally {
        priv.fill(0);
      }
      continue;
    }
    if (key === 'public_key') {
      finishPeer();
      hsSec = 0;
      hsNsec = 0;
      peer = {
        publicKey: decodeKey(response, vs, ve, key),
        hasPresharedKey: false,
        endpoint: null,
        persistentKeepalive: 0,
        allowedIps: [],
        lastHandshakeMs: null,
        rxBytes: 0n,
        txBytes: 0n,
        protocolVersion: 1,
      };
      continue;
    }
    const value = response.toString('latin1', vs, ve);
    if (!peer) {
      if (key === 'listen_port') dev.listenPort = parseUint(value, key, 65535);
      else if (key === 'fwmark') dev.fwmark = parseUint(value, key, 0xffffffff);
      else if (['preshared_key', 'endpoint', 'allowed_ip', 'tx_bytes', 'rx_bytes'].includes(key)) {
        throw protocolError(`${key} before any public_key`);
      }
      continue;
    }
    switch (key) {
      case 'preshared_key':
        if (ve - vs !== WG_KEY_LEN * 2) throw protocolError(`${key} is not ${WG_KEY_LEN * 2} hex digits`);
        peer.hasPresharedKey = !isZero(response, vs, ve);
        break;
      case 'endpoint':
        peer.endpoint = parseReportedEndpoint(value);
        break;
      case 'persistent_keepalive_interval':
        peer.persistentKeepalive = parseUint(value, key, 65535);
        break;
      case 'allowed_ip':
        try {
          peer.allowedIps.push(normalizeCidr(value, 'allowed_ip'));
        } catch {
          throw protocolError(`allowed_ip ${JSON.stringify(value.slice(0, 50))} is not a CIDR`);
        }
        break;
      case 'last_handshake_time_sec':
        hsSec = parseUint(value, key, Number.MAX_SAFE_INTEGER / 1000);
        break;
      case 'last_handshake_time_nsec':
        hsNsec = parseUint(value, key, 999_999_999);
        break;
      case 'rx_bytes':
        peer.rxBytes = parseCounter(value, key);
        break;
      case 'tx_bytes':
        peer.txBytes = parseCounter(value, key);
        break;
      case 'protocol_version':
        peer.protocolVersion = parseUint(value, key, 0xffffffff);
        break;
      default:
        break; // unknown keys are skipped
    }
  }
  if (errno === undefined) throw protocolError('no errno line (truncated)');
  if (errno !== 0) throw uapiErrnoError(errno, context);
  finishPeer();
  return dev;
}

function parseReportedEndpoint(value: string): string {
  // "192.0.2.1:51820" or "[2001:db8::1]:51820" (wireguard-go may add a zone: "[fe80::1%eth0]:1").
  if (!/^(?:\[[0-9A-Fa-f:.%a-zA-Z0-9_-]+\]|[0-9.]+):[0-9]{1,5}$/.test(value)) {
    throw protocolError(`endpoint ${JSON.stringify(value.slice(0, 60))} is not address:port`);
  }
  return value;
}
