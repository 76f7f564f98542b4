/**
 * The strict-mode scenario in IPsec mode, and IPsec readiness for waitForAgents.
 *
 * "Break a peer's key on purpose": on the receiving node, every inbound ESP SA from the sending
 * node is replaced (through the addon, agent/xfrm) by one with the same SPI, marks, set-mark,
 * reqid and algorithm but a random key. The sender keeps encrypting with the real key, so the
 * receiver's kernel rejects every packet (integrity check failed: XfrmInStateProtoError) — pods of
 * the two nodes cannot talk, and not one plaintext pod packet may reach the wire. Recovery: the
 * bogus SAs are deleted and the receiving node's agent restarted (`veil lab restart-agent`); it
 * adopts the kernel's state, finds its inbound SAs missing and installs them again from its
 * derived keys. (No key is ever read back: the kernel's dump carries none, and the agent
 * re-derives.)
 */
import { randomBytes } from 'node:crypto';
import { hostAddress } from '../lab/address-plan.js';
import { labRestartAgent } from '../lab/restart-agent.js';
import type { LabNodeState, LabState } from '../lab/state.js';
import { addStates, deleteStates, listStates, stateStats } from '../xfrm/state.js';
import type { XfrmAeadAlgorithm, XfrmState, XfrmStateConfig } from '../xfrm/types.js';
import { openEndpointMap } from '../datapath/endpoints.js';
import { Ipcache } from '../datapath/ipcache.js';
import { labPinRoot } from '../lab/lab-processes.js';
import { encryptMark } from '../reconcile/ipsec-marks.js';
import { fail, pick, podAddressTest, until, v4, type Scenario } from './lab-test.js';
import { espPackets, ping, WireCapture } from './probes.js';

function underlayV4(n: LabNodeState): string {
  return hostAddress(n.underlayAddresses.find((a) => !a.includes(':'))!);
}

/** The receiver's inbound ESP SAs from `from` (IPv4 underlay). */
async function inboundSas(receiver: LabNodeState, from: LabNodeState): Promise<XfrmState[]> {
  const states = await listStates({ src: underlayV4(from), dst: underlayV4(receiver) }, { netns: receiver.netns });
  return states.filter((st) => st.proto === 'esp');
}

/** Other nodes of the lab from which `n` has no inbound ESP SA yet (IPsec readiness). */
export async function nodesWithoutInboundSas(s: LabState, n: LabNodeState): Promise<string[]> {
  const missing: string[] = [];
  for (const m of s.nodes) {
    if (m.name !== n.name && (await inboundSas(n, m)).length === 0) missing.push(m.name);
  }
  return missing;
}

/**
 * Local pods of `n` whose first packet to some remote pod would find no outbound SA yet (IPsec
 * readiness): from-pod marks it with the pod's identity and the key slot made of the endpoint's
 * identity key generation and the destination's ipcache slot; until the identity key is
 * activated and the datapath pass after it has run, that slot names no SA and the packet meets
 * the block policy (dropped, never sent in clear — but a lost first ping for the test).
 */
export async function podsWithoutOutboundSa(s: LabState, n: LabNodeState): Promise<string[]> {
  const pins = `${labPinRoot(s.name)}/${n.name}`;
  const local = await (await openEndpointMap(pins)).entries();
  const ipc = new Map(await (await Ipcache.open(pins)).entries());
  const outMarks = new Set((await listStates({ src: underlayV4(n) }, { netns: n.netns })).filter((st) => st.proto === 'esp' && st.mark).map((st) => `${st.dst} ${st.mark!.value}`));
  const missing: string[] = [];
  for (const [, e] of local) {
    const pod = s.pods.find((p) => p.node === n.name && p.addresses.includes(e.ipv4 ?? ''));
    for (const remote of s.pods.filter((p) => p.node !== n.name)) {
      const entry = ipc.get(`${v4(remote)}/32`) ?? ipc.get(v4(remote));
      const node = s.nodes.find((m) => m.name === remote.node)!;
      const slot = (((e.keyGeneration ?? 0) & 3) << 2) | ((entry?.keySlot ?? 0) & 3);
      if (!entry || !outMarks.has(`${underlayV4(node)} ${encryptMark(e.identity, slot).value}`)) {
        missing.push(`${pod?.name ?? `identity ${e.identity}`} → ${remote.name}`);
        break;
      }
    }
  }
  return missing;
}

