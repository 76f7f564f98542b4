/**
 * `veil lab` on the host kernel: one 2-node × 2-pod lab shared by the tests of this file (built
 * once: the machine is shared), checked with `ip`, ping and the store, then removed; plus the
 * failure paths (second up, IPsec without ESP, Ctrl-C during up).
 */
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { labPodAdd } from '../../../agent/lab/pods.js';
import { labStatus } from '../../../agent/lab/status.js';
import { labUp } from '../../../agent/lab/up.js';
import { IdentityAllocator } from '../../../agent/identity/allocator.js';
import { canonicalLabelSet } from '../../../agent/identity/labels.js';
import { isRunning } from '../../../agent/lab/launcher.js';
import { openLabStore } from '../../../agent/lab/lab-store.js';
import { claimLabDir, labPaths, readLabState, type LabState } from '../../../agent/lab/state.js';
import { loadClusterCaDirectory } from '../../../certs/ca-directory.js';
import { caPaths } from '../../../certs/directory.js';
import { NodeCertificateClient } from '../../../agent/node-cert/node-certificate-client.js';
import { bootstrapKey } from '../../../agent/node-cert/store-keys.js';
import { CertificateSigner } from '../../../agent/operator/certificate-signer.js';
import { ipJson, run, runIn, eventually, uniqueName } from '../../support/netns.js';
import { runVeil, VEIL_CLI, type VeilRun } from '../../support/veil-cli.js';

const name = uniqueName('lb');
let state: LabState;
let netnsBefore: string[];

/** Namespaces of one lab (other helpers' tests add and remove their own at the same time). */
async function labNetns(lab: string): Promise<string[]> {
  return (await netnsList()).filter((n) => n.startsWith(`veil-${lab}-`));
}

async function netnsList(): Promise<string[]> {
  const r = await run('ip', ['-j', 'netns', 'list']);
  return ((r.stdout.trim() ? JSON.parse(r.stdout) : []) as { name: string }[]).map((e) => e.name).sort();
}

