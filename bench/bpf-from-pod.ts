/**
 * The "from-pod" case of `npm run bench -- bpf`: nanoseconds per packet of the from-pod program
 * through BPF_PROG_TEST_RUN with realistic maps (150,000 ipcache host entries for 5,000 nodes,
 * 5,000 node pod CIDRs in the LPM trie, 10,000 policy entries), warm (the connection is in
 * conntrack, the common case of every packet after a connection's first), next to an empty tc
 * program measured in the same run. overhead_ns = ns_per_packet - empty_ns_per_packet.
 *
 * The kernel's own per-run loop (BPF_PROG_TEST_RUN with `repeat`) times the runs, so no
 * user-space cost is included; each figure is the median of `reps` runs of `repeat` packets.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigMap } from '../agent/datapath/config-map.js';
import { loadObject, testRun, type BpfProgram } from '../agent/datapath/datapath.js';
import { openEndpointMap } from '../agent/datapath/endpoints.js';
import { Ipcache, type IpcacheValue } from '../agent/datapath/ipcache.js';
import { MapsAbi } from '../agent/datapath/layout.js';
import { compilePolicy } from '../agent/datapath/policy-compile.js';
import { openPolicyMap } from '../agent/datapath/policy-map.js';
import { projectRoot } from '../agent/project-root.js';
import type { PolicyRule } from '../agent/policy/rule.js';
import { tcp, TCP_FLAGS } from '../tests/support/packets.js';
import { median, round } from './lib/report.js';

export interface FromPodResult {
  case: 'from-pod';
  ns_per_packet: number;
  empty_ns_per_packet: number;
  overhead_ns: number;
  goal_overhead_ns: number;
  ipcache_entries: number;
  nodes: number;
  policy_entries: number;
  repeat: number;
  /** The same established path over IPv6 (40-byte conntrack key, 16-byte ipcache key). */
  ipv6_ns_per_packet: number;
  ipv6_overhead_ns: number;
  runs: { ns_per_packet: number[]; empty_ns_per_packet: number[]; ipv6_ns_per_packet: number[] };
}

export interface FromPodOptions {
  /** An empty tc program (returns TC_ACT_OK) to compare with; compiled here with clang when absent. */
  emptyProgram?: BpfProgram;
  pinDir: string;
  reps?: number;
  repeat?: number;
  nodes?: number;
  ipcacheEntries?: number;
  policyEntries?: number;
}

const POD_IDENTITY = 300;
const POD_IP = '10.250.0.10';
const POD_IP6 = 'fd00:250::10';

/** Pod i of the cluster: 10.<node>.<pod> spread so every node has its /24. */
function podAddress(node: number, pod: number): string {
  return `10.${node >> 8}.${node & 255}.${pod + 10}`;
}

