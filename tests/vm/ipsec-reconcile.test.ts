/**
 * The IPsec reconciler on a real kernel with ESP (the VM; the host kernel has none). Two node
 * namespaces in the guest, A with identities 300 and 301, B with identity 400, joined by a veth
 * underlay; each has a pod address on a dummy link. The reconciler (tests/vm/scenarios/
 * ipsec-reconcile.mjs, the built dist/) installs every state and policy; every run of it is a
 * fresh process, as after an agent restart: adopt, update, prune.
 *
 * Test traffic carries the encrypt mark through SO_MARK (tests/vm/scenarios/marked-udp.py), as
 * from-pod would set it. `tcpdump`, `tc` fw filters (counting decrypted packets by the mark the
 * inbound SA set), `ip -s xfrm state` and /proc/net/xfrm_stat only cross-check.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LocalIpsecNode, RemoteIpsecNode } from '../../agent/reconcile/ipsec-desired.js';
import { decryptedMark, encryptMark, keySlot } from '../../agent/reconcile/ipsec-marks.js';
import { X25519PrivateKey } from '../../agent/keys/x25519.js';
import { BOOT_A, BOOT_B, localNode, recordOf } from '../support/ipsec-nodes.js';
import type { Vm, VmExecResult } from './harness/client.js';
import { vm } from './harness/vm.js';

const SCENARIO = 'tests/vm/scenarios/ipsec-reconcile.mjs';
const UDP = 'python3 tests/vm/scenarios/marked-udp.py';

const id = randomBytes(3).toString('hex');
const A = `ipa${id}`;
const B = `ipb${id}`;
const TMP = `/tmp/ipsec-${id}`;

const UNDERLAY_A = '192.0.2.1';
const UNDERLAY_B = '192.0.2.2';
const POD_A = '10.244.1.10';
const POD_B = '10.244.2.10';

let v: Vm;
const a: LocalIpsecNode = localNode('node-a', BOOT_A, [UNDERLAY_A], ['10.244.1.0/24'], { 300: [1], 301: [1] });
const b: LocalIpsecNode = localNode('node-b', BOOT_B, [UNDERLAY_B], ['10.244.2.0/24'], { 400: [1] });

interface PlannedStateView {
  direction: 'in' | 'out';
  node: string;
  identity: number;
  slot: number;
  spi: number;
  src: string;
  dst: string;
  senderGeneration: number;
  receiverGeneration: number;
}
interface ReconcileResult {
  tookMs: number;
  log: { msg: string; states?: number; policies?: number; addedStates?: number; deletedStates?: number; addedPolicies?: number; deletedPolicies?: number; replacedStates?: number }[];
  counts: { nodes: number; inStates: number; outStates: number; policies: number; spiCollisions: number };
  sendingSlots: { node: string; slots: { identity: number; family: number; slot: number }[] }[];
  states: PlannedStateView[];
}

/** The local node as JSON for the guest (test keys only: the guest process needs them). */
function wireLocal(l: LocalIpsecNode) {
  const key = (k: LocalIpsecNode['nodeKey']) => ({
    generations: k.generations.map((g) => ({ generation: g.generation, privateKey: g.privateKey.exportRaw().toString('base64') })),
    ...(k.sending ? { sending: k.sending } : {}),
  });
  return { ...l, nodeKey: key(l.nodeKey), identities: l.identities.map((k) => ({ identity: k.identity, ...key(k) })) };
}

async function scenario<T>(input: unknown): Promise<T> {
  const r = await v.exec(`node ${SCENARIO}`, { stdin: JSON.stringify(input), timeoutMs: 90_000 });
  if (r.code !== 0) throw new Error(`${SCENARIO} failed with exit code ${r.code}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`);
  return JSON.parse(r.stdout) as T;
}

/** One agent (re)start on `netns`: adopt, update the peer's record, prune. */
function reconcile(netns: string, local: LocalIpsecNode, remote: RemoteIpsecNode, options?: object): Promise<ReconcileResult> {
  return scenario<ReconcileResult>({ op: 'reconcile', netns, local: wireLocal(local), remotes: [remote], ...(options ? { options } : {}) });
}

