/**
 * `npm run bench -- lab [--seconds N] [--new-pods N] [--idle-seconds N]`
 *
 * The product in a 3-node lab (`veil lab up --nodes 3 --name labbench`) next to a baseline in
 * the same run:
 * - throughput: pod→pod TCP (iperf3, N seconds) across nodes through the lab (eBPF from-pod
 *   redirect into the agent-managed wireguard-go channel device, WireGuard, to-pod) vs. the same
 *   lab topology without agents, its tunnel built by hand with `wg` and wireguard-go; ratio.
 * - new pod: time from `veil lab pods add` (namespace, veth, routes, store record) until a pod on
 *   another node first gets an answer from it (identity allocated by the operator, picked up by
 *   both agents, endpoint and ipcache written, packets encrypted both ways); p50 / p99.
 * - agents: resident memory and CPU use while idle (N seconds), per agent.
 * - rotation: packets lost while node-1's node key rotates under load (the connectivity
 *   scenario key-rotation-under-load, N rotations: pods of node-1 and node-2 ping each other both
 *   ways ~25/s), next to the same ping load for the same time without a rotation (control).
 *
 * Writes bench/results/lab.json and prints the figures.
 */
import { execFile, spawn } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { keyRotationUnderLoad } from '../agent/connectivity/key-rotation.js';
import { waitForAgents } from '../agent/connectivity/lab-test.js';
import { ping } from '../agent/connectivity/probes.js';
import { projectRoot } from '../agent/project-root.js';
import { readLabState } from '../agent/lab/state.js';
import { labDown } from '../agent/lab/remove.js';
import { labUp } from '../agent/lab/up.js';
import { parseBenchArgs } from './lib/args.js';
import { round, writeResults } from './lib/report.js';
import { requireTool, sh } from './netlink-host.js';

const execFileP = promisify(execFile);
/** The lab's name; VEIL_BENCH_LAB runs it under another one (next to a lab of the same name already up). */
const LAB = process.env.VEIL_BENCH_LAB ?? 'labbench';
const CLI = join(projectRoot(), 'dist', 'agent', 'cli', 'main.js');

async function veil(args: string[]): Promise<string> {
  return (await execFileP(process.execPath, [CLI, ...args], { timeout: 300_000, env: { ...process.env, VEIL_LOG_LEVEL: 'warn' } })).stdout;
}

async function iperf(serverNs: string, clientNs: string, ip: string, seconds: number): Promise<number> {
  const server = spawn('ip', ['netns', 'exec', serverNs, 'iperf3', '-s', '-1', '-B', ip], { stdio: 'ignore' });
  await new Promise((r) => setTimeout(r, 500));
  try {
    const out = await sh('ip', ['netns', 'exec', clientNs, 'iperf3', '-c', ip, '-t', String(seconds), '-J'], (seconds + 30) * 1000);
    const j = JSON.parse(out) as { end: { sum_received: { bits_per_second: number } } };
    return j.end.sum_received.bits_per_second / 1e6;
  } finally {
    server.kill();
  }
}

/**
 * The baseline: the same lab topology (`labUp` without agents or operator: the same pod veths,
 * node namespaces, uplinks and underlay bridge), with a wireguard-go tunnel between node-1 and
 * node-2 configured by hand with `wg` and `ip` — no Veil agent, no eBPF — and iperf3 between a
 * pod of each node.
 */
