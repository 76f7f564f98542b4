/**
 * The whole product, as a newcomer runs it: `veil lab up --nodes 3` (etcd, operator, one agent
 * per node), identities allocated, every agent ready with its two peers, `veil connectivity-test
 * --lab` passing (reachability, encryption seen on the wire, policy allow and deny, a node key
 * rotated under traffic without a lost packet), an agent
 * restarted under traffic without a lost or leaked packet, `veil audit verify` passing on every
 * audit log, and `veil lab down` leaving nothing behind.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { etcdSocketPath } from '../../../agent/lab/lab-etcd.js';
import { openLabStore } from '../../../agent/lab/lab-store.js';
import { labPaths } from '../../../agent/lab/state.js';
import { projectRoot } from '../../../agent/project-root.js';
import { run, eventually } from '../../support/netns.js';
import { runVeil, type VeilRun } from '../../support/veil-cli.js';

// Unique per run: lab names are machine-wide (/run/veil/lab, namespaces), and checkouts side by side run this file.
const LAB = `e2e${randomBytes(2).toString('hex')}`;

function veil(args: string[], timeoutMs = 180_000): Promise<VeilRun> {
  return runVeil(args, { timeoutMs });
}

interface Status {
  nodes: { name: string; netns: string }[];
  pods: { name: string; netns: string; ip: string; node: string; identity: number | null }[];
  processes: { name: string; pid: number; running: boolean }[];
  auditLogs: string[];
  caCert: string;
}

async function status(): Promise<Status> {
  const r = await veil(['lab', 'status', '--name', LAB, '--json']);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as Status;
}

/** The agent's /status, fetched inside the node's namespace (where it listens on loopback). */
async function agentStatus(netns: string): Promise<{ peers: unknown[]; ifindexes: number[] | null }> {
  const r = await run('ip', ['netns', 'exec', netns, process.execPath, '-e', 'fetch("http://127.0.0.1:9876/status").then(r=>r.text()).then(t=>process.stdout.write(t))']);
  return JSON.parse(r.stdout) as { peers: unknown[]; ifindexes: number[] | null };
}

let up = false;
afterAll(async () => {
  if (up) await veil(['lab', 'down', '--name', LAB]);
});