async function both(options?: object): Promise<{ a: ReconcileResult; b: ReconcileResult }> {
  // B first: the receiver's inbound SAs exist before the sender has anything new to send with.
  const rb = await reconcile(B, b, recordOf(a), options);
  const ra = await reconcile(A, a, recordOf(b), options);
  return { a: ra, b: rb };
}

const hex = (n: number) => `0x${(n >>> 0).toString(16)}`;
const slotOf = (r: ReconcileResult, identity: number, family: 4 | 6 = 4) => r.sendingSlots[0]!.slots.find((s) => s.identity === identity && s.family === family)!.slot;

/** Starts `command` in the guest; its pid stays in TMP/NAME.pid while it runs. */
function background(name: string, command: string): { done: Promise<VmExecResult>; running(): Promise<boolean>; stop(): Promise<VmExecResult> } {
  const pid = `${TMP}/${name}.pid`;
  const done = v.exec(`cd ${v.checkout} && echo $$ > ${pid} && exec ${command} >${TMP}/${name}.out 2>${TMP}/${name}.err`, { timeoutMs: 300_000 });
  done.catch(() => undefined);
  return {
    done,
    running: async () => (await v.exec(`kill -0 "$(cat ${pid})"`)).code === 0 && !(await Promise.race([done.then(() => true), new Promise((r) => setTimeout(() => r(false), 10))])),
    async stop() {
      await v.check(`kill -INT "$(cat ${pid})"`);
      return done;
    },
  };
}

async function waitFor(what: string, command: string, timeoutMs = 30_000): Promise<void> {
  const r = await v.exec(`end=$(($(date +%s) + ${Math.ceil(timeoutMs / 1000)})); until ${command}; do [ "$(date +%s)" -lt "$end" ] || exit 1; sleep 0.1; done`, {
    timeoutMs: timeoutMs + 10_000,
  });
  if (r.code !== 0) throw new Error(`Timed out waiting for ${what} in the VM (${command})`);
}

/** Sends `count` datagrams from A's pod to B's pod with the mark in MARKFILE; returns both ends' reports. */
async function stream(name: string, port: number, markFile: string, count: number, interval: number, during?: () => Promise<void>, pods = { src: POD_A, dst: POD_B }) {
  const recv = background(`${name}-recv`, `ip netns exec ${B} ${UDP} recv ${pods.dst} ${port} 4`);
  await waitFor('the UDP receiver', `ip netns exec ${B} ss -Hunl 'sport = :${port}' | grep -q .`);
  const send = background(`${name}-send`, `ip netns exec ${A} ${UDP} send ${pods.src} ${pods.dst} ${port} ${markFile} ${count} ${interval}`);
  let overlapped = true;
  if (during) {
    await during();
    // The changes happened while the stream was still running (not after it).
    overlapped = await send.running();
  }
  const s = await send.done;
  const r = await recv.done;
  if (s.code !== 0 || r.code !== 0) throw new Error(`UDP stream failed: ${await v.exec(`cat ${TMP}/${name}-send.err ${TMP}/${name}-recv.err`).then((x) => x.stdout)}`);
  return {
    overlapped,
    sent: JSON.parse(await v.check(`cat ${TMP}/${name}-send.out`)) as { sent: number; marks: string[]; refused: object },
    received: JSON.parse(await v.check(`cat ${TMP}/${name}-recv.out`)) as { received: number; max: number; missing: number[]; duplicates: number },
  };
}

/** /proc/net/xfrm_stat of a namespace, by counter name. */
async function xfrmStat(netns: string): Promise<Record<string, number>> {
  const text = await v.check(`ip netns exec ${netns} cat /proc/net/xfrm_stat`);
  return Object.fromEntries(text.trim().split('\n').map((l) => { const [k, n] = l.trim().split(/\s+/); return [k!, Number(n)]; }));
}

