/**
 * Typed face of the addon's WireGuard generic-netlink functions (native/src/wireguard.cc). The
 * encode and parse functions are the exact code the kernel backend runs, exposed so that tests
 * can check the bytes (byte-exact fixtures) and the parser (fixture and random replies) without a
 * kernel that has WireGuard.
 */
import { callNativeSync, native } from '../native/addon.js';
import type { WgDevice, WgDeviceConfig } from './backend.js';
import type { AllowedIpRetirement } from './allowed-ip-handover.js';
import { checkDeviceName } from './keys.js';
import { packWgSetDevice, type PackedWgSetDevice } from './pack.js';

/**
 * Upper bound in bytes of one WG_CMD_SET_DEVICE message (kWgMaxMessageBytes in wireguard.h).
 * Larger peer sets are split across messages of at most this size and sent pipelined.
 */
export const WG_MAX_MESSAGE_BYTES = 32 * 1024;
/** The smallest bound the encoder accepts (tests use small bounds to force splits). */
export const WG_MIN_MESSAGE_BYTES = 512;

export interface WgEncodeOptions {
  /** Generic netlink family id to put in nlmsg_type (the real path resolves it; default 0). */
  familyId?: number;
  /** Message size bound (default WG_MAX_MESSAGE_BYTES). */
  maxMessageBytes?: number;
}

/** The addon's WireGuard exports (native/src/wireguard.cc, RegisterWireGuard). */
export interface WgAddon {
  wgAvailable(opts: { netns: string }): Promise<boolean>;
  wgGetDevice(opts: { netns: string }, name: string): Promise<WgDevice>;
  /** Takes the records of packWgSetDevice() (pack.ts); copies them before it returns. */
  wgSetDevice(opts: { netns: string }, name: string, device: Buffer, peers: Buffer, allowedIps: Buffer): Promise<{ messages: number }>;
  encodeWgSetDevice(name: string, device: Buffer, peers: Buffer, allowedIps: Buffer, opts: WgEncodeOptions): Buffer[];
  encodeWgGetDevice(name: string, opts: WgEncodeOptions): Buffer[];
  parseWgDevice(messages: Buffer[]): WgDevice;
}

export function wgAddon(): WgAddon {
  return native() as unknown as WgAddon;
}

/**
 * Hands `packed` to the addon's wgSetDevice and scrubs it as soon as the addon has copied it
 * (synchronously, before the promise settles), whatever the outcome.
 */
export function wgSetDevicePacked(netns: string, packed: PackedWgSetDevice): Promise<{ messages: number }> {
  try {
    return wgAddon().wgSetDevice({ netns }, packed.name, packed.device, packed.peers, packed.allowedIps);
  } finally {
    packed.scrub();
  }
}

/**
 * The messages setDevice() would send for this configuration (seq and port id 0). Validates and
 * packs exactly as setDevice() does (packWgSetDevice(), pack.ts); `retire` is appended as
 * described there.
 */
export function encodeWgSetDevice(
  name: string,
  config: WgDeviceConfig,
  opts: WgEncodeOptions = {},
  retire?: AllowedIpRetirement | null,
): Buffer[] {
  const p = packWgSetDevice(name, config, retire);
  try {
    return callNativeSync('Cannot encode WireGuard configuration', () =>
      wgAddon().encodeWgSetDevice(p.name, p.device, p.peers, p.allowedIps, opts),
    );
  } finally {
    p.scrub();
  }
}

/** The dump request getDevice() sends. */
export function encodeWgGetDevice(name: string, opts: Pick<WgEncodeOptions, 'familyId'> = {}): Buffer[] {
  const n = checkDeviceName(name);
  return callNativeSync('Cannot encode WireGuard get-device request', () => wgAddon().encodeWgGetDevice(n, opts));
}

/**
 * Merges the reply messages of a get-device dump (peers and allowed IPs spread over several
 * messages) into one device. Throws a NetlinkError with code EMALFORMED on malformed input.
 */
export function parseWgDevice(messages: Buffer[]): WgDevice {
  return callNativeSync('Cannot parse WireGuard device reply', () => wgAddon().parseWgDevice(messages));
}
