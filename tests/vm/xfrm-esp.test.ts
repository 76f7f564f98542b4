/**
 * IPsec ESP configured only through the addon, on a real Debian kernel (the host kernel has no
 * ESP). Two fresh namespaces in the guest are joined by a veth underlay; each has an inner
 * address on a dummy link. Tunnel-mode states (AES-GCM with ESN one way, ChaCha20-Poly1305 the
 * other) and in/out/fwd policies carry ping and a TCP transfer between the inner addresses.
 *
 * The addon (tests/vm/scenarios/xfrm-ops.mjs running dist/ in the guest) creates the links,
 * addresses, routes, states and policies. `ip`, `tcpdump` and `tc` only cross-check: what the
 * wire carries, what the kernel reports, and how many decrypted packets carry the inbound SA's
 * set-mark.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { XfrmPolicy, XfrmPolicyConfig, XfrmState, XfrmStateConfig, XfrmStateStats } from '../../agent/xfrm/types.js';
import { parseIpXfrmPolicies, type IpPolicy } from '../privileged/xfrm/ip-xfrm-text.js';
import type { Vm, VmExecResult } from './harness/client.js';
import { vm } from './harness/vm.js';

const SCENARIO = 'tests/vm/scenarios/xfrm-ops.mjs';

const id = randomBytes(3).toString('hex');
const A = `xa${id}`;
const B = `xb${id}`;
/** Guest scratch directory (the guest's /tmp is its own tmpfs). */
const TMP = `/tmp/xfrm-${id}`;

const OUTER_A = '192.0.2.1';
const OUTER_B = '192.0.2.2';
const INNER_A = '10.1.0.1';
const INNER_B = '10.2.0.1';
const NET_A = '10.1.0.0/24';
const NET_B = '10.2.0.0/24';

const SPI_AB = 0x0a0b0001;
const SPI_BA = 0x0b0a0002;
const REQID_AB = 0x11;
const REQID_BA = 0x22;
/** B's inbound SA marks what it decrypts: 0x42 in the 0xff00 byte (an identity slot). */
const SET_MARK = { value: 0x4200, mask: 0xff00 };
/** B's inbound SA is found only for ESP packets whose mark has 0 in that byte (all that arrive). */
const IN_MARK = { value: 0, mask: 0xff00 };

/** A -> B: AES-256-GCM (32-byte key + 4-byte salt), 64-bit ESN with a 128-packet window. */
const ab: XfrmStateConfig = {
  src: OUTER_A,
  dst: OUTER_B,
  spi: SPI_AB,
  reqid: REQID_AB,
  mode: 'tunnel',
  aead: { algorithm: 'rfc4106(gcm(aes))', key: randomBytes(36) },
  replayWindow: 128,
  esn: true,
};
/** B -> A: ChaCha20-Poly1305 (32-byte key + 4-byte salt), 32-bit sequence numbers. */
const ba: XfrmStateConfig = {
  src: OUTER_B,
  dst: OUTER_A,
  spi: SPI_BA,
  reqid: REQID_BA,
  mode: 'tunnel',
  aead: { algorithm: 'rfc7539esp(chacha20,poly1305)', key: randomBytes(36) },
  replayWindow: 32,
};
const statesA: XfrmStateConfig[] = [ab, ba];
const statesB: XfrmStateConfig[] = [{ ...ab, mark: IN_MARK, setMark: SET_MARK }, ba];

/** out (with the local state's SPI in its template), in and fwd policies of one tunnel end. */
function policies(
  local: { net: string; outer: string; reqidOut: number; spiOut: number },
  peer: { net: string; outer: string; reqidIn: number },
): XfrmPolicyConfig[] {
  const inbound = { src: peer.outer, dst: local.outer, reqid: peer.reqidIn, mode: 'tunnel' as const };
  return [
    {
      dir: 'out',
      selector: { src: local.net, dst: peer.net },
      priority: 100,
      templates: [{ src: local.outer, dst: peer.outer, reqid: local.reqidOut, spi: local.spiOut, mode: 'tunnel' }],
    },
    { dir: 'in', selector: { src: peer.net, dst: local.net }, priority: 100, templates: [inbound] },
    { dir: 'fwd', selector: { src: peer.net, dst: local.net }, priority: 100, templates: [inbound] },
  ];
}
const policiesA = policies({ net: NET_A, outer: OUTER_A, reqidOut: REQID_AB, spiOut: SPI_AB }, { net: NET_B, outer: OUTER_B, reqidIn: REQID_BA });
const policiesB = policies({ net: NET_B, outer: OUTER_B, reqidOut: REQID_BA, spiOut: SPI_BA }, { net: NET_A, outer: OUTER_A, reqidIn: REQID_AB });

