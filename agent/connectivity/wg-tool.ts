/**
 * For the strict-mode scenario: replaces, on a node's WireGuard devices, the peer that carries
 * another node's pod CIDR by a peer with a random public key (same endpoint and allowed IPs), and
 * puts the real one back afterwards — "break a peer's key on purpose". Done with `wg` (Debian's
 * wireguard-tools) through `veil-netns-exec`, with the agent's private UAPI socket directory when
 * the devices are wireguard-go's. Only `wg show DEV peers|endpoints|allowed-ips` is read: no
 * private key is ever printed.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { promisify } from 'node:util';
import { MissingDependencyError } from '../errors.js';
import { X25519PrivateKey } from '../keys/x25519.js';
import { netnsExecPath } from '../lab/launcher.js';
import { findProgram } from '../lab/programs.js';

const execFileP = promisify(execFile);

export interface BrokenPeer {
  device: string;
  realKey: string;
  bogusKey: string;
  endpoint: string;
  allowedIps: string[];
}

function wgPath(): string {
  const p = findProgram('wg');
  if (!p) throw new MissingDependencyError('The strict-mode scenario needs "wg": install the Debian package "wireguard-tools" (bash scripts/setup.sh)');
  return p;
}

async function wg(netns: string, socketDir: string | null, args: string[]): Promise<string> {
  const pre = ['--netns', netns, ...(socketDir && existsSync(socketDir) ? ['--wireguard-dir', socketDir] : []), '--', wgPath()];
  const r = await execFileP(netnsExecPath(), [...pre, ...args], { timeout: 10_000 });
  return r.stdout;
}

/** "KEY\tVALUE" lines of `wg show DEV <field>` as a map (the value split on spaces for allowed-ips). */
function table(text: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const line of text.split('\n')) {
    const [k, ...v] = line.split('\t');
    if (k) m.set(k, v.join('\t').trim());
  }
  return m;
}

/** Breaks the peer carrying `cidr` on every device of `devices`. */
export async function breakPeer(netns: string, socketDir: string | null, devices: readonly string[], cidr: string): Promise<BrokenPeer[]> {
  const broken: BrokenPeer[] = [];
  for (const device of devices) {
    const allowed = table(await wg(netns, socketDir, ['show', device, 'allowed-ips']));
    const endpoints = table(await wg(netns, socketDir, ['show', device, 'endpoints']));
    const real = [...allowed].find(([, ips]) => ips.split(/\s+/).includes(cidr))?.[0];
    if (!real) continue;
    const allowedIps = allowed.get(real)!.split(/\s+/).filter(Boolean);
    const bogusKey = X25519PrivateKey.generate().publicKey.base64;
    const endpoint = endpoints.get(real) ?? '';
    await wg(netns, socketDir, ['set', device, 'peer', real, 'remove', 'peer', bogusKey, ...(endpoint && endpoint !== '(none)' ? ['endpoint', endpoint] : []), 'allowed-ips', allowedIps.join(',')]);
    broken.push({ device, realKey: real, bogusKey, endpoint, allowedIps });
  }
  return broken;
}

/** Puts the real peers back. */
export async function restorePeers(netns: string, socketDir: string | null, broken: readonly BrokenPeer[]): Promise<void> {
  for (const b of broken) {
    await wg(netns, socketDir, ['set', b.device, 'peer', b.bogusKey, 'remove', 'peer', b.realKey, ...(b.endpoint && b.endpoint !== '(none)' ? ['endpoint', b.endpoint] : []), 'allowed-ips', b.allowedIps.join(',')]);
  }
}