describe('the lab end to end', () => {
  let s: Status;

  it('lab up --nodes 3 starts etcd, the operator and three agents; every pod gets an identity', async () => {
    const r = await veil(['lab', 'up', '--nodes', '3', '--name', LAB]);
    up = r.code === 0;
    expect(r.code, r.stderr).toBe(0);
    s = await eventually(async () => {
      const st = await status();
      return st.pods.every((p) => p.identity !== null) ? st : undefined;
    }, { timeoutMs: 30_000, what: 'identities for every pod' });
    expect(s.pods).toHaveLength(6);
    expect(s.processes.map((p) => p.name).sort()).toEqual(['agent-node-1', 'agent-node-2', 'agent-node-3', 'etcd', 'operator']);
    expect(s.processes.every((p) => p.running)).toBe(true);
    // Equal label sets share an identity across nodes.
    const ids = new Map<string, number>();
    for (const p of s.pods) {
      const kind = p.name.split('-')[0]!;
      if (ids.has(kind)) expect(p.identity).toBe(ids.get(kind));
      ids.set(kind, p.identity!);
    }
    for (const n of s.nodes) {
      await eventually(async () => {
        const a = await agentStatus(n.netns);
        return a.peers.length === 2 && a.ifindexes !== null;
      }, { timeoutMs: 30_000, what: `agent on ${n.name} with two peers` });
    }
  });

  it('veil connectivity-test --lab passes every scenario', async () => {
    const json = join(projectRoot(), 'build', `connectivity-${LAB}.json`);
    const r = await veil(['connectivity-test', '--lab', '--name', LAB, '--json', json]);
    expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0);
    const report = JSON.parse(await readFile(json, 'utf8')) as { passed: boolean; results: { name: string; ok: boolean; notApplicable?: boolean; data?: { plaintext?: number; encrypted?: number } }[] };
    expect(report.passed).toBe(true);
    expect(report.results.map((x) => x.name)).toEqual(['pod-to-pod-same-node', 'pod-to-pod-cross-node', 'node-to-pod', 'encryption-on-the-wire', 'strict-broken-peer-key', 'agent-restart-under-load', 'key-rotation-under-load', 'policy-allow-deny', 'identity']);
    // WireGuard mode: the receiver cannot learn the sender's identity from the tunnel.
    expect(report.results.find((x) => x.name === 'identity')).toMatchObject({ ok: true, notApplicable: true });
    expect(r.stdout).toMatch(/^identity\s+n\/a\s+Not applicable in WireGuard mode/m);
    const restart = report.results.find((x) => x.name === 'agent-restart-under-load')!.data! as { lost?: number; plaintext?: number };
    expect(restart).toMatchObject({ lost: 0, plaintext: 0 });
    const rotation = report.results.find((x) => x.name === 'key-rotation-under-load')!.data! as { sent?: number; lost?: number; plaintext?: number };
    expect(rotation).toMatchObject({ lost: 0, plaintext: 0 });
    expect(rotation.sent).toBeGreaterThan(0);
    const wire = report.results.find((x) => x.name === 'encryption-on-the-wire')!.data!;
    expect(wire.plaintext).toBe(0);
    expect(wire.encrypted).toBeGreaterThan(0);
  });

  it('an agent restarted under traffic adopts the kernel state: no ping lost', async () => {
    const client = s.pods.find((p) => p.node === 'node-1')!;
    const remote = s.pods.find((p) => p.node === 'node-2')!;
    // Fresh: the connectivity test restarted this agent once already.
    const agent = (await status()).processes.find((p) => p.name === 'agent-node-1')!;
    const pinging = run('ip', ['netns', 'exec', client.netns, 'ping', '-n', '-c', '60', '-i', '0.05', '-W', '1', remote.ip], { timeoutMs: 60_000 });
    await new Promise((r) => setTimeout(r, 500));
    process.kill(agent.pid, 'SIGTERM');
    await eventually(async () => !existsSync(`/proc/${agent.pid}`), { timeoutMs: 15_000, what: 'the agent to stop' });
    const r = await veil(['lab', 'restart-agent', '--name', LAB, '--node', 'node-1']);
    expect(r.code, r.stderr).toBe(0);
    const out = (await pinging).stdout;
    expect(out).toMatch(/60 packets transmitted, 60 received/);
    await eventually(async () => (await agentStatus(`veil-${LAB}-node-1`)).peers.length === 2, { timeoutMs: 30_000, what: 'the restarted agent to adopt its peers' });
  });

  it('lab policy apply isolates the servers and lab policy delete lifts it; a bad file changes nothing', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'veil-e2e-policy-'));
    const file = join(dir, 'deny.yaml');
    writeFileSync(file, 'apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: { name: deny-servers, namespace: backend }\nspec:\n  podSelector: { matchLabels: { app: server } }\n  policyTypes: [Ingress]\n');
    const bad = join(dir, 'bad.yaml');
    writeFileSync(bad, 'apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: { name: bad, namespace: backend }\nspec:\n  podSelector: { matchLabels: { app: server } }\n  policyTypes: [Sideways]\n');
    const client = s.pods.find((p) => p.name.startsWith('client') && p.node === 'node-1')!;
    const server = s.pods.find((p) => p.name.startsWith('server') && p.node === 'node-2')!;
    const reaches = async () => (await run('ip', ['netns', 'exec', client.netns, 'ping', '-n', '-c', '1', '-W', '1', server.ip]).then(() => true, () => false));
    expect(await reaches()).toBe(true);
    const rejected = await veil(['lab', 'policy', 'apply', bad, '--name', LAB]);
    expect(rejected.code).toBe(1);
    expect(rejected.stderr).toMatch(/Sideways/);
    const labStore = await openLabStore(etcdSocketPath(labPaths(LAB).dir));
    try {
      expect((await labStore.cluster.list('policies')).items).toEqual([]);
    } finally {
      await labStore.close();
    }
    const applied = await veil(['lab', 'policy', 'apply', file, '--name', LAB]);
    expect(applied.code, applied.stderr).toBe(0);
    expect(applied.stdout).toContain('backend/deny-servers');
    await eventually(async () => !(await reaches()), { timeoutMs: 15_000, what: 'the policy to isolate the server' });
    const deleted = await veil(['lab', 'policy', 'delete', file, '--name', LAB]);
    expect(deleted.code, deleted.stderr).toBe(0);
    await eventually(reaches, { timeoutMs: 15_000, what: 'the server to be reachable again' });
  });

  it('veil audit verify passes on every audit log of the lab', async () => {
    const st = await status();
    expect(st.auditLogs).toHaveLength(3);
    for (const log of st.auditLogs) {
      const r = await veil(['audit', 'verify', log, '--ca', st.caCert]);
      expect(r.code, `${log}: ${r.stdout} ${r.stderr}`).toBe(0);
    }
  });

  it('lab down leaves no namespace, process, pin or directory behind', async () => {
    const pids = (await status()).processes.map((p) => p.pid);
    // The agents' wireguard-go daemons live in the node namespaces and are not journaled.
    const cmdline = (pid: number) => (existsSync(`/proc/${pid}`) ? readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ').trim() : '');
    for (const n of s.nodes) {
      const listed = (await run('ip', ['netns', 'pids', n.netns])).stdout.split('\n').filter(Boolean).map(Number);
      pids.push(...listed.filter((pid) => cmdline(pid).includes('wireguard-go')));
    }
    // Three agents, etcd, the operator and two wireguard-go daemons per node.
    expect(pids.length).toBe(11);
    const before = new Map(pids.map((pid) => [pid, cmdline(pid)]));
    const r = await veil(['lab', 'down', '--name', LAB]);
    expect(r.code, r.stderr).toBe(0);
    up = false;
    expect((await run('ip', ['netns', 'list'])).stdout).not.toContain(`veil-${LAB}-`);
    expect(existsSync(`/sys/fs/bpf/veil-lab-${LAB}`)).toBe(false);
    expect(existsSync(`/run/veil/lab/${LAB}`)).toBe(false);
    const left = pids.filter((pid) => cmdline(pid) !== '' && cmdline(pid) === before.get(pid)).map((pid) => `${pid}: ${cmdline(pid)}`);
    expect(left).toEqual([]);
    const ps = await run('ps', ['-eo', 'args']);
    expect(ps.stdout).not.toContain(`/run/veil/lab/${LAB}/`);
  });
});
