/**
 * The two-channel WireGuard reconciler on kernel WireGuard, in the VM (the host kernel has none):
 * tests/vm/scenarios/wireguard-reconcile.mjs builds two node namespaces, sets up both channel
 * devices and peers from node records through the built agent, restarts every reconciler under a
 * running ping and rotates one node's key through the two channels under pings both ways. The
 * same code is tested against wireguard-go on the host (tests/privileged/reconcile/).
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Vm } from './harness/client.js';
import { vm } from './harness/vm.js';

interface PingCount {
  sent: number;
  received: number;
}

interface Result {
  kinds: string[];
  handshakeBefore: boolean[];
  restart: { sets: number[]; ping: PingCount };
  rotation: { ping: PingCount[]; keys: { aHasNewKey: boolean; bPeers: string[] }[] };
  steering: (number | null)[];
  mtu: number;
}

let v: Vm;
const id = randomBytes(4).toString('hex');
const nsA = `wgra${id}`;
const nsB = `wgrb${id}`;
const dir = `/tmp/veil-wgr-${id}`;
let result: Result;

beforeAll(async () => {
  v = await vm();
  await v.check(`ip netns add ${nsA} && ip netns add ${nsB} && mkdir -p ${dir} && chmod 700 ${dir}`);
  const r = await v.exec(`node tests/vm/scenarios/wireguard-reconcile.mjs ${nsA} ${nsB} ${dir}`, { timeoutMs: 400_000 });
  const last = r.stdout.trimEnd().split('\n').at(-1) ?? '';
  let out: Result & { error?: { stack?: string } };
  try {
    out = JSON.parse(last) as typeof out;
  } catch {
    throw new Error(`Scenario "reconcile" printed no JSON result (exit code ${r.code})\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`);
  }
  if (out.error || r.code !== 0) throw new Error(`Scenario "reconcile" failed (exit code ${r.code}): ${out.error?.stack ?? JSON.stringify(out.error)}\nstderr:\n${r.stderr}`);
  result = out;
});

afterAll(async () => {
  if (!v) return;
  await v.exec(`ip netns del ${nsA}; ip netns del ${nsB}; rm -rf ${dir}`);
  const left = await v.check('ip netns list');
  expect(left).not.toContain(nsA);
  expect(left).not.toContain(nsB);
});

describe('WireGuard peer reconciler on kernel WireGuard (VM)', () => {
  it('sets up both channel devices on the kernel backend and the pods talk through them', () => {
    expect(result.kinds).toEqual(['kernel', 'kernel']);
    expect(result.mtu).toBe(1500 - 80);
    expect(result.handshakeBefore).toEqual([true]);
  });

  it('a restart adopts everything: no device change, no ping lost', () => {
    expect(result.restart.sets).toEqual([0, 0]);
    expect(result.restart.ping.sent).toBe(100);
    expect(result.restart.ping.received).toBe(100);
  });

  it('rotates a node key through the two channels with no ping lost either way', () => {
    for (const p of result.rotation.ping) {
      expect(p.sent).toBe(200);
      expect(p.received).toBe(200);
    }
    expect(result.rotation.keys).toEqual([
      { aHasNewKey: true, bPeers: ['new'] },
      { aHasNewKey: true, bPeers: ['new'] },
    ]);
    expect(result.steering).toEqual([1, 1]);
  });
});