async function baseline(seconds: number): Promise<number> {
  const name = 'labbase';
  const state = await labUp({ name, nodes: 2, podsPerNode: 1, mode: 'wireguard' });
  try {
    const nodes = state.nodes;
    const dev = (i: number) => `lbwg${i}`;
    const keys: { priv: string; pub: string }[] = [];
    for (let i = 0; i < 2; i++) {
      const priv = (await sh('wg', ['genkey'])).trim();
      const pub = (await execFileP('sh', ['-c', `echo ${priv} | wg pubkey`])).stdout.trim();
      keys.push({ priv, pub });
    }
    for (let i = 0; i < 2; i++) {
      const n = nodes[i]!;
      const o = nodes[1 - i]!;
      await sh('ip', ['netns', 'exec', n.netns, 'wireguard-go', dev(i)]);
      const keyFile = `/tmp/${dev(i)}.key`;
      writeFileSync(keyFile, `${keys[i]!.priv}\n`, { mode: 0o600 });
      const endpoint = `${o.underlayAddresses[0]!.split('/')[0]}:${51900 + 1 - i}`;
      await sh('ip', ['netns', 'exec', n.netns, 'wg', 'set', dev(i), 'private-key', keyFile, 'listen-port', String(51900 + i), 'peer', keys[1 - i]!.pub, 'endpoint', endpoint, 'allowed-ips', o.podCidrs[0]!]);
      rmSync(keyFile);
      await sh('ip', ['-n', n.netns, 'link', 'set', dev(i), 'mtu', '1420', 'up']);
      await sh('ip', ['-n', n.netns, 'route', 'add', o.podCidrs[0]!, 'dev', dev(i), 'src', n.podCidrs[0]!.replace(/0\/24$/, '1')]);
    }
    const client = state.pods.find((p) => p.node === nodes[0]!.name)!;
    const server = state.pods.find((p) => p.node === nodes[1]!.name)!;
    return await iperf(server.netns, client.netns, server.addresses.find((x) => !x.includes(':'))!, seconds);
  } finally {
    await labDown(name);
  }
}

function percentile(values: number[], p: number): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!;
}

function cpuTicks(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(f[11]) + Number(f[12]); // utime + stime (fields 14, 15)
}

function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