async function veil(args: string[], opts: { expectFail?: boolean } = {}): Promise<VeilRun> {
  const r = await runVeil(args, { timeoutMs: 300_000, env: { VEIL_LOG_LEVEL: process.env.VEIL_LOG_LEVEL } });
  if (!opts.expectFail && r.code !== 0) throw new Error(`veil ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  return r;
}

/** Command lines of every process (what pgrep -af shows), read from /proc. */
function commandLines(): string[] {
  return readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .map((d) => {
      try {
        return readFileSync(`/proc/${d}/cmdline`, 'utf8').replaceAll('\0', ' ');
      } catch {
        return '';
      }
    });
}

async function ping(netns: string, dst: string): Promise<void> {
  await runIn(netns, 'ping', [dst.includes(':') ? '-6' : '-4', '-c', '1', '-W', '2', dst]);
}

beforeAll(async () => {
  netnsBefore = await netnsList();
  state = await labUp(
    { name, nodes: 2, podsPerNode: 2, mode: 'wireguard' },
    { nodeProcesses: (n) => [{ name: `sleeper-${n.name}`, command: 'sleep', args: ['600'], log: join(labPaths(name).logs, `sleeper-${n.name}.log`) }] },
  );
});

/** Labs of the failure tests: removed here too if a test failed before it could check. */
const extraLabs: string[] = [];

afterAll(async () => {
  // Safety net when a test failed before the down test ran.
  for (const lab of [name, ...extraLabs]) {
    if (existsSync(labPaths(lab).state)) await veil(['lab', 'down', '--name', lab], { expectFail: true });
  }
});

describe('veil lab up (2 nodes × 2 pods)', () => {
  it('creates the underlay, node and pod namespaces that ip netns lists', async () => {
    const expected = [
      `veil-${name}-underlay`,
      `veil-${name}-node-1`,
      `veil-${name}-node-2`,
      `veil-${name}-pod-frontend-client-1-0`,
      `veil-${name}-pod-backend-server-1-1`,
      `veil-${name}-pod-frontend-client-2-0`,
      `veil-${name}-pod-backend-server-2-1`,
    ];
    const now = await netnsList();
    for (const n of expected) expect(now).toContain(n);
    expect(state.journal.filter((e) => e.kind === 'netns').map((e) => (e as { name: string }).name).sort()).toEqual([...expected].sort());
  });

  it('wires links, addresses and routes as the address plan says (checked with ip)', async () => {
    const u = `veil-${name}-underlay`;
    const links = await ipJson<{ ifname: string; master?: string; operstate: string }[]>(u, ['link', 'show']);
    expect(links.find((l) => l.ifname === 'br0')).toBeDefined();
    for (const port of ['node1', 'node2']) expect(links.find((l) => l.ifname === port)?.master).toBe('br0');
    const brAddrs = await ipJson<{ addr_info: { local: string; prefixlen: number }[] }[]>(u, ['addr', 'show', 'dev', 'br0']);
    expect(brAddrs[0]!.addr_info.map((a) => `${a.local}/${a.prefixlen}`)).toEqual(expect.arrayContaining(['10.77.0.1/24', 'fd77::1/64']));

    const node1 = `veil-${name}-node-1`;
    const eth0 = await ipJson<{ addr_info: { local: string; prefixlen: number }[] }[]>(node1, ['addr', 'show', 'dev', 'eth0']);
    expect(eth0[0]!.addr_info.map((a) => `${a.local}/${a.prefixlen}`)).toEqual(expect.arrayContaining(['10.77.0.11/24', 'fd77::b/64']));
    const routes = await ipJson<{ dst: string; dev: string }[]>(node1, ['route', 'show']);
    expect(routes).toEqual(expect.arrayContaining([expect.objectContaining({ dst: '10.78.1.2', dev: 'lxc2' }), expect.objectContaining({ dst: '10.78.1.3', dev: 'lxc3' })]));
    expect((await runIn(node1, 'cat', ['/proc/sys/net/ipv4/ip_forward'])).stdout.trim()).toBe('1');

    const pod = `veil-${name}-pod-frontend-client-1-0`;
    const podAddrs = await ipJson<{ addr_info: { local: string; prefixlen: number }[] }[]>(pod, ['addr', 'show', 'dev', 'eth0']);
    expect(podAddrs[0]!.addr_info.map((a) => `${a.local}/${a.prefixlen}`)).toEqual(expect.arrayContaining(['10.78.1.2/32', 'fd78:0:0:1::2/128']));
    const podRoutes = await ipJson<{ dst: string; gateway?: string; metrics?: { mtu?: number }[] }[]>(pod, ['route', 'show', 'default']);
    expect(podRoutes[0]).toMatchObject({ dst: 'default', gateway: '10.78.1.1' });
    // Every pod route fits the tunnel: underlay MTU 1500 − WireGuard's 80
    for (const family of ['-4', '-6']) {
      const all = await ipJson<{ dst: string; protocol?: string; metrics?: { mtu?: number }[] }[]>(pod, [family, 'route', 'show']);
      const lab = all.filter((x) => x.protocol !== 'kernel'); // the kernel's own: fe80::/64, the address's /128
      expect(lab.map((r) => r.dst).sort()).toEqual(family === '-4' ? ['10.78.1.1', 'default'] : ['default', 'fd78:0:0:1::1']);
      for (const r of lab) {
        expect({ dst: r.dst, mtu: r.metrics?.find((m) => m.mtu !== undefined)?.mtu }).toEqual({ dst: r.dst, mtu: 1420 });
      }
    }
    const uplink = await ipJson<{ mtu: number }[]>(node1, ['link', 'show', 'dev', 'eth0']);
    expect(uplink[0]!.mtu).toBe(1500);
  });

  it('pods ping their node and each other on the same node (IPv4 and IPv6)', async () => {
    const client = `veil-${name}-pod-frontend-client-1-0`;
    await ping(client, '10.78.1.1');
    await ping(client, 'fd78:0:0:1::1');
    await ping(client, '10.78.1.3');
    await ping(client, 'fd78:0:0:1::3');
    await ping(`veil-${name}-pod-backend-server-2-1`, '10.78.2.2');
  });

  it('nodes ping each other over the underlay and reach the lab etcd there', async () => {
    await ping(`veil-${name}-node-1`, '10.77.0.12');
    await ping(`veil-${name}-node-1`, 'fd77::c');
    await ping(`veil-${name}-node-2`, '10.77.0.11');
    const health = await runIn(`veil-${name}-node-2`, process.execPath, ['-e', "fetch('http://10.77.0.1:2379/health').then((r) => r.text()).then((t) => process.stdout.write(t))"]);
    expect(JSON.parse(health.stdout)).toMatchObject({ health: 'true' });
  });

  it('writes nodes, namespaces (with labels) and pods (labels, service accounts) to the store', async () => {
    const s = await openLabStore(state.etcd!.socket);
    try {
      const nodes = (await s.cluster.list('nodes')).items.map((o) => o.record);
      expect(nodes).toEqual([
        { name: 'node-1', addresses: ['10.77.0.11', 'fd77::b'], podCidrs: ['10.78.1.0/24', 'fd78:0:0:1::/64'], labels: {} },
        { name: 'node-2', addresses: ['10.77.0.12', 'fd77::c'], podCidrs: ['10.78.2.0/24', 'fd78:0:0:2::/64'], labels: {} },
      ]);
      const ns = (await s.cluster.list('namespaces')).items.map((o) => o.record);
      expect(ns.map((n) => n.name).sort()).toEqual(['backend', 'frontend']);
      expect(ns.find((n) => n.name === 'frontend')?.labels).toMatchObject({ tier: 'frontend' });
      const pods = (await s.cluster.list('pods')).items.map((o) => o.record);
      expect(pods).toHaveLength(4);
      expect(pods.find((p) => p.name === 'server-2-1')).toEqual({
        name: 'server-2-1',
        namespace: 'backend',
        labels: { app: 'server' },
        serviceAccount: 'server',
        node: 'node-2',
        addresses: ['10.78.2.3', 'fd78:0:0:2::3'],
      });
    } finally {
      await s.close();
    }
  });

  it('gives each node a registered 0600 bootstrap token, with which the operator issues a certificate openssl verifies', async () => {
    expect(statSync(labPaths(name).state).mode & 0o777).toBe(0o600);
    expect(statSync(join(state.pki!.dir, 'ca-key.pem')).mode & 0o777).toBe(0o600);
    const node = state.nodes[0]!;
    expect(statSync(node.bootstrapToken).mode & 0o777).toBe(0o600);
    expect(existsSync(node.cert)).toBe(false);
    const s = await openLabStore(state.etcd!.socket);
    const signer = new CertificateSigner({ store: s.store, cluster: s.cluster, ca: await loadClusterCaDirectory(state.pki!.dir) });
    const client = new NodeCertificateClient({
      store: s.store,
      node: node.name,
      files: { caBundle: caPaths(state.pki!.dir).bundle, nodeCert: node.cert, nodeKey: node.key, bootstrapToken: node.bootstrapToken },
      renewBeforeMs: 3_600_000,
      timeoutMs: 10_000,
    });
    try {
      for (const n of state.nodes) expect(await s.store.get(bootstrapKey(n.name))).not.toBeNull();
      await signer.start();
      expect((await client.ensure()).source).toBe('issued');
    } finally {
      await client.stop();
      await signer.stop();
      await s.close();
    }
    expect(statSync(node.key).mode & 0o777).toBe(0o600);
    expect(existsSync(node.bootstrapToken)).toBe(false);
    const r = await run('openssl', ['verify', '-CAfile', state.pki!.caCert, node.cert]);
    expect(r.stdout).toContain(': OK');
  });

  it('launches the per-node processes inside their node namespaces', async () => {
    const procs = state.journal.filter((e) => e.kind === 'process');
    expect(procs.map((p) => p.name).sort()).toEqual(['etcd', 'sleeper-node-1', 'sleeper-node-2']);
    for (const p of procs) {
      if (p.kind !== 'process') continue;
      expect(await isRunning(p)).toBe(true);
      const want = statSync(`/run/netns/${p.netns}`).ino;
      expect(statSync(`/proc/${p.pid}/ns/net`).ino).toBe(want);
    }
  });

  it('status --json reports the issue’s schema; identity is null until an agent allocates it', async () => {
    const r = await veil(['lab', 'status', '--name', name, '--json']);
    const s = JSON.parse(r.stdout);
    expect(s.underlay).toEqual({ netns: `veil-${name}-underlay`, bridge: 'br0', ips: ['10.77.0.1', 'fd77::1'] });
    expect(s.nodes).toHaveLength(2);
    for (const n of s.nodes) expect(Object.keys(n)).toEqual(expect.arrayContaining(['name', 'netns', 'underlayIp', 'podCidr']));
    expect(s.nodes[1]).toMatchObject({ name: 'node-2', netns: `veil-${name}-node-2`, underlayIp: '10.77.0.12', podCidr: '10.78.2.0/24' });
    expect(s.pods).toHaveLength(4);
    for (const p of s.pods) {
      expect(Object.keys(p)).toEqual(expect.arrayContaining(['name', 'netns', 'ip', 'node', 'identity']));
      expect(p.identity).toBeNull();
    }
    expect(s.pods[0]).toMatchObject({ name: 'client-1-0', ip: '10.78.1.2', node: 'node-1', netns: `veil-${name}-pod-frontend-client-1-0` });
    expect(s.auditLogs).toEqual([]);
    expect(s.caCert).toBe(state.pki!.caCert);
    expect(s.etcd).toEqual({ url: 'http://10.77.0.1:2379', running: true });
    expect(s.notes.join(' ')).toMatch(/identity is null until an agent/);
  });

  it('status shows the identity an allocator gave a pod’s label set, and a readable table without --json', async () => {
    const s = await openLabStore(state.etcd!.socket);
    let id: number;
    try {
      const ns = await s.cluster.get('namespaces', 'frontend');
      const labels = canonicalLabelSet({ namespace: 'frontend', serviceAccount: 'client', podLabels: { app: 'client' }, namespaceLabels: ns!.record.labels });
      id = (await new IdentityAllocator({ store: s.store }).allocate(labels)).id;
    } finally {
      await s.close();
    }
    const st = JSON.parse((await veil(['lab', 'status', '--name', name, '--json'])).stdout) as { pods: { name: string; identity: number | null }[] };
    expect(st.pods.filter((p) => p.name.startsWith('client-')).map((p) => p.identity)).toEqual([id, id]);
    expect(st.pods.filter((p) => p.name.startsWith('server-')).map((p) => p.identity)).toEqual([null, null]);
    const text = (await veil(['lab', 'status', '--name', name])).stdout;
    expect(text).toContain(`Lab "${name}" (wireguard, ready)`);
    expect(text).toMatch(new RegExp(`frontend/client-1-0\\s+node-1\\s+10\\.78\\.1\\.2 fd78:0:0:1::2\\s+identity ${id}`));
    expect(text).toMatch(/process {3}etcd pid \d+ running/);
  });

  it('a second up with the same name refuses clearly and leaves the running lab alone', async () => {
    const r = await veil(['lab', 'up', '--name', name, '--nodes', '1'], { expectFail: true });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`Lab "${name}" already exists`);
    expect(r.stderr).toContain('[VEIL_LAB_EXISTS]');
    expect((await readLabState(name)).journal).toEqual(state.journal);
    await ping(`veil-${name}-pod-frontend-client-1-0`, '10.78.1.3');
  });

  it('pods add puts a labelled pod on a node (kernel and store); pods delete removes it', async () => {
    const added = await veil(['lab', 'pods', 'add', '--name', name, '--pod', 'web', '--namespace', 'shop', '--node', 'node-2', '--labels', 'app=web,tier=front', '--service-account', 'web']);
    expect(added.stdout).toContain('Added pod "shop/web" on node-2: 10.78.2.4 fd78:0:0:2::4');
    const podNs = `veil-${name}-pod-shop-web`;
    expect(await netnsList()).toContain(podNs);
    await ping(podNs, '10.78.2.2');
    await ping(podNs, 'fd78:0:0:2::1');
    const s = await openLabStore(state.etcd!.socket);
    try {
      expect((await s.cluster.get('pods', 'web', 'shop'))?.record).toMatchObject({ labels: { app: 'web', tier: 'front' }, serviceAccount: 'web', node: 'node-2' });
      expect((await s.cluster.get('namespaces', 'shop'))?.record.name).toBe('shop');
      const dup = await veil(['lab', 'pods', 'add', '--name', name, '--pod', 'web', '--namespace', 'shop', '--node', 'node-1'], { expectFail: true });
      expect(dup.stderr).toContain('already exists');
      await veil(['lab', 'pods', 'delete', '--name', name, '--pod', 'web', '--namespace', 'shop']);
      expect(await netnsList()).not.toContain(podNs);
      expect(await s.cluster.get('pods', 'web', 'shop')).toBeNull();
      expect((await readLabState(name)).pods.map((p) => p.name)).not.toContain('web');
      // The host side of the veth went with the pod's namespace.
      const links = await ipJson<{ ifname: string }[]>(`veil-${name}-node-2`, ['link', 'show']);
      expect(links.map((l) => l.ifname)).not.toContain('lxc4');
    } finally {
      await s.close();
    }
  });

  it('pods add refuses a bad request before creating anything', async () => {
    const before = await labNetns(name);
    await expect(labPodAdd(name, { pod: 'x', namespace: 'shop', node: 'node-9', labels: {}, serviceAccount: 'default' })).rejects.toThrow(/Unknown node "node-9"/);
    await expect(labPodAdd(name, { pod: 'Bad_Pod', namespace: 'shop', node: 'node-1', labels: {}, serviceAccount: 'default' })).rejects.toThrow(/Invalid pod name/);
    expect(await labNetns(name)).toEqual(before);
  });

  it('down removes exactly what the lab made: namespaces, processes, etcd, files', async () => {
    const procs = state.journal.flatMap((e) => (e.kind === 'process' ? [e] : []));
    // Partial state: one namespace and one process are already gone; down must not mind.
    await run('ip', ['netns', 'del', `veil-${name}-pod-backend-server-2-1`]);
    process.kill(procs.find((p) => p.name === 'sleeper-node-1')!.pid, 'SIGKILL');
    const r = await veil(['lab', 'down', '--name', name]);
    expect(r.stdout).toContain(`Lab "${name}" removed`);
    expect(netnsBefore.filter((n) => n.startsWith(`veil-${name}-`))).toEqual([]);
    expect(await labNetns(name)).toEqual([]);
    expect(readdirSync('/run/netns').filter((n) => n.includes(name))).toEqual([]);
    for (const p of procs) expect(await isRunning(p)).toBe(false);
    expect(existsSync(labPaths(name).dir)).toBe(false);
    const again = await veil(['lab', 'status', '--name', name], { expectFail: true });
    expect(again.stderr).toContain('[VEIL_LAB_NOT_FOUND]');
  });
});

describe('veil lab failure paths', () => {
  it('IPsec mode on a kernel without ESP fails early, pointing at the VM harness, and creates nothing', async () => {
    const lab = uniqueName('lb');
    const r = await veil(['lab', 'up', '--name', lab, '--mode', 'ipsec'], { expectFail: true });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/IPsec mode needs ESP, which this kernel lacks/);
    expect(r.stderr).toContain('VM harness');
    expect(r.stderr).toContain('"bash scripts/lab.sh --mode ipsec"');
    expect(r.stderr).toContain('[VEIL_MISSING_DEPENDENCY]');
    expect(await labNetns(lab)).toEqual([]);
    expect((await netnsList()).filter((n) => n.includes('espprobe'))).toEqual([]);
    expect(existsSync(labPaths(lab).dir)).toBe(false);
  });

  it('SIGINT during up removes what was created so far', async () => {
    const lab = uniqueName('lb');
    extraLabs.push(lab);
    const child = spawn(process.execPath, [VEIL_CLI, 'lab', 'up', '--name', lab, '--nodes', '6', '--pods-per-node', '2'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    // Interrupt once a few namespaces exist (the state file journals each one).
    await eventually(
      async () => {
        const text = await readFile(labPaths(lab).state, 'utf8').catch(() => '');
        try {
          return (JSON.parse(text) as LabState).journal.length >= 3;
        } catch {
          return false;
        }
      },
      { intervalMs: 10, timeoutMs: 20_000, what: 'three journaled namespaces' },
    );
    child.kill('SIGINT');
    expect(await exited).toBe(1);
    expect(stderr).toContain('SIGINT received: removing what was created so far');
    expect(stderr).toContain('[VEIL_LAB_INTERRUPTED]');
    expect(await labNetns(lab)).toEqual([]);
    expect(existsSync(labPaths(lab).dir)).toBe(false);
    expect(commandLines().filter((c) => c.includes(`/run/veil/lab/${lab}/`))).toEqual([]);
  });

  it('a failure late in up (a node process that cannot start) removes everything, etcd included', async () => {
    const lab = uniqueName('lb');
    extraLabs.push(lab);
    let etcdPid = 0;
    await expect(
      labUp(
        { name: lab, nodes: 1, podsPerNode: 1, mode: 'wireguard' },
        {
          nodeProcesses: (_n, st) => {
            const e = st.journal.find((j) => j.kind === 'process' && j.name === 'etcd');
            etcdPid = e && e.kind === 'process' ? e.pid : 0;
            return [{ name: 'agent', command: '/nonexistent/veil-agent', args: [], log: join(labPaths(lab).logs, 'agent.log') }];
          },
        },
      ),
    ).rejects.toMatchObject({ code: 'VEIL_LAB_PROCESS' });
    expect(etcdPid).toBeGreaterThan(0);
    expect(existsSync(`/proc/${etcdPid}`) && readFileSync(`/proc/${etcdPid}/cmdline`, 'utf8').includes('etcd')).toBe(false);
    expect(await labNetns(lab)).toEqual([]);
    expect(existsSync(labPaths(lab).dir)).toBe(false);
  });

  it('a leftover namespace with a lab name stops up with a clear message and is left alone', async () => {
    const lab = uniqueName('lb');
    extraLabs.push(lab);
    const leftover = `veil-${lab}-node-1`;
    await run('ip', ['netns', 'add', leftover]);
    try {
      const r = await veil(['lab', 'up', '--name', lab, '--nodes', '1', '--pods-per-node', '0'], { expectFail: true });
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(`Network namespace "${leftover}" already exists but is not part of this lab`);
      expect(r.stderr).toContain(`ip netns del ${leftover}`);
      expect(await labNetns(lab)).toEqual([leftover]);
      expect(existsSync(labPaths(lab).dir)).toBe(false);
    } finally {
      await run('ip', ['netns', 'del', leftover]);
    }
  });

  it('status of a lab that does not exist says how to start one', async () => {
    await expect(labStatus('lbnonexistent')).rejects.toMatchObject({ code: 'VEIL_LAB_NOT_FOUND', message: expect.stringContaining('veil lab up --name lbnonexistent') });
  });
});

describe('veil lab down on what an interrupted up left', () => {
  it('releases a claimed name whose state file was never written', async () => {
    const lab = uniqueName('lb');
    await claimLabDir(lab);
    const r = await veil(['lab', 'down', '--name', lab]);
    expect(r.stdout).toContain(`Lab "${lab}" removed: 0 objects`);
    expect(existsSync(labPaths(lab).dir)).toBe(false);
  });

  it('refuses a damaged state file and says how to clean up by hand', async () => {
    const lab = uniqueName('lb');
    await claimLabDir(lab);
    try {
      await writeFile(labPaths(lab).state, JSON.stringify({ v: 1, name: lab, journal: [{ kind: 'netns', name: 'production' }] }));
      const r = await veil(['lab', 'down', '--name', lab], { expectFail: true });
      expect(r.code).toBe(1);
      expect(r.stderr).toContain('[VEIL_LAB_STATE]');
      expect(r.stderr).toContain('remove the lab\'s namespaces');
    } finally {
      await rm(labPaths(lab).dir, { recursive: true, force: true });
    }
  });
});
