/**
 * The two WireGuard devices of a node ("channels" 0 and 1, docs/wireguard-rotation.md):
 * `<base>0` listening on `port`, `<base>1` on `port + 1`, each with the node key of the
 * generation its channel carries, MTU = underlay MTU − 80 (outer IPv6 40 + UDP 8 + WireGuard 32,
 * LESSONS.md), optional fwmark on their own UDP packets, up. Through the backend interface, so
 * kernel WireGuard and wireguard-go are set up by the same code.
 *
 * Adoption: an existing device (agent restart) is kept with its peers and sessions; only what
 * differs from the wanted settings is set. In particular a private key is set only when the
 * device has none or holds another one (setting a key expires every session of the device).
 */
import { ValidationError } from '../errors.js';
import type { Logger } from '../log/logger.js';
import { getLink, setLink } from '../netlink/link.js';
import type { X25519PrivateKey } from '../keys/x25519.js';
import type { WgDeviceConfig, WireGuardBackend } from '../wireguard/backend.js';
import { checkDeviceName } from '../wireguard/keys.js';
import { WG_CHANNELS, type WgChannel } from './wireguard-channel-state.js';

/** Outer IPv6 header (40) + UDP (8) + WireGuard header and tag (32). */
export const WIREGUARD_OVERHEAD = 80;

export interface ChannelDeviceSettings {
  /** Device name prefix; the channels are `${base}0` and `${base}1` (at most 14 bytes). */
  base: string;
  /** Channel 0 listens on `port`, channel 1 on `port + 1`. */
  port: number;
  /** MTU of the underlay device the encrypted packets leave on. */
  underlayMtu: number;
  /** Mark on the devices' own UDP packets (for policy routing / strict-mode exemption); 0 = none. */
  fwmark?: number;
}

/** `${base}0`, `${base}1`. */
export function channelDeviceNames(base: string): readonly [string, string] {
  checkDeviceName(`${base}0`, 'base');
  return [`${base}0`, `${base}1`];
}

export function channelDeviceMtu(underlayMtu: number): number {
  if (!Number.isInteger(underlayMtu) || underlayMtu - WIREGUARD_OVERHEAD < 1280 || underlayMtu > 65535) {
    throw new ValidationError(
      'underlayMtu',
      `Invalid underlay MTU ${JSON.stringify(underlayMtu)}: WireGuard needs ${WIREGUARD_OVERHEAD} bytes of it and IPv6 at least 1280 inside; use an underlay MTU from ${1280 + WIREGUARD_OVERHEAD} to 65535`,
    );
  }
  return underlayMtu - WIREGUARD_OVERHEAD;
}

function checkPort(port: number): number {
  if (!Number.isInteger(port) || port < 1 || port > 65534) {
    throw new ValidationError('port', `Invalid WireGuard base port ${JSON.stringify(port)}: use 1..65534 (channel 1 listens on port + 1)`);
  }
  return port;
}

/** What setUpChannelDevices changed on one channel (for logs and tests). */
export interface ChannelDeviceReport {
  name: string;
  created: boolean;
  keySet: boolean;
  ifindex: number;
}

/**
 * Creates or adopts both channel devices and brings them to the wanted settings.
 * `privateKeys[d]` is the node key channel d carries (equal in steady state).
 */
export async function setUpChannelDevices(
  backend: WireGuardBackend,
  settings: ChannelDeviceSettings,
  privateKeys: readonly [X25519PrivateKey, X25519PrivateKey],
  log?: Logger,
): Promise<[ChannelDeviceReport, ChannelDeviceReport]> {
  const names = channelDeviceNames(settings.base);
  const port = checkPort(settings.port);
  const mtu = channelDeviceMtu(settings.underlayMtu);
  // "" is the backend's spelling of "the caller's own namespace"; netlink calls omit it then.
  const opts = backend.netns ? { netns: backend.netns } : {};
  const reports: ChannelDeviceReport[] = [];
  for (const d of WG_CHANNELS) {
    const name = names[d];
    const existed = (await backend.getDevice(name).catch(() => null)) !== null;
    await backend.createDevice(name);
    const dev = await backend.getDevice(name);
    const config: WgDeviceConfig = {};
    const key = privateKeys[d];
    const keySet = !dev.hasPrivateKey || !dev.publicKey || !dev.publicKey.equals(key.publicKey.raw);
    if (dev.listenPort !== port + d) config.listenPort = port + d;
    if ((settings.fwmark ?? 0) !== dev.fwmark) config.fwmark = settings.fwmark ?? 0;
    let raw: Buffer | undefined;
    if (keySet) config.privateKey = raw = key.exportRaw();
    try {
      if (Object.keys(config).length > 0) await backend.setDevice(name, config);
    } finally {
      raw?.fill(0);
    }
    const link = await getLink(name, opts);
    if (link.mtu !== mtu || !link.up) await setLink(name, { mtu, up: true }, opts);
    log?.info(
      { device: name, channel: d, adopted: existed, keySet, keyFingerprint: key.fingerprint, listenPort: port + d, mtu },
      existed ? 'Adopted WireGuard channel device' : 'Created WireGuard channel device',
    );
    reports.push({ name, created: !existed, keySet, ifindex: link.ifindex });
  }
  return reports as [ChannelDeviceReport, ChannelDeviceReport];
}

/**
 * Sets the node key of one channel (the local rotation's "activate" and "complete" steps):
 * `wg set <base><d> private-key FILE`. A no-op when the device already holds it.
 */
export async function setChannelKey(backend: WireGuardBackend, base: string, d: WgChannel, key: X25519PrivateKey): Promise<boolean> {
  const name = channelDeviceNames(base)[d];
  const dev = await backend.getDevice(name);
  if (dev.hasPrivateKey && dev.publicKey?.equals(key.publicKey.raw)) return false;
  const raw = key.exportRaw();
  try {
    await backend.setDevice(name, { privateKey: raw });
  } finally {
    raw.fill(0);
  }
  return true;
}