let v: Vm;

// ---------------------------------------------------------------------------------------------
// Running the addon in the guest

interface Step {
  call: string;
  args: unknown[];
  expectError?: boolean;
}
interface StepError {
  name: string;
  message: string;
  code?: string;
  field?: string;
  index?: number;
  extack?: string;
}
type StepResult = { ok: true; value: unknown } | { ok: false; error: StepError };

/** Buffers cross as { $hex }, bigints come back as { $bigint } (see the scenario's header). */
function toWire(_key: string, value: unknown): unknown {
  const b = value as { type?: unknown; data?: unknown };
  if (b && typeof b === 'object' && b.type === 'Buffer' && Array.isArray(b.data)) return { $hex: Buffer.from(b.data as number[]).toString('hex') };
  return value;
}
function fromWire(_key: string, value: unknown): unknown {
  const b = value as { $bigint?: unknown };
  if (b && typeof b === 'object' && typeof b.$bigint === 'string') return BigInt(b.$bigint);
  return value;
}

/** Runs `steps` against the addon in one guest `node` process; rejects when one fails unexpectedly. */
async function addon(steps: Step[]): Promise<StepResult[]> {
  const r = await v.exec(`node ${SCENARIO}`, { stdin: JSON.stringify(steps, toWire), timeoutMs: 60_000 });
  if (r.code !== 0) throw new Error(`${SCENARIO} failed with exit code ${r.code}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`);
  return JSON.parse(r.stdout, fromWire) as StepResult[];
}

function value<T>(r: StepResult | undefined): T {
  if (!r?.ok) throw new Error(`Expected a result, got ${JSON.stringify(r)}`);
  return r.value as T;
}

const inNs = (netns: string, args: unknown[]) => [...args, { netns }];

// ---------------------------------------------------------------------------------------------
// Background commands in the guest (captures, monitors)

interface Background {
  done: Promise<VmExecResult>;
  /** Sends SIGINT and waits for the command to end. */
  stop(): Promise<VmExecResult>;
}

/**
 * Starts `command` in the guest with stdout in TMP/NAME.out and stderr in TMP/NAME.err; its pid
 * is kept in TMP/NAME.pid until it is stopped (afterAll kills what is left).
 */
function background(name: string, command: string): Background {
  const done = v.exec(`echo $$ > ${TMP}/${name}.pid; exec ${command} >${TMP}/${name}.out 2>${TMP}/${name}.err`, { timeoutMs: 300_000 });
  done.catch(() => undefined);
  return {
    done,
    async stop() {
      await v.check(`kill -INT "$(cat ${TMP}/${name}.pid)"`);
      const r = await done;
      await v.check(`rm -f ${TMP}/${name}.pid`);
      return r;
    },
  };
}

async function waitFor(what: string, command: string, timeoutMs = 30_000): Promise<void> {
  const r = await v.exec(
    `end=$(($(date +%s) + ${Math.ceil(timeoutMs / 1000)})); until ${command}; do [ "$(date +%s)" -lt "$end" ] || exit 1; sleep 0.1; done`,
    { timeoutMs: timeoutMs + 10_000 },
  );
  if (r.code !== 0) throw new Error(`Timed out waiting for ${what} in the VM (${command})`);
}

