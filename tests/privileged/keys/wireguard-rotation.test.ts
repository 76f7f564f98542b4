/**
 * The agent's WireGuard node key rotation end to end below the agent process: three nodes, each
 * with its own key manager, WireGuard key hooks, peer reconciler and wireguard-go channel devices
 * (userspace backend) in its own network namespace, one real etcd, real node certificates. The
 * key managers bring the nodes up from nothing; then node 1's key is rotated on demand under
 * continuous pings between the pods (both directions, IPv4 and IPv6): 0 packets lost, every
 * step audited in order, the rotation lease taken and given back; a second rotation survives a
 * restart of node 1's agent parts between activation and draining the old channel (0 lost, resumed
 * from the published state, no new key). A record with an inconsistent channel state is refused
 * whole and audited, and changes no device.
 */
import { spawn } from 'node:child_process';
import { sign } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openAuditLog, type AuditLog } from '../../../agent/audit/audit-log.js';
import { keyObjectSigner } from '../../../agent/audit/signer.js';
import { KeyManager } from '../../../agent/keys/key-manager.js';
import { KeyStorePaths } from '../../../agent/keys/key-store-paths.js';
import type { NodeRecord } from '../../../agent/keys/node-record.js';
import { nodeRecordSigningBytes } from '../../../agent/keys/node-record-sign.js';
import { parsePeerAck } from '../../../agent/keys/peer-ack.js';
import { X25519PrivateKey } from '../../../agent/keys/x25519.js';
import { moduleLogger } from '../../../agent/log/logger.js';
import { WireGuardKeyHooks } from '../../../agent/node-agent/wireguard-key-hooks.js';
import { WireGuardPeerReconciler } from '../../../agent/reconcile/wireguard-peers.js';
import { openEtcdStore, type EtcdStore } from '../../../agent/store/etcd-store.js';
import { netlinkLinkOps } from '../../../agent/wireguard/link-ops.js';
import { UserspaceWireGuardBackend } from '../../../agent/wireguard/userspace-backend.js';
import { EtcdServer } from '../../support/etcd.js';
import { eventually, NetnsSet, run, runIn } from '../../support/netns.js';
import { OpensslPki, type Issued, type TestCa } from '../../support/openssl-pki.js';
import { capturedLog } from '../../support/captured-log.js';

const PORT = 51890;
const BASE = 'wrwg';
const paths = new KeyStorePaths();

interface Node {
  i: number;
  name: string;
  ns: string;
  podNs: string;
  pod4: string;
  pod6: string;
  dir: string;
  cert: Issued;
  store: EtcdStore;
  audit: AuditLog;
  backend: UserspaceWireGuardBackend;
  reconciler: WireGuardPeerReconciler;
  hooks: WireGuardKeyHooks;
  manager: KeyManager;
}