export async function run(argv: string[]): Promise<void> {
  const a = parseBenchArgs(argv, { counts: { seconds: 5, 'new-pods': 5, 'idle-seconds': 10, rotations: 3 }, cases: ['throughput', 'new-pod', 'agents', 'rotation'] });
  for (const [t, p] of [['iperf3', 'iperf3'], ['wg', 'wireguard-tools'], ['wireguard-go', 'wireguard-go']] as const) await requireTool(t, p);
  const seconds = a.counts.seconds!;
  const results: Record<string, unknown> = { lab: { nodes: 3, podsPerNode: 2 } };
  let veilMbps: number | undefined;
  await veil(['lab', 'up', '--nodes', '3', '--name', LAB]);
  try {
    const state = await readLabState(LAB);
    const notReady = await waitForAgents(state, 60_000);
    if (notReady.length > 0) throw new Error(`Agents not ready: ${notReady.join('; ')}`);
    const client = state.pods.find((p) => p.node === 'node-1')!;
    const server = state.pods.find((p) => p.node === 'node-2')!;
    const serverIp = server.addresses.find((x) => !x.includes(':'))!;

    if (a.only.has('throughput')) {
      veilMbps = await iperf(server.netns, client.netns, serverIp, seconds);
    }

    if (a.only.has('new-pod')) {
      const ms: number[] = [];
      for (let i = 0; i < a.counts['new-pods']!; i++) {
        const t0 = performance.now();
        const out = await veil(['lab', 'pods', 'add', '--name', LAB, '--pod', `bench-${i}`, '--node', 'node-2', '--namespace', 'backend', '--labels', `app=server,bench=b${i}`]);
        const ip = /: (\d+\.\d+\.\d+\.\d+)/.exec(out)![1]!;
        for (;;) {
          const ok = await sh('ip', ['netns', 'exec', client.netns, 'ping', '-n', '-c', '1', '-W', '0.2', ip]).then(() => true, () => false);
          if (ok) break;
          if (performance.now() - t0 > 60_000) throw new Error(`Pod bench-${i} (${ip}) not reachable after 60 s`);
        }
        ms.push(performance.now() - t0);
      }
      results.newPod = { samples: ms.length, p50_ms: round(percentile(ms, 50), 1), p99_ms: round(percentile(ms, 99), 1), max_ms: round(Math.max(...ms), 1), note: 'each pod has a new label set: includes identity allocation by the operator' };
      process.stdout.write(`new pod to first answered packet across nodes: p50 ${round(percentile(ms, 50), 1)} ms, p99 ${round(percentile(ms, 99), 1)} ms (${ms.length} pods)\n`);
    }

    if (a.only.has('agents')) {
      const st = await readLabState(LAB);
      const agents = st.journal.flatMap((e) => (e.kind === 'process' && e.name.startsWith('agent-') ? [e] : []));
      const hz = Number((await sh('getconf', ['CLK_TCK'])).trim()) || 100;
      const before = agents.map((p) => cpuTicks(p.pid));
      const idle = a.counts['idle-seconds']!;
      await new Promise((r) => setTimeout(r, idle * 1000));
      const per = agents.map((p, i) => ({ agent: p.name, rss_mib: round(rssMiB(p.pid), 1), idle_cpu_percent: round(((cpuTicks(p.pid) - before[i]!) / hz / idle) * 100, 2) }));
      results.agents = per;
      for (const p of per) process.stdout.write(`${p.agent}: RSS ${p.rss_mib} MiB, idle CPU ${p.idle_cpu_percent} %\n`);
    }
    if (a.only.has('rotation')) {
      const runs: { sent: number; lost: number; plaintext: number; ms: number }[] = [];
      for (let i = 0; i < a.counts.rotations!; i++) {
        const r = await keyRotationUnderLoad(await readLabState(LAB), { wireguardPort: 51871 });
        const d = r.data as { sent: number; lost: number; plaintext: number; rotationMs: number } | undefined;
        if (!d || d.sent === undefined) throw new Error(`Rotation ${i + 1} did not run: ${r.detail}`);
        runs.push({ sent: d.sent, lost: d.lost, plaintext: d.plaintext, ms: d.rotationMs });
        process.stdout.write(`rotation ${i + 1}: ${d.lost} of ${d.sent} pings lost, ${d.plaintext} plaintext, ${round(d.rotationMs / 1000, 1)} s${r.ok ? '' : ` (${r.detail})`}\n`);
      }
      // Control: the same two ping streams for as long as a rotation took, no rotation.
      const batches = Math.max(1, Math.round(runs.reduce((x, r) => x + r.ms, 0) / runs.length / 1000));
      let sent = 0;
      let lost = 0;
      const back = state.pods.find((p) => p.node === 'node-1')!;
      const backIp = back.addresses.find((x) => !x.includes(':'))!;
      for (let i = 0; i < batches; i++) {
        const [x, y] = await Promise.all([ping(client.netns, serverIp, { count: 25, intervalS: 0.04, timeoutS: 2 }), ping(server.netns, backIp, { count: 25, intervalS: 0.04, timeoutS: 2 })]);
        sent += x.sent + y.sent;
        lost += x.sent - x.received + (y.sent - y.received);
      }
      const total = (k: 'sent' | 'lost' | 'plaintext') => runs.reduce((x, r) => x + r[k], 0);
      results.rotationLoss = {
        rotations: runs.length,
        pings_sent: total('sent'),
        pings_lost: total('lost'),
        plaintext_packets: total('plaintext'),
        per_rotation: runs.map((r) => ({ sent: r.sent, lost: r.lost, seconds: round(r.ms / 1000, 1) })),
        control_no_rotation: { pings_sent: sent, pings_lost: lost },
        note: 'node-1 node key, two-channel make-before-break under the cluster-wide rotation lease; ~25 pings/s each way between a pod of node-1 and one of node-2',
      };
      process.stdout.write(`rotation under load: ${total('lost')} of ${total('sent')} pings lost in ${runs.length} rotations; control without rotation: ${lost} of ${sent} lost\n`);
    }
  } finally {
    await veil(['lab', 'down', '--name', LAB]).catch((err: Error) => process.stderr.write(`lab down failed: ${err.message}\n`));
  }
  if (veilMbps !== undefined) {
    // After the Veil lab is gone, so both run on an otherwise equally quiet machine.
    const baseMbps = await baseline(seconds);
    results.throughput = { veil_mbit_s: round(veilMbps, 1), baseline_wg_mbit_s: round(baseMbps, 1), ratio: round(veilMbps / baseMbps, 3), goal_ratio: 0.95 };
    process.stdout.write(`throughput: veil ${round(veilMbps, 1)} Mbit/s, same topology with a hand-made wireguard-go tunnel ${round(baseMbps, 1)} Mbit/s, ratio ${round(veilMbps / baseMbps, 3)} (goal >= 0.95)\n`);
  }
  process.stdout.write(`wrote ${writeResults('lab', [results])}\n`);
}
