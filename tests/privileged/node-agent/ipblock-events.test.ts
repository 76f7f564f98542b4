/**
 * ipBlock enforcement and datapath events on the real programs. A node namespace hosts pod P
 * (10.0.1.10, identity 300, labels app=web) behind a veth, and is joined by another veth to an
 * "external host" namespace X outside the pod network (198.51.100.10 and .20 on its link, 203.0.113.5
 * behind it). A standard NetworkPolicy selects P for both directions with
 * `ipBlock: { cidr: 198.51.100.0/24, except: [198.51.100.20/32] }`; it is compiled exactly as the
 * agent's DatapathSync does (compilePolicies, then LocalCidrIdentities.compile for the CIDR
 * identities and policy entries, the plan's entries in the ipcache beside the pod's and node's).
 *
 * The events the programs emit go through the agent's EventFeed to a StatusServer's GET /events,
 * and the real `veil events --json` reads them back.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigMap } from '../../../agent/datapath/config-map.js';
import { Counters } from '../../../agent/datapath/counters.js';
import { attach, loadObjects, type BpfObject } from '../../../agent/datapath/datapath.js';
import { openEndpointMap } from '../../../agent/datapath/endpoints.js';
import { EventFeed } from '../../../agent/datapath/event-feed.js';
import type { EventRecord } from '../../../agent/datapath/event-record.js';
import { EventReader } from '../../../agent/datapath/events.js';
import { Ipcache } from '../../../agent/datapath/ipcache.js';
import { MapsAbi, type IpcacheValue } from '../../../agent/datapath/layout.js';
import { openPolicyMap } from '../../../agent/datapath/policy-map.js';
import { Hook, Reason } from '../../../agent/datapath/reasons.js';
import { canonicalLabelSet } from '../../../agent/identity/labels.js';
import { Health } from '../../../agent/lifecycle/health.js';
import { eventsRoute } from '../../../agent/metrics/events-endpoint.js';
import { createAgentMetrics } from '../../../agent/metrics/metrics.js';
import { StatusServer } from '../../../agent/metrics/status-server.js';
import { LocalCidrIdentities, isLocalIdentity, type CidrIdentityPlan } from '../../../agent/node-agent/local-cidr-identities.js';
import { compilePolicies } from '../../../agent/policy/compiler.js';
import { parsePolicies } from '../../../agent/policy/policy-file.js';
import { projectRoot } from '../../../agent/project-root.js';
import { programObject } from '../../support/bpf.js';
import { eventually, ipJson, NetnsSet, run, runIn, uniqueName, vethPair } from '../../support/netns.js';

const P = '10.0.1.10';
const NODE_X = '198.51.100.1';
const X_ALLOWED = '198.51.100.10';
const X_EXCEPT = '198.51.100.20';
const X_OUTSIDE = '203.0.113.5';
const POD_ID = 300;
const CLI = join(projectRoot(), 'dist/agent/cli/main.js');

const POLICY = `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: web-external, namespace: default }
spec:
  podSelector: { matchLabels: { app: web } }
  policyTypes: [Ingress, Egress]
  egress:
    - to:
        - ipBlock: { cidr: 198.51.100.0/24, except: [198.51.100.20/32] }
  ingress:
    - from:
        - ipBlock: { cidr: 198.51.100.0/24, except: [198.51.100.20/32] }
      ports:
        - { protocol: UDP, port: 7000 }
`;

const ping = (ns: string, dst: string, extra: string[] = []) => runIn(ns, 'ping', ['-c', '1', '-W', '1', ...extra, dst], { timeoutMs: 10_000 });

async function requireTools(): Promise<void> {
  for (const [tool, pkg] of [['socat', 'socat'], ['ping', 'iputils-ping']]) {
    await run('sh', ['-c', `command -v ${tool}`]).catch(() => {
      throw new Error(`"${tool}" is missing: install the Debian package ${pkg} (bash scripts/setup.sh)`);
    });
  }
}

describe('ipBlock on the real programs, and drop events through GET /events and veil events', () => {
  const nets = new NetnsSet();
  let node: string;
  let pod: string;
  let ext: string;
  let pinDir: string;
  let work: string;
  let objects: BpfObject[] = [];
  let reader: EventReader | undefined;
  let server: StatusServer | undefined;
  let statusUrl: string;
  let counters: Counters;
  let plan: CidrIdentityPlan;
  const cidr = new LocalCidrIdentities();
  const feed = new EventFeed({ describe: (id) => (id === POD_ID ? 'default:app=web' : id === 2 ? 'reserved:world' : cidr.prefixOf(id) && `cidr:${cidr.prefixOf(id)}`) });
  const count = async (hook: number, reason: number) => (await counters.get(hook, reason)).packets;
  const drops = (pred: (r: EventRecord) => boolean) => feed.recent({ type: 'drop' }).find(pred);

  beforeAll(async () => {
    await requireTools();
    node = await nets.add('evn');
    pod = await nets.add('evp');
    ext = await nets.add('evx');
    await run('ip', ['netns', 'exec', node, 'sysctl', '-qw', 'net.ipv4.ip_forward=1']);
    await vethPair(pod, node, { aName: 'eth0', bName: 'lxcp', aAddr: `${P}/32`, bAddr: '169.254.1.1/32' });
    await run('ip', ['-n', pod, 'route', 'add', '169.254.1.1', 'dev', 'eth0']);
    await run('ip', ['-n', pod, 'route', 'add', 'default', 'via', '169.254.1.1', 'dev', 'eth0']);
    await run('ip', ['-n', node, 'route', 'add', `${P}/32`, 'dev', 'lxcp']);
    await vethPair(ext, node, { aName: 'eth0', bName: 'ext0', aAddr: `${X_ALLOWED}/24`, bAddr: `${NODE_X}/24` });
    await run('ip', ['-n', ext, 'addr', 'add', `${X_EXCEPT}/24`, 'dev', 'eth0']);
    await run('ip', ['-n', ext, 'addr', 'add', `${X_OUTSIDE}/32`, 'dev', 'lo']);
    await run('ip', ['-n', ext, 'route', 'add', '10.0.1.0/24', 'via', NODE_X]);
    await run('ip', ['-n', node, 'route', 'add', `${X_OUTSIDE}/32`, 'via', X_ALLOWED]);

    // the policy, compiled as DatapathSync compiles it
    const labels = canonicalLabelSet({ namespace: 'default', serviceAccount: 'default', podLabels: { app: 'web' } });
    const compilation = compilePolicies(parsePolicies(POLICY, { source: 'web-external.yaml' }), [[POD_ID, labels]], { hostIdentity: 1 });
    expect(compilation.cidrRules.length).toBeGreaterThan(0);
    const compiled = cidr.compile(compilation, ['10.0.1.0/24']);
    plan = compiled.plan;
    const ipcache = new Map<string, IpcacheValue>([
      [`${P}/32`, { identity: POD_ID, nodeIndex: 0, keySlot: 0, flags: MapsAbi.IPC_F_LOCAL | MapsAbi.IPC_F_POD }],
      [`${NODE_X}/32`, { identity: 1, nodeIndex: 0, keySlot: 0, flags: MapsAbi.IPC_F_LOCAL | MapsAbi.IPC_F_NODE }],
    ]);
    for (const [k, v] of plan.ipcache) if (!ipcache.has(k)) ipcache.set(k, v);

    pinDir = `/sys/fs/bpf/veil-test-${uniqueName('ev')}`;
    work = mkdtempSync('/tmp/ev-ipblock-');
    objects = await loadObjects(['from-pod', 'to-pod'].map(programObject), { pinDir });
    const [from, to] = objects as [BpfObject, BpfObject];
    await (await ConfigMap.open(from)).set({ flags: MapsAbi.CFG_F_MODE_WIREGUARD, wireguardIfindex: [0, 0], nodeIdentity: 1, wireguardPort: 51820, nodeIndex: 1 });
    const lxcp = (await ipJson<Array<{ ifindex: number }>>(node, ['link', 'show', 'lxcp']))[0]!.ifindex;
    await (await openEndpointMap(from)).set(lxcp, { identity: POD_ID, flags: MapsAbi.EP_F_ENFORCE_EGRESS | MapsAbi.EP_F_ENFORCE_INGRESS, ipv4: P });
    await (await Ipcache.open(from)).setMany(ipcache);
    await (await openPolicyMap(from)).setMany(compiled.entries.map((e) => [e.key, e.value]));
    counters = await Counters.open(from);
    reader = EventReader.open(from.map('veil_events'), { onEvent: (e) => feed.push(e) });
    await attach(from.program('veil_from_pod_prog'), { interface: 'lxcp', direction: 'ingress', netns: node }, { pinDir });
    await attach(to.program('veil_to_pod_prog'), { interface: 'lxcp', direction: 'egress', netns: node }, { pinDir });

    server = new StatusServer({ host: '127.0.0.1', port: 0, health: new Health(), registry: createAgentMetrics({ defaultMetrics: false }).registry, ready: () => true, routes: { '/events': eventsRoute(feed) } });
    statusUrl = `http://127.0.0.1:${(await server.start()).port}`;
  });

  afterAll(async () => {
    await server?.stop();
    reader?.close();
    feed.close();
    for (const o of objects) o.close();
    objects = [];
    await nets.cleanup();
    if (pinDir) rmSync(pinDir, { recursive: true, force: true });
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('gives every ipBlock prefix a node-local identity in the ipcache', async () => {
    expect([...plan.identities.keys()].sort()).toEqual(['198.51.100.0/24', '198.51.100.20/32']);
    for (const id of plan.identities.values()) expect(isLocalIdentity(id)).toBe(true);
    const ipc = new Map(await (await Ipcache.open(objects[0]!)).entries());
    expect(ipc.get('198.51.100.0/24')?.identity).toBe(plan.identities.get('198.51.100.0/24'));
    // a host prefix: the hash tier
    expect(ipc.get('198.51.100.20/32')?.identity).toBe(plan.identities.get('198.51.100.20/32'));
  });

  it('egress: the pod reaches an address in the block, not one in its except, not one outside it', async () => {
    await eventually(() => ping(pod, X_ALLOWED).then(() => true), { timeoutMs: 10_000, what: `ping ${X_ALLOWED}` });
    expect(await count(Hook.FROM_POD, Reason.FWD_HOST)).toBeGreaterThan(0n);

    const before = await count(Hook.FROM_POD, Reason.DROP_POLICY_DEFAULT_DENY);
    await expect(ping(pod, X_EXCEPT)).rejects.toThrow();
    await expect(ping(pod, X_OUTSIDE)).rejects.toThrow();
    expect(await count(Hook.FROM_POD, Reason.DROP_POLICY_DEFAULT_DENY)).toBeGreaterThanOrEqual(before + 2n);
    const ex = await eventually(() => drops((r) => r.hook === 'FROM_POD' && r.daddr === X_EXCEPT), { what: 'drop event for the except' });
    expect(ex).toMatchObject({ reason: 'DROP_POLICY_DEFAULT_DENY', srcIdentity: POD_ID, srcLabels: 'default:app=web', dstIdentity: plan.identities.get('198.51.100.20/32'), dstLabels: 'cidr:198.51.100.20/32', saddr: P, proto: 'icmp' });
    const out = await eventually(() => drops((r) => r.hook === 'FROM_POD' && r.daddr === X_OUTSIDE), { what: 'drop event for the outside address' });
    expect(out).toMatchObject({ reason: 'DROP_POLICY_DEFAULT_DENY', srcIdentity: POD_ID, dstIdentity: 2, dstLabels: 'reserved:world' });
  });

  it('ingress: UDP 7000 from an address in the block is delivered; from the except it is dropped', async () => {
    const got = join(work, 'udp-7000');
    nets.spawnIn(pod, 'socat', ['-u', 'UDP-RECV:7000', `OPEN:${got},creat,append`]);
    await eventually(
      async () => {
        await runIn(ext, 'sh', ['-c', `echo from-allowed | socat -u - UDP:${P}:7000,bind=${X_ALLOWED}`]);
        await new Promise((r) => setTimeout(r, 200));
        return readFileSync(got, { flag: 'a+' }).toString().includes('from-allowed');
      },
      { timeoutMs: 10_000, what: 'UDP from the allowed address delivered' },
    );
    await runIn(ext, 'sh', ['-c', `echo from-except | socat -u - UDP:${P}:7000,bind=${X_EXCEPT},sourceport=42000`]);
    const e = await eventually(() => drops((r) => r.hook === 'TO_POD' && r.saddr === X_EXCEPT), { what: 'to-pod drop event' });
    expect(e).toMatchObject({ reason: 'DROP_POLICY_DEFAULT_DENY', srcIdentity: plan.identities.get('198.51.100.20/32'), dstIdentity: POD_ID, proto: 'udp', sport: 42000, dport: 7000, daddr: P });
    await new Promise((r) => setTimeout(r, 300));
    expect(readFileSync(got, 'utf8')).not.toContain('from-except');
  });

  it('veil events --json shows the drop with its reason and identities; the text form names them', async () => {
    // the status server runs in this process: the CLI must run asynchronously
    const cli = (args: string[]) =>
      new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve) => {
        const child = spawn(process.execPath, [CLI, 'events', '--node-status', statusUrl, ...args], { stdio: ['ignore', 'pipe', 'pipe'], timeout: 20_000 });
        let stdout = '';
        let stderr = '';
        child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
        child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
        child.once('close', (status) => resolve({ status, stdout, stderr }));
      });
    const r = await cli(['--json', '--type', 'drop', '--address', X_EXCEPT, '--hook', 'from-pod']);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as EventRecord);
    expect(lines.length).toBeGreaterThan(0);
    for (const l of lines) expect(l).toMatchObject({ type: 'drop', hook: 'FROM_POD', reason: 'DROP_POLICY_DEFAULT_DENY', srcIdentity: POD_ID, dstIdentity: plan.identities.get('198.51.100.20/32'), daddr: X_EXCEPT });
    const text = await cli(['--reason', 'policy-default-deny', '--limit', '1', '--identity', String(POD_ID)]);
    expect(text.status).toBe(0);
    expect(text.stdout).toMatch(/DROP POLICY_DEFAULT_DENY/);
    expect(text.stdout).toMatch(/300\(default:app=web\)/);
    const bad = await cli(['--reason', 'nonsense']);
    expect(bad.status).toBe(1);
    expect(bad.stderr).toMatch(/Unknown event reason "nonsense"/);
  });

  it('veil events --follow streams a new drop as it happens', async () => {
    const child = spawn(process.execPath, [CLI, 'events', '--node-status', statusUrl, '--json', '--follow', '--limit', '0', '--address', X_OUTSIDE], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    try {
      await eventually(() => feed.stats.subscribers > 0, { what: 'the follower to subscribe' });
      await expect(ping(pod, X_OUTSIDE)).rejects.toThrow();
      const line = await eventually(() => out.split('\n').find((l) => l.includes(X_OUTSIDE)), { what: 'the streamed drop' });
      expect(JSON.parse(line)).toMatchObject({ type: 'drop', reason: 'DROP_POLICY_DEFAULT_DENY', daddr: X_OUTSIDE, dstIdentity: 2 });
    } finally {
      child.kill('SIGINT');
      await new Promise((r) => child.once('exit', r));
    }
    expect(child.exitCode).toBe(0);
  });
});
