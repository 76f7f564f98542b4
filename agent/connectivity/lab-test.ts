/**
 * `veil connectivity-test --lab`: the scenarios of issue 5 against a running lab, with real
 * packets. Each scenario reports ok or a failure with its explanation:
 *
 *   pod-to-pod-same-node    ping between two pods of one node
 *   pod-to-pod-cross-node   ping (IPv4 and IPv6) between pods of two nodes, through the tunnel
 *   node-to-pod             ping from a node to a pod on it and to a pod on another node (IPsec
 *                           mode: the local pod only; node-originated traffic has no SA yet)
 *   encryption-on-the-wire  capture on the underlay bridge while pods of two nodes talk:
 *                           zero plaintext pod packets, WireGuard (IPsec mode: ESP) packets present
 *   strict-broken-peer-key  the peer of another node replaced by one with a random key on this
 *                           node's WireGuard devices (IPsec mode: the receiver's inbound SAs from
 *                           the sender given random keys, strict-esp.ts): pods of the two nodes
 *                           cannot talk and not one plaintext pod packet reaches the wire; the
 *                           real peer is put back and traffic flows again
 *   agent-restart-under-load  the first node's agent restarted (`veil lab restart-agent`) while
 *                           its pod pings a pod of another node 20 times a second: every ping
 *                           answered, no plaintext pod packet on the wire
 *   key-rotation-under-load the first node's node key rotated (key-rotation.ts) while pods of two
 *                           nodes ping each other: 0 lost, no plaintext on the wire
 *   policy-allow-deny       a NetworkPolicy isolating the servers: a client still reaches a
 *                           server, another server is dropped, and the receiving node's eBPF
 *                           counters show the drop with reason DROP_POLICY_DEFAULT_DENY; the
 *                           policy is removed again at the end
 *   identity                IPsec mode: the receiver's per-identity SA counters show the sending
 *                           pod's identity, authenticated by the SA (identity-scenario.ts);
 *                           WireGuard mode: "n/a", a pass with the reason
 *
 * The lab's state names the namespaces; the agents' datapath counters are read from their pinned
 * counter maps (the same numbers as their /metrics).
 */
import { ClusterClient } from '../cluster/client.js';
import { checkCidr, cidrContains } from '../net/ip.js';
import { ConfigMap } from '../datapath/config-map.js';
import { Counters } from '../datapath/counters.js';
import { Ipcache } from '../datapath/ipcache.js';
import { Hook, Reason } from '../datapath/reasons.js';
import { openLabStore } from '../lab/lab-store.js';
import { labRestartAgent } from '../lab/restart-agent.js';
import { DEFAULT_LAB_ROOT, readLabState, type LabPodState, type LabState } from '../lab/state.js';
import { espPackets, ping, WireCapture, wireguardPackets, type EncryptedPacketTest } from './probes.js';
import { identityScenario } from './identity-scenario.js';
import { nodesWithoutInboundSas, podsWithoutOutboundSa, strictBrokenSa } from './strict-esp.js';
import { breakPeer, restorePeers } from './wg-tool.js';
import { labNodeDir, labPinRoot } from '../lab/lab-processes.js';
import { keyRotationUnderLoad } from './key-rotation.js';

export interface ScenarioResult {
  name: string;
  ok: boolean;
  /** What was done and seen (the explanation when not ok). */
  detail: string;
  /** A pass that proves nothing in this lab's mode (shown as "n/a"; `detail` says why). */
  notApplicable?: boolean;
  data?: Record<string, unknown>;
}

export interface LabTestOptions {
  name: string;
  root?: string;
  /** WireGuard base port of the agents (default the agent's default, 51871). */
  wireguardPort?: number;
  /** Only these scenarios (default all). */
  only?: string[];
  /** How long to wait for every agent to be ready before the scenarios run (default 30 s). */
  readyTimeoutMs?: number;
}

const POLICY_NAME = 'veil-connectivity-test';
const POLICY_MANIFEST = `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: ${POLICY_NAME}
  namespace: backend
spec:
  podSelector:
    matchLabels:
      app: server
  policyTypes: [Ingress]
  ingress:
    - from:
        - namespaceSelector:
            matchLabels:
              tier: frontend
          podSelector:
            matchLabels:
              app: client
`;

