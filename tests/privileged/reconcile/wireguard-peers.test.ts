/**
 * The WireGuard peer reconciler against real wireguard-go (userspace backend): three node
 * namespaces on an underlay bridge, a pod namespace behind each node, both channel devices per
 * node set up and peered only from node records. Traffic between the pods crosses the tunnel and
 * the underlay carries nothing but WireGuard UDP; a restarted reconciler adopts without touching
 * a peer; a node key rotation through the two channels loses no packet of continuous pings; bad
 * records change nothing. Tests use `ip`, `ping`, `socat` and `tcpdump` for topology and checks
 * only.
 */
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NodeRecordError } from '../../../agent/keys/errors.js';
import type { NodeRecord, NodeRecordKey } from '../../../agent/keys/node-record.js';
import { X25519PrivateKey } from '../../../agent/keys/x25519.js';
import { moduleLogger } from '../../../agent/log/logger.js';
import { setUpChannelDevices } from '../../../agent/reconcile/wireguard-channel-devices.js';
import { steadyChannelState, type WireGuardChannelState } from '../../../agent/reconcile/wireguard-channel-state.js';
import { WireGuardReconcileError } from '../../../agent/reconcile/wireguard-errors.js';
import { WireGuardLocalRotation, type ChannelAcks } from '../../../agent/reconcile/wireguard-local-rotation.js';
import { WireGuardPeerReconciler } from '../../../agent/reconcile/wireguard-peers.js';
import type { WgDevice, WgDeviceConfig, WireGuardBackend } from '../../../agent/wireguard/backend.js';
import { netlinkLinkOps } from '../../../agent/wireguard/link-ops.js';
import { UserspaceWireGuardBackend } from '../../../agent/wireguard/userspace-backend.js';
import { eventually, NetnsSet, run, runIn } from '../../support/netns.js';
import { capturedLog } from '../../support/captured-log.js';

const PORT = 51870;
const BASE = 'veil';
const UNDERLAY_MTU = 1500;

/** A real backend that counts what is asked of it (to prove adoption changes nothing). */
class CountingBackend implements WireGuardBackend {
  readonly sets: { name: string; config: WgDeviceConfig }[] = [];
  readonly deletes: string[] = [];
  constructor(private readonly inner: WireGuardBackend) {}
  get kind() {
    return this.inner.kind;
  }
  get netns() {
    return this.inner.netns;
  }
  createDevice(name: string) {
    return this.inner.createDevice(name);
  }
  deleteDevice(name: string) {
    this.deletes.push(name);
    return this.inner.deleteDevice(name);
  }
  getDevice(name: string): Promise<WgDevice> {
    return this.inner.getDevice(name);
  }
  setDevice(name: string, config: WgDeviceConfig) {
    this.sets.push({ name, config });
    return this.inner.setDevice(name, config);
  }
  close() {
    return this.inner.close();
  }
}

interface TestNode {
  i: number;
  name: string;
  ns: string;
  podNs: string;
  underlayIp: string;
  pod4: string;
  pod6: string;
  podCidrs: string[];
  /** Live node keys by generation. */
  keys: Map<number, X25519PrivateKey>;
  state: WireGuardChannelState;
  backend: CountingBackend;
  reconciler: WireGuardPeerReconciler;
  sequence: number;
}

async function requireTools(): Promise<void> {
  for (const [tool, pkg] of [['wireguard-go', 'wireguard-go'], ['tcpdump', 'tcpdump'], ['socat', 'socat'], ['ping', 'iputils-ping']]) {
    await run('sh', ['-c', `command -v ${tool}`]).catch(() => {
      throw new Error(`"${tool}" is missing: install the Debian package ${pkg} (bash scripts/setup.sh)`);
    });
  }
}

