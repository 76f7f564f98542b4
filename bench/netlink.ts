/**
 * `npm run bench -- netlink [--reps N] [--only routes,xfrm,wireguard] [--vm [--vm-reps N]]`
 *
 * In one run: 10,000 routes and 10,000 XFRM policies through the addon and through `ip -batch`
 * of the same objects, and 5,000 WireGuard peers through the userspace backend and `wg setconf`
 * (with --vm also kernel WireGuard inside the VM harness's guest). Prints a table and writes
 * bench/results/netlink.json (ratio = baseline_s / ours_s; every run is kept).
 *
 * Fairness: both sides install the same objects (generated once, bench/netlink-objects.ts) into
 * a fresh namespace each (created before either is timed), the order alternates between
 * repetitions, the first repetition checks that both sides left the same kernel state, and the
 * reported figure is the median. The baseline is timed like a shell user's `time ip -batch F`
 * (fork + exec + run; no Node spawn overhead), the batch file written beforehand.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { addRoutes, encodeRoutes } from '../agent/netlink/route.js';
import { addPolicies, encodePolicies } from '../agent/xfrm/policy.js';
import { parseBenchArgs } from './lib/args.js';
import { compare, median, printTable, round, writeResults, type ComparisonCase } from './lib/report.js';
import { addNetns, deleteNetns, requireTool, sh, timeCall, timeCommand, type Timed } from './netlink-host.js';
import { policies, ROUTE_DEV, routes, type Objects } from './netlink-objects.js';
import { runVmWireGuard } from './netlink-vm.js';
import { measureWireGuard, type PairRuns } from './netlink-wireguard.js';

interface Options {
  reps: number;
  vmReps: number;
  only: Set<string>;
  vm: boolean;
  routes: number;
  policies: number;
  peers: number;
}

const CASES = ['routes', 'xfrm', 'wireguard'];

function parseArgs(args: string[]): Options {
  const { counts, flags, only } = parseBenchArgs(args, {
    counts: { reps: 9, 'vm-reps': 5, routes: 10_000, policies: 10_000, peers: 5_000 },
    flags: ['vm'],
    cases: CASES,
  });
  return {
    reps: counts.reps!,
    vmReps: counts['vm-reps']!,
    only,
    vm: flags.has('vm'),
    routes: counts.routes!,
    policies: counts.policies!,
    peers: counts.peers!,
  };
}

/**
 * Median time of the encode-only twin of our call (the same validation and C++ encoders, no
 * kernel): the user-space share of ours_s.
 */
function encodeSeconds(fn: () => unknown, reps = 5): number {
  const t: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = process.hrtime.bigint();
    fn();
    t.push(Number(process.hrtime.bigint() - t0) / 1e9);
  }
  return round(median(t));
}

function progress(msg: string): void {
  process.stderr.write(`netlink: ${msg}\n`);
}

interface BatchCase {
  name: string;
  objects: Objects<unknown>;
  /** Prepares a fresh namespace (untimed). */
  prepare(netns: string): Promise<void>;
  ours(netns: string): Promise<void>;
  /** What both sides must agree on afterwards (`ip ... show` output). */
  state(netns: string): Promise<string>;
}