export function v4(p: LabPodState): string {
  return p.addresses.find((a) => !a.includes(':'))!;
}
export function v6(p: LabPodState): string | undefined {
  return p.addresses.find((a) => a.includes(':'));
}

export async function until<T>(fn: () => Promise<T | undefined>, timeoutMs: number): Promise<T | undefined> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined || Date.now() > deadline) return v;
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** What every scenario gets besides the lab's state. */
export interface ScenarioContext {
  /** WireGuard base port of the agents (channel ports: it and the next). */
  wireguardPort: number;
  /** Which captured packets are encrypted in the lab's mode (WireGuard UDP or ESP). */
  encrypted: EncryptedPacketTest;
}

export type Scenario = (s: LabState, o: ScenarioContext) => Promise<ScenarioResult>;

/**
 * "Is this a pod address of the lab?" for the capture classifier. What tcpdump prints is not
 * always an address (multicast groups with trailing punctuation, link-layer names): anything that
 * does not parse is not a pod address.
 */
export function podAddressTest(s: LabState): (ip: string) => boolean {
  const podCidrs = s.nodes.flatMap((n) => n.podCidrs).map((c) => checkCidr('podCidr', c));
  return (ip) => {
    let addr;
    try {
      addr = checkCidr('address', ip);
    } catch {
      return false;
    }
    return podCidrs.some((c) => cidrContains(c, addr));
  };
}

export function fail(name: string, detail: string, data?: Record<string, unknown>): ScenarioResult {
  return { name, ok: false, detail, ...(data ? { data } : {}) };
}

export function pick(s: LabState): { a?: LabPodState; b?: LabPodState; remote?: LabPodState } {
  const n1 = s.nodes[0]?.name;
  const onN1 = s.pods.filter((p) => p.node === n1);
  return { a: onN1[0], b: onN1[1], remote: s.pods.find((p) => p.node !== n1) };
}

const sameNode: Scenario = async (s) => {
  const name = 'pod-to-pod-same-node';
  const { a, b } = pick(s);
  if (!a || !b) return fail(name, 'Needs two pods on the first node: run "veil lab up --pods-per-node 2" (or more)');
  const r = await ping(a.netns, v4(b));
  const ok = r.received === r.sent && r.sent > 0;
  return { name, ok, detail: `${a.name} → ${b.name} (${v4(b)}): ${r.received}/${r.sent} replies${ok ? '' : `; ping said: ${r.output}`}` };
};

const crossNode: Scenario = async (s) => {
  const name = 'pod-to-pod-cross-node';
  const { a, remote } = pick(s);
  if (!a || !remote) return fail(name, 'Needs pods on two nodes: run "veil lab up --nodes 2" (or more)');
  const parts: string[] = [];
  let ok = true;
  for (const target of [v4(remote), v6(remote)].filter((x): x is string => x !== undefined)) {
    const r = await ping(a.netns, target);
    ok &&= r.received === r.sent && r.sent > 0;
    parts.push(`${target}: ${r.received}/${r.sent}${r.received === r.sent ? '' : ` (${r.output})`}`);
  }
  return { name, ok, detail: `${a.name} (${a.node}) → ${remote.name} (${remote.node}): ${parts.join(', ')}` };
};

const nodeToPod: Scenario = async (s) => {
  const name = 'node-to-pod';
  const node = s.nodes[0];
  const { a, remote } = pick(s);
  if (!node || !a) return fail(name, 'Needs a pod on the first node');
  const parts: string[] = [];
  let ok = true;
  // IPsec mode encrypts what pods send (from-pod sets the identity's encrypt mark); traffic a
  // node itself originates toward remote pods has no SA and is refused by the remote node's
  // policy (docs/agent.md), so only the local pod is tried there.
  const targets = s.mode === 'ipsec' ? [a] : [a, remote];
  for (const p of targets.filter((x): x is LabPodState => x !== undefined)) {
    const r = await ping(node.netns, v4(p));
    ok &&= r.received === r.sent && r.sent > 0;
    parts.push(`${p.name} on ${p.node}: ${r.received}/${r.sent}${r.received === r.sent ? '' : ` (${r.output})`}`);
  }
  const note = s.mode === 'ipsec' ? '; node to remote pod not tried: IPsec mode does not encrypt node-originated traffic yet' : '';
  return { name, ok, detail: `${node.name} → ${parts.join(', ')}${note}` };
};