/** SPI, packets and add time of every state, from `ip -s xfrm state`. */
async function ipStates(netns: string): Promise<{ spi: number; dst: string; packets: number; added: string; mark: string | null; outputMark: string | null }[]> {
  const text = await v.check(`ip -n ${netns} -s xfrm state list`);
  return text
    .split(/\n(?=src )/)
    .filter((blk) => blk.trim() !== '')
    .map((blk) => ({
      spi: Number(blk.match(/proto esp spi (0x[0-9a-f]+)/)![1]),
      dst: blk.match(/^src \S+ dst (\S+)/)![1]!,
      packets: Number(blk.match(/(\d+)\(packets\)/)![1]),
      added: blk.match(/\n\s*add (\S+ \S+)/)![1]!,
      mark: blk.match(/\n\tmark (\S+)/)?.[1] ?? null,
      outputMark: blk.match(/output-mark (\S+)/)?.[1] ?? null,
    }));
}

/** Packets counted by B's fw filter for decrypted packets of `identity` (any slot). */
async function decryptedCount(identity: number, family: 4 | 6 = 4): Promise<number> {
  const tc = await v.check(`ip netns exec ${B} tc -s filter show dev ul0 ingress`);
  const proto = family === 4 ? 'ip' : 'ipv6';
  const m = tc.match(new RegExp(`protocol ${proto} pref \\d+ fw chain 0 handle ${hex(decryptedMark(identity, 0).value)}/0xffff0f00[\\s\\S]*?Sent \\d+ bytes (\\d+) pkt`));
  if (!m) throw new Error(`No fw filter for identity ${identity} in:\n${tc}`);
  return Number(m[1]);
}

beforeAll(async () => {
  v = await vm();
  await v.check(`mkdir -p ${TMP} && ip netns add ${A} && ip netns add ${B}`);
  await scenario({ op: 'setup', nsA: A, nsB: B, a: { underlay: UNDERLAY_A, pod: POD_A, podCidr: '10.244.1.0/24' }, b: { underlay: UNDERLAY_B, pod: POD_B, podCidr: '10.244.2.0/24' } });
  // Decrypted packets re-enter the stack on ul0 (tunnel mode): count them by the identity in
  // the mark their inbound SA set, whatever the slot.
  // tc qdisc add dev ul0 clsact; tc filter add dev ul0 ingress pref P handle MARK/0xffff0f00 fw action pass
  const filters = [300, 301, 0].map((ident, i) => `tc filter add dev ul0 ingress protocol ip pref ${10 + i} handle ${hex(decryptedMark(ident, 0).value)}/0xffff0f00 fw action pass`);
  await v.check(`ip netns exec ${B} sh -c 'tc qdisc add dev ul0 clsact && ${filters.join(' && ')}'`);
});

afterAll(async () => {
  if (!v) return;
  // Whatever still runs (a failed test's stream or capture) is killed by its pid file.
  await v.exec(`for p in ${TMP}/*.pid; do [ -f "$p" ] && kill -KILL "$(cat "$p")"; done; ip netns del ${A}; ip netns del ${B}; rm -rf ${TMP}`);
  const left = await v.check('ip netns list');
  expect(left).not.toContain(A);
});

