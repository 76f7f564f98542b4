/**
 * `npm run bench -- lab [--rounds N] [--seconds N] [--new-pods N] [--idle-seconds N]`
 *
 * The product in a 3-node lab (`veil lab up --nodes 3 --name labbench`) next to a baseline in
 * the same run:
 * - throughput: pod→pod TCP (iperf3, N seconds) across nodes through the lab (eBPF from-pod
 *   redirect into the agent-managed wireguard-go channel device, WireGuard, to-pod) vs. the same
 *   lab topology without agents, its tunnel built by hand with `wg` and wireguard-go, both up at
 *   once and measured in alternating order for N rounds (default 9); median of the per-round
 *   ratios, with each side's MSS, retransmits, the IP fragments its sending node made on the
 *   underlay, its data-path CPU per MB and (Veil) its control plane's CPU share.
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
import { readdirSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { keyRotationUnderLoad } from '../agent/connectivity/key-rotation.js';
import { waitForAgents } from '../agent/connectivity/lab-test.js';
import { ping, wireguardPackets } from '../agent/connectivity/probes.js';
import { projectRoot } from '../agent/project-root.js';
import { readLabState } from '../agent/lab/state.js';
import { labDown } from '../agent/lab/remove.js';
import { labUp } from '../agent/lab/up.js';
import { parseBenchArgs } from './lib/args.js';
import { median, round, writeResults } from './lib/report.js';
import { requireTool, sh } from './netlink-host.js';

const execFileP = promisify(execFile);
/** The lab's name; VEIL_BENCH_LAB runs it under another one (next to a lab of the same name already up). */
const LAB = process.env.VEIL_BENCH_LAB ?? 'labbench';
const CLI = join(projectRoot(), 'dist', 'agent', 'cli', 'main.js');

async function veil(args: string[]): Promise<string> {
  return (await execFileP(process.execPath, [CLI, ...args], { timeout: 300_000, env: { ...process.env, VEIL_LOG_LEVEL: 'warn' } })).stdout;
}

interface IperfResult {
  mbps: number;
  /** Bytes the server received. */
  bytes: number;
  retransmits: number;
  /** The sender's MSS (what the pod's route MTU allowed). */
  mss: number;
}

async function iperf(serverNs: string, clientNs: string, ip: string, seconds: number): Promise<IperfResult> {
  const server = spawn('ip', ['netns', 'exec', serverNs, 'iperf3', '-s', '-1', '-B', ip], { stdio: 'ignore' });
  await new Promise((r) => setTimeout(r, 500));
  try {
    const out = await sh('ip', ['netns', 'exec', clientNs, 'iperf3', '-c', ip, '-t', String(seconds), '-J'], (seconds + 30) * 1000);
    const j = JSON.parse(out) as { start: { tcp_mss_default?: number }; end: { sum_received: { bits_per_second: number; bytes: number }; sum_sent: { retransmits?: number } } };
    return { mbps: j.end.sum_received.bits_per_second / 1e6, bytes: j.end.sum_received.bytes, retransmits: j.end.sum_sent.retransmits ?? 0, mss: j.start.tcp_mss_default ?? 0 };
  } finally {
    server.kill();
  }
}

/** IP fragments the sending node made (IpFragCreates, /proc/net/snmp of its namespace). */
async function fragmentsCreated(netns: string): Promise<number> {
  const snmp = await sh('ip', ['netns', 'exec', netns, 'cat', '/proc/net/snmp']);
  const [head, vals] = snmp.split('\n').filter((l) => l.startsWith('Ip: '));
  const i = head!.split(' ').indexOf('FragCreates');
  return Number(vals!.split(' ')[i]);
}

/**
 * CPU time (user + system, clock ticks) of the processes that run in one of a lab's network
 * namespaces (`veil-<lab>-*`), split into the data path (wireguard-go, iperf3 in the pods) and
 * the rest (the Veil lab's agents, operator and etcd; the baseline's etcd-less lab has none).
 * Softirq work is charged to whichever task it interrupted, which on this path is mostly the
 * data-path processes (wireguard-go writing into its TUN device runs the receive path down to the
 * pod's socket).
 */
