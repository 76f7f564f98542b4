/**
 * The userspace backend against real wireguard-go daemons: two namespaces joined by a veth, each
 * with a "wg0" configured only through the backend; ping and TCP through the tunnel, `wg show`
 * (through the same launcher, so it sees the same socket directory) lists what the backend set.
 * The test uses `ip` only for topology, addresses, MTU and up/down.
 */
import { spawn } from 'node:child_process';
import { createHash, generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MissingDependencyError, UapiError, ValidationError } from '../../../agent/errors.js';
import { moduleLogger } from '../../../agent/log/logger.js';
import { projectRoot } from '../../../agent/project-root.js';
import { encodeUapiSet, parseUapiSetResponse } from '../../../agent/wireguard/uapi.js';
import { UserspaceWireGuardBackend } from '../../../agent/wireguard/userspace-backend.js';
import { uapiExchange } from '../../../agent/wireguard/userspace-socket.js';
import { eventually, NetnsSet, run, runIn, vethPair } from '../../support/netns.js';
import { netlinkLinkOps } from '../../../agent/wireguard/link-ops.js';
import { capturedLog } from '../../support/captured-log.js';

const LAUNCHER = join(projectRoot(), 'build', 'Release', 'veil-netns-exec');

function keyPair(): { priv: Buffer; pub: Buffer } {
  const { privateKey, publicKey } = generateKeyPairSync('x25519');
  const d = privateKey.export({ format: 'jwk' }).d!;
  const x = publicKey.export({ format: 'jwk' }).x!;
  return { priv: Buffer.from(d, 'base64url'), pub: Buffer.from(x, 'base64url') };
}

async function requireTools(): Promise<void> {
  for (const [tool, pkg] of [['wireguard-go', 'wireguard-go'], ['wg', 'wireguard-tools'], ['socat', 'socat'], ['ping', 'iputils-ping']]) {
    await run('sh', ['-c', `command -v ${tool}`]).catch(() => {
      throw new Error(`"${tool}" is missing: install the Debian package ${pkg} (bash scripts/setup.sh)`);
    });
  }
}

/** `wg show NAME dump` run through the launcher, i.e. against the backend's socket directory. */
async function wgDump(netns: string, socketDir: string, name: string): Promise<{ device: string[]; peers: string[][] }> {
  const r = await run(LAUNCHER, ['--netns', netns, '--wireguard-dir', socketDir, '--', 'wg', 'show', name, 'dump']);
  const [device, ...peers] = r.stdout.trim().split('\n').map((l) => l.split('\t'));
  return { device: device!, peers };
}

async function pidsIn(netns: string): Promise<number[]> {
  const r = await run('ip', ['netns', 'pids', netns]);
  return r.stdout.split(/\s+/).filter(Boolean).map(Number);
}