/** Runs a batch case: fresh namespaces per repetition, alternating order, checks the first. */
async function measureBatch(c: BatchCase, reps: number): Promise<PairRuns> {
  const dir = mkdtempSync('/tmp/vbn-');
  const file = join(dir, `${c.name}.batch`);
  writeFileSync(file, c.objects.text);
  const runs: PairRuns = { ours: [], baseline: [] };
  try {
    // Repetition -1 is the warm-up (JIT, page cache, first namespace) and the state check; it is
    // kept in the JSON but not in the median.
    for (let r = -1; r < reps; r++) {
      const nsOurs = await addNetns();
      const nsBase = await addNetns();
      const rep: PairRuns = r < 0 ? (runs.warmup = { ours: [], baseline: [] }) : runs;
      try {
        await c.prepare(nsOurs);
        await c.prepare(nsBase);
        const ours = async () => rep.ours.push(await timeCall(() => c.ours(nsOurs)));
        const base = async () => rep.baseline.push(await timeCommand(['ip', '-n', nsBase, '-batch', file]));
        for (const step of r % 2 === 0 ? [ours, base] : [base, ours]) await step();
        if (r < 0) {
          const [a, b] = [await c.state(nsOurs), await c.state(nsBase)];
          if (a !== b) throw new Error(`${c.name}: the addon and ip -batch left different state`);
          if (!a) throw new Error(`${c.name}: nothing was installed`);
        }
      } finally {
        await deleteNetns(nsOurs);
        await deleteNetns(nsBase);
      }
      const label = r < 0 ? 'warm-up' : `rep ${r + 1}/${reps}`;
      progress(`${c.name} ${label}: ours ${rep.ours.at(-1)!.wall_s.toFixed(4)} s, ip -batch ${rep.baseline.at(-1)!.wall_s.toFixed(4)} s`);
    }
    return runs;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The comparison row, with the kernel floor (our call's system time) where it means something. */
function row(name: string, count: number, baseline: string, runs: PairRuns, goal: number, opts: { floor: boolean; cpu: boolean; load?: number; note?: string; extra?: Record<string, unknown> }): ComparisonCase {
  const c = compare(name, count, baseline, runs.ours.map((t) => t.wall_s), runs.baseline.map((t) => t.wall_s), goal);
  c.load_1m = round(opts.load ?? loadavg()[0]!, 2);
  const cpu = (ts: Timed[]) => ({ sys_s: ts.map((t) => round(t.sys_s)), user_s: ts.map((t) => round(t.user_s)) });
  c.extra = { ours_cpu: cpu(runs.ours), baseline_cpu: cpu(runs.baseline), ...opts.extra };
  if (runs.warmup) {
    const w = runs.warmup;
    c.extra.warmup = { ours_s: w.ours.map((t) => round(t.wall_s)), baseline_s: w.baseline.map((t) => round(t.wall_s)) };
  }
  if (opts.cpu) {
    const total = (ts: Timed[]) => median(ts.map((t) => t.sys_s + t.user_s));
    c.cpu_ratio = round(total(runs.baseline) / total(runs.ours), 2);
  }
  if (opts.floor) {
    const k = median(runs.ours.map((t) => t.sys_s));
    c.kernel_s = round(k);
    c.ratio_cap = round(c.baseline_s / k, 2);
  }
  if (opts.note) c.note = opts.note;
  return c;
}

export async function run(args: string[]): Promise<void> {
  const o = parseArgs(args);
  await requireTool('ip', 'iproute2');
  const rows: ComparisonCase[] = [];
  const t0 = Date.now();

  if (o.only.has('routes')) {
    const objects = routes(o.routes);
    const runs = await measureBatch(
      {
        name: 'routes',
        objects,
        async prepare(ns) {
          // A veth pair inside the namespace (the host kernel has no dummy driver).
          await sh('ip', ['-n', ns, 'link', 'add', ROUTE_DEV, 'type', 'veth', 'peer', 'name', `${ROUTE_DEV}p`]);
          await sh('ip', ['-n', ns, 'link', 'set', `${ROUTE_DEV}p`, 'up']);
          await sh('ip', ['-n', ns, 'link', 'set', ROUTE_DEV, 'up']);
        },
        ours: (ns) => addRoutes(objects.api, { netns: ns }),
        state: (ns) => sh('ip', ['-n', ns, 'route', 'show', 'table', 'main']),
      },
      o.reps,
    );
    const encode_s = encodeSeconds(() => encodeRoutes('add', objects.api, { [ROUTE_DEV]: 2 }));
    rows.push(row('routes add', o.routes, 'ip -batch', runs, 3, { floor: true, cpu: true, extra: { encode_s } }));
  }

  if (o.only.has('xfrm')) {
    const objects = policies(o.policies);
    const runs = await measureBatch(
      {
        name: 'xfrm',
        objects,
        async prepare() {},
        ours: (ns) => addPolicies(objects.api, { netns: ns }),
        state: (ns) => sh('ip', ['-n', ns, 'xfrm', 'policy', 'list']),
      },
      o.reps,
    );
    const encode_s = encodeSeconds(() => encodePolicies(objects.api));
    rows.push(row('xfrm policies add', o.policies, 'ip -batch', runs, 3, { floor: true, cpu: true, extra: { encode_s } }));
  }

  if (o.only.has('wireguard')) {
    await requireTool('wireguard-go', 'wireguard-go');
    const runs = await measureWireGuard('userspace', o.peers, o.reps, progress);
    rows.push(
      row('wireguard peers (userspace)', o.peers, 'wg setconf', runs, 1, {
        floor: false,
        cpu: false,
        note: 'wireguard-go does the work in its own process (see extra.daemon_cpu_s); both sides send one UAPI set transaction',
        extra: { daemon_cpu_s: { ours: runs.daemon?.ours.map((v) => round(v)), baseline: runs.daemon?.baseline.map((v) => round(v)) } },
      }),
    );
  }

  if (o.vm) {
    const vm = await runVmWireGuard(o.peers, o.vmReps, progress);
    rows.push(
      row('wireguard peers (kernel, VM)', o.peers, 'wg setconf', vm.runs, 1, {
        floor: true,
        cpu: true,
        load: vm.load1m,
        note: `Kernel ${vm.kernelRelease} under qemu TCG (software emulation): absolute times are meaningless, the ratio is not`,
        extra: { host_load_1m: round(loadavg()[0]!, 2), vm_boot_s: vm.bootS },
      }),
    );
  }

  printTable(rows);
  const path = writeResults('netlink', rows);
  process.stdout.write(`\nWrote ${path} (${((Date.now() - t0) / 1000).toFixed(1)} s)\n`);
}