describe('WireGuard node key rotation driven by the key managers (wireguard-go, real etcd)', () => {
  const nets = new NetnsSet();
  const { log, lines: logLines } = capturedLog();
  let work: string;
  let etcd: EtcdServer;
  let pki: OpensslPki;
  let ca: TestCa;
  let underlay: string;
  const nodes: Node[] = [];

  const auditEvents = (n: Node): Record<string, unknown>[] =>
    readFileSync(join(work, `${n.name}.audit.jsonl`), 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Record<string, unknown>);

  function pingStream(ns: string, dst: string, count: number, intervalS = 0.02): Promise<{ sent: number; received: number }> {
    const child = spawn('ip', ['netns', 'exec', ns, 'ping', '-n', '-i', String(intervalS), '-c', String(count), '-W', '2', dst], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => (out += String(d)));
    child.stderr.on('data', (d) => (out += String(d)));
    return new Promise((resolve) =>
      child.on('exit', () => {
        const m = /(\d+) packets transmitted, (\d+) received/.exec(out);
        resolve(m ? { sent: Number(m[1]), received: Number(m[2]) } : { sent: -1, received: -1 });
      }),
    );
  }

  async function devicePeerKeys(n: Node, d: 0 | 1): Promise<string[]> {
    return (await n.backend.getDevice(`${BASE}${d}`)).peers.map((p) => p.publicKey.toString('base64')).sort();
  }

  beforeAll(async () => {
    for (const [tool, pkg] of [['wireguard-go', 'wireguard-go'], ['ping', 'iputils-ping']]) {
      await run('sh', ['-c', `command -v ${tool}`]).catch(() => {
        throw new Error(`"${tool}" is missing: install the Debian package ${pkg} (bash scripts/setup.sh)`);
      });
    }
    work = mkdtempSync('/tmp/wr-rot-');
    pki = new OpensslPki();
    ca = pki.createCa('wr-ca', 'p256');
    etcd = await EtcdServer.start();
    underlay = await nets.add('wr-u');
    await run('ip', ['-n', underlay, 'link', 'add', 'br0', 'type', 'bridge']);
    await run('ip', ['-n', underlay, 'link', 'set', 'br0', 'up']);
    for (let i = 0; i < 3; i++) {
      const ns = await nets.add('wr-n');
      const podNs = await nets.add('wr-p');
      await run('ip', ['link', 'add', 'eth0', 'netns', ns, 'type', 'veth', 'peer', 'name', `port${i}`, 'netns', underlay]);
      await run('ip', ['-n', underlay, 'link', 'set', `port${i}`, 'master', 'br0', 'up']);
      await run('ip', ['-n', ns, 'addr', 'add', `192.168.78.${10 + i}/24`, 'dev', 'eth0']);
      await run('ip', ['-n', ns, 'link', 'set', 'eth0', 'up']);
      await run('ip', ['link', 'add', 'pod0', 'netns', ns, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', podNs]);
      await run('ip', ['-n', ns, 'addr', 'add', `10.78.${i}.1/24`, 'dev', 'pod0']);
      await run('ip', ['-n', ns, 'addr', 'add', `fd78:0:0:${i + 1}::1/64`, 'dev', 'pod0', 'nodad']);
      await run('ip', ['-n', ns, 'link', 'set', 'pod0', 'up']);
      await run('ip', ['-n', podNs, 'addr', 'add', `10.78.${i}.2/24`, 'dev', 'eth0']);
      await run('ip', ['-n', podNs, 'addr', 'add', `fd78:0:0:${i + 1}::2/64`, 'dev', 'eth0', 'nodad']);
      await run('ip', ['-n', podNs, 'link', 'set', 'eth0', 'up']);
      await run('ip', ['-n', podNs, 'route', 'add', 'default', 'via', `10.78.${i}.1`]);
      await run('ip', ['-n', podNs, '-6', 'route', 'add', 'default', 'via', `fd78:0:0:${i + 1}::1`]);
      for (const s of ['net.ipv4.ip_forward=1', 'net.ipv6.conf.all.forwarding=1', 'net.ipv4.conf.all.rp_filter=0', 'net.ipv4.conf.default.rp_filter=0']) await runIn(ns, 'sysctl', ['-qw', s]);

      const name = `wr-node-${i}`;
      const podCidrs = [`10.78.${i}.0/24`, `fd78:0:0:${i + 1}::/64`];
      const backend = new UserspaceWireGuardBackend({ netns: ns, links: netlinkLinkOps, stateDir: work, log: moduleLogger(log, 'wireguard-userspace') });
      const reconciler = new WireGuardPeerReconciler({
        backend,
        deviceBase: BASE,
        port: PORT,
        localNode: name,
        localPodCidrs: podCidrs,
        routes: { source: { 4: `10.78.${i}.1`, 6: `fd78:0:0:${i + 1}::1` } },
        log: moduleLogger(log, 'wireguard-peers').child({ node: name }),
      });
      const hooks = new WireGuardKeyHooks({
        backend,
        devices: { base: BASE, port: PORT, underlayMtu: 1500 },
        reconciler,
        log: moduleLogger(log, 'wireguard').child({ node: name }),
        onDevicesUp: () => undefined,
        onPeersChanged: () => undefined,
      });
      const cert = pki.issueNode(ca, name, 'p256');
      const store = await openEtcdStore({ endpoints: [etcd.clientUrl], requestTimeoutMs: 10_000 });
      const audit = openAuditLog({ path: join(work, `${name}.audit.jsonl`), node: name, signer: keyObjectSigner(cert.key, cert.certPem), mirror: null, checkpointIntervalMs: 0 });
      const dir = join(work, name);
      const manager = await KeyManager.open({
        node: name,
        stateDir: dir,
        store,
        audit,
        nodeCertificatePem: cert.certPem,
        nodePrivateKey: cert.key,
        trustAnchors: [ca.certPem],
        addresses: [`192.168.78.${10 + i}`],
        podCidrs,
        bootId: `0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f${i}`,
        rotationIntervalMs: 3_600_000,
        acknowledgeTimeoutMs: 60_000,
        tickMs: 100,
        hooks,
        wireguard: { channels: hooks.rotation },
        log: moduleLogger(log, 'keys').child({ node: name }),
      });
      nodes.push({ i, name, ns, podNs, pod4: `10.78.${i}.2`, pod6: `fd78:0:0:${i + 1}::2`, dir, cert, store, audit, backend, reconciler, hooks, manager });
    }
    for (const n of nodes) await n.manager.start();
  }, 120_000);

  afterAll(async () => {
    for (const n of nodes) {
      await n.manager.stop().catch(() => undefined);
      await n.audit.close().catch(() => undefined);
      await n.store.close().catch(() => undefined);
      await n.backend.close().catch(() => undefined);
    }
    await etcd?.cleanup();
    pki?.cleanup();
    await nets.cleanup();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('brings three nodes up from nothing: both channels peered with every other node, pods reach each other', async () => {
    await eventually(
      () => nodes.every((n) => n.manager.status()[0]!.generations.map((g) => g.phase).join() === 'active' && n.reconciler.knownNodes().length === 2),
      { timeoutMs: 30_000, what: 'an active node key on every node and two peers each' },
    );
    for (const n of nodes) {
      const others = nodes.filter((o) => o !== n);
      for (const d of [0, 1] as const) {
        const expected = await Promise.all(others.map(async (o) => (await o.backend.getDevice(`${BASE}${d}`)).publicKey!.toString('base64')));
        await eventually(async () => JSON.stringify(await devicePeerKeys(n, d)) === JSON.stringify(expected.sort()), { timeoutMs: 10_000, what: `${n.name} channel ${d} peers` });
      }
    }
    const r = await pingStream(nodes[0]!.podNs, nodes[1]!.pod4, 5, 0.2);
    expect(r.received).toBe(5);
    const rec = JSON.parse((await nodes[0]!.store.get(paths.record(nodes[1]!.name)))!.value.toString('utf8')) as { record: NodeRecord };
    expect(rec.record.wireguard).toEqual({ generations: [1, 1], draining: null });
  });

  it('rotates node 1\'s key on demand under pings in both directions: 0 lost, every step audited, lease returned', async () => {
    const n1 = nodes[1]!;
    const [n0, n2] = [nodes[0]!, nodes[2]!];
    const oldPub = (await n1.backend.getDevice(`${BASE}0`)).publicKey!.toString('base64');
    const COUNT = 500;
    const streams = [pingStream(n0.podNs, n1.pod4, COUNT), pingStream(n1.podNs, n2.pod4, COUNT), pingStream(n2.podNs, n1.pod6, COUNT), pingStream(n1.podNs, n0.pod4, COUNT)];
    const started = Date.now();
    await new Promise((r) => setTimeout(r, 1000));
    const lockSeen: string[] = [];
    const watchLock = setInterval(() => {
      void n0.store.get(paths.rotationLock()).then((kv) => kv && lockSeen.push(kv.value.toString('utf8')));
    }, 50);
    n1.manager.rotateNow({ kind: 'node', identity: 0 });
    await eventually(() => auditEvents(n1).some((e) => e.event === 'rotation.completed'), { timeoutMs: 30_000, what: 'rotation.completed in the audit log of node 1' });
    clearInterval(watchLock);
    const rotationMs = Date.now() - started;
    expect(rotationMs, 'the rotation completed while the pings ran').toBeLessThan(COUNT * 20 - 1000);
    const results = await Promise.all(streams);
    for (const [k, r] of results.entries()) {
      expect(r.sent, `stream ${k}`).toBe(COUNT);
      expect(r.received, `stream ${k}: ${r.received}/${r.sent}`).toBe(COUNT);
    }

    // The steps, in order (peer-dependent events filtered out).
    const steps = auditEvents(n1)
      .filter((e) => e.keyKind === 'node' && (e.generation === 2 || e.toGeneration === 2 || (e.generation === 1 && ['key.retired', 'key.destroyed'].includes(e.event as string))))
      .filter((e) => !['key.acknowledged', 'key.peer_moved'].includes(e.event as string))
      .map((e) => `${String(e.event)}${e.channel !== undefined ? ` ${String(e.channel)}` : ''}${e.generation !== undefined ? ` g${String(e.generation)}` : ''}`);
    const d = steps.find((s) => s.startsWith('key.channel_draining'))!.split(' ')[1]!;
    const other = d === '0' ? '1' : '0';
    expect(steps).toEqual([
      'key.generated g2',
      `key.channel_draining ${d} g2`,
      'key.published g2',
      `key.channel_keyed ${d} g2`,
      'key.activated g2',
      `key.channel_draining ${other} g2`,
      `key.channel_keyed ${other} g2`,
      'key.retired g1',
      'key.destroyed g1',
      'rotation.completed',
    ]);
    expect(auditEvents(n1).filter((e) => e.event === 'key.acknowledged' && e.generation === 2).map((e) => e.peerNode).sort()).toEqual([n0.name, n2.name]);

    // The lease was held by node 1 during the rotation and given back after it.
    expect(lockSeen.length).toBeGreaterThan(0);
    expect(new Set(lockSeen)).toEqual(new Set([JSON.stringify({ v: 1, node: n1.name })]));
    await eventually(async () => (await n0.store.get(paths.rotationLock())) === null, { timeoutMs: 5_000, what: 'the rotation lease released' });

    // Node 1 holds only generation 2, on both channels; its peers hold only its new key.
    expect(n1.manager.status()[0]!.generations.map((g) => `${g.generation}:${g.phase}`)).toEqual(['2:active']);
    const newPub = (await n1.backend.getDevice(`${BASE}0`)).publicKey!.toString('base64');
    expect(newPub).not.toBe(oldPub);
    expect((await n1.backend.getDevice(`${BASE}1`)).publicKey!.toString('base64')).toBe(newPub);
    for (const o of [n0, n2]) {
      for (const dd of [0, 1] as const) {
        const keys = await devicePeerKeys(o, dd);
        expect(keys).toContain(newPub);
        expect(keys).not.toContain(oldPub);
      }
      const ack = parsePeerAck((await o.store.get(paths.ack(n1.name, o.name)))!.value, { owner: n1.name, peer: o.name });
      expect(ack.channels).toEqual([2, 2]);
    }
    const rec = JSON.parse((await n0.store.get(paths.record(n1.name)))!.value.toString('utf8')) as { record: NodeRecord };
    expect(rec.record.wireguard).toEqual({ generations: [2, 2], draining: null });
    expect(rec.record.keys.map((k) => `${k.generation}:${k.state}`)).toEqual(['2:active']);
    // No key material in any log line.
    const secrets = [readFileSync(join(n1.dir, 'keys', 'node.2.key'), 'utf8').trim()];
    for (const s of secrets) expect(logLines.join('')).not.toContain(s);
  });

  it('resumes a rotation after node 1\'s agent restarts mid-rotation (new backend, hooks, reconciler, key manager): 0 lost', async () => {
    const [n0, n1, n2] = nodes as [Node, Node, Node];
    const COUNT = 600;
    const streams = [pingStream(n0.podNs, n1.pod4, COUNT), pingStream(n1.podNs, n2.pod4, COUNT)];
    await new Promise((r) => setTimeout(r, 500));
    n1.manager.rotateNow({ kind: 'node', identity: 0 });
    await eventually(() => auditEvents(n1).some((e) => e.event === 'key.activated' && e.generation === 3), { timeoutMs: 20_000, what: 'generation 3 activated on node 1' });
    await n1.manager.stop();
    const published = (JSON.parse((await n0.store.get(paths.record(n1.name)))!.value.toString('utf8')) as { record: NodeRecord }).record;
    // Stopped between activation and draining the old channel: the channels carry 3 and 2.
    expect(published.wireguard?.draining).toBeNull();
    expect([...published.wireguard!.generations].sort()).toEqual([2, 3]);

    const backend = new UserspaceWireGuardBackend({ netns: n1.ns, links: netlinkLinkOps, stateDir: work, log: moduleLogger(log, 'wireguard-userspace') });
    const reconciler = new WireGuardPeerReconciler({
      backend,
      deviceBase: BASE,
      port: PORT,
      localNode: n1.name,
      localPodCidrs: [`10.78.1.0/24`, `fd78:0:0:2::/64`],
      routes: { source: { 4: '10.78.1.1', 6: 'fd78:0:0:2::1' } },
      log: moduleLogger(log, 'wireguard-peers').child({ node: n1.name, restarted: true }),
    });
    const hooks = new WireGuardKeyHooks({ backend, devices: { base: BASE, port: PORT, underlayMtu: 1500 }, reconciler, log: moduleLogger(log, 'wireguard'), onDevicesUp: () => undefined, onPeersChanged: () => undefined });
    const keysBefore = await Promise.all([0, 1].map(async (d) => (await n1.backend.getDevice(`${BASE}${d}`)).publicKey!.toString('base64')));
    expect(await hooks.restore(n1.dir)).toBe(true);
    // The devices kept the keys they held (one channel on generation 3, the other on 2).
    const keysAfter = await Promise.all([0, 1].map(async (d) => (await backend.getDevice(`${BASE}${d}`)).publicKey!.toString('base64')));
    expect(keysAfter).toEqual(keysBefore);
    expect(keysAfter[0]).not.toBe(keysAfter[1]);
    const manager = await KeyManager.open({
      node: n1.name,
      stateDir: n1.dir,
      store: n1.store,
      audit: n1.audit,
      nodeCertificatePem: n1.cert.certPem,
      nodePrivateKey: n1.cert.key,
      trustAnchors: [ca.certPem],
      addresses: ['192.168.78.11'],
      podCidrs: ['10.78.1.0/24', 'fd78:0:0:2::/64'],
      bootId: '0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f1',
      rotationIntervalMs: 3_600_000,
      acknowledgeTimeoutMs: 60_000,
      tickMs: 100,
      hooks,
      wireguard: { channels: hooks.rotation },
      log: moduleLogger(log, 'keys').child({ node: n1.name, restarted: true }),
    });
    Object.assign(n1, { backend, reconciler, hooks, manager });
    await manager.start();
    await eventually(() => auditEvents(n1).some((e) => e.event === 'rotation.completed' && e.toGeneration === 3), { timeoutMs: 30_000, what: 'the resumed rotation completed' });
    // No second generation 3, no new key: the restarted agent continued the published rotation.
    expect(auditEvents(n1).filter((e) => e.event === 'key.generated' && e.generation === 3)).toHaveLength(1);
    expect(manager.status()[0]!.generations.map((g) => `${g.generation}:${g.phase}`)).toEqual(['3:active']);
    const results = await Promise.all(streams);
    for (const [k, r] of results.entries()) expect(r.received, `stream ${k}: ${r.received}/${r.sent}`).toBe(r.sent);
    const pub = (await backend.getDevice(`${BASE}0`)).publicKey!.toString('base64');
    expect((await backend.getDevice(`${BASE}1`)).publicKey!.toString('base64')).toBe(pub);
    for (const o of [n0, n2]) for (const d of [0, 1] as const) expect(await devicePeerKeys(o, d)).toContain(pub);
    await eventually(async () => (await n0.store.get(paths.rotationLock())) === null, { timeoutMs: 15_000, what: 'the rotation lease released' });
  });

  it('refuses a signed record whose channel state names an unpublished generation: audited, no device changed', async () => {
    const [n0, n1, n2] = nodes as [Node, Node, Node];
    const before = await Promise.all([n0, n2].flatMap((o) => [devicePeerKeys(o, 0), devicePeerKeys(o, 1)]));
    const current = (JSON.parse((await n0.store.get(paths.record(n1.name)))!.value.toString('utf8')) as { record: NodeRecord }).record;
    const stray = X25519PrivateKey.generate().publicKey.base64;
    // Signed with node 1's real certificate key, so only the channel state is wrong.
    const g = Math.max(...current.keys.map((k) => k.generation));
    const record = {
      ...current,
      keys: [...current.keys, { kind: 'node' as const, identity: 0, generation: g + 1, publicKey: stray, state: 'pending' as const }],
      // Channel 0 names a generation the record does not publish.
      wireguard: { generations: [g + 2, g] as [number, number], draining: 0 as const },
      issuedAt: Date.now(),
      sequence: current.sequence + 100,
    };
    const signature = sign('sha256', nodeRecordSigningBytes(record), n1.cert.key).toString('base64');
    const wire = JSON.stringify({ record, certificate: n1.cert.certPem, algorithm: 'ecdsa-p256-sha256', signature });
    await n1.manager.stop(); // node 1 would overwrite its record; it is not needed any more
    const kv = (await n0.store.get(paths.record(n1.name)))!;
    expect((await n0.store.update(paths.record(n1.name), Buffer.from(wire), kv.modRevision)).updated).toBe(true);
    for (const o of [n0, n2]) {
      await eventually(
        () => auditEvents(o).some((e) => e.event === 'record.rejected' && e.peerNode === n1.name && e.reason === 'malformed' && String(e.detail).includes('wireguard.generations[0]')),
        { timeoutMs: 10_000, what: `${o.name} audits the rejected record` },
      );
    }
    const after = await Promise.all([n0, n2].flatMap((o) => [devicePeerKeys(o, 0), devicePeerKeys(o, 1)]));
    expect(after).toEqual(before);
    for (const b of after) expect(b).not.toContain(stray);
  });
});