/** The same SA with a random key of the same length (an AEAD key includes its 4-byte salt). */
export function withRandomKey(st: XfrmState): XfrmStateConfig {
  if (!st.aead) throw new Error(`SA spi 0x${st.spi.toString(16)} has no AEAD algorithm: Veil's SAs are AEAD only`);
  if (st.mode !== 'tunnel' && st.mode !== 'transport') throw new Error(`SA spi 0x${st.spi.toString(16)} has mode ${st.mode}: expected tunnel or transport`);
  return {
    src: st.src,
    dst: st.dst,
    spi: st.spi,
    proto: 'esp',
    mode: st.mode,
    reqid: st.reqid,
    aead: { algorithm: st.aead.algorithm as XfrmAeadAlgorithm, key: randomBytes(st.aead.keyBits / 8) },
    ...(st.mark ? { mark: st.mark } : {}),
    ...(st.setMark ? { setMark: st.setMark } : {}),
    ...(st.replayWindow > 0 ? { replayWindow: st.replayWindow } : {}),
    ...(st.esn ? { esn: true } : {}),
  };
}

// A function declaration (hoisted): lab-test.ts and this file import each other.
export async function strictBrokenSa(s: LabState): ReturnType<Scenario> {
  const name = 'strict-broken-peer-key';
  const { a, remote } = pick(s);
  const sender = s.nodes.find((n) => n.name === a?.node);
  const receiver = s.nodes.find((n) => n.name === remote?.node);
  if (!a || !remote || !sender || !receiver) return fail(name, 'Needs pods on two nodes');
  const real = await inboundSas(receiver, sender);
  if (real.length === 0) return fail(name, `${receiver.name} has no inbound ESP SA from ${sender.name}: its agent has not installed ${sender.name}'s SAs`);
  const bogus = real.map(withRandomKey);
  const ids = real.map((st) => ({ dst: st.dst, spi: st.spi, proto: 'esp' as const, ...(st.mark ? { mark: st.mark } : {}) }));
  const isPod = podAddressTest(s);
  let during: { sent: number; received: number };
  let wire;
  let integrityFailures = 0;
  await deleteStates(ids, { netns: receiver.netns, ignoreMissing: true });
  try {
    await addStates(bogus, { netns: receiver.netns });
    const capture = await WireCapture.start(s.underlay.netns, s.underlay.bridge);
    during = await ping(a.netns, v4(remote), { count: 10, intervalS: 0.1, timeoutS: 1 });
    wire = await capture.stop(isPod, espPackets());
    for (const id of ids) integrityFailures += (await stateStats(id, { netns: receiver.netns }))?.integrityFailures ?? 0;
  } finally {
    await deleteStates(ids, { netns: receiver.netns, ignoreMissing: true });
  }
  let restarted: string;
  try {
    restarted = `agent restarted (pid ${(await labRestartAgent(s.name, receiver.name)).pid})`;
  } catch (err) {
    restarted = `agent restart failed: ${(err as Error).message}`;
  }
  const back = await until(async () => ((await ping(a.netns, v4(remote), { count: 1, timeoutS: 1 })).received === 1 ? true : undefined), 120_000);
  const ok = during.received === 0 && wire.plaintext === 0 && integrityFailures > 0 && back === true;
  const detail =
    `${real.length} inbound SAs from ${sender.name} on ${receiver.name} given random keys: ${during.received}/${during.sent} pings answered, ` +
    `${integrityFailures} packets failed the integrity check, ${wire.plaintext} plaintext pod packets on the wire; bogus SAs removed, ${restarted}: ` +
    `${back ? 'traffic flows again' : 'traffic did NOT come back within 120 s'}`;
  return {
    name,
    ok,
    detail: ok ? detail : `${detail}; expected no reply, rejected ESP packets, no plaintext and recovery`,
    data: { answered: during.received, plaintext: wire.plaintext, integrityFailures, recovered: back === true },
  };
}