const encryption: Scenario = async (s, o) => {
  const name = 'encryption-on-the-wire';
  const { a, remote } = pick(s);
  if (!a || !remote) return fail(name, 'Needs pods on two nodes');
  const isPod = podAddressTest(s);
  const capture = await WireCapture.start(s.underlay.netns, s.underlay.bridge);
  const r4 = await ping(a.netns, v4(remote), { count: 20, intervalS: 0.05 });
  const six = v6(remote);
  const r6 = six ? await ping(a.netns, six, { count: 10, intervalS: 0.05 }) : { sent: 0, received: 0, output: '' };
  const wire = await capture.stop(isPod, o.encrypted);
  const kind = s.mode === 'ipsec' ? 'ESP' : 'WireGuard';
  const delivered = r4.received + r6.received;
  const ok = wire.plaintext === 0 && wire.encrypted >= delivered && delivered > 0;
  const why = wire.plaintext > 0
    ? `; ${wire.plaintext} plaintext pod packets seen, e.g. ${wire.samples.join(' / ')}`
    : wire.encrypted < delivered ? `; fewer ${kind} packets than pod packets delivered: the traffic did not go through the tunnel` : delivered === 0 ? '; no pod packet was delivered' : '';
  return {
    name,
    ok,
    detail: `capture on ${s.underlay.bridge}: ${wire.plaintext} plaintext pod packets, ${wire.encrypted} ${kind} packets while ${delivered}/${r4.sent + r6.sent} pings crossed nodes${why}`,
    data: { plaintext: wire.plaintext, encrypted: wire.encrypted, other: wire.other, pings: r4.sent + r6.sent, replies: delivered },
  };
};

const policy: Scenario = async (s) => {
  const name = 'policy-allow-deny';
  const server = s.pods.find((p) => p.labels.app === 'server' && p.node !== s.nodes[0]?.name);
  const client = s.pods.find((p) => p.labels.app === 'client' && p.namespace === 'frontend');
  const otherServer = s.pods.find((p) => p.labels.app === 'server' && p !== server);
  if (!server || !client || !otherServer) return fail(name, 'Needs the default client and server pods on two nodes: run "veil lab up --nodes 2 --pods-per-node 2"');
  if (!s.etcd) return fail(name, 'The lab has no etcd');
  const counters = await Counters.open(`${labPinRoot(s.name)}/${server.node}`);
  const denied = async () => (await counters.get(Hook.TO_POD, Reason.DROP_POLICY_DEFAULT_DENY)).packets;
  const store = await openLabStore(s.etcd.socket);
  const cluster: ClusterClient = store.cluster;
  try {
    const before = await denied();
    await cluster.put('policies', { name: POLICY_NAME, namespace: 'backend', manifest: POLICY_MANIFEST });
    const blocked = await until(async () => ((await ping(otherServer.netns, v4(server), { count: 1, timeoutS: 1 })).received === 0 ? true : undefined), 15_000);
    if (!blocked) return fail(name, `${otherServer.name} still reaches ${server.name} 15 s after the policy was applied: the agent on ${server.node} did not enforce it`);
    const deny = await ping(otherServer.netns, v4(server), { count: 3 });
    const allow = await ping(client.netns, v4(server), { count: 3 });
    const drops = (await denied()) - before;
    const ok = deny.received === 0 && allow.received === allow.sent && drops >= BigInt(deny.sent);
    const detail = `allow ${client.name} → ${server.name}: ${allow.received}/${allow.sent}; deny ${otherServer.name} → ${server.name}: ${deny.received}/${deny.sent}; ${drops} drops counted as TO_POD/DROP_POLICY_DEFAULT_DENY on ${server.node}`;
    return { name, ok, detail: ok ? detail : `${detail}; expected every allowed ping answered, every denied one dropped and counted`, data: { allowed: allow.received, denied: deny.sent - deny.received, drops: Number(drops) } };
  } finally {
    await cluster.delete('policies', POLICY_NAME, 'backend');
    // The lab is left as it was: the server is reachable again.
    await until(async () => ((await ping(otherServer.netns, v4(server), { count: 1, timeoutS: 1 })).received === 1 ? true : undefined), 15_000);
    await store.close();
  }
};

