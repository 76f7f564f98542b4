/**
 * The datapath on a real topology: node 1 (a namespace) hosts pods A and B (namespaces behind
 * veths, /32 addresses, the node's side answering as 169.254.1.1); an uplink veth joins it to
 * node 2, which hosts pod R. The nodes talk through userspace WireGuard (wireguard-go, configured
 * through the agent's UserspaceWireGuardBackend). On node 1 the four programs are attached
 * through the TypeScript API and the maps written through the typed map classes; node 2 is plain
 * routing. Node 1 also has a plaintext route to R's network over the uplink, as a node would
 * have before the agent took over: only the programs keep pod traffic off it.
 *
 * Real packets, IPv4 and IPv6 (pods have both; IPv6 neighbour discovery and MLD cross the
 * programs too): ping and UDP from the pods; counters and events read back; tcpdump on node 2's
 * end of the uplink shows what crossed the wire.
 */
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigMap } from '../../../agent/datapath/config-map.js';
import { Counters } from '../../../agent/datapath/counters.js';
import { attach, detach, loadObjects, type BpfObject } from '../../../agent/datapath/datapath.js';
import { openEndpointMap } from '../../../agent/datapath/endpoints.js';
import { EventReader, type DatapathEvent } from '../../../agent/datapath/events.js';
import { Ipcache } from '../../../agent/datapath/ipcache.js';
import { MapsAbi } from '../../../agent/datapath/layout.js';
import { compilePolicy } from '../../../agent/datapath/policy-compile.js';
import { openPolicyMap } from '../../../agent/datapath/policy-map.js';
import { Hook, Reason } from '../../../agent/datapath/reasons.js';
import { createRootLogger, moduleLogger } from '../../../agent/log/logger.js';
import { netlinkLinkOps } from '../../../agent/wireguard/link-ops.js';
import { UserspaceWireGuardBackend } from '../../../agent/wireguard/userspace-backend.js';
import { programObject } from '../../support/bpf.js';
import { eventually, ipJson, NetnsSet, run, runIn, uniqueName, vethPair } from '../../support/netns.js';

const A = '10.0.1.10';
const B = '10.0.1.11';
const R = '10.0.2.20';
const A6 = 'fd00:1::10';
const B6 = 'fd00:1::11';
const R6 = 'fd00:2::20';
const UP1_6 = 'fd00:ff::1';
const UP2_6 = 'fd00:ff::2';
const UP1 = '192.168.50.1';
const UP2 = '192.168.50.2';
const PORT = 51820;
const ID = { A: 300, B: 301, R: 400, NODE2: 6 };

function keyPair(): { priv: Buffer; pub: Buffer } {
  const { privateKey, publicKey } = generateKeyPairSync('x25519');
  return {
    priv: Buffer.from(privateKey.export({ format: 'jwk' }).d!, 'base64url'),
    pub: Buffer.from(publicKey.export({ format: 'jwk' }).x!, 'base64url'),
  };
}

async function requireTools(): Promise<void> {
  for (const [tool, pkg] of [['wireguard-go', 'wireguard-go'], ['tcpdump', 'tcpdump'], ['socat', 'socat'], ['ping', 'iputils-ping']]) {
    await run('sh', ['-c', `command -v ${tool}`]).catch(() => {
      throw new Error(`"${tool}" is missing: install the Debian package ${pkg} (bash scripts/setup.sh)`);
    });
  }
}

async function ifindex(ns: string, dev: string): Promise<number> {
  return (await ipJson<Array<{ ifindex: number }>>(ns, ['link', 'show', dev]))[0]!.ifindex;
}

/**
 * A pod: a namespace behind a veth of `node`, an IPv4 /32 and an IPv6 /128, default routes via
 * the node (169.254.1.1 and fe80::1 on the node's side, as CNIs do).
 */