function labCpuTicks(lab: string): { data: number; control: number } {
  const inodes = new Set<string>();
  for (const ns of readdirSync('/run/netns')) if (ns.startsWith(`veil-${lab}-`)) inodes.add(`net:[${statSync(`/run/netns/${ns}`).ino}]`);
  const t = { data: 0, control: 0 };
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      if (!inodes.has(readlinkSync(`/proc/${pid}/ns/net`))) continue;
      const comm = readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
      t[comm === 'wireguard-go' || comm === 'iperf3' ? 'data' : 'control'] += cpuTicks(Number(pid));
    } catch {
      // exited meanwhile
    }
  }
  return t;
}

/** One side of the throughput comparison: a client pod and a server pod on two nodes. */
interface Path {
  label: string;
  /** The lab's name (its namespaces are veil-<lab>-*). */
  lab: string;
  clientNs: string;
  serverNs: string;
  serverIp: string;
  /** The client's node namespace (where the tunnel's outer packets are made). */
  senderNodeNs: string;
}

/**
 * The baseline: the same lab topology (`labUp` without agents or operator: the same pod veths,
 * pod routes, node namespaces, uplinks and underlay bridge), with a wireguard-go tunnel between
 * node-1 and node-2 configured by hand with `wg` and `ip` (device MTU 1420, as the agent's
 * channel devices) — no Veil agent, no eBPF — and iperf3 between a pod of each node.
 */
async function baselineUp(): Promise<Path> {
  const name = 'labbase';
  const state = await labUp({ name, nodes: 2, podsPerNode: 1, mode: 'wireguard' });
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
  return { label: 'baseline', lab: name, clientNs: client.netns, serverNs: server.netns, serverIp: server.addresses.find((x) => !x.includes(':'))!, senderNodeNs: nodes[0]!.netns };
}

interface Sample extends IperfResult {
  fragments: number;
  /** CPU milliseconds of the lab's data-path processes per MB delivered (see labCpuTicks). */
  cpuMsPerMB: number;
  /** The same for the lab's other processes (agents, operator, etcd), per second of the run. */
  controlCpuPercent: number;
}

/** `hz`: clock ticks per second of /proc/PID/stat (`getconf CLK_TCK`). */
async function measure(path: Path, seconds: number, hz: number): Promise<Sample> {
  const f0 = await fragmentsCreated(path.senderNodeNs);
  const c0 = labCpuTicks(path.lab);
  const r = await iperf(path.serverNs, path.clientNs, path.serverIp, seconds);
  const c1 = labCpuTicks(path.lab);
  return {
    ...r,
    fragments: (await fragmentsCreated(path.senderNodeNs)) - f0,
    cpuMsPerMB: (((c1.data - c0.data) / hz) * 1000) / (r.bytes / 1e6),
    controlCpuPercent: (((c1.control - c0.control) / hz) * 100) / seconds,
  };
}

/**
 * Both labs are up at once and each round measures both, alternating which goes first, so both
 * sides see the same machine (the load of this shared machine drifts by the minute); the figure
 * is the median of the per-round ratios.
 */