describe('IPsec reconciler with ESP (VM)', () => {
  let first: { a: ReconcileResult; b: ReconcileResult };

  it('installs one SA per identity each way, and matching SPIs, slots and marks on both ends', async () => {
    first = await both();
    expect(first.a.counts).toEqual({ nodes: 1, inStates: 1, outStates: 2, policies: 4, spiCollisions: 0 });
    expect(first.b.counts).toEqual({ nodes: 1, inStates: 2, outStates: 1, policies: 3, spiCollisions: 0 });
    const outA = first.a.states.filter((s) => s.direction === 'out');
    const inB = first.b.states.filter((s) => s.direction === 'in');
    expect(outA.map((s) => [s.identity, s.spi, s.slot]).sort()).toEqual(inB.map((s) => [s.identity, s.spi, s.slot]).sort());
    // The kernel holds exactly the planned states, with the marks of marks.h.
    const ipA = await ipStates(A);
    const ipB = await ipStates(B);
    expect(ipA.map((s) => s.spi).sort()).toEqual(first.a.states.map((s) => s.spi).sort());
    expect(ipB.map((s) => s.spi).sort()).toEqual(first.b.states.map((s) => s.spi).sort());
    for (const s of outA) {
      const k = ipA.find((x) => x.spi === s.spi)!;
      const m = encryptMark(s.identity, s.slot);
      expect(k.mark).toBe(`${hex(m.value)}/${hex(m.mask)}`);
      const d = decryptedMark(s.identity, s.slot);
      expect(ipB.find((x) => x.spi === s.spi)!.outputMark).toBe(`${hex(d.value)}/${hex(d.mask)}`);
    }
    const policies = await v.check(`ip -n ${A} xfrm policy list`);
    expect(policies).toMatch(/dir out action block priority 2147483647[\s\S]*?mark 0xe00\/0xf00/);
  });

  it("carries marked pod traffic only as ESP, and the receiver's decrypted packets carry the sender's identity", async () => {
    const cap = background('cap', `ip netns exec ${A} tcpdump -Z root -i ul0 -Q out -nn -U -s 128 -w ${TMP}/cap.pcap`);
    await waitFor('tcpdump', `grep -q 'listening on' ${TMP}/cap.err`);
    const before = { 300: await decryptedCount(300), 301: await decryptedCount(301) };
    for (const [ident, port, count] of [
      [300, 5300, 40],
      [301, 5301, 25],
    ] as const) {
      await v.check(`printf '%x' ${encryptMark(ident, slotOf(first.a, ident)).value} > ${TMP}/mark-${ident}`);
      const r = await stream(`id${ident}`, port, `${TMP}/mark-${ident}`, count, 0.01);
      expect(r.received).toEqual({ received: count, max: count, missing: [], duplicates: 0 });
    }
    expect(await decryptedCount(300)).toBe(before[300] + 40);
    expect(await decryptedCount(301)).toBe(before[301] + 25);

    // An identity without SAs to B: its marked packets hit the block policy, never the wire.
    const stat = await xfrmStat(A);
    await v.check(`printf '%x' ${encryptMark(999, 0).value} > ${TMP}/mark-999`);
    const blocked = JSON.parse(await v.check(`ip netns exec ${A} ${UDP} send ${POD_A} ${POD_B} 5399 ${TMP}/mark-999 5 0.01`)) as { refused: object };
    expect(blocked.refused).toEqual({ EPERM: 5 });
    expect((await xfrmStat(A)).XfrmOutPolBlock).toBe(stat.XfrmOutPolBlock! + 5);

    await v.check('sleep 1');
    expect((await cap.stop()).code).toBe(0);
    const lines = (await v.check(`tcpdump -r ${TMP}/cap.pcap -nn -t 2>/dev/null`)).split('\n').filter((l) => l.startsWith('IP '));
    const esp = /^IP 192\.0\.2\.1 > 192\.0\.2\.2: ESP\(spi=0x[0-9a-f]{8},seq=0x[0-9a-f]+\), length \d+$/;
    expect(lines.filter((l) => !esp.test(l))).toEqual([]);
    expect(lines.length).toBe(65);
  });

  it("rotates identity 300's key under a UDP stream: no packet lost, xfrm error counters unchanged", async () => {
    const x = a.identities.find((k) => k.identity === 300)!;
    const COUNT = 1500;
    const slot1 = slotOf(first.a, 300);
    await v.check(`printf '%x' ${encryptMark(300, slot1).value} > ${TMP}/mark-rot`);
    const statsBefore = { a: await xfrmStat(A), b: await xfrmStat(B) };
    const decryptedBefore = await decryptedCount(300);
    const oldSpi = first.a.states.find((s) => s.direction === 'out' && s.identity === 300)!.spi;
    let newSlot = -1;
    let newSpi = -1;
    const steps: string[] = [];

    const r = await stream('rot', 5310, `${TMP}/mark-rot`, COUNT, 0.02, async () => {
      // The stream is flowing on the old key before anything changes.
      for (let i = 0; (await decryptedCount(300)) < decryptedBefore + 20; i++) {
        if (i > 300) throw new Error('The UDP stream did not start');
        await new Promise((res) => setTimeout(res, 100));
      }
      // 1. Generate: A holds generation 2 (still sending with 1) and publishes it; B installs
      //    the inbound SA for it (acknowledges). A's outbound SA for it exists, unused.
      x.generations.push({ generation: 2, privateKey: X25519PrivateKey.generate() });
      x.sending = 1;
      const g = await both();
      steps.push(`generate: A +${g.a.log.find((l) => l.msg === 'Applied IPsec changes')?.addedStates} B +${g.b.log.find((l) => l.msg === 'Applied IPsec changes')?.addedStates}`);
      // 2. Activate: the datapath switches to the new slot.
      x.sending = 2;
      const act = await reconcile(A, a, recordOf(b));
      newSlot = slotOf(act, 300);
      newSpi = act.states.find((s) => s.direction === 'out' && s.identity === 300 && s.senderGeneration === 2)!.spi;
      await v.check(`printf '%x' ${encryptMark(300, newSlot).value} > ${TMP}/mark-rot`);
      await v.check('sleep 1');
      // 3. Retire: generation 1 leaves A's keys and record; both ends delete its SAs.
      x.generations = x.generations.filter((k) => k.generation === 2);
      delete x.sending;
      const ret = await both();
      steps.push(`retire: A -${ret.a.log.find((l) => l.msg === 'Applied IPsec changes')?.deletedStates} B -${ret.b.log.find((l) => l.msg === 'Applied IPsec changes')?.deletedStates}`);
    });

    expect(steps).toEqual(['generate: A +1 B +1', 'retire: A -1 B -1']);
    expect(newSlot).toBe(keySlot(2, 1));
    expect(newSlot).not.toBe(slot1);
    expect(r.sent.marks).toEqual([hex(encryptMark(300, slot1).value), hex(encryptMark(300, newSlot).value)]);
    expect(r.overlapped).toBe(true);
    expect(r.sent.refused).toEqual({});
    expect(r.received).toEqual({ received: COUNT, max: COUNT, missing: [], duplicates: 0 });
    expect(await decryptedCount(300)).toBe(decryptedBefore + COUNT);
    expect({ a: await xfrmStat(A), b: await xfrmStat(B) }).toEqual(statsBefore);
    const spisA = (await ipStates(A)).map((s) => s.spi);
    const spisB = (await ipStates(B)).map((s) => s.spi);
    expect(spisA).toContain(newSpi);
    expect(spisB).toContain(newSpi);
    expect(spisA).not.toContain(oldSpi);
    expect(spisB).not.toContain(oldSpi);
    expect(spisA).toHaveLength(3);
    expect(spisB).toHaveLength(3);
  });

  it("rotates node B's key under a UDP stream: B accepts the new key before A sends with it, 0 lost, xfrm errors unchanged", async () => {
    const COUNT = 1500;
    const before = await reconcile(A, a, recordOf(b));
    const slotOld = slotOf(before, 301);
    await v.check(`printf '%x' ${encryptMark(301, slotOld).value} > ${TMP}/mark-nk`);
    const statsBefore = { a: await xfrmStat(A), b: await xfrmStat(B) };
    const decryptedBefore = await decryptedCount(301);
    let slotNew = -1;
    const steps: string[] = [];
    const applied = (r: ReconcileResult) => r.log.find((l) => l.msg === 'Applied IPsec changes') ?? {};

    const r = await stream('nk', 5330, `${TMP}/mark-nk`, COUNT, 0.02, async () => {
      for (let i = 0; (await decryptedCount(301)) < decryptedBefore + 20; i++) {
        if (i > 300) throw new Error('The UDP stream did not start');
        await new Promise((res) => setTimeout(res, 100));
      }
      // B generates node key 2 and installs its inbound SAs first; then its record carries it
      // and A adds out SAs for it (both() runs B, then A).
      b.nodeKey.generations.push({ generation: 2, privateKey: X25519PrivateKey.generate() });
      const g = await both();
      steps.push(`publish: B +${applied(g.b).addedStates ?? 0} in, A +${applied(g.a).addedStates ?? 0} out`);
      // A sends with B's newest node key.
      slotNew = slotOf(g.a, 301);
      await v.check(`printf '%x' ${encryptMark(301, slotNew).value} > ${TMP}/mark-nk; sleep 1`);
      // B retires node key 1 after every peer moved: its inbound SAs go, then A's out SAs.
      b.nodeKey.generations = b.nodeKey.generations.filter((k) => k.generation === 2);
      const ret = await both();
      steps.push(`retire: B -${applied(ret.b).deletedStates ?? 0} in, A -${applied(ret.a).deletedStates ?? 0} out`);
    });

    // Two identities on A send to B: two inbound SAs on B and two outbound SAs on A per generation.
    expect(steps).toEqual(['publish: B +2 in, A +2 out', 'retire: B -2 in, A -2 out']);
    expect(slotNew).toBe(keySlot(1, 2));
    expect(r.overlapped).toBe(true);
    expect(r.sent).toEqual({ sent: COUNT, marks: [hex(encryptMark(301, slotOld).value), hex(encryptMark(301, slotNew).value)], refused: {} });
    expect(r.received).toEqual({ received: COUNT, max: COUNT, missing: [], duplicates: 0 });
    expect(await decryptedCount(301)).toBe(decryptedBefore + COUNT);
    expect({ a: await xfrmStat(A), b: await xfrmStat(B) }).toEqual(statsBefore);
    expect(await ipStates(A)).toHaveLength(3);
    expect(await ipStates(B)).toHaveLength(3);
  });

  it('adopts on restart: no state re-created, SPIs, add times and counters carried on', async () => {
    const before = { a: await ipStates(A), b: await ipStates(B) };
    const policiesBefore = { a: await v.check(`ip -n ${A} xfrm policy list`), b: await v.check(`ip -n ${B} xfrm policy list`) };
    const again = await both();
    for (const r of [again.a, again.b]) {
      expect(r.log.map((l) => l.msg)).toEqual(['Adopted IPsec kernel state']);
    }
    expect(again.a.log[0]).toMatchObject({ states: 3, policies: 6 });
    expect({ a: await ipStates(A), b: await ipStates(B) }).toEqual(before);
    expect(before.a.some((s) => s.packets > 0)).toBe(true);
    expect({ a: await v.check(`ip -n ${A} xfrm policy list`), b: await v.check(`ip -n ${B} xfrm policy list`) }).toEqual(policiesBefore);
  });

  it('switches to per-node-pair SAs: node keys only, identity 0 in the marks, traffic still encrypted', async () => {
    const r = await both({ granularity: 'node-pair' });
    expect(r.a.counts).toMatchObject({ inStates: 1, outStates: 1 });
    expect(r.b.counts).toMatchObject({ inStates: 1, outStates: 1 });
    // The per-identity SAs were adopted, then pruned as no longer planned.
    expect((await ipStates(A)).map((s) => s.spi).sort()).toEqual(r.a.states.map((s) => s.spi).sort());
    const before = await decryptedCount(0);
    await v.check(`printf '%x' ${encryptMark(0, slotOf(r.a, 0)).value} > ${TMP}/mark-0`);
    const s = await stream('np', 5320, `${TMP}/mark-0`, 20, 0.01);
    expect(s.received).toEqual({ received: 20, max: 20, missing: [], duplicates: 0 });
    expect(await decryptedCount(0)).toBe(before + 20);
  });

  it('adds IPv6 SAs once both nodes have IPv6 underlay addresses and pod CIDRs, and carries IPv6 pod traffic only as ESP', async () => {
    for (const [ns, me, peer] of [
      [A, { ul: '2001:db8::1', pod: 'fd00:1::10' }, 'fd00:2::/64'],
      [B, { ul: '2001:db8::2', pod: 'fd00:2::10' }, 'fd00:1::/64'],
    ] as const) {
      // ip -n NS addr add UL/64 dev ul0 nodad; ip -n NS addr add POD/128 dev pods nodad; ip -n NS route add PEER dev ul0 src POD
      await scenario({
        op: 'addresses',
        netns: ns,
        addresses: [
          { dev: 'ul0', address: `${me.ul}/64`, noDad: true },
          { dev: 'pods', address: `${me.pod}/128`, noDad: true },
        ],
        routes: [{ dst: peer, dev: 'ul0', src: me.pod }],
      });
    }
    a.addresses.push('2001:db8::1');
    a.podCidrs.push('fd00:1::/64');
    b.addresses.push('2001:db8::2');
    b.podCidrs.push('fd00:2::/64');
    const r = await both();
    // Per family: A sends for 300 and 301 and receives from 400; B the other way round.
    expect(r.a.counts).toEqual({ nodes: 1, inStates: 2, outStates: 4, policies: 8, spiCollisions: 0 });
    expect(r.b.counts).toEqual({ nodes: 1, inStates: 4, outStates: 2, policies: 6, spiCollisions: 0 });
    expect((await ipStates(A)).filter((s) => s.dst === '2001:db8::2')).toHaveLength(2);

    // tc filter add dev ul0 ingress protocol ipv6 pref 20 handle MARK/0xffff0f00 fw action pass
    await v.check(`ip netns exec ${B} tc filter add dev ul0 ingress protocol ipv6 pref 20 handle ${hex(decryptedMark(300, 0).value)}/0xffff0f00 fw action pass`);
    const cap = background('cap6', `ip netns exec ${A} tcpdump -Z root -i ul0 -Q out -nn -U -s 128 -w ${TMP}/cap6.pcap ip6 and not icmp6`);
    await waitFor('tcpdump', `grep -q 'listening on' ${TMP}/cap6.err`);
    await v.check(`printf '%x' ${encryptMark(300, slotOf(r.a, 300, 6)).value} > ${TMP}/mark-v6`);
    const s = await stream('v6', 5340, `${TMP}/mark-v6`, 30, 0.01, undefined, { src: 'fd00:1::10', dst: 'fd00:2::10' });
    expect(s.received).toEqual({ received: 30, max: 30, missing: [], duplicates: 0 });
    expect(await decryptedCount(300, 6)).toBe(30);
    await v.check('sleep 1');
    expect((await cap.stop()).code).toBe(0);
    const lines = (await v.check(`tcpdump -r ${TMP}/cap6.pcap -nn -t 2>/dev/null`)).split('\n').filter((l) => l.startsWith('IP6 '));
    expect(lines.filter((l) => !/^IP6 2001:db8::1 > 2001:db8::2: ESP\(spi=0x[0-9a-f]{8},seq=0x[0-9a-f]+\), length \d+$/.test(l))).toEqual([]);
    expect(lines).toHaveLength(30);
  });

  it('drops marked traffic, never sends it in clear, while SAs are missing; the next reconcile re-creates them', async () => {
    const slot = slotOf(await reconcile(A, a, recordOf(b)), 300);
    await v.check(`printf '%x' ${encryptMark(300, slot).value} > ${TMP}/mark-flush`);
    const cap = background('capf', `ip netns exec ${A} tcpdump -Z root -i ul0 -Q out -nn -U -s 128 -w ${TMP}/capf.pcap ip`);
    await waitFor('tcpdump', `grep -q 'listening on' ${TMP}/capf.err`);
    const decrypted = await decryptedCount(300);
    // ip -n A xfrm state flush: every SA gone behind the reconciler's back; the policies stay.
    await v.check(`ip -n ${A} xfrm state flush`);
    const sent = JSON.parse(await v.check(`ip netns exec ${A} ${UDP} send ${POD_A} ${POD_B} 5350 ${TMP}/mark-flush 10 0.01`)) as { sent: number };
    expect(sent.sent).toBe(10);
    await v.check('sleep 1');
    expect((await cap.stop()).code).toBe(0);
    const lines = (await v.check(`tcpdump -r ${TMP}/capf.pcap -nn -t 2>/dev/null`)).split('\n').filter((l) => l.startsWith('IP '));
    // Nothing left A: no ESP (no SA) and above all no plaintext UDP from the pod.
    expect(lines).toEqual([]);
    expect(await decryptedCount(300)).toBe(decrypted);

    const again = await reconcile(A, a, recordOf(b));
    expect(again.log).toEqual(expect.arrayContaining([expect.objectContaining({ msg: 'Applied IPsec changes', addedStates: 6 })]));
    const s = await stream('flush', 5351, `${TMP}/mark-flush`, 10, 0.01);
    expect(s.received).toEqual({ received: 10, max: 10, missing: [], duplicates: 0 });
  });
});
