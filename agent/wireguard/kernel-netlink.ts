/**
 * Typed face of the addon's WireGuard generic-netlink functions (native/src/wireguard.cc). The
 * encode and parse functions are the exact code the kernel backend runs, exposed so that tests
 * can check the bytes (byte-exact fixtures) and the parser (fixture and random replies) without a
 * kernel that has WireGuard.
 */
import { callNativeSync, native } from '../native/addon.js';
import type { WgDevice, WgDeviceConfig } from './backend.js';
import { ValidationError } from '../errors.js';
import type { AllowedIpRetirement } from './allowed-ip-handover.js';
import { checkDeviceName, checkKey, normalizeCidr, validateWgDeviceConfig } from './keys.js';

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
  wgSetDevice(opts: { netns: string }, config: NativeWgSetDevice): Promise<{ messages: number }>;
  encodeWgSetDevice(config: NativeWgSetDevice, opts: WgEncodeOptions): Buffer[];
  encodeWgGetDevice(name: string, opts: WgEncodeOptions): Buffer[];
  parseWgDevice(messages: Buffer[]): WgDevice;
}

export function wgAddon(): WgAddon {
  return native() as unknown as WgAddon;
}

/** The object the addon's wgSetDevice/encodeWgSetDevice take: a validated config plus the name. */
export type NativeWgSetDevice = WgDeviceConfig & { name: string };

/**
 * Validates and normalises `config` for device `name` into the addon's input. A `retire`
 * (planAllowedIpHandover(), allowed-ip-handover.ts) becomes two peer entries after every peer of
 * `config`: the throwaway peer with the departing CIDRs, then its removal, so the kernel takes
 * the CIDRs from their peers and drops them only after the new ones are in.
 */
export function toNativeSetDevice(name: string, config: WgDeviceConfig, retire?: AllowedIpRetirement | null): NativeWgSetDevice {
  const input: NativeWgSetDevice = { name: checkDeviceName(name), ...validateWgDeviceConfig(config) };
  if (!retire || retire.allowedIps.length === 0) return input;
  // Not through validateWgDeviceConfig(): the throwaway peer is listed twice on purpose.
  const publicKey = checkKey(retire.publicKey, 'retire.publicKey');
  if ((input.peers ?? []).some((p) => p.publicKey.equals(publicKey))) {
    throw new ValidationError('retire.publicKey', 'Invalid retirement: its throwaway public key is one of the configured peers; draw a fresh random key');
  }
  const allowedIps = retire.allowedIps.map((c, i) => normalizeCidr(c, `retire.allowedIps[${i}]`));
  const kept = new Set((input.peers ?? []).flatMap((p) => p.allowedIps ?? []));
  const both = allowedIps.find((c) => kept.has(c));
  if (both !== undefined) {
    throw new ValidationError('retire.allowedIps', `Invalid retirement: "${both}" is also given to a configured peer; retire only CIDRs that leave every peer`);
  }
  input.peers = [...(input.peers ?? []), { publicKey, allowedIps }, { publicKey, remove: true }];
  return input;
}

/** The messages setDevice() would send for this configuration (seq and port id 0). */
export function encodeWgSetDevice(
  name: string,
  config: WgDeviceConfig,
  opts: WgEncodeOptions = {},
  retire?: AllowedIpRetirement | null,
): Buffer[] {
  const input = toNativeSetDevice(name, config, retire);
  return callNativeSync('Cannot encode WireGuard configuration', () => wgAddon().encodeWgSetDevice(input, opts));
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