describe('UserspaceWireGuardBackend', () => {
  const nets = new NetnsSet();
  const captured = capturedLog();
  const logLines = captured.lines;
  const log = moduleLogger(captured.log, 'wireguard-userspace');
  let stateDir: string;
  let a: string;
  let b: string;
  let backendA: UserspaceWireGuardBackend;
  let backendB: UserspaceWireGuardBackend;
  const kA = keyPair();
  const kB = keyPair();
  const psk = randomBytes(32);
  const secrets = [kA.priv, kB.priv, psk];

  beforeAll(async () => {
    await requireTools();
    stateDir = mkdtempSync('/tmp/vwg-');
    a = await nets.add();
    b = await nets.add();
    await vethPair(a, b, { aAddr: '192.0.2.1/24', bAddr: '192.0.2.2/24' });
    backendA = new UserspaceWireGuardBackend({ netns: a, links: netlinkLinkOps, stateDir, log });
    backendB = new UserspaceWireGuardBackend({ netns: b, links: netlinkLinkOps, stateDir, log });
  });

  afterAll(async () => {
    for (const be of [backendA, backendB]) await be?.close().catch(() => undefined);
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

  it('createDevice() starts wireguard-go in each namespace, both named "wg0", each with its own socket', async () => {
    await backendA.createDevice('wg0');
    await backendB.createDevice('wg0');
    expect(backendA.socketPath('wg0')).not.toBe(backendB.socketPath('wg0'));
    for (const ns of [a, b]) {
      const [link] = JSON.parse((await run('ip', ['-n', ns, '-d', '-j', 'link', 'show', 'wg0'])).stdout);
      expect(link.linkinfo.info_kind).toBe('tun');
    }
    const devA = await backendA.getDevice('wg0');
    expect(devA).toMatchObject({ name: 'wg0', hasPrivateKey: false, publicKey: null, peers: [] });
    expect(devA.ifindex).toBeGreaterThan(0);
    // Creating again is idempotent (no second daemon).
    const before = await pidsIn(a);
    await backendA.createDevice('wg0');
    expect(await pidsIn(a)).toEqual(before);
  });

  it('setDevice() configures both ends; ping and TCP pass through the tunnel', async () => {
    await backendA.setDevice('wg0', {
      privateKey: kA.priv,
      listenPort: 51820,
      fwmark: 0x1234,
      peers: [{ publicKey: kB.pub, presharedKey: psk, endpoint: '192.0.2.2:51821', allowedIps: ['10.99.0.2/32'], persistentKeepalive: 25 }],
    });
    await backendB.setDevice('wg0', {
      privateKey: kB.priv,
      listenPort: 51821,
      peers: [{ publicKey: kA.pub, presharedKey: psk, endpoint: '192.0.2.1:51820', allowedIps: ['10.99.0.1/32'] }],
    });
    for (const [ns, addr] of [[a, '10.99.0.1/24'], [b, '10.99.0.2/24']] as const) {
      await run('ip', ['-n', ns, 'addr', 'add', addr, 'dev', 'wg0']);
      await run('ip', ['-n', ns, 'link', 'set', 'wg0', 'mtu', '1420', 'up']);
    }
    await eventually(() => runIn(a, 'ping', ['-c', '1', '-W', '1', '10.99.0.2']).then(() => true), { timeoutMs: 15_000, what: 'ping through the tunnel' });

    // 2 MiB over TCP through the tunnel, checked end to end.
    const src = join(stateDir, 'tcp-src');
    const dst = join(stateDir, 'tcp-dst');
    writeFileSync(src, randomBytes(2 << 20));
    const server = nets.spawnIn(b, 'socat', ['-u', 'TCP-LISTEN:5001,bind=10.99.0.2,reuseaddr', `CREATE:${dst}`]);
    const serverDone = new Promise<number | null>((r) => server.on('exit', (code) => r(code)));
    await eventually(() => runIn(b, 'ss', ['-Hltn', 'sport = :5001']).then((x) => x.stdout.includes('5001')), { what: 'socat listening' });
    await runIn(a, 'socat', ['-u', `FILE:${src}`, 'TCP:10.99.0.2:5001']);
    expect(await serverDone).toBe(0);
    const sha = (p: string) => createHash('sha256').update(readFileSync(p)).digest('hex');
    expect(sha(dst)).toBe(sha(src));

    const devA = await backendA.getDevice('wg0');
    expect(devA.publicKey).toEqual(kA.pub);
    expect(devA).toMatchObject({ hasPrivateKey: true, listenPort: 51820, fwmark: 0x1234 });
    expect(devA.peers).toHaveLength(1);
    const p = devA.peers[0]!;
    expect(p.publicKey).toEqual(kB.pub);
    expect(p).toMatchObject({ hasPresharedKey: true, endpoint: '192.0.2.2:51821', allowedIps: ['10.99.0.2/32'], persistentKeepalive: 25 });
    expect(p.lastHandshakeMs).toBeGreaterThan(Date.now() - 60_000);
    expect(p.txBytes).toBeGreaterThan(2n << 20n);
  });

  it('`wg show` through the launcher lists exactly the peers the backend set', async () => {
    const dumpA = await wgDump(a, backendA.socketDirectory, 'wg0');
    expect(dumpA.device[1]).toBe(kA.pub.toString('base64'));
    expect(dumpA.device[2]).toBe('51820');
    expect(dumpA.device[3]).toBe('0x1234');
    expect(dumpA.peers.map((p) => [p[0], p[2], p[3], p[7]])).toEqual([[kB.pub.toString('base64'), '192.0.2.2:51821', '10.99.0.2/32', '25']]);
    const dumpB = await wgDump(b, backendB.socketDirectory, 'wg0');
    expect(dumpB.device[1]).toBe(kB.pub.toString('base64'));
    expect(dumpB.peers.map((p) => [p[0], p[3]])).toEqual([[kA.pub.toString('base64'), '10.99.0.1/32']]);
    // The host's shared /var/run/wireguard knows nothing about these devices.
    const hostDir = readdirSync('/var/run/wireguard', { withFileTypes: true }).map((e) => e.name);
    expect(hostDir).not.toContain('wg0.sock');
  });

  /** Pings B through the tunnel every 2 ms while `replace(round)` runs in a loop; returns [sent, received, rounds]. */
  async function pingWhile(replace: (round: number) => Promise<void>): Promise<[number, number, number]> {
    const count = 1000;
    const ping = spawn('ip', ['netns', 'exec', a, 'ping', '-i', '0.002', '-c', String(count), '-W', '1', '10.99.0.2'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    ping.stdout.on('data', (d) => (out += String(d)));
    const exited = new Promise<void>((r) => ping.on('exit', () => r()));
    let rounds = 0;
    while (ping.exitCode === null) await replace(rounds++);
    await exited;
    const m = /(\d+) packets transmitted, (\d+) received/.exec(out);
    if (!m) throw new Error(`Unexpected ping output: ${out.slice(-300)}`);
    return [Number(m[1]), Number(m[2]), rounds];
  }
  /** 2,000 /32s that change every round, with the pinged address listed last. */
  const bigSet = (round: number): string[] => [
    ...Array.from({ length: 2000 }, (_, i) => `10.${100 + (round % 2)}.${i >> 8}.${i & 255}/32`),
    `fd99:${round.toString(16)}::/64`,
    '10.99.0.2/32',
  ];

  it('replacing allowed IPs never leaves a gap (continuous ping while replacing 2,000 CIDRs)', async () => {
    let last: string[] = [];
    const [sent, received, rounds] = await pingWhile(async (round) => {
      last = bigSet(round);
      await backendA.setDevice('wg0', { peers: [{ publicKey: kB.pub, replaceAllowedIps: true, allowedIps: last }] });
    });
    expect(rounds).toBeGreaterThan(10);
    expect(received).toBe(sent);
    const dev = await backendA.getDevice('wg0');
    expect(dev.peers).toHaveLength(1); // the throw-away peers are gone
    expect([...dev.peers[0]!.allowedIps].sort()).toEqual([...last].sort());
    // Replacing with a smaller set removes the rest.
    await backendA.setDevice('wg0', { peers: [{ publicKey: kB.pub, replaceAllowedIps: true, allowedIps: ['10.99.0.2/32'] }] });
    expect((await backendA.getDevice('wg0')).peers[0]!.allowedIps).toEqual(['10.99.0.2/32']);
  });

  it('control: wireguard-go\'s own replace_allowed_ips does drop packets under the same load', async () => {
    const [sent, received] = await pingWhile(async (round) => {
      const req = encodeUapiSet({ peers: [{ publicKey: kB.pub, replaceAllowedIps: true, allowedIps: bigSet(round) }] });
      expect(parseUapiSetResponse(await uapiExchange(backendA.socketPath('wg0'), req, 30_000))).toBe(0);
    });
    expect(received).toBeLessThan(sent);
    await backendA.setDevice('wg0', { peers: [{ publicKey: kB.pub, replaceAllowedIps: true, allowedIps: ['10.99.0.2/32'] }] });
  });

  it('a new backend instance adopts the running daemon with its peers (agent restart)', async () => {
    const pidsBefore = await pidsIn(a);
    const before = await backendA.getDevice('wg0');
    await backendA.close();
    backendA = new UserspaceWireGuardBackend({ netns: a, links: netlinkLinkOps, stateDir, log });
    await backendA.createDevice('wg0');
    expect(await pidsIn(a)).toEqual(pidsBefore);
    const after = await backendA.getDevice('wg0');
    expect(after.ifindex).toBe(before.ifindex);
    expect(after.publicKey).toEqual(before.publicKey);
    expect(after.peers.map((p) => [p.publicKey, p.allowedIps])).toEqual(before.peers.map((p) => [p.publicKey, p.allowedIps]));
    await runIn(a, 'ping', ['-c', '2', '-i', '0.2', '-W', '1', '10.99.0.2']);
    expect(logLines.join('')).toContain('Adopted running wireguard-go device');
  });

  it('bad input is rejected before anything is applied', async () => {
    const kC = keyPair();
    await expect(
      backendA.setDevice('wg0', { peers: [{ publicKey: kC.pub, allowedIps: ['10.97.0.0/24'] }, { publicKey: Buffer.alloc(31) }] }),
    ).rejects.toThrow(expect.objectContaining({ name: 'ValidationError', field: 'config.peers[1].publicKey' }));
    await expect(
      backendA.setDevice('wg0', { peers: [{ publicKey: kC.pub, allowedIps: ['10.97.0.0/24'] }, { publicKey: kB.pub, endpoint: 'example.com:1' }] }),
    ).rejects.toBeInstanceOf(ValidationError);
    await expect(backendA.setDevice('wg0', { privateKey: Buffer.alloc(16) })).rejects.toBeInstanceOf(ValidationError);
    const dev = await backendA.getDevice('wg0');
    expect(dev.peers.map((p) => p.publicKey)).toEqual([kB.pub]);
    expect(dev.publicKey).toEqual(kA.pub);
  });

  it('a port already in use fails with EADDRINUSE and leaves the device unchanged', async () => {
    await backendB.createDevice('wg1');
    const kC = keyPair();
    const err = await backendB.setDevice('wg1', { listenPort: 51821, privateKey: kC.priv, peers: [{ publicKey: kA.pub }] }).catch((e) => e);
    expect(err).toBeInstanceOf(UapiError);
    expect(err.code).toBe('EADDRINUSE');
    expect(err.message).toMatch(/^Cannot configure WireGuard device "wg1" in namespace "vt[0-9a-f]+": wireguard-go answered errno 98 \(EADDRINUSE\)/);
    const dev = await backendB.getDevice('wg1');
    expect(dev).toMatchObject({ hasPrivateKey: false, peers: [] });
    await backendB.deleteDevice('wg1');
  });

  it('an unknown device is a typed ENODEV error for every verb', async () => {
    for (const call of [
      () => backendA.getDevice('nope0'),
      () => backendA.setDevice('nope0', { listenPort: 1 }),
      () => backendA.deleteDevice('nope0'),
    ]) {
      const err = await call().catch((e) => e);
      expect(err).toBeInstanceOf(UapiError);
      expect(err.code).toBe('ENODEV');
      expect(err.message).toMatch(/WireGuard device "nope0" in namespace ".+": no wireguard-go answers on ".+nope0\.sock"; create the device first$/);
    }
  });

  it('a crashed daemon is restarted and the owner is told to re-apply its configuration', async () => {
    const c = await nets.add();
    const restarted: string[] = [];
    const be = new UserspaceWireGuardBackend({ netns: c, links: netlinkLinkOps, stateDir, log, onRestart: (n) => restarted.push(n) });
    try {
      await be.createDevice('wg0');
      await be.setDevice('wg0', { listenPort: 40000 });
      const [pid] = await pidsIn(c);
      process.kill(pid!, 'SIGKILL');
      await eventually(() => restarted.length === 1, { timeoutMs: 10_000, what: 'restart' });
      const [newPid] = await pidsIn(c);
      expect(newPid).not.toBe(pid);
      expect((await be.getDevice('wg0')).listenPort).not.toBe(40000); // a fresh daemon
      expect(logLines.join('')).toContain('wireguard-go exited unexpectedly');
      await be.deleteDevice('wg0');
      expect(await pidsIn(c)).toEqual([]);
    } finally {
      await be.close();
    }
  });

  it('a stale socket left by a dead daemon is replaced by a fresh daemon', async () => {
    const c = await nets.add();
    const be1 = new UserspaceWireGuardBackend({ netns: c, links: netlinkLinkOps, stateDir, log });
    await be1.createDevice('wg0');
    await be1.close();
    const [pid] = await pidsIn(c);
    process.kill(pid!, 'SIGKILL');
    await eventually(async () => (await netlinkLinkOps.linkInfo('wg0', c)) === null, { what: 'link gone' });
    expect(readdirSync(be1.socketDirectory)).toContain('wg0.sock'); // stale
    const be2 = new UserspaceWireGuardBackend({ netns: c, links: netlinkLinkOps, stateDir, log });
    await be2.createDevice('wg0');
    expect((await be2.getDevice('wg0')).peers).toEqual([]);
    expect(logLines.join('')).toContain('Removing stale wireguard-go socket');
    await be2.deleteDevice('wg0');
    await be2.close();
  });

  it('a missing wireguard-go binary says what to install', async () => {
    const c = await nets.add();
    const be = new UserspaceWireGuardBackend({ netns: c, links: netlinkLinkOps, stateDir, log, wireguardGo: '/nonexistent/wireguard-go' });
    const err = await be.createDevice('wg0').catch((e) => e);
    expect(err).toBeInstanceOf(MissingDependencyError);
    expect(err.message).toContain('install wireguard-go (Debian package wireguard-go)');
  });

  it('deleteDevice() removes a started device and an adopted one (process, link and socket)', async () => {
    // B's wg0 was started by backendB; A's wg0 was adopted by the current backendA.
    for (const [be, ns] of [[backendB, b], [backendA, a]] as const) {
      await be.deleteDevice('wg0');
      expect(await netlinkLinkOps.linkInfo('wg0', ns)).toBeNull();
      expect(readdirSync(be.socketDirectory)).not.toContain('wg0.sock');
      await eventually(async () => (await pidsIn(ns)).length === 0, { what: `wireguard-go in ${ns} gone` });
      await expect(be.getDevice('wg0')).rejects.toMatchObject({ code: 'ENODEV' });
    }
  });

  it('never wrote a private or preshared key to a log line or a daemon log', () => {
    const logs = logLines.join('') + readdirSync(stateDir, { recursive: true, withFileTypes: true })
      .filter((e) => e.isFile() && e.name.endsWith('.log'))
      .map((e) => readFileSync(join(e.parentPath, e.name), 'utf8'))
      .join('');
    expect(logLines.length).toBeGreaterThan(0);
    for (const s of secrets) {
      for (const enc of ['hex', 'base64', 'base64url'] as const) expect(logs).not.toContain(s.toString(enc));
    }
  });
});