async function throughput(veilPath: Path, rounds: number, seconds: number, hz: number): Promise<Record<string, unknown>> {
  const base = await baselineUp();
  try {
    const rows: { round: number; veil: Sample; baseline: Sample; ratio: number; load_1m: number }[] = [];
    for (let r = 0; r < rounds; r++) {
      const order = r % 2 === 0 ? [veilPath, base] : [base, veilPath];
      const got = new Map<string, Sample>();
      for (const p of order) got.set(p.label, await measure(p, seconds, hz));
      const veilS = got.get('veil')!;
      const baseS = got.get('baseline')!;
      const load = Number(readFileSync('/proc/loadavg', 'utf8').split(' ')[0]);
      rows.push({ round: r + 1, veil: veilS, baseline: baseS, ratio: veilS.mbps / baseS.mbps, load_1m: load });
      process.stdout.write(
        `round ${r + 1}: veil ${round(veilS.mbps, 1)} Mbit/s (mss ${veilS.mss}, ${veilS.retransmits} retransmits, ${veilS.fragments} underlay fragments, ${round(veilS.cpuMsPerMB, 2)} data-path CPU ms/MB, control plane ${round(veilS.controlCpuPercent, 1)} % CPU), ` +
          `baseline ${round(baseS.mbps, 1)} Mbit/s (mss ${baseS.mss}, ${baseS.retransmits} retransmits, ${baseS.fragments} underlay fragments, ${round(baseS.cpuMsPerMB, 2)} data-path CPU ms/MB), ratio ${round(veilS.mbps / baseS.mbps, 3)}, load ${load}\n`,
      );
    }
    const veilMed = median(rows.map((x) => x.veil.mbps));
    const baseMed = median(rows.map((x) => x.baseline.mbps));
    const ratioMed = median(rows.map((x) => x.ratio));
    const cpuRatioMed = median(rows.map((x) => x.veil.cpuMsPerMB / x.baseline.cpuMsPerMB));
    process.stdout.write(
      `throughput (median of ${rounds} rounds): veil ${round(veilMed, 1)} Mbit/s, same topology with a hand-made wireguard-go tunnel ${round(baseMed, 1)} Mbit/s, ratio ${round(ratioMed, 3)} (goal >= 0.95); data-path CPU per MB (wireguard-go + iperf3), veil / baseline: ${round(cpuRatioMed, 3)}\n`,
    );
    return {
      veil_mbit_s: round(veilMed, 1),
      baseline_wg_mbit_s: round(baseMed, 1),
      ratio: round(ratioMed, 3),
      goal_ratio: 0.95,
      cpu_per_mb_ratio: round(cpuRatioMed, 3),
      rounds: rows.map((x) => ({
        round: x.round,
        veil_mbit_s: round(x.veil.mbps, 1),
        baseline_mbit_s: round(x.baseline.mbps, 1),
        ratio: round(x.ratio, 3),
        veil_retransmits: x.veil.retransmits,
        baseline_retransmits: x.baseline.retransmits,
        veil_mss: x.veil.mss,
        baseline_mss: x.baseline.mss,
        veil_underlay_fragments: x.veil.fragments,
        baseline_underlay_fragments: x.baseline.fragments,
        veil_cpu_ms_per_mb: round(x.veil.cpuMsPerMB, 2),
        baseline_cpu_ms_per_mb: round(x.baseline.cpuMsPerMB, 2),
        veil_control_plane_cpu_percent: round(x.veil.controlCpuPercent, 1),
        load_1m: x.load_1m,
      })),
      note: 'median of per-round ratios; both labs up during every round, order alternating',
    };
  } finally {
    await labDown('labbase');
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
  const a = parseBenchArgs(argv, { counts: { seconds: 5, rounds: 9, 'new-pods': 5, 'idle-seconds': 10, rotations: 3 }, cases: ['throughput', 'new-pod', 'agents', 'rotation'] });
  for (const [t, p] of [['iperf3', 'iperf3'], ['wg', 'wireguard-tools'], ['wireguard-go', 'wireguard-go']] as const) await requireTool(t, p);
  const seconds = a.counts.seconds!;
  const results: Record<string, unknown> = { lab: { nodes: 3, podsPerNode: 2 } };
  const hz = Number((await sh('getconf', ['CLK_TCK'])).trim()) || 100;
  await veil(['lab', 'up', '--nodes', '3', '--name', LAB]);
  try {
    const state = await readLabState(LAB);
    const notReady = await waitForAgents(state, 60_000);
    if (notReady.length > 0) throw new Error(`Agents not ready: ${notReady.join('; ')}`);
    const client = state.pods.find((p) => p.node === 'node-1')!;
    const server = state.pods.find((p) => p.node === 'node-2')!;
    const serverIp = server.addresses.find((x) => !x.includes(':'))!;

    if (a.only.has('throughput')) {
      const node1 = state.nodes.find((n) => n.name === 'node-1')!;
      results.throughput = await throughput({ label: 'veil', lab: LAB, clientNs: client.netns, serverNs: server.netns, serverIp, senderNodeNs: node1.netns }, a.counts.rounds!, seconds, hz);
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
        const r = await keyRotationUnderLoad(await readLabState(LAB), { wireguardPort: 51871, encrypted: wireguardPackets([51871, 51872]) });
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
  process.stdout.write(`wrote ${writeResults('lab', [results])}\n`);
}
