/**
 * `npm run bench -- bpf [--only attach,maps,from-pod] [--veths N] [--entries N] [--tool-entries N]`
 *
 * - attach: time to attach a program to one pod interface, over N veths (default 200) in a
 *   fresh namespace: tcx links and clsact filters through the addon, next to `tc` (the tool an
 *   operator would use: `tc qdisc add dev D clsact` + `tc filter add dev D ingress bpf da
 *   object-pinned P`, one tc process per interface with -batch). Also the re-attach of an
 *   attached program (no kernel change: the fixed cost of a call) to show where time goes.
 * - maps: batched map updates (BpfMap.setMany on the policy map) in entries per second, next to
 *   `bpftool map update` per entry and `bpftool batch` (one process for all entries).
 *
 * Writes/merges bench/results/bpf.json (bench/bpf-results.ts) and prints the figures.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadObject, attach, detach, type BpfObject } from '../agent/datapath/datapath.js';
import { openPolicyMap } from '../agent/datapath/policy-map.js';
import { policyKeyCodec, policyValueCodec, type PolicyKey } from '../agent/datapath/layout.js';
import { projectRoot } from '../agent/project-root.js';
import { parseBenchArgs } from './lib/args.js';
import { round } from './lib/report.js';
import { mergeBpfResults, type BpfCase } from './bpf-results.js';
import { benchFromPod } from './bpf-from-pod.js';
import { requireTool, sh } from './netlink-host.js';

const FIXTURE = join(projectRoot(), 'build', 'bpf-test', 'loader-fixture.bpf.o');

function percentile(values: number[], p: number): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!;
}

function stats(ms: number[]) {
  return { p50_ms: round(percentile(ms, 50), 4), p99_ms: round(percentile(ms, 99), 4), max_ms: round(Math.max(...ms), 4), mean_ms: round(ms.reduce((a, b) => a + b, 0) / ms.length, 4) };
}

function nowMs(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}

async function withNetns<T>(veths: number, fn: (ns: string, names: string[]) => Promise<T>): Promise<T> {
  const ns = `vbld${randomBytes(3).toString('hex')}`;
  await sh('ip', ['netns', 'add', ns]);
  try {
    const names = Array.from({ length: veths }, (_, i) => `lxc${i}`);
    const batch = names.flatMap((n, i) => [`link add ${n} type veth peer name pod${i}`, `link set ${n} up`, `link set pod${i} up`]).join('\n') + '\n';
    const file = `/tmp/${ns}.ip`;
    writeFileSync(file, batch);
    await sh('ip', ['-n', ns, '-batch', file]);
    rmSync(file);
    return await fn(ns, names);
  } finally {
    await sh('ip', ['netns', 'del', ns]).catch(() => undefined);
  }
}

async function attachCase(veths: number, pinDir: string): Promise<BpfCase> {
  await requireTool('tc', 'iproute2');
  await requireTool('bpftool', 'bpftool');
  const obj = await loadObject(FIXTURE, { pinDir, programs: ['fixture_pass', 'fixture_drop'] });
  try {
    const prog = obj.program('fixture_pass');
    const other = obj.program('fixture_drop');
    const progPin = `${pinDir}/bench_prog`;
    await sh('bpftool', ['prog', 'pin', 'id', String(prog.id), progPin]);
    return await withNetns(veths, async (ns, names) => {
      // Wall time per attach, and this process's CPU time over all of them: a wall time far above
      // the CPU time is waiting (in the kernel), not work.
      const cpuMs: Record<string, number> = {};
      const time = async (mode: 'tcx' | 'clsact') => {
        const ms: number[] = [];
        const c0 = process.cpuUsage();
        for (const n of names) {
          const t0 = nowMs();
          const r = await attach(prog, { interface: n, direction: 'ingress', netns: ns }, { pinDir, mode });
          ms.push(nowMs() - t0);
          if (r.mode !== mode) throw new Error(`Asked for ${mode}, got ${r.mode}`);
        }
        const c = process.cpuUsage(c0);
        cpuMs[mode] = round((c.user + c.system) / 1000 / names.length, 4);
        return ms;
      };
      const detachAll = async () => {
        for (const n of names) await detach({ interface: n, direction: 'ingress', netns: ns }, { pinDir });
      };
      const tcx = await time('tcx');
      // Re-attaching the attached program changes nothing in the kernel: the fixed cost of a call.
      const unchanged: number[] = [];
      for (const n of names) {
        const t0 = nowMs();
        await attach(prog, { interface: n, direction: 'ingress', netns: ns }, { pinDir, mode: 'tcx' });
        unchanged.push(nowMs() - t0);
      }
      // Replacing the program of an attached link (BPF_LINK_UPDATE), then detaching.
      const replaced: number[] = [];
      for (const n of names) {
        const t0 = nowMs();
        await attach(other, { interface: n, direction: 'ingress', netns: ns }, { pinDir, mode: 'tcx' });
        replaced.push(nowMs() - t0);
      }
      const detached: number[] = [];
      for (const n of names) {
        const t0 = nowMs();
        await detach({ interface: n, direction: 'ingress', netns: ns }, { pinDir });
        detached.push(nowMs() - t0);
      }
      const clsact = await time('clsact');
      await detachAll();
      // Baseline: one tc process per interface doing what attach does in clsact mode, from the
      // same state (no clsact qdisc: detach leaves the qdisc, so remove it untimed first).
      const qdel = `/tmp/${ns}-qdel.tc`;
      writeFileSync(qdel, names.map((n) => `qdisc del dev ${n} clsact`).join('\n') + '\n');
      execFileSync('tc', ['-n', ns, '-batch', qdel]);
      rmSync(qdel);
      const tc: number[] = [];
      for (const n of names) {
        const file = `/tmp/${ns}-${n}.tc`;
        writeFileSync(file, `qdisc add dev ${n} clsact\nfilter add dev ${n} ingress prio 1 handle 1 bpf da object-pinned ${progPin}\n`);
        const t0 = nowMs();
        // nsenter, not `tc -n`: -n remounts /sys in a private mount namespace, which hides the
        // pinned program on /sys/fs/bpf.
        execFileSync('nsenter', [`--net=/run/netns/${ns}`, 'tc', '-batch', file]);
        tc.push(nowMs() - t0);
        rmSync(file);
      }
      return {
        case: 'attach',
        veths,
        ...stats(tcx),
        mode: 'tcx',
        clsact: stats(clsact),
        unchanged_tcx: stats(unchanged),
        replace_tcx: stats(replaced),
        detach_tcx: stats(detached),
        baseline: 'tc qdisc add clsact + tc filter add bpf da object-pinned (one `nsenter --net tc -batch` per interface)',
        baseline_tc: stats(tc),
        cpu_ms_per_attach: cpuMs,
        ratio_p50: round(percentile(tc, 50) / percentile(tcx, 50), 2),
        goal_p99_ms: 1,
      };
    });
  } finally {
    obj.close();
  }
}

function policyKeys(n: number): PolicyKey[] {
  return Array.from({ length: n }, (_, i) => ({ subject: 256 + (i % 1000), peer: 300 + Math.floor(i / 1000), dport: 443, proto: 6, direction: 'ingress' as const }));
}

function hexBytes(codecEncode: (b: Buffer) => void, size: number): string[] {
  const b = Buffer.alloc(size);
  codecEncode(b);
  return [...b].map((x) => x.toString(16).padStart(2, '0'));
}

async function mapsCase(entries: number, toolEntries: number, pinDir: string): Promise<BpfCase> {
  await requireTool('bpftool', 'bpftool');
  const obj: BpfObject = await loadObject(FIXTURE, { pinDir, programs: ['fixture_pass'] });
  try {
    const policy = await openPolicyMap(obj);
    const keys = policyKeys(entries);
    const list = keys.map((k) => [k, { verdict: 'allow' as const, flags: 0 }] as const);
    const runs: number[] = [];
    let method = '';
    for (let rep = 0; rep < 11; rep++) {
      await policy.deleteMany(keys);
      const t0 = nowMs();
      method = (await policy.setMany(list)).method;
      runs.push(nowMs() - t0);
    }
    const oursMs = percentile(runs, 50);
    await policy.deleteMany(keys);
    const mapPin = `${pinDir}/veil_policy`;
    const cmd = (k: PolicyKey) => [
      'map', 'update', 'pinned', mapPin,
      'key', 'hex', ...hexBytes((b) => policyKeyCodec.encode(k, b, 0), policyKeyCodec.size),
      'value', 'hex', ...hexBytes((b) => policyValueCodec.encode({ verdict: 'allow', flags: 0 }, b, 0), policyValueCodec.size),
    ];
    const toolKeys = keys.slice(0, toolEntries);
    const t1 = nowMs();
    for (const k of toolKeys) execFileSync('bpftool', cmd(k));
    const perEntryMs = nowMs() - t1;
    await policy.deleteMany(keys);
    const file = `/tmp/veil-bench-bpftool-${process.pid}.batch`;
    writeFileSync(file, keys.map((k) => cmd(k).join(' ')).join('\n') + '\n');
    const t2 = nowMs();
    execFileSync('bpftool', ['batch', 'file', file], { maxBuffer: 64 << 20 });
    const batchFileMs = nowMs() - t2;
    rmSync(file);
    const count = (await policy.entries()).length;
    if (count !== entries) throw new Error(`bpftool batch wrote ${count} of ${entries} entries`);
    await policy.deleteMany(keys);
    const rate = (n: number, ms: number) => Math.round((n / ms) * 1000);
    return {
      case: 'map-update',
      entries,
      method,
      ours_ms: round(oursMs, 3),
      ours_best_ms: round(Math.min(...runs), 3),
      ours_entries_per_s: rate(entries, oursMs),
      ours_us_per_entry: round((oursMs * 1000) / entries, 3),
      baseline: 'bpftool map update (one process per entry)',
      baseline_entries: toolEntries,
      baseline_entries_per_s: rate(toolEntries, perEntryMs),
      baseline_batch: 'bpftool batch file (one process, one update command per entry)',
      baseline_batch_entries_per_s: rate(entries, batchFileMs),
      ratio_vs_per_entry: round(rate(entries, oursMs) / rate(toolEntries, perEntryMs), 1),
      ratio_vs_batch_file: round(rate(entries, oursMs) / rate(entries, batchFileMs), 1),
      runs_ms: runs.map((r) => round(r, 3)),
    };
  } finally {
    obj.close();
  }
}

export async function run(args: string[]): Promise<void> {
  const { counts, only } = parseBenchArgs(args, { counts: { veths: 200, entries: 10_000, 'tool-entries': 300 }, cases: ['attach', 'maps', 'from-pod'] });
  const pinDir = `/sys/fs/bpf/veil-bench-${randomBytes(3).toString('hex')}`;
  const cases: BpfCase[] = [];
  try {
    if (only.has('attach')) cases.push(await attachCase(counts.veths!, pinDir));
    if (only.has('maps')) cases.push(await mapsCase(counts.entries!, counts['tool-entries']!, pinDir));
    if (only.has('from-pod')) cases.push({ ...(await benchFromPod({ pinDir })) });
  } finally {
    rmSync(pinDir, { recursive: true, force: true });
  }
  for (const c of cases) process.stdout.write(JSON.stringify(c, null, 2) + '\n');
  process.stdout.write(`Wrote ${mergeBpfResults(cases)}\n`);
}