async function addPod(nets: NetnsSet, node: string, addr: string, addr6: string, hostDev: string): Promise<string> {
  const pod = await nets.add('pgp');
  await vethPair(pod, node, { aName: 'eth0', bName: hostDev, aAddr: `${addr}/32`, bAddr: '169.254.1.1/32' });
  await run('ip', ['-n', pod, 'route', 'add', '169.254.1.1', 'dev', 'eth0']);
  await run('ip', ['-n', pod, 'route', 'add', 'default', 'via', '169.254.1.1', 'dev', 'eth0']);
  await run('ip', ['-n', node, 'route', 'add', `${addr}/32`, 'dev', hostDev]);
  await run('ip', ['-n', pod, 'addr', 'add', `${addr6}/128`, 'dev', 'eth0', 'nodad']);
  await run('ip', ['-n', node, 'addr', 'add', 'fe80::1/64', 'dev', hostDev, 'nodad']);
  await run('ip', ['-n', pod, '-6', 'route', 'add', 'default', 'via', 'fe80::1', 'dev', 'eth0']);
  await run('ip', ['-n', node, '-6', 'route', 'add', `${addr6}/128`, 'dev', hostDev]);
  return pod;
}

const ping = (ns: string, dst: string, extra: string[] = []) => runIn(ns, 'ping', ['-c', '1', '-W', '2', ...extra, dst], { timeoutMs: 10_000 });