async function withEmptyProgram<T>(pinDir: string, fn: (p: BpfProgram) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), 'veil-bench-empty-'));
  try {
    const src = join(dir, 'empty.bpf.c');
    // no headers: nothing but a tc program returning TC_ACT_OK
    writeFileSync(
      src,
      '#define SEC(n) __attribute__((section(n), used))\nstruct __sk_buff;\nSEC("tc") int empty(struct __sk_buff *skb) { return 0; }\nchar LICENSE[] SEC("license") = "GPL";\n',
    );
    execFileSync('clang', ['-O2', '-target', 'bpf', '-c', src, '-o', join(dir, 'empty.bpf.o')]);
    const obj = await loadObject(join(dir, 'empty.bpf.o'), { pinDir });
    try {
      return await fn(obj.program('empty'));
    } finally {
      obj.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function benchFromPod(opts: FromPodOptions): Promise<FromPodResult> {
  const reps = opts.reps ?? 5;
  const repeat = opts.repeat ?? 1_000_000;
  const nodes = opts.nodes ?? 5000;
  const ipcacheEntries = opts.ipcacheEntries ?? 150_000;
  const policyEntries = opts.policyEntries ?? 10_000;
  const obj = await loadObject(join(projectRoot(), 'build', 'bpf', 'from-pod.bpf.o'), { pinDir: opts.pinDir });
  try {
    await (await ConfigMap.open(obj)).set({
      flags: MapsAbi.CFG_F_MODE_WIREGUARD,
      wireguardIfindex: [1, 1],
      nodeIdentity: 1,
      wireguardPort: 51820,
      nodeIndex: 1,
    });
    // The test skb's device is loopback (ifindex 1): it stands for the pod's veth.
    await (await openEndpointMap(obj)).set(1, { identity: POD_IDENTITY, flags: MapsAbi.EP_F_ENFORCE_EGRESS | MapsAbi.EP_F_ENFORCE_INGRESS, ipv4: POD_IP, ipv6: POD_IP6 });

    const ipcache = await Ipcache.open(obj);
    const entries: Array<[string, IpcacheValue]> = [[`${POD_IP}/32`, { identity: POD_IDENTITY, nodeIndex: 0, keySlot: 0, flags: MapsAbi.IPC_F_POD | MapsAbi.IPC_F_LOCAL }]];
    const podsPerNode = Math.ceil((ipcacheEntries - nodes - 1) / nodes);
    for (let n = 1; n <= nodes; n++) {
      const node = `172.${16 + (n >> 16)}.${(n >> 8) & 255}.${n & 255}`;
      entries.push([`${node}/32`, { identity: 6, nodeIndex: n, keySlot: 0, flags: MapsAbi.IPC_F_NODE, tunnelEndpoint: node }]);
      entries.push([`10.${n >> 8}.${n & 255}.0/24`, { identity: 2, nodeIndex: n, keySlot: n & 1, flags: MapsAbi.IPC_F_POD, tunnelEndpoint: node }]);
      for (let p = 0; p < podsPerNode && entries.length < ipcacheEntries + n; p++) {
        entries.push([`${podAddress(n, p)}/32`, { identity: 1000 + ((n * podsPerNode + p) % 5000), nodeIndex: n, keySlot: n & 1, flags: MapsAbi.IPC_F_POD, tunnelEndpoint: node }]);
      }
    }
    const hostEntries = entries.filter(([p]) => p.endsWith('/32')).length;
    await ipcache.setMany(entries);

    // 10,000 policy entries: 500 identities with 20 allow rules each (egress tcp ports to peers),
    // among them this pod's allow to the destination below.
    const dstNode = Math.floor(nodes / 2);
    const dst = podAddress(dstNode, 3);
    const dstIdentity = 1000 + ((dstNode * podsPerNode + 3) % 5000);
    const rules: PolicyRule[] = [];
    const rulesPerSubject = 20;
    for (let s = 0; rules.length < policyEntries; s++) {
      const subject = s === 0 ? POD_IDENTITY : 5000 + s;
      for (let r = 0; r < rulesPerSubject && rules.length < policyEntries; r++) {
        rules.push({ subject, peer: s === 0 && r === 0 ? dstIdentity : 1000 + r, direction: 'egress', protocol: 'tcp', port: s === 0 && r === 0 ? 80 : 8000 + r, verdict: 'allow' });
      }
    }
    const subjects = [...new Set(rules.map((r) => r.subject))];
    const policy = compilePolicy(rules, subjects.map((identity) => ({ identity, ingress: true, egress: true })));
    await (await openPolicyMap(obj)).setMany(policy.map((e) => [e.key, e.value]));

    const prog = obj.program('veil_from_pod_prog');
    const syn = tcp({ src: POD_IP, dst, sport: 40000, dport: 80 });
    const first = await testRun(prog, syn);
    if (first.retval !== 7) throw new Error(`from-pod did not redirect the benchmark packet (returned ${first.retval}): the benchmark's maps are wrong`);
    const ack = tcp({ src: POD_IP, dst, sport: 40000, dport: 80, flags: TCP_FLAGS.ack, payload: new Uint8Array(64) });
    // IPv6: the same destination pod's IPv6 address (same identity, node and slot)
    const dst6 = `fd00:${dstNode.toString(16)}::13`;
    const dstEntry = entries.find(([p]) => p === `${dst}/32`)![1];
    await ipcache.setMany([[`${dst6}/128`, dstEntry], [`${POD_IP6}/128`, { identity: POD_IDENTITY, nodeIndex: 0, keySlot: 0, flags: MapsAbi.IPC_F_POD | MapsAbi.IPC_F_LOCAL }]]);
    const first6 = await testRun(prog, tcp({ src: POD_IP6, dst: dst6, sport: 40000, dport: 80 }));
    if (first6.retval !== 7) throw new Error(`from-pod did not redirect the IPv6 benchmark packet (returned ${first6.retval}): the benchmark's maps are wrong`);
    const ack6 = tcp({ src: POD_IP6, dst: dst6, sport: 40000, dport: 80, flags: TCP_FLAGS.ack, payload: new Uint8Array(44) });
    const ours6: number[] = [];

    const ours: number[] = [];
    const empty: number[] = [];
    const measureEmpty = async (p: BpfProgram) => {
      for (let i = 0; i < reps; i++) {
        ours.push((await testRun(prog, ack, { repeat })).durationNs);
        ours6.push((await testRun(prog, ack6, { repeat })).durationNs);
        empty.push((await testRun(p, ack, { repeat })).durationNs);
      }
    };
    if (opts.emptyProgram) await measureEmpty(opts.emptyProgram);
    else await withEmptyProgram(opts.pinDir, measureEmpty);
    const o = median(ours);
    const e = median(empty);
    return {
      case: 'from-pod',
      ns_per_packet: round(o, 1),
      empty_ns_per_packet: round(e, 1),
      overhead_ns: round(o - e, 1),
      goal_overhead_ns: 60,
      ipcache_entries: hostEntries,
      nodes,
      policy_entries: policy.length,
      repeat,
      ipv6_ns_per_packet: round(median(ours6), 1),
      ipv6_overhead_ns: round(median(ours6) - e, 1),
      runs: { ns_per_packet: ours, empty_ns_per_packet: empty, ipv6_ns_per_packet: ours6 },
    };
  } finally {
    obj.close();
  }
}