const strictBrokenKey: Scenario = async (s, o) => {
  const name = 'strict-broken-peer-key';
  if (s.mode === 'ipsec') return strictBrokenSa(s);
  const { a, remote } = pick(s);
  const node = s.nodes.find((n) => n.name === a?.node);
  const remoteNode = s.nodes.find((n) => n.name === remote?.node);
  if (!a || !remote || !node || !remoteNode) return fail(name, 'Needs pods on two nodes');
  // The agent's wireguard-go sockets (agent/wireguard/userspace-backend.ts: <stateDir>/wireguard/@self
  // for its own namespace); absent with kernel WireGuard, where `wg` needs no socket directory.
  const socketDir = `${labNodeDir(s.name, node.name)}/wg/wireguard/@self`;
  const isPod = podAddressTest(s);
  const broken = await breakPeer(node.netns, socketDir, ['veil_wg0', 'veil_wg1'], remoteNode.podCidrs[0]!);
  if (broken.length === 0) return fail(name, `No WireGuard peer on ${node.name} carries ${remoteNode.podCidrs[0]}: the agent has not installed ${remoteNode.name} as a peer`);
  let during: { sent: number; received: number };
  let wire;
  try {
    const capture = await WireCapture.start(s.underlay.netns, s.underlay.bridge);
    during = await ping(a.netns, v4(remote), { count: 10, intervalS: 0.1, timeoutS: 1 });
    wire = await capture.stop(isPod, o.encrypted);
  } finally {
    await restorePeers(node.netns, socketDir, broken);
  }
  const back = await until(async () => ((await ping(a.netns, v4(remote), { count: 1, timeoutS: 1 })).received === 1 ? true : undefined), 20_000);
  const ok = during.received === 0 && wire.plaintext === 0 && back === true;
  const detail = `${node.name}'s peer for ${remoteNode.name} given a random key on ${broken.map((b) => b.device).join(', ')}: ${during.received}/${during.sent} pings answered, ${wire.plaintext} plaintext pod packets on the wire; after restoring the peer: ${back ? 'traffic flows again' : 'traffic did NOT come back within 20 s'}`;
  return { name, ok, detail: ok ? detail : `${detail}; expected no reply, no plaintext and recovery`, data: { answered: during.received, plaintext: wire.plaintext, recovered: back === true } };
};

const agentRestart: Scenario = async (s, o) => {
  const name = 'agent-restart-under-load';
  const { a, remote } = pick(s);
  if (!a || !remote) return fail(name, 'Needs pods on two nodes');
  const isPod = podAddressTest(s);
  const capture = await WireCapture.start(s.underlay.netns, s.underlay.bridge);
  const load = ping(a.netns, v4(remote), { count: 80, intervalS: 0.05, timeoutS: 2 });
  await new Promise((r) => setTimeout(r, 500));
  let restarted = '';
  try {
    const rec = await labRestartAgent(s.name, a.node);
    restarted = `pid ${rec.pid}`;
  } catch (err) {
    restarted = `restart failed: ${(err as Error).message}`;
  }
  const r = await load;
  const wire = await capture.stop(isPod, o.encrypted);
  const ok = r.sent > 0 && r.received === r.sent && wire.plaintext === 0 && restarted.startsWith('pid');
  const detail = `agent of ${a.node} restarted (${restarted}) while ${a.name} pinged ${remote.name}: ${r.sent - r.received} of ${r.sent} lost, ${wire.plaintext} plaintext pod packets on the wire`;
  return { name, ok, detail: ok ? detail : `${detail}; expected 0 lost and 0 plaintext`, data: { sent: r.sent, lost: r.sent - r.received, plaintext: wire.plaintext } };
};