describe('datapath topology: two pods on node 1, pod R on node 2, userspace WireGuard', () => {
  const nets = new NetnsSet();
  const events: DatapathEvent[] = [];
  let node1: string;
  let node2: string;
  let podA: string;
  let podB: string;
  let podR: string;
  let pinDir: string;
  let stateDir: string;
  let objects: BpfObject[] = [];
  let reader: EventReader | undefined;
  let wg1: UserspaceWireGuardBackend;
  let wg2: UserspaceWireGuardBackend;
  let counters: Counters;
  let config: ConfigMap;
  let wgIfindex: number;
  const wgName = uniqueName('pgw');

  const count = async (hook: number, reason: number) => (await counters.get(hook, reason)).packets;

  beforeAll(async () => {
    await requireTools();
    node1 = await nets.add('pgn');
    node2 = await nets.add('pgn');
    for (const n of [node1, node2]) {
      await run('ip', ['netns', 'exec', n, 'sysctl', '-qw', 'net.ipv4.ip_forward=1']);
      await run('ip', ['netns', 'exec', n, 'sysctl', '-qw', 'net.ipv6.conf.all.forwarding=1']);
    }
    await vethPair(node1, node2, { aName: 'up1', bName: 'up2', aAddr: `${UP1}/24`, bAddr: `${UP2}/24` });
    await run('ip', ['-n', node1, 'addr', 'add', `${UP1_6}/64`, 'dev', 'up1', 'nodad']);
    await run('ip', ['-n', node2, 'addr', 'add', `${UP2_6}/64`, 'dev', 'up2', 'nodad']);
    podA = await addPod(nets, node1, A, A6, 'lxca');
    podB = await addPod(nets, node1, B, B6, 'lxcb');
    podR = await addPod(nets, node2, R, R6, 'lxcr');

    // WireGuard between the nodes, through the agent's userspace backend
    stateDir = mkdtempSync('/tmp/pg-wg-');
    const log = moduleLogger(createRootLogger({ level: 'silent' }), 'topology');
    wg1 = new UserspaceWireGuardBackend({ netns: node1, links: netlinkLinkOps, stateDir, log });
    wg2 = new UserspaceWireGuardBackend({ netns: node2, links: netlinkLinkOps, stateDir, log });
    const k1 = keyPair();
    const k2 = keyPair();
    await wg1.createDevice(wgName);
    await wg2.createDevice(wgName);
    await wg1.setDevice(wgName, { privateKey: k1.priv, listenPort: PORT, peers: [{ publicKey: k2.pub, endpoint: `${UP2}:${PORT}`, allowedIps: ['10.0.2.0/24', 'fd00:2::/64'] }] });
    await wg2.setDevice(wgName, { privateKey: k2.priv, listenPort: PORT, peers: [{ publicKey: k1.pub, endpoint: `${UP1}:${PORT}`, allowedIps: ['10.0.1.0/24', 'fd00:1::/64'] }] });
    for (const n of [node1, node2]) await run('ip', ['-n', n, 'link', 'set', wgName, 'mtu', '1420', 'up']);
    // node 2 sends node 1's pods into the tunnel; node 1 has a *plaintext* route to R's network
    await run('ip', ['-n', node2, 'route', 'add', '10.0.1.0/24', 'dev', wgName]);
    await run('ip', ['-n', node1, 'route', 'add', '10.0.2.0/24', 'via', UP2, 'dev', 'up1']);
    await run('ip', ['-n', node2, '-6', 'route', 'add', 'fd00:1::/64', 'dev', wgName]);
    await run('ip', ['-n', node1, '-6', 'route', 'add', 'fd00:2::/64', 'via', UP2_6, 'dev', 'up1']);
    wgIfindex = await ifindex(node1, wgName);

    // the programs on node 1
    pinDir = `/sys/fs/bpf/veil-test-${uniqueName('pg')}`;
    objects = await loadObjects(['from-pod', 'to-pod', 'uplink-egress', 'uplink-ingress'].map(programObject), { pinDir });
    const [from, to, upOut, upIn] = objects as [BpfObject, BpfObject, BpfObject, BpfObject];
    config = await ConfigMap.open(from);
    await config.set({ flags: MapsAbi.CFG_F_MODE_WIREGUARD, wireguardIfindex: [wgIfindex, wgIfindex], nodeIdentity: 1, wireguardPort: PORT, nodeIndex: 1 });
    const eps = await openEndpointMap(from);
    await eps.set(await ifindex(node1, 'lxca'), { identity: ID.A, flags: MapsAbi.EP_F_ENFORCE_EGRESS | MapsAbi.EP_F_ENFORCE_INGRESS, ipv4: A, ipv6: A6 });
    await eps.set(await ifindex(node1, 'lxcb'), { identity: ID.B, flags: 0, ipv4: B, ipv6: B6 });
    await (await Ipcache.open(from)).setMany([
      [`${A}/32`, { identity: ID.A, nodeIndex: 0, keySlot: 0, flags: MapsAbi.IPC_F_POD | MapsAbi.IPC_F_LOCAL }],
      [`${B}/32`, { identity: ID.B, nodeIndex: 0, keySlot: 0, flags: MapsAbi.IPC_F_POD | MapsAbi.IPC_F_LOCAL }],
      ['10.0.2.0/24', { identity: ID.R, nodeIndex: 2, keySlot: 0, flags: MapsAbi.IPC_F_POD, tunnelEndpoint: UP2 }],
      [`${UP2}/32`, { identity: ID.NODE2, nodeIndex: 2, keySlot: 0, flags: MapsAbi.IPC_F_NODE, tunnelEndpoint: UP2 }],
      [`${A6}/128`, { identity: ID.A, nodeIndex: 0, keySlot: 0, flags: MapsAbi.IPC_F_POD | MapsAbi.IPC_F_LOCAL }],
      [`${B6}/128`, { identity: ID.B, nodeIndex: 0, keySlot: 0, flags: MapsAbi.IPC_F_POD | MapsAbi.IPC_F_LOCAL }],
      ['fd00:2::/64', { identity: ID.R, nodeIndex: 2, keySlot: 0, flags: MapsAbi.IPC_F_POD, tunnelEndpoint: UP2 }],
      [`${UP2_6}/128`, { identity: ID.NODE2, nodeIndex: 2, keySlot: 0, flags: MapsAbi.IPC_F_NODE, tunnelEndpoint: UP2 }],
    ]);
    await (await openPolicyMap(from)).setMany(
      compilePolicy(
        [
          // A may ping R and B; nothing else. Only R may reach A, on UDP 7000, and only encrypted.
          { subject: ID.A, peer: ID.R, direction: 'egress', protocol: 'icmp', verdict: 'allow' },
          { subject: ID.A, peer: ID.B, direction: 'egress', protocol: 'icmp', verdict: 'allow' },
          { subject: ID.A, peer: ID.R, direction: 'egress', protocol: 'icmpv6', verdict: 'allow' },
          { subject: ID.A, peer: ID.B, direction: 'egress', protocol: 'icmpv6', verdict: 'allow' },
          { subject: ID.A, peer: ID.R, direction: 'ingress', protocol: 'udp', port: 7000, verdict: 'allow', requireEncryption: true },
        ],
        [{ identity: ID.A, ingress: true, egress: true }],
      ).map((e) => [e.key, e.value]),
    );
    counters = await Counters.open(from);
    reader = EventReader.open(from.map('veil_events'), { onEvent: (e) => events.push(e) });
    for (const dev of ['lxca', 'lxcb']) {
      await attach(from.program('veil_from_pod_prog'), { interface: dev, direction: 'ingress', netns: node1 }, { pinDir });
      await attach(to.program('veil_to_pod_prog'), { interface: dev, direction: 'egress', netns: node1 }, { pinDir });
    }
    await attach(upOut.program('veil_uplink_egress_prog'), { interface: 'up1', direction: 'egress', netns: node1 }, { pinDir });
    await attach(upIn.program('veil_uplink_ingress_prog'), { interface: 'up1', direction: 'ingress', netns: node1 }, { pinDir });
  });

  afterAll(async () => {
    reader?.close();
    for (const o of objects) o.close();
    objects = [];
    for (const be of [wg1, wg2]) await be?.close().catch(() => undefined);
    for (const ns of nets.names) {
      const pids = (await run('ip', ['netns', 'pids', ns]).catch(() => ({ stdout: '' }))).stdout.split(/\s+/).filter(Boolean);
      for (const pid of pids) {
        try {
          process.kill(Number(pid), 'SIGKILL');
        } catch {
          // gone
        }
      }
    }
    await nets.cleanup();
    if (pinDir) rmSync(pinDir, { recursive: true, force: true });
    if (stateDir) rmSync(stateDir, { recursive: true, force: true });
  });

  it('an allowed ping from A reaches R on node 2 through WireGuard, and its reply comes back', async () => {
    const before = await count(Hook.FROM_POD, Reason.FWD_WIREGUARD);
    // the first ping may be spent on the WireGuard handshake
    await eventually(() => ping(podA, R).then(() => true), { timeoutMs: 20_000, what: 'ping A -> R' });
    expect(await count(Hook.FROM_POD, Reason.FWD_WIREGUARD)).toBeGreaterThan(before);
    // the echo reply passed to-pod of A, where nothing allows R in: conntrack did
    expect(await count(Hook.TO_POD, Reason.FWD_TO_POD)).toBeGreaterThan(0n);
    expect(await count(Hook.TO_POD, Reason.DROP_POLICY_DEFAULT_DENY)).toBe(0n);
  });

  it('IPv6: an allowed ping from A reaches R through WireGuard (neighbour discovery and MLD pass the programs)', async () => {
    const before = await count(Hook.FROM_POD, Reason.FWD_WIREGUARD);
    await eventually(() => ping(podA, R6).then(() => true), { timeoutMs: 20_000, what: 'ping A -> R over IPv6' });
    expect(await count(Hook.FROM_POD, Reason.FWD_WIREGUARD)).toBeGreaterThan(before);
    await ping(podA, B6);
  });

  it('an allowed ping from A reaches pod B on the same node', async () => {
    await ping(podA, B);
    expect(await count(Hook.FROM_POD, Reason.FWD_LOCAL)).toBeGreaterThan(0n);
  });

  it('denied traffic does not flow: the drop counter and event name the reason and identities', async () => {
    const before = await count(Hook.FROM_POD, Reason.DROP_POLICY_DEFAULT_DENY);
    // R listens on UDP 5555 and would answer; A's egress policy has no rule for UDP
    const got = join(stateDir, 'udp-received');
    nets.spawnIn(podR, 'socat', ['-u', 'UDP-RECV:5555', `OPEN:${got},creat,append`]);
    await runIn(podA, 'sh', ['-c', `echo denied | socat -u - UDP:${R}:5555,sourceport=41000`]);
    await eventually(async () => (await count(Hook.FROM_POD, Reason.DROP_POLICY_DEFAULT_DENY)) > before, { what: 'default-deny drop counted' });
    const e = await eventually(() => events.find((x) => x.reason === Reason.DROP_POLICY_DEFAULT_DENY && x.dport === 5555), { what: 'drop event' });
    expect(e).toMatchObject({ hook: Hook.FROM_POD, srcIdentity: ID.A, dstIdentity: ID.R, proto: 17, sport: 41000, dport: 5555, saddr: A, daddr: R });
    await new Promise((r) => setTimeout(r, 300));
    expect(readFileSync(got, { flag: 'a+' }).toString()).toBe('');
    // R cannot open a connection to A either (A's ingress is isolated)
    await expect(ping(podR, A)).rejects.toThrow();
    const d = await eventually(() => events.find((x) => x.hook === Hook.TO_POD && x.reason === Reason.DROP_POLICY_DEFAULT_DENY), { what: 'to-pod drop event' });
    expect(d).toMatchObject({ srcIdentity: ID.R, dstIdentity: ID.A, saddr: R, daddr: A, proto: 1 });
  });

  it('require-encryption: R reaches A through WireGuard, and is refused on a plaintext path', async () => {
    const got = join(stateDir, 'udp-7000');
    nets.spawnIn(podA, 'socat', ['-u', 'UDP-RECV:7000', `OPEN:${got},creat,append`]);
    // through the tunnel: to-pod sees the packet coming from the WireGuard device
    await eventually(
      async () => {
        await runIn(podR, 'sh', ['-c', `echo through-tunnel | socat -u - UDP:${A}:7000`]);
        await new Promise((r) => setTimeout(r, 200));
        return readFileSync(got, { flag: 'a+' }).toString().includes('through-tunnel');
      },
      { timeoutMs: 10_000, what: 'UDP R -> A through WireGuard delivered' },
    );
    // around the tunnel (strict mode is off here, so the uplink lets it in): to-pod refuses it
    const before = await count(Hook.TO_POD, Reason.DROP_REQUIRES_ENCRYPTION);
    await run('ip', ['-n', node2, 'route', 'add', `${A}/32`, 'via', UP1, 'dev', 'up2']);
    try {
      await runIn(podR, 'sh', ['-c', `echo plaintext | socat -u - UDP:${A}:7000`]);
      await eventually(async () => (await count(Hook.TO_POD, Reason.DROP_REQUIRES_ENCRYPTION)) > before, { what: 'requires-encryption drop counted' });
    } finally {
      await run('ip', ['-n', node2, 'route', 'del', `${A}/32`]);
    }
    const e = await eventually(() => events.find((x) => x.reason === Reason.DROP_REQUIRES_ENCRYPTION), { what: 'requires-encryption event' });
    expect(e).toMatchObject({ hook: Hook.TO_POD, srcIdentity: ID.R, dstIdentity: ID.A, proto: 17, dport: 7000, saddr: R, daddr: A });
    expect(readFileSync(got, 'utf8')).not.toContain('plaintext');
  });

  it('a spoofed source is dropped at the pod', async () => {
    await run('ip', ['-n', podA, 'addr', 'add', '10.0.1.99/32', 'dev', 'eth0']);
    await expect(ping(podA, R, ['-I', '10.0.1.99'])).rejects.toThrow();
    const e = await eventually(() => events.find((x) => x.reason === Reason.DROP_SPOOFED_SOURCE), { what: 'spoof event' });
    expect(e).toMatchObject({ hook: Hook.FROM_POD, srcIdentity: ID.A, saddr: '10.0.1.99', daddr: R });
  });

  it('strict mode: no plaintext pod packet crosses the uplink while encrypted traffic flows', async () => {
    await config.set({ flags: MapsAbi.CFG_F_MODE_WIREGUARD | MapsAbi.CFG_F_STRICT, wireguardIfindex: [wgIfindex, wgIfindex], nodeIdentity: 1, wireguardPort: PORT, nodeIndex: 1 });
    const pcap = join(stateDir, 'up2.pcap');
    const dump = nets.spawnIn(node2, 'tcpdump', ['-i', 'up2', '-n', '-U', '-w', pcap, 'ip or ip6']);
    await eventually(async () => (await run('sh', ['-c', `test -s ${pcap} && echo ok`]).catch(() => ({ stdout: '' }))).stdout.includes('ok') || undefined, { timeoutMs: 5000, what: 'tcpdump started' }).catch(() => undefined);
    await new Promise((r) => setTimeout(r, 500));
    const dropsBefore = await count(Hook.UPLINK_EGRESS, Reason.DROP_STRICT_EGRESS);
    // B is an unmanaged moment: its from-pod is gone, so its packets take the plaintext route
    await detach({ interface: 'lxcb', direction: 'ingress', netns: node1 }, { pinDir });
    await expect(ping(podB, R)).rejects.toThrow();
    await expect(ping(podB, R6)).rejects.toThrow();
    // A still reaches R, encrypted
    await ping(podA, R);
    await ping(podA, R6);
    // and node 2 sending plaintext to A (a more specific route around its tunnel) is dropped on arrival
    const inBefore = await count(Hook.UPLINK_INGRESS, Reason.DROP_STRICT_INGRESS);
    await run('ip', ['-n', node2, 'route', 'add', `${A}/32`, 'via', UP1, 'dev', 'up2']);
    await expect(ping(podR, A)).rejects.toThrow();
    await run('ip', ['-n', node2, 'route', 'del', `${A}/32`]);
    await new Promise((r) => setTimeout(r, 500));
    dump.kill('SIGINT');
    await new Promise((r) => dump.once('exit', r));

    expect(await count(Hook.UPLINK_EGRESS, Reason.DROP_STRICT_EGRESS)).toBeGreaterThan(dropsBefore);
    expect(await count(Hook.UPLINK_INGRESS, Reason.DROP_STRICT_INGRESS)).toBeGreaterThan(inBefore);
    const lines = (await run('tcpdump', ['-n', '-r', pcap])).stdout.trim().split('\n');
    const wgPackets = lines.filter((l) => l.includes(`${UP1}.${PORT} > ${UP2}.${PORT}`));
    const podFromNode1 = lines.filter((l) => /IP 10\.0\.1\.\d+(\.\d+)? >/.test(l) || /IP6 fd00:1::/.test(l));
    expect(wgPackets.length).toBeGreaterThan(0);
    expect(podFromNode1).toEqual([]);
    const e = events.find((x) => x.hook === Hook.UPLINK_EGRESS && x.reason === Reason.DROP_STRICT_EGRESS && x.family === 4);
    expect(e).toMatchObject({ srcIdentity: ID.B, dstIdentity: ID.R, saddr: B, daddr: R });
    const e6 = events.find((x) => x.hook === Hook.UPLINK_EGRESS && x.reason === Reason.DROP_STRICT_EGRESS && x.family === 6);
    expect(e6).toMatchObject({ srcIdentity: ID.B, dstIdentity: ID.R, saddr: B6, daddr: R6 });
  });
});
