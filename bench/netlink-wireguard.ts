/**
 * The WireGuard peers case, for either backend: one device in a fresh namespace; before every
 * measured run the device is reset to zero peers (untimed), then either the backend's setDevice
 * (replacePeers, like setconf) or `wg setconf` with a config file written beforehand installs the
 * same peers. Used on the host (userspace wireguard-go) and inside the VM (kernel WireGuard,
 * bench/netlink-vm-guest.ts).
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createRootLogger, moduleLogger } from '../agent/log/logger.js';
import { projectRoot } from '../agent/project-root.js';
import type { WireGuardBackend } from '../agent/wireguard/backend.js';
import { KernelWireGuardBackend } from '../agent/wireguard/kernel-backend.js';
import { netlinkLinkOps } from '../agent/wireguard/link-ops.js';
import { UserspaceWireGuardBackend } from '../agent/wireguard/userspace-backend.js';
import { addNetns, requireTool, sh, timeCall, timeCommand, type Timed } from './netlink-host.js';
import { wireguardPeers } from './netlink-objects.js';

const DEV = 'wg0';

export interface PairRuns {
  ours: Timed[];
  baseline: Timed[];
  /** The untimed-in-the-median first run of each side (warm-up and state check). */
  warmup?: { ours: Timed[]; baseline: Timed[] };
  /** Userspace only: CPU seconds wireguard-go itself spent on each run (from /proc/PID/stat). */
  daemon?: { ours: number[]; baseline: number[] };
}

/** utime + stime of a process, in seconds (clock ticks of 1/100 s). */
function processCpu(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** The pid of the wireguard-go serving the namespace (the only process in it). */
async function daemonPid(netns: string): Promise<number> {
  const pids = (await sh('ip', ['netns', 'pids', netns])).split(/\s+/).filter(Boolean).map(Number);
  for (const pid of pids) {
    if (readFileSync(`/proc/${pid}/comm`, 'utf8').trim().startsWith('wireguard-go')) return pid;
  }
  throw new Error(`No wireguard-go process in namespace "${netns}"`);
}

/** `wg show wg0 dump` peers as sorted "key endpoint allowed-ips" lines. */
async function peerLines(wg: (args: string[]) => string[]): Promise<string[]> {
  const [cmd, ...args] = wg(['show', DEV, 'dump']);
  const out = await sh(cmd!, args);
  return out
    .trim()
    .split('\n')
    .slice(1)
    .map((l) => l.split('\t'))
    .map((f) => `${f[0]} ${f[2]} ${f[3]}`)
    .sort();
}

export async function measureWireGuard(kind: 'kernel' | 'userspace', count: number, reps: number, progress: (msg: string) => void): Promise<PairRuns> {
  await requireTool('wg', 'wireguard-tools');
  if (kind === 'userspace') await requireTool('wireguard-go', 'wireguard-go');
  const dir = mkdtempSync('/tmp/vbw-');
  const netns = await addNetns();
  const log = moduleLogger(createRootLogger({ level: 'warn' }), 'bench');
  let backend: WireGuardBackend;
  let wg: (args: string[]) => string[];
  if (kind === 'userspace') {
    const us = new UserspaceWireGuardBackend({ netns, links: netlinkLinkOps, stateDir: dir, log });
    const launcher = join(projectRoot(), 'build', 'Release', 'veil-netns-exec');
    wg = (args) => [launcher, '--netns', netns, '--wireguard-dir', us.socketDirectory, '--', 'wg', ...args];
    backend = us;
  } else {
    backend = new KernelWireGuardBackend({ netns, links: netlinkLinkOps });
    wg = (args) => ['ip', 'netns', 'exec', netns, 'wg', ...args];
  }
  const runs: PairRuns = { ours: [], baseline: [] };
  let first: string[] | undefined;
  try {
    const objects = wireguardPeers(count);
    const conf = join(dir, 'peers.conf');
    writeFileSync(conf, objects.text, { mode: 0o600 });
    await backend.createDevice(DEV);
    const reset = () => backend.setDevice(DEV, { replacePeers: true, peers: [] });
    const pid = kind === 'userspace' ? await daemonPid(netns) : undefined;
    if (pid !== undefined) runs.daemon = { ours: [], baseline: [] };
    /** Times one side; with wireguard-go, also the daemon's CPU time over the same run. */
    const timed = async (side: 'ours' | 'baseline', warmup: boolean, fn: () => Promise<Timed>): Promise<Timed> => {
      const d0 = pid !== undefined ? processCpu(pid) : 0;
      const t = await fn();
      if (pid !== undefined && runs.daemon && !warmup) runs.daemon[side].push(processCpu(pid) - d0);
      return t;
    };
    // Repetition -1 is the warm-up and the state check; kept in the JSON, not in the median.
    for (let r = -1; r < reps; r++) {
      const rep: PairRuns = r < 0 ? (runs.warmup = { ours: [], baseline: [] }) : runs;
      const ours = async () => {
        await reset();
        rep.ours.push(await timed('ours', r < 0, () => timeCall(() => backend.setDevice(DEV, objects.api))));
      };
      const baseline = async () => {
        await reset();
        rep.baseline.push(await timed('baseline', r < 0, () => timeCommand(wg(['setconf', DEV, conf]))));
      };
      const order = r % 2 === 0 ? [ours, baseline] : [baseline, ours];
      for (const [i, step] of order.entries()) {
        await step();
        if (r < 0) {
          // Both sides must have installed the same peers.
          const lines = await peerLines(wg);
          if (lines.length !== count) throw new Error(`WireGuard (${kind}): ${step === ours ? 'setDevice' : 'wg setconf'} left ${lines.length} peers, expected ${count}`);
          if (i === 0) first = lines;
          else if (lines.join('\n') !== first!.join('\n')) {
            throw new Error(`WireGuard (${kind}): setDevice and wg setconf installed different peers`);
          }
        }
      }
      const label = r < 0 ? 'warm-up' : `rep ${r + 1}/${reps}`;
      progress(`wireguard ${kind} ${label}: ours ${rep.ours.at(-1)!.wall_s.toFixed(3)} s, wg setconf ${rep.baseline.at(-1)!.wall_s.toFixed(3)} s`);
    }
    return runs;
  } finally {
    await backend.deleteDevice(DEV).catch(() => undefined);
    await backend.close().catch(() => undefined);
    await sh('ip', ['netns', 'del', netns]).catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  }
}
