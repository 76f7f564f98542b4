import { ConfigError } from '../errors.js';
import type { WgBackendKind, WgLinkOps, WireGuardBackend } from './backend.js';
import { KernelWireGuardBackend } from './kernel-backend.js';
import { netlinkLinkOps } from './link-ops.js';
import { UserspaceWireGuardBackend } from './userspace-backend.js';

export type WgBackendChoice = WgBackendKind | 'auto';

export interface SelectOptions {
  /** Network namespace to manage ("" = the agent's own). */
  netns: string;
  /** Where the userspace backend keeps its UAPI sockets (a 0700 directory is made inside). */
  stateDir: string;
  /** Default: VEIL_WIREGUARD_BACKEND, else "auto". */
  backend?: WgBackendChoice;
  /** Path of wireguard-go for the userspace backend (default: found on PATH). */
  wireguardGo?: string;
  links?: WgLinkOps;
}

/** Parses the user's backend choice (flag or VEIL_WIREGUARD_BACKEND). */
export function parseBackendChoice(value: string | undefined): WgBackendChoice {
  if (value === undefined || value === '' || value === 'auto') return 'auto';
  if (value === 'kernel' || value === 'userspace') return value;
  throw new ConfigError(`Unknown WireGuard backend "${value}": use "kernel", "userspace" or "auto"`);
}

/**
 * Picks the WireGuard backend: the kernel's when its generic netlink family resolves in the
 * namespace (or when forced), else userspace wireguard-go. Forcing "kernel" on a kernel without
 * WireGuard fails here, at startup, with the fix in the message.
 */
export async function selectWireGuardBackend(opts: SelectOptions): Promise<WireGuardBackend> {
  const choice = opts.backend ?? parseBackendChoice(process.env.VEIL_WIREGUARD_BACKEND);
  const links = opts.links ?? netlinkLinkOps;
  const userspace = () =>
    new UserspaceWireGuardBackend({
      netns: opts.netns,
      links,
      stateDir: opts.stateDir,
      ...(opts.wireguardGo ? { wireguardGo: opts.wireguardGo } : {}),
    });
  if (choice === 'userspace') return userspace();
  const kernel = await KernelWireGuardBackend.available(opts.netns);
  if (kernel) return new KernelWireGuardBackend({ netns: opts.netns, links });
  if (choice === 'kernel') {
    throw new ConfigError(
      'WireGuard backend "kernel" was requested but this kernel has no WireGuard (generic netlink family "wireguard" is missing): load the wireguard module or use backend "userspace"',
    );
  }
  return userspace();
}