describe('WireGuardPeerReconciler with wireguard-go on three nodes', () => {
  const nets = new NetnsSet();
  const { log, lines: logLines } = capturedLog();
  let stateDir: string;
  let underlay: string;
  const nodes: TestNode[] = [];

  function record(n: TestNode): NodeRecord {
    const newest = Math.max(...n.keys.keys());
    const keys: NodeRecordKey[] = [...n.keys].map(([generation, k]) => ({ kind: 'node', identity: 0, generation, publicKey: k.publicKey.base64, state: generation === newest ? 'active' : 'superseded' }));
    return {
      version: 1,
      name: n.name,
      addresses: [n.underlayIp],
      podCidrs: n.podCidrs,
      bootId: '0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0',
      keys,
      issuedAt: Date.now(),
      sequence: ++n.sequence,
    };
  }

  function newBackend(ns: string): CountingBackend {
    return new CountingBackend(new UserspaceWireGuardBackend({ netns: ns, links: netlinkLinkOps, stateDir, log: moduleLogger(log, 'wireguard-userspace') }));
  }

  function newReconciler(n: TestNode, backend: WireGuardBackend, extra: Partial<ConstructorParameters<typeof WireGuardPeerReconciler>[0]> = {}): WireGuardPeerReconciler {
    return new WireGuardPeerReconciler({
      backend,
      deviceBase: BASE,
      port: PORT,
      localNode: n.name,
      localPodCidrs: n.podCidrs,
      localChannels: n.state,
      persistentKeepalive: 0,
      routes: { source: { 4: `10.77.${n.i}.1`, 6: `fd77:0:0:${n.i + 1}::1` } },
      log: moduleLogger(log, 'wireguard-peers'),
      ...extra,
    });
  }

  /** Sets up (or adopts) the channel devices of `n` and a fresh reconciler over `backend`. */
  async function startNode(n: TestNode, backend: CountingBackend): Promise<void> {
    const g = n.state.generations;
    await setUpChannelDevices(backend, { base: BASE, port: PORT, underlayMtu: UNDERLAY_MTU }, [n.keys.get(g[0])!, n.keys.get(g[1])!], moduleLogger(log, 'wireguard-devices'));
    n.backend = backend;
    n.reconciler = newReconciler(n, backend);
    await n.reconciler.adopt();
  }

  /** Every node learns `from`'s current record and channel state. */
  async function publish(from: TestNode): Promise<void> {
    const rec = record(from);
    for (const n of nodes) await n.reconciler.update(from.name, { record: rec, channels: from.state });
  }

  async function syncAll(): Promise<void> {
    for (const n of nodes) await publish(n);
    for (const n of nodes) await n.reconciler.prune();
  }

  async function pidsIn(ns: string): Promise<number[]> {
    const r = await run('ip', ['netns', 'pids', ns]);
    return r.stdout.split(/\s+/).filter(Boolean).map(Number);
  }

  interface PingResult {
    sent: number;
    received: number;
    /** Sequence numbers never answered, for the failure message. */
    missing: number[];
  }

  /** `ping` from a namespace at `intervalS` for `count` packets. */
  function pingStream(ns: string, dst: string, count: number, intervalS = 0.01): { done: Promise<PingResult> } {
    const child = spawn('ip', ['netns', 'exec', ns, 'ping', '-n', '-D', '-i', String(intervalS), '-c', String(count), '-W', '2', dst], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => (out += String(d)));
    child.stderr.on('data', (d) => (out += String(d)));
    const done = new Promise<PingResult>((resolve) =>
      child.on('exit', () => {
        const m = /(\d+) packets transmitted, (\d+) received/.exec(out);
        const seen = new Set([...out.matchAll(/icmp_seq=(\d+) ttl=/g)].map((x) => Number(x[1])));
        const missing = Array.from({ length: count }, (_, k) => k + 1).filter((k) => !seen.has(k));
        resolve(m ? { sent: Number(m[1]), received: Number(m[2]), missing } : { sent: -1, received: -1, missing: [] });
      }),
    );
    return { done };
  }

  /** Devices and routes of every node, for a failure message. */
  async function diagnose(): Promise<string> {
    const lines: string[] = [];
    for (const n of nodes) {
      for (const d of [0, 1] as const) {
        const dev = await n.backend.getDevice(`${BASE}${d}`);
        lines.push(`${n.name} ${BASE}${d} key=${dev.publicKey?.toString('base64').slice(0, 6)}`);
        for (const p of dev.peers) {
          lines.push(`  peer ${p.publicKey.toString('base64').slice(0, 6)} ep=${p.endpoint} hs=${p.lastHandshakeMs ? Date.now() - p.lastHandshakeMs : null}ms ago rx=${p.rxBytes} tx=${p.txBytes} ips=${p.allowedIps.join(',')}`);
        }
      }
      lines.push((await run('ip', ['-n', n.ns, 'route', 'show', 'proto', '118'])).stdout.trim());
      lines.push(`  steering ${nodes.map((o) => `${o.name}:${n.reconciler.steeringChannel(o.name)}`).join(' ')}`);
    }
    return `\n${lines.join('\n')}`;
  }

  async function peerKeys(n: TestNode, d: 0 | 1): Promise<Map<string, string[]>> {
    const dev = await n.backend.getDevice(`${BASE}${d}`);
    return new Map(dev.peers.map((p) => [p.publicKey.toString('base64'), [...p.allowedIps].sort()]));
  }

  beforeAll(async () => {
    await requireTools();
    stateDir = mkdtempSync('/tmp/wgr-');
    underlay = await nets.add('wg-u');
    await run('ip', ['-n', underlay, 'link', 'add', 'br0', 'type', 'bridge']);
    await run('ip', ['-n', underlay, 'link', 'set', 'br0', 'up']);
    for (let i = 0; i < 3; i++) {
      const ns = await nets.add('wg-n');
      const podNs = await nets.add('wg-p');
      const underlayIp = `192.168.77.${10 + i}`;
      // Underlay: node eth0 <-> port on the bridge.
      await run('ip', ['link', 'add', 'eth0', 'netns', ns, 'type', 'veth', 'peer', 'name', `port${i}`, 'netns', underlay]);
      await run('ip', ['-n', underlay, 'link', 'set', `port${i}`, 'master', 'br0', 'up']);
      await run('ip', ['-n', ns, 'addr', 'add', `${underlayIp}/24`, 'dev', 'eth0']);
      await run('ip', ['-n', ns, 'link', 'set', 'eth0', 'mtu', String(UNDERLAY_MTU), 'up']);
      // Pod: pod eth0 <-> node pod0, the pod's addresses inside the node's pod CIDRs.
      const pod4 = `10.77.${i}.2`;
      const pod6 = `fd77:0:0:${i + 1}::2`;
      await run('ip', ['link', 'add', 'pod0', 'netns', ns, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', podNs]);
      await run('ip', ['-n', ns, 'addr', 'add', `10.77.${i}.1/24`, 'dev', 'pod0']);
      await run('ip', ['-n', ns, 'addr', 'add', `fd77:0:0:${i + 1}::1/64`, 'dev', 'pod0', 'nodad']);
      await run('ip', ['-n', ns, 'link', 'set', 'pod0', 'up']);
      await run('ip', ['-n', podNs, 'addr', 'add', `${pod4}/24`, 'dev', 'eth0']);
      await run('ip', ['-n', podNs, 'addr', 'add', `${pod6}/64`, 'dev', 'eth0', 'nodad']);
      await run('ip', ['-n', podNs, 'link', 'set', 'eth0', 'up']);
      await run('ip', ['-n', podNs, 'route', 'add', 'default', 'via', `10.77.${i}.1`]);
      await run('ip', ['-n', podNs, '-6', 'route', 'add', 'default', 'via', `fd77:0:0:${i + 1}::1`]);
      for (const s of ['net.ipv4.ip_forward=1', 'net.ipv6.conf.all.forwarding=1', 'net.ipv4.conf.all.rp_filter=0', 'net.ipv4.conf.default.rp_filter=0']) {
        await runIn(ns, 'sysctl', ['-qw', s]);
      }
      const n: TestNode = {
        i,
        name: `node-${i}`,
        ns,
        podNs,
        underlayIp,
        pod4,
        pod6,
        podCidrs: [`10.77.${i}.0/24`, `fd77:0:0:${i + 1}::/64`],
        keys: new Map([[1, X25519PrivateKey.generate()]]),
        state: steadyChannelState(1),
        backend: undefined as unknown as CountingBackend,
        reconciler: undefined as unknown as WireGuardPeerReconciler,
        sequence: 0,
      };
      nodes.push(n);
      await startNode(n, newBackend(ns));
    }
  });

  afterAll(async () => {
    for (const n of nodes) await n.backend?.close().catch(() => undefined);
    for (const ns of nets.names) {
      for (const pid of await pidsIn(ns).catch(() => [])) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
    }
    await nets.cleanup();
    if (stateDir) rmSync(stateDir, { recursive: true, force: true });
  });

  it('reconciles from records: pods talk through the tunnel and the underlay carries only WireGuard UDP', async () => {
    // Tunnel routes exist before any traffic and before any pod is known (#35331).
    await syncAll();
    for (const n of nodes) {
      const routes = JSON.parse((await run('ip', ['-n', n.ns, '-j', 'route', 'show', 'proto', '118'])).stdout) as { dst: string; dev: string; prefsrc?: string }[];
      const routes6 = JSON.parse((await run('ip', ['-n', n.ns, '-6', '-j', 'route', 'show', 'proto', '118'])).stdout) as { dst: string; dev: string }[];
      const others = nodes.filter((o) => o !== n);
      expect(routes.map((r) => [r.dst, r.dev, r.prefsrc]).sort()).toEqual(others.map((o) => [o.podCidrs[0], `${BASE}0`, `10.77.${n.i}.1`]).sort());
      expect(routes6.map((r) => [r.dst, r.dev]).sort()).toEqual(others.map((o) => [o.podCidrs[1], `${BASE}0`]).sort());
      for (const d of [0, 1] as const) {
        const dev = await n.backend.getDevice(`${BASE}${d}`);
        expect(dev.listenPort).toBe(PORT + d);
        expect(dev.publicKey).toEqual(n.keys.get(1)!.publicKey.raw);
        expect(dev.peers.map((p) => [p.publicKey.toString('base64'), p.endpoint, [...p.allowedIps].sort()]).sort()).toEqual(
          others.map((o) => [o.keys.get(1)!.publicKey.base64, `${o.underlayIp}:${PORT + d}`, [...o.podCidrs].sort()]).sort(),
        );
        const link = JSON.parse((await run('ip', ['-n', n.ns, '-j', 'link', 'show', `${BASE}${d}`])).stdout)[0];
        expect(link.mtu).toBe(UNDERLAY_MTU - 80);
        expect(link.flags).toContain('UP');
      }
      expect(n.reconciler.steeringChannel(others[0]!.name)).toBe(0);
    }

    const pcap = join(stateDir, 'underlay.pcap');
    const tcpdump = spawn('ip', ['netns', 'exec', underlay, 'tcpdump', '-i', 'br0', '-n', '-U', '-w', pcap], { stdio: ['ignore', 'ignore', 'pipe'] });
    let tcpdumpErr = '';
    tcpdump.stderr.on('data', (d) => (tcpdumpErr += String(d)));
    const tcpdumpExit = new Promise<void>((r) => tcpdump.on('exit', () => r()));
    await eventually(() => tcpdumpErr.includes('listening on'), { what: 'tcpdump listening' });
    try {
      for (const [a, b] of [[0, 1], [1, 2], [2, 0]] as const) {
        await eventually(() => runIn(nodes[a]!.podNs, 'ping', ['-c', '1', '-W', '1', nodes[b]!.pod4]).then(() => true), { timeoutMs: 15_000, what: `ping pod ${a} -> pod ${b}` });
        await runIn(nodes[a]!.podNs, 'ping', ['-c', '3', '-i', '0.2', '-W', '1', nodes[b]!.pod4]);
      }
      await eventually(() => runIn(nodes[0]!.podNs, 'ping', ['-6', '-c', '1', '-W', '1', nodes[2]!.pod6]).then(() => true), { timeoutMs: 15_000, what: 'ping6 pod 0 -> pod 2' });
      // Host-originated traffic follows the tunnel route with a pod-CIDR source.
      await runIn(nodes[1]!.ns, 'ping', ['-c', '2', '-i', '0.2', '-W', '1', nodes[0]!.pod4]);

      // 1 MiB over TCP from pod 2 to pod 1, checked end to end.
      const src = join(stateDir, 'tcp-src');
      const dst = join(stateDir, 'tcp-dst');
      writeFileSync(src, randomBytes(1 << 20));
      const server = nets.spawnIn(nodes[1]!.podNs, 'socat', ['-u', `TCP-LISTEN:5001,bind=${nodes[1]!.pod4},reuseaddr`, `CREATE:${dst}`]);
      const serverDone = new Promise<number | null>((r) => server.on('exit', (code) => r(code)));
      await eventually(() => runIn(nodes[1]!.podNs, 'ss', ['-Hltn', 'sport = :5001']).then((x) => x.stdout.includes('5001')), { what: 'socat listening' });
      await runIn(nodes[2]!.podNs, 'socat', ['-u', `FILE:${src}`, `TCP:${nodes[1]!.pod4}:5001`]);
      expect(await serverDone).toBe(0);
      const sha = (p: string) => createHash('sha256').update(readFileSync(p)).digest('hex');
      expect(sha(dst)).toBe(sha(src));
    } finally {
      tcpdump.kill('SIGINT');
      await tcpdumpExit;
    }
    const read = async (filter: string) => (await run('tcpdump', ['-r', pcap, '-n', filter])).stdout.trim().split('\n').filter(Boolean);
    const wireguard = await read(`udp and (port ${PORT} or port ${PORT + 1})`);
    expect(wireguard.length).toBeGreaterThan(700); // 1 MiB of TCP alone is > 700 datagrams
    // IGMP membership reports of the links themselves are the only other IPv4 on the wire.
    expect(await read(`ip and not igmp and not (udp and (port ${PORT} or port ${PORT + 1}))`)).toEqual([]);
    expect(await read('net 10.77.0.0/16 or net fd77::/16')).toEqual([]);
    // The underlay is IPv4; IPv6 on it is only the links' own link-local multicast (MLD reports).
    expect(await read('ip6 and not dst net ff02::/16')).toEqual([]);
  });

  it('a restarted reconciler adopts devices, peers and routes: nothing set, no session reset, no ping lost', async () => {
    const before = await Promise.all(nodes.map((n) => n.backend.getDevice(`${BASE}0`)));
    const routesBefore = await Promise.all(nodes.map((n) => run('ip', ['-n', n.ns, 'route', 'show', 'proto', '118']).then((r) => r.stdout)));
    const pids = await Promise.all(nodes.map((n) => pidsIn(n.ns)));
    const ping = pingStream(nodes[0]!.podNs, nodes[1]!.pod4, 300);
    await new Promise((r) => setTimeout(r, 500));
    for (const n of nodes) {
      await n.backend.close();
      await startNode(n, newBackend(n.ns));
    }
    await syncAll();
    const { sent, received } = await ping.done;
    expect(sent).toBe(300);
    expect(received).toBe(sent);
    for (const [k, n] of nodes.entries()) {
      expect(n.backend.sets).toEqual([]);
      expect(n.backend.deletes).toEqual([]);
      expect(await pidsIn(n.ns)).toEqual(pids[k]);
      const after = await n.backend.getDevice(`${BASE}0`);
      expect(after.ifindex).toBe(before[k]!.ifindex);
      for (const p of before[k]!.peers) {
        const q = after.peers.find((x) => x.publicKey.equals(p.publicKey))!;
        expect(q).toBeDefined();
        // A peer removed and added again would restart its counters and forget its handshake.
        expect(q.rxBytes).toBeGreaterThanOrEqual(p.rxBytes);
        if (p.lastHandshakeMs !== null) expect(q.lastHandshakeMs).not.toBeNull();
      }
      expect((await run('ip', ['-n', n.ns, 'route', 'show', 'proto', '118'])).stdout).toBe(routesBefore[k]);
    }
    expect(logLines.join('')).toContain('Adopted WireGuard channel device');
  });

  it('rotates one node\'s key through the two channels under continuous pings: 0 packets lost', async () => {
    const n1 = nodes[1]!;
    const others = nodes.filter((n) => n !== n1);
    const oldKey = n1.keys.get(1)!;
    const newKey = X25519PrivateKey.generate();
    const acks = (): ChannelAcks => new Map(others.map((o) => [o.name, o.reconciler.installedGenerations(n1.name)]));
    const streams = [
      pingStream(nodes[0]!.podNs, n1.pod4, 1000),
      pingStream(n1.podNs, nodes[2]!.pod4, 1000),
      pingStream(nodes[2]!.podNs, n1.pod6, 1000),
    ];
    const started = Date.now();
    /** When each step finished, as the ping sequence number sent about then. */
    const steps: Record<string, number> = {};
    const step = (name: string) => (steps[name] = Math.round((Date.now() - started) / 10));
    await new Promise((r) => setTimeout(r, 1000));

    const rotation = new WireGuardLocalRotation({ backend: n1.backend, deviceBase: BASE, reconciler: n1.reconciler, log: moduleLogger(log, 'wireguard-rotation') });
    // generate + publish: A steers off channel d, then publishes the new key pending on d.
    n1.keys.set(2, newKey);
    n1.state = await rotation.begin(2);
    step('begin');
    const d = n1.state.draining!;
    expect(d).toBe(1); // every peer steers on channel 0
    expect(n1.reconciler.steeringChannel(nodes[0]!.name)).toBe(0);
    // Activating before the peers acknowledged is refused and changes nothing.
    await expect(rotation.activate(newKey, acks())).rejects.toThrow(expect.objectContaining({ code: 'VEIL_WG_ROTATION' }));
    expect((await n1.backend.getDevice(`${BASE}${d}`)).publicKey).toEqual(oldKey.publicKey.raw);
    await publish(n1);
    step('published');
    for (const o of others) {
      expect(o.reconciler.steeringChannel(n1.name)).toBe(0);
      expect(o.reconciler.installedGenerations(n1.name)).toEqual([1, 2]);
      expect([...(await peerKeys(o, 1)).keys()]).toContain(newKey.publicKey.base64);
      expect([...(await peerKeys(o, 1)).keys()]).not.toContain(oldKey.publicKey.base64);
    }
    // activate on d, then retire the old channel.
    n1.state = await rotation.activate(newKey, acks());
    step('activated');
    expect((await n1.backend.getDevice(`${BASE}${d}`)).publicKey).toEqual(newKey.publicKey.raw);
    // The rotating node moved to the re-keyed channel first; its peers stay until the old one drains.
    for (const o of others) expect(n1.reconciler.steeringChannel(o.name)).toBe(d);
    await publish(n1);
    for (const o of others) expect(o.reconciler.steeringChannel(n1.name)).toBe(0);
    n1.state = await rotation.drainOther();
    await publish(n1);
    step('drained-old');
    for (const o of others) expect(o.reconciler.steeringChannel(n1.name)).toBe(d);
    for (const o of others) expect(o.reconciler.installedGenerations(n1.name)).toEqual([2, 2]);
    n1.state = await rotation.complete(newKey, acks());
    await publish(n1);
    step('completed');
    // destroy: generation 1 leaves the record.
    n1.keys.delete(1);
    n1.state = steadyChannelState(2);
    await publish(n1);
    const rotationMs = Date.now() - started;
    // A completed rotation moves nobody: everyone stays on the channel re-keyed first.
    for (const o of others) {
      expect(o.reconciler.steeringChannel(n1.name)).toBe(d);
      expect(n1.reconciler.steeringChannel(o.name)).toBe(d);
    }

    const results = await Promise.all(streams.map((s) => s.done));
    expect(rotationMs).toBeLessThan(9000); // the rotation happened while the pings ran
    const failed = results.some((r) => r.received !== r.sent);
    const diag = failed ? await diagnose() : '';
    for (const [k, r] of results.entries()) {
      const where = `stream ${k}: ${r.received}/${r.sent}; unanswered ${JSON.stringify(r.missing.slice(0, 20))}…${JSON.stringify(r.missing.slice(-5))}; steps at ${JSON.stringify(steps)}${diag}`;
      expect(r.sent, where).toBe(1000);
      expect(r.received, where).toBe(r.sent);
    }
    for (const ch of [0, 1] as const) {
      expect((await n1.backend.getDevice(`${BASE}${ch}`)).publicKey).toEqual(newKey.publicKey.raw);
      for (const o of others) {
        const keys = await peerKeys(o, ch);
        expect(keys.get(newKey.publicKey.base64)).toEqual([...n1.podCidrs].sort());
        expect(keys.has(oldKey.publicKey.base64)).toBe(false);
      }
    }
    await runIn(nodes[0]!.podNs, 'ping', ['-c', '2', '-i', '0.2', '-W', '1', n1.pod4]);
    expect(logLines.join('')).not.toContain(newKey.exportRaw().toString('base64'));
  });

  it('refuses bad records with clear errors and leaves devices and routes unchanged', async () => {
    const n0 = nodes[0]!;
    const snapshot = async () => ({
      d0: await peerKeys(n0, 0),
      d1: await peerKeys(n0, 1),
      routes: (await run('ip', ['-n', n0.ns, 'route', 'show', 'proto', '118'])).stdout,
    });
    const before = await snapshot();
    const stranger = {
      i: 9,
      name: 'node-x',
      underlayIp: '192.168.77.99',
      podCidrs: ['10.77.9.0/24'],
      keys: new Map([[1, X25519PrivateKey.generate()]]),
      sequence: 0,
    } as unknown as TestNode;
    const good = record(stranger);

    const shortKey = { ...good, keys: [{ kind: 'node' as const, identity: 0, generation: 1, publicKey: Buffer.alloc(31, 1).toString('base64'), state: 'active' as const }] };
    const e1 = await n0.reconciler.update('node-x', { record: shortKey }).catch((e: unknown) => e);
    expect(e1).toBeInstanceOf(NodeRecordError);
    expect((e1 as Error).message).toMatch(/^Malformed node record of "node-x" at "keys\[0\]\.publicKey": expected 44 characters/);

    const overlap = { ...good, podCidrs: ['10.77.1.128/25'] };
    const e2 = await n0.reconciler.update('node-x', { record: overlap }).catch((e: unknown) => e);
    expect(e2).toBeInstanceOf(WireGuardReconcileError);
    expect(e2).toMatchObject({ code: 'VEIL_WG_CONFLICT', node: 'node-x' });
    expect((e2 as Error).message).toContain('pod CIDR "10.77.1.128/25" overlaps pod CIDR "10.77.1.0/24" of node "node-1"');

    const local = { ...good, podCidrs: ['10.77.0.0/16'] };
    await expect(n0.reconciler.update('node-x', { record: local })).rejects.toThrow(/overlaps this node's own pod CIDR "10\.77\.0\.0\/24"/);

    const badState = await n0.reconciler.update('node-x', { record: good, channels: { generations: [1, 2], draining: 1 } }).catch((e: unknown) => e);
    expect(badState).toMatchObject({ code: 'VEIL_WG_BAD_RECORD' });

    const strict = newReconciler(n0, n0.backend, {
      verify: () => {
        throw new NodeRecordError('signature_invalid', 'node-x', 'Node record of "node-x" has an invalid signature: the record was changed after signing');
      },
    });
    await strict.adopt();
    await expect(strict.update('node-x', { record: good })).rejects.toMatchObject({ reason: 'signature_invalid' });

    expect(await snapshot()).toEqual(before);
    // The same record, well-formed, is accepted and then removed again.
    await n0.reconciler.update('node-x', { record: good });
    expect((await peerKeys(n0, 0)).get(stranger.keys.get(1)!.publicKey.base64)).toEqual(['10.77.9.0/24']);
    await n0.reconciler.delete('node-x');
    expect(await snapshot()).toEqual(before);
  });

  it('prune() after sync removes only the peers and Veil routes no node claims', async () => {
    const n0 = nodes[0]!;
    const stray = X25519PrivateKey.generate().publicKey;
    await n0.backend.setDevice(`${BASE}1`, { peers: [{ publicKey: stray.raw, endpoint: '192.168.77.99:51871', allowedIps: ['10.77.99.0/24'] }] });
    await run('ip', ['-n', n0.ns, 'route', 'add', '10.77.98.0/24', 'dev', `${BASE}1`, 'proto', '118']);
    await run('ip', ['-n', n0.ns, 'route', 'add', '10.77.97.0/24', 'dev', `${BASE}1`, 'proto', 'static']);
    const before = { d0: await peerKeys(n0, 0), d1: await peerKeys(n0, 1) };
    // A restarted agent sees the strays but keeps them until every source synced.
    await n0.backend.close();
    await startNode(n0, newBackend(n0.ns));
    for (const o of nodes) if (o !== n0) await n0.reconciler.update(o.name, { record: record(o), channels: o.state });
    expect((await peerKeys(n0, 1)).has(stray.base64)).toBe(true);
    await n0.reconciler.prune();
    const d1 = await peerKeys(n0, 1);
    expect(d1.has(stray.base64)).toBe(false);
    before.d1.delete(stray.base64);
    expect({ d0: await peerKeys(n0, 0), d1 }).toEqual(before);
    const routes = (await run('ip', ['-n', n0.ns, 'route', 'show', 'dev', `${BASE}1`])).stdout;
    expect(routes).not.toContain('10.77.98.0/24');
    expect(routes).toContain('10.77.97.0/24 proto static');
    expect(n0.backend.sets.map((x) => x.config.peers?.map((p) => [p.publicKey.toString('base64'), p.remove === true]))).toEqual([[[stray.base64, true]]]);
  });
});