/** A capture of what one end puts on the underlay (`-Q out`: the wire, before the peer decrypts). */
async function startCapture(netns: string, dev: string, name: string): Promise<Background> {
  // -Z root: Debian's tcpdump otherwise drops to user "tcpdump", who cannot write to TMP.
  const cap = background(name, `ip netns exec ${netns} tcpdump -Z root -i ${dev} -Q out -nn -U -s 256 -w ${TMP}/${name}.pcap`);
  await waitFor(`tcpdump on ${dev}`, `grep -q 'listening on' ${TMP}/${name}.err`);
  return cap;
}

// ---------------------------------------------------------------------------------------------
// What `ip -s xfrm state` prints (iproute2 6.1 has no JSON for xfrm)

interface IpState {
  src: string;
  dst: string;
  spi: number;
  reqid: number;
  mode: string;
  flags: string[];
  replayWindow: number;
  mark: { value: number; mask: number } | null;
  outputMark: { value: number; mask: number } | null;
  aead: { algorithm: string; keyHex: string; keyBits: number; icvBits: number } | null;
  selector: string;
  bytes: bigint;
  packets: bigint;
  /** Inbound and outbound sequence numbers (64-bit with ESN). */
  seq: bigint;
  oseq: bigint;
  replayDrops: number;
  replayWindowDrops: number;
  integrityFailures: number;
  block: string;
}

function markOf(m: RegExpMatchArray | null): { value: number; mask: number } | null {
  return m ? { value: Number(m[1]), mask: Number(m[2]) } : null;
}