export const SCENARIOS: ReadonlyArray<readonly [string, Scenario]> = [
  ['pod-to-pod-same-node', sameNode],
  ['pod-to-pod-cross-node', crossNode],
  ['node-to-pod', nodeToPod],
  ['encryption-on-the-wire', encryption],
  ['strict-broken-peer-key', strictBrokenKey],
  ['agent-restart-under-load', agentRestart],
  ['key-rotation-under-load', keyRotationUnderLoad],
  ['policy-allow-deny', policy],
  ['identity', identityScenario],
];

/**
 * Waits (up to `timeoutMs`) until every node's agent has its WireGuard devices in the datapath
 * config (IPsec mode: an inbound ESP SA from every other node instead) and every pod of the lab
 * in its ipcache (read from the pinned maps). Returns the nodes that are not ready.
 */
export async function waitForAgents(s: LabState, timeoutMs: number): Promise<string[]> {
  const notReady = async (): Promise<string[]> => {
    const out: string[] = [];
    for (const n of s.nodes) {
      const pins = `${labPinRoot(s.name)}/${n.name}`;
      try {
        const cfg = await (await ConfigMap.open(pins)).get();
        const ipc = new Set((await (await Ipcache.open(pins)).entries()).map(([k]) => k));
        const missing = s.pods.filter((p) => !ipc.has(v4(p)) && !ipc.has(`${v4(p)}/32`));
        // IPsec mode has no WireGuard devices: its readiness is SAs from every other node.
        const saMissing = s.mode === 'ipsec' ? await nodesWithoutInboundSas(s, n) : [];
        if (s.mode !== 'ipsec' && cfg.wireguardIfindex.includes(0)) out.push(`${n.name}: WireGuard devices not in the datapath yet`);
        else if (saMissing.length > 0) out.push(`${n.name}: no inbound ESP SA from ${saMissing.join(', ')} yet`);
        else if (s.mode === 'ipsec' && missing.length === 0) {
          const noSa = await podsWithoutOutboundSa(s, n);
          if (noSa.length > 0) out.push(`${n.name}: no outbound SA yet for ${noSa.slice(0, 3).join(', ')} (identity keys not activated?)`);
        }
        else if (missing.length > 0) out.push(`${n.name}: ${missing.length} pods not in its ipcache yet (identities pending?)`);
      } catch (err) {
        out.push(`${n.name}: datapath not loaded (${(err as Error).message})`);
      }
    }
    return out;
  };
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const left = await notReady();
    if (left.length === 0 || Date.now() > deadline) return left;
    await new Promise((r) => setTimeout(r, 500));
  }
}

export async function runLabConnectivityTest(opts: LabTestOptions): Promise<ScenarioResult[]> {
  const state = await readLabState(opts.name, opts.root ?? DEFAULT_LAB_ROOT);
  const wireguardPort = opts.wireguardPort ?? 51871;
  const encrypted = state.mode === 'ipsec' ? espPackets() : wireguardPackets([wireguardPort, wireguardPort + 1]);
  const results: ScenarioResult[] = [];
  const readyTimeoutMs = opts.readyTimeoutMs ?? 30_000;
  const notReady = await waitForAgents(state, readyTimeoutMs);
  if (notReady.length > 0) {
    results.push(fail('agents-ready', `Agents not ready after ${readyTimeoutMs / 1000} s: ${notReady.join('; ')}; see the agent logs (veil lab status shows where), or wait longer (--wait)`));
  }
  for (const [name, run] of SCENARIOS) {
    if (opts.only && !opts.only.includes(name)) continue;
    try {
      results.push(await run(state, { wireguardPort, encrypted }));
    } catch (err) {
      results.push(fail(name, `The scenario could not run: ${(err as Error).message}`));
    }
  }
  return results;
}