function parseIpStates(text: string): IpState[] {
  const blocks = text.split(/\n(?=src )/).filter((b) => b.trim() !== '');
  return blocks.map((block) => {
    const need = (re: RegExp): RegExpMatchArray => {
      const m = block.match(re);
      if (!m) throw new Error(`"ip -s xfrm state" block without ${re}:\n${block}`);
      return m;
    };
    const head = need(/^src (\S+) dst (\S+)/);
    const id = need(/proto esp spi (0x[0-9a-f]+)\S* reqid (\d+)\S* mode (\S+)/);
    const flagLine = block.match(/\n\treplay-window (\d+) seq \S+ flag ([^(\n]*)/);
    const esn = block.match(/anti-replay esn context:\s*\n\s*seq-hi (0x[0-9a-f]+), seq (0x[0-9a-f]+), oseq-hi (0x[0-9a-f]+), oseq (0x[0-9a-f]+)\s*\n\s*replay_window (\d+)/);
    const plain = block.match(/anti-replay context: seq (0x[0-9a-f]+), oseq (0x[0-9a-f]+)/);
    const aead = block.match(/\n\taead (\S+) 0x([0-9a-f]+) \((\d+) bits\) (\d+)/);
    const cur = need(/lifetime current:\s*\n\s*(\d+)\(bytes\), (\d+)\(packets\)/);
    const stats = need(/stats:\s*\n\s*replay-window (\d+) replay (\d+) failed (\d+)/);
    const hi = (h: string, l: string) => (BigInt(h) << 32n) | BigInt(l);
    return {
      src: head[1]!,
      dst: head[2]!,
      spi: Number(id[1]),
      reqid: Number(id[2]),
      mode: id[3]!,
      flags: (flagLine?.[2] ?? '').trim().split(/\s+/).filter(Boolean),
      replayWindow: esn ? Number(esn[5]) : Number(flagLine?.[1] ?? -1),
      mark: markOf(block.match(/\n\tmark (\S+)\/(\S+)/)),
      // iproute2 prints XFRMA_SET_MARK as output-mark, after the mark on the same line.
      outputMark: markOf(block.match(/[\t ]output-mark (\S+)\/(\S+)/)),
      aead: aead ? { algorithm: aead[1]!, keyHex: aead[2]!, keyBits: Number(aead[3]), icvBits: Number(aead[4]) } : null,
      selector: need(/\n\tsel ([^\n]*)/)[1]!.trim(),
      bytes: BigInt(cur[1]!),
      packets: BigInt(cur[2]!),
      seq: esn ? hi(esn[1]!, esn[2]!) : plain ? BigInt(plain[1]!) : -1n,
      oseq: esn ? hi(esn[3]!, esn[4]!) : plain ? BigInt(plain[2]!) : -1n,
      replayWindowDrops: Number(stats[1]),
      replayDrops: Number(stats[2]),
      integrityFailures: Number(stats[3]),
      block,
    };
  });
}

async function ipStates(netns: string): Promise<IpState[]> {
  return parseIpStates(await v.check(`ip -n ${netns} -s xfrm state list`));
}

async function ipPolicies(netns: string): Promise<IpPolicy[]> {
  return parseIpXfrmPolicies(await v.check(`ip -n ${netns} xfrm policy list`));
}

const spiHex = (spi: number) => `0x${spi.toString(16).padStart(8, '0')}`;

// ---------------------------------------------------------------------------------------------
// Topology: everything below `ip netns add` is the addon's work

beforeAll(async () => {
  v = await vm();
  await v.check(`mkdir -p ${TMP} && ip netns add ${A} && ip netns add ${B}`);
  const side = (ns: string, dev: string, outer: string, inner: string, peerNet: string): Step[] => [
    // ip -n NS link set lo up; ip -n NS link add dum0 type dummy; ip -n NS link set dum0 up
    { call: 'link.setLink', args: inNs(ns, ['lo', { up: true }]) },
    { call: 'link.addLinks', args: inNs(ns, [[{ name: 'dum0', kind: 'dummy', up: true }]]) },
    { call: 'link.setLink', args: inNs(ns, [dev, { up: true }]) },
    // ip -n NS addr add OUTER/24 dev DEV; ip -n NS addr add INNER/24 dev dum0
    { call: 'address.addAddresses', args: inNs(ns, [[{ dev, address: `${outer}/24` }, { dev: 'dum0', address: `${inner}/24` }]]) },
    // ip -n NS route add PEERNET dev DEV src INNER: the policy turns it into ESP to the peer
    { call: 'route.addRoutes', args: inNs(ns, [[{ dst: peerNet, dev, src: inner }]]) },
  ];
  await addon([
    // ip -n A link add va type veth peer name vb netns B
    { call: 'link.addLinks', args: inNs(A, [[{ name: 'va', kind: 'veth', peer: { name: 'vb', netns: B } }]]) },
    ...side(A, 'va', OUTER_A, INNER_A, NET_B),
    ...side(B, 'vb', OUTER_B, INNER_B, NET_A),
    { call: 'xfrm.addStates', args: inNs(A, [statesA]) },
    { call: 'xfrm.addStates', args: inNs(B, [statesB]) },
    { call: 'xfrm.addPolicies', args: inNs(A, [policiesA]) },
    { call: 'xfrm.addPolicies', args: inNs(B, [policiesB]) },
  ]);
});

afterAll(async () => {
  if (!v) return;
  // Background commands (captures, monitors) die with their namespace's devices or by pid.
  await v.exec(`for p in ${TMP}/*.pid; do [ -f "$p" ] && kill -KILL "$(cat "$p")"; done; ip netns del ${A}; ip netns del ${B}; rm -rf ${TMP}`);
  const left = await v.check('ip netns list');
  expect(left).not.toContain(A);
  expect(left).not.toContain(B);
});

// ---------------------------------------------------------------------------------------------

describe('IPsec ESP installed through the addon (VM)', () => {
  /**
   * ESP packets on the wire each way and decrypted packets carrying the set-mark: filled by the
   * traffic test, checked by the two after it (a file's tests run in order).
   */
  const wire = { ab: 0, ba: 0, marked: -1 };

  it('carries ping and a TCP transfer between the inner addresses, and the underlay carries only ESP', async () => {
    // The decrypted packets of B's inbound SA, counted by their set-mark where they re-enter
    // the stack on vb (tunnel mode re-injects the inner packet on the device it arrived on).
    // tc qdisc add dev vb clsact; tc filter add dev vb ingress protocol ip handle 0x4200/0xff00 fw action pass
    await v.check(
      `ip netns exec ${B} tc qdisc add dev vb clsact && ` +
        `ip netns exec ${B} tc filter add dev vb ingress protocol ip pref 10 handle 0x4200/0xff00 fw action pass`,
    );
    // Each end's transmit side is exactly what the veth wire carries. (A capture of received
    // packets on the decrypting end would also show the decrypted inner packets re-injected on
    // that device, which never were on the wire.)
    const capA = await startCapture(A, 'va', 'capA');
    const capB = await startCapture(B, 'vb', 'capB');

    const ping = await v.check(`ip netns exec ${A} ping -c 4 -i 0.2 -W 5 -I ${INNER_A} ${INNER_B}`, { timeoutMs: 60_000 });
    expect(ping).toMatch(/4 packets transmitted, 4 received/);

    // 256 KiB over TCP from A's inner address to B's, compared byte for byte.
    const tcp = await v.exec(
      `head -c 262144 /dev/urandom > ${TMP}/send && ` +
        `{ ip netns exec ${B} socat -u TCP-LISTEN:5001,bind=${INNER_B},reuseaddr CREATE:${TMP}/recv & srv=$!; ` +
        `ip netns exec ${A} socat -u OPEN:${TMP}/send TCP:${INNER_B}:5001,bind=${INNER_A},retry=100,interval=0.1 && wait $srv; } && ` +
        `cmp ${TMP}/send ${TMP}/recv && echo same`,
      { timeoutMs: 120_000 },
    );
    expect({ code: tcp.code, stdout: tcp.stdout.trim() }, tcp.stderr).toEqual({ code: 0, stdout: 'same' });

    // Let the last ACKs of the connection's close cross before the captures stop.
    await v.check('sleep 1');
    for (const cap of [capA, capB]) expect((await cap.stop()).code).toBe(0);
    const dropped = await v.check(`cat ${TMP}/capA.err ${TMP}/capB.err`);
    expect(dropped).not.toMatch(/[1-9]\d* packets? dropped by kernel/);

    for (const [name, src, dst, spi] of [
      ['capA', OUTER_A, OUTER_B, SPI_AB],
      ['capB', OUTER_B, OUTER_A, SPI_BA],
    ] as const) {
      const lines = (await v.check(`tcpdump -r ${TMP}/${name}.pcap -nn -t 2>/dev/null`)).split('\n').filter(Boolean);
      const ip = lines.filter((l) => l.startsWith('IP '));
      const esp = new RegExp(`^IP ${src.replaceAll('.', '\\.')} > ${dst.replaceAll('.', '\\.')}: ESP\\(spi=${spiHex(spi)},seq=0x[0-9a-f]+\\), length \\d+$`);
      // Every IPv4 packet on the wire is ESP between the tunnel endpoints with this direction's SPI;
      // no packet of any kind names an inner address or is plaintext ICMP or TCP.
      expect(ip.filter((l) => !esp.test(l))).toEqual([]);
      expect(lines.filter((l) => l.includes(INNER_A) || l.includes(INNER_B) || /ICMP echo|Flags \[/.test(l))).toEqual([]);
      if (name === 'capA') wire.ab = ip.length;
      else wire.ba = ip.length;
    }
    // Ping (4 requests, 4 replies) and the TCP transfer (at least 256 KiB / 1500-byte MTU segments).
    expect(wire.ab).toBeGreaterThan(4 + 262144 / 1500);
    expect(wire.ba).toBeGreaterThan(4);

    // tc 6.1 prints invalid JSON for fw filters: read the action's "Sent N bytes M pkt" line.
    const tc = await v.check(`ip netns exec ${B} tc -s filter show dev vb ingress`);
    const sent = tc.match(/handle 0x4200\/0xff00[\s\S]*?Sent (\d+) bytes (\d+) pkt/);
    expect(sent, tc).not.toBeNull();
    wire.marked = Number(sent![2]);
  });

  it('ip -s xfrm state and ip xfrm policy show exactly what the addon installed, with counters equal to stateStats()', async () => {
    const statId = (s: XfrmStateConfig) => ({ dst: s.dst, spi: s.spi, ...(s.mark ? { mark: s.mark } : {}) });
    const read = await addon([
      { call: 'xfrm.stateStats', args: inNs(A, [statId(statesA[0]!)]) },
      { call: 'xfrm.stateStats', args: inNs(A, [statId(statesA[1]!)]) },
      { call: 'xfrm.stateStats', args: inNs(B, [statId(statesB[0]!)]) },
      { call: 'xfrm.stateStats', args: inNs(B, [statId(statesB[1]!)]) },
      { call: 'xfrm.listStates', args: inNs(A, [undefined]) },
      { call: 'xfrm.listStates', args: inNs(B, [undefined]) },
      { call: 'xfrm.listPolicies', args: inNs(A, [undefined]) },
      { call: 'xfrm.listPolicies', args: inNs(B, [undefined]) },
    ]);
    const [aOut, aIn, bIn, bOut] = read.slice(0, 4).map((r) => value<XfrmStateStats>(r));
    const listed = { [A]: value<XfrmState[]>(read[4]), [B]: value<XfrmState[]>(read[5]) };
    const listedPolicies = { [A]: value<XfrmPolicy[]>(read[6]), [B]: value<XfrmPolicy[]>(read[7]) };

    // Every packet one end encrypted is on the wire and was decrypted by the other end.
    expect(aOut!.packets).toBe(BigInt(wire.ab));
    expect(bIn!.packets).toBe(BigInt(wire.ab));
    expect(bOut!.packets).toBe(BigInt(wire.ba));
    expect(aIn!.packets).toBe(BigInt(wire.ba));
    // Sequence numbers: one per packet, 64-bit ESN on A -> B.
    expect(aOut!.outboundSeq).toBe(BigInt(wire.ab));
    expect(bIn!.inboundSeq).toBe(BigInt(wire.ab));
    expect(bOut!.outboundSeq).toBe(BigInt(wire.ba));
    expect(aIn!.inboundSeq).toBe(BigInt(wire.ba));
    for (const s of [aOut, aIn, bIn, bOut]) {
      expect(s!.bytes).toBeGreaterThan(0n);
      expect([s!.replayDrops, s!.replayWindowDrops, s!.integrityFailures]).toEqual([0, 0, 0]);
    }

    const stats = { [A]: [aOut!, aIn!], [B]: [bIn!, bOut!] };
    for (const [ns, configs] of [
      [A, statesA],
      [B, statesB],
    ] as const) {
      const ip = await ipStates(ns);
      // Exactly the states installed, nothing else.
      expect(ip.map((s) => s.spi).sort()).toEqual(configs.map((s) => s.spi).sort());
      configs.forEach((cfg, i) => {
        const s = ip.find((x) => x.spi === cfg.spi)!;
        const mine = stats[ns]![i]!;
        expect(
          {
            src: s.src,
            dst: s.dst,
            reqid: s.reqid,
            mode: s.mode,
            esn: s.flags.includes('esn'),
            replayWindow: s.replayWindow,
            mark: s.mark,
            outputMark: s.outputMark,
            aead: s.aead,
            selector: s.selector,
          },
          s.block,
        ).toEqual({
          src: cfg.src,
          dst: cfg.dst,
          reqid: cfg.reqid,
          mode: 'tunnel',
          esn: cfg.esn === true,
          replayWindow: cfg.replayWindow,
          mark: cfg.mark ? { value: cfg.mark.value, mask: cfg.mark.mask ?? 0xffffffff } : null,
          outputMark: cfg.setMark ? { value: cfg.setMark.value, mask: cfg.setMark.mask ?? 0xffffffff } : null,
          // The key the kernel holds is the one handed to the addon (key + salt), with a 128-bit ICV.
          aead: { algorithm: cfg.aead.algorithm, keyHex: cfg.aead.key.toString('hex'), keyBits: cfg.aead.key.length * 8, icvBits: 128 },
          selector: 'src 0.0.0.0/0 dst 0.0.0.0/0 uid 0',
        });
        // The counters `ip -s` prints are the ones stateStats() returned.
        expect(
          { bytes: s.bytes, packets: s.packets, seq: s.seq, oseq: s.oseq, drops: [s.replayWindowDrops, s.replayDrops, s.integrityFailures] },
          s.block,
        ).toEqual({
          bytes: mine.bytes,
          packets: mine.packets,
          seq: mine.inboundSeq,
          oseq: mine.outboundSeq,
          drops: [mine.replayWindowDrops, mine.replayDrops, mine.integrityFailures],
        });
        expect(s.packets).toBeGreaterThan(0n);
        // listStates() reads back the same state, with the algorithm and key length but no key.
        const back = listed[ns]!.find((x) => x.spi === cfg.spi)!;
        expect(back).toMatchObject({
          src: cfg.src,
          dst: cfg.dst,
          reqid: cfg.reqid,
          mode: 'tunnel',
          esn: cfg.esn === true,
          replayWindow: cfg.replayWindow,
          mark: s.mark,
          setMark: s.outputMark,
          aead: { algorithm: cfg.aead.algorithm, keyBits: cfg.aead.key.length * 8, icvBits: 128 },
        });
        expect(back.stats.packets).toBe(mine.packets);
        expect(JSON.stringify(back, (_k, x: unknown) => (typeof x === 'bigint' ? x.toString() : x))).not.toContain(cfg.aead.key.toString('hex').slice(0, 16));
      });
    }

    for (const [ns, configs] of [
      [A, policiesA],
      [B, policiesB],
    ] as const) {
      const ip = await ipPolicies(ns);
      const expected: IpPolicy[] = configs.map((p) => ({
        src: p.selector.src,
        dst: p.selector.dst,
        dir: p.dir,
        action: 'allow',
        priority: p.priority!,
        templates: p.templates!.map((t) => ({
          src: t.src!,
          dst: t.dst!,
          proto: 'esp',
          ...(t.spi ? { spi: t.spi } : {}),
          reqid: t.reqid!,
          mode: 'tunnel',
          optional: false,
        })),
      }));
      // Exactly the policies installed, one per direction (a template's spi 0x00000000 is "any").
      const byDir = (x: IpPolicy, y: IpPolicy) => x.dir.localeCompare(y.dir);
      const shown = ip.map((p) => ({ ...p, templates: p.templates.map(({ spi, ...t }) => (spi ? { ...t, spi } : t)) }));
      expect(shown.sort(byDir)).toEqual(expected.sort(byDir));
      expect(listedPolicies[ns]).toHaveLength(configs.length);
      for (const p of listedPolicies[ns]!) {
        const cfg = configs.find((c) => c.dir === p.dir)!;
        expect(`${p.selector.src}/${p.selector.srcLen} ${p.selector.dst}/${p.selector.dstLen}`).toBe(`${cfg.selector.src} ${cfg.selector.dst}`);
        expect(p.templates.map((t) => ({ src: t.src, dst: t.dst, reqid: t.reqid, spi: t.spi, mode: t.mode }))).toEqual(
          cfg.templates!.map((t) => ({ src: t.src, dst: t.dst, reqid: t.reqid, spi: t.spi ?? 0, mode: 'tunnel' })),
        );
      }
    }
  });

  it("marks exactly the packets B's inbound SA decrypted with its set-mark", async () => {
    const bIn = value<XfrmStateStats>((await addon([{ call: 'xfrm.stateStats', args: inNs(B, [{ dst: OUTER_B, spi: SPI_AB, mark: IN_MARK }]) }]))[0]);
    expect(wire.marked).toBeGreaterThan(0);
    expect(BigInt(wire.marked)).toBe(bIn.packets);
    expect(wire.marked).toBe(wire.ab);
  });

  /** Runs `body` while `ip xfrm monitor` records every XFRM change in `netns`; returns its lines. */
  async function monitored(netns: string, name: string, body: () => Promise<void>): Promise<string[]> {
    // A marker policy that `ip` updates until the monitor reports it proves the monitor listens;
    // its deletion, once reported, proves the monitor has seen everything before it.
    const marker = 'src 198.51.100.1/32 dst 198.51.100.2/32 dir out';
    const mon = background(name, `ip -n ${netns} xfrm monitor`);
    await waitFor('ip xfrm monitor', `{ ip -n ${netns} xfrm policy update ${marker} priority 9999 && grep -Eq '^(Updated )?src 198.51.100.1/32' ${TMP}/${name}.out; }`);
    await body();
    await v.check(`ip -n ${netns} xfrm policy delete ${marker}`);
    await waitFor('ip xfrm monitor', `grep -q '^Deleted src 198.51.100.1/32' ${TMP}/${name}.out`);
    await mon.stop();
    return (await v.check(`cat ${TMP}/${name}.out`)).split('\n');
  }

  it('rejects a duplicate SPI in a batch with EEXIST naming it, after removing the states the batch had added', async () => {
    const before = await ipStates(A);
    const fresh = (spi: number): XfrmStateConfig => ({ ...ba, src: OUTER_A, dst: OUTER_B, spi, reqid: 0x33 });
    let results: StepResult[] = [];
    const events = await monitored(A, 'monDup', async () => {
      results = await addon([
        { call: 'xfrm.listStates', args: inNs(A, [undefined]) },
        // The third state has the SPI, destination and (no) mark of the installed A -> B state.
        { call: 'xfrm.addStates', args: inNs(A, [[fresh(0x300), fresh(0x301), { ...ab }]]), expectError: true },
        { call: 'xfrm.listStates', args: inNs(A, [undefined]) },
      ]);
    });
    const err = results[1];
    expect(err?.ok).toBe(false);
    const e = (err as { error: StepError }).error;
    expect(e).toMatchObject({ name: 'NetlinkError', code: 'EEXIST', index: 2 });
    expect(e.message).toContain(`SPI ${spiHex(SPI_AB)} to "${OUTER_B}"`);
    expect(e.message).toMatch(/no state of this batch was left installed/);
    // Before and after the batch: the same states, as the addon and as ip list them.
    const spis = (r: StepResult | undefined) => value<XfrmState[]>(r).map((s) => s.spi).sort();
    expect(spis(results[2])).toEqual(spis(results[0]));
    expect(spis(results[0])).toEqual([SPI_AB, SPI_BA].sort());
    expect((await ipStates(A)).map((s) => s.spi).sort()).toEqual(before.map((s) => s.spi).sort());
    // The kernel did create the first two and the addon deleted them again.
    const text = events.join('\n');
    for (const spi of [0x300, 0x301]) {
      expect(text).toMatch(new RegExp(`(^|\\n)src ${OUTER_A} dst ${OUTER_B}\\n\\tproto esp spi ${spiHex(spi)}`));
      expect(text).toMatch(new RegExp(`(^|\\n)Deleted src ${OUTER_A} dst ${OUTER_B}\\n\\tproto esp spi ${spiHex(spi)}`));
    }
  });

  it('rejects a wrong key length with a ValidationError before anything reaches the kernel', async () => {
    let results: StepResult[] = [];
    const events = await monitored(A, 'monKey', async () => {
      results = await addon([
        {
          call: 'xfrm.addStates',
          // A valid state first: the whole batch is validated before the first message is sent.
          args: inNs(A, [[{ ...ab, spi: 0x400 }, { ...ba, spi: 0x401, aead: { algorithm: 'rfc7539esp(chacha20,poly1305)', key: randomBytes(20) } }]]),
          expectError: true,
        },
        { call: 'xfrm.listStates', args: inNs(A, [undefined]) },
      ]);
    });
    const e = (results[0] as { error: StepError }).error;
    expect(e).toMatchObject({ name: 'ValidationError', code: 'EINVAL', field: 'states[1].aead.key' });
    expect(e.message).toBe('Invalid states[1].aead.key of 20 bytes for "rfc7539esp(chacha20,poly1305)": use 36 bytes (key followed by the 4-byte salt)');
    expect(value<XfrmState[]>(results[1]).map((s) => s.spi).sort()).toEqual([SPI_AB, SPI_BA].sort());
    // Nothing changed in the kernel: the monitor saw only the marker policy, no state at all.
    const stateEvents = events.filter((l) => /proto esp spi/.test(l));
    expect(stateEvents).toEqual([]);
    expect(events.join('\n')).toContain('198.51.100.2');
  });
});
