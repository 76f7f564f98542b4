/**
 * The "identity" scenario of `veil connectivity-test --lab`: the receiver learns the sender's
 * identity from the SA that decrypted the packet, not from its address.
 *
 * IPsec mode: a pod of the first node pings a pod of another node. On the receiving node every
 * inbound ESP SA from the sender's node sets, on what it decrypts, the mark decrypted(identity Y)
 * (docs/ipsec.md), and only Y's key holder can produce packets that SA accepts. The scenario
 * reads the receiver's SA packet counters (through the addon) before and after, groups them by
 * the identity in each SA's set-mark, and passes when the SAs of the sending pod's identity (from
 * the store, as `veil lab status` shows it) carried at least every answered ping and more than the
 * SAs of any other identity.
 *
 * WireGuard mode: not applicable, reported as a pass marked "n/a" with the reason — WireGuard
 * scrubs the packet after decryption, so the receiver knows only the sending node (cryptokey
 * routing) and takes the identity from the ipcache. The same holds for IPsec with granularity
 * "node-pair" (identity 0 in every SA).
 */
import { decodeMark, MarkPurpose } from '../datapath/marks.js';
import { hostAddress } from '../lab/address-plan.js';
import type { LabNodeState, LabState } from '../lab/state.js';
import { labStatus } from '../lab/status.js';
import { listStates } from '../xfrm/state.js';
import type { XfrmState } from '../xfrm/types.js';
import { fail, pick, v4, type ScenarioResult } from './lab-test.js';
import { ping } from './probes.js';

const NAME = 'identity';

/**
 * Packets each sender identity's inbound SAs processed between two reads of the same node's SAs
 * (keyed by SPI and mark; an SA only in `after` counts from zero). SAs whose set-mark is not a
 * "decrypted" mark are ignored.
 */
export function packetsByIdentity(before: readonly XfrmState[], after: readonly XfrmState[]): Map<number, bigint> {
  const key = (st: XfrmState) => `${st.spi}/${st.mark?.value ?? 0}`;
  const was = new Map(before.map((st) => [key(st), st.stats.packets]));
  const out = new Map<number, bigint>();
  for (const st of after) {
    if (!st.setMark) continue;
    const m = decodeMark(st.setMark.value);
    if (m.purpose !== MarkPurpose.DECRYPTED) continue;
    const delta = st.stats.packets - (was.get(key(st)) ?? 0n);
    out.set(m.identity, (out.get(m.identity) ?? 0n) + (delta > 0n ? delta : 0n));
  }
  return out;
}

function notApplicable(detail: string): ScenarioResult {
  return { name: NAME, ok: true, notApplicable: true, detail };
}

async function inbound(receiver: LabNodeState, sender: LabNodeState): Promise<XfrmState[]> {
  const v4of = (n: LabNodeState) => hostAddress(n.underlayAddresses.find((a) => !a.includes(':'))!);
  return (await listStates({ src: v4of(sender), dst: v4of(receiver) }, { netns: receiver.netns })).filter((st) => st.proto === 'esp');
}

// A function declaration (hoisted): lab-test.ts and this file import each other.
export async function identityScenario(s: LabState): Promise<ScenarioResult> {
  if (s.mode !== 'ipsec') {
    return notApplicable(
      'Not applicable in WireGuard mode: WireGuard clears the packet after decryption, so the receiver knows the sending node (cryptokey routing) and takes the identity from its ipcache; run the lab with --mode ipsec to see identities authenticated by the SA',
    );
  }
  const { a, remote } = pick(s);
  const sender = s.nodes.find((n) => n.name === a?.node);
  const receiver = s.nodes.find((n) => n.name === remote?.node);
  if (!a || !remote || !sender || !receiver) return fail(NAME, 'Needs pods on two nodes');
  const status = await labStatus(s.name);
  const identity = status.pods.find((p) => p.name === a.name && p.namespace === a.namespace)?.identity ?? null;
  if (identity === null) return fail(NAME, `${a.namespace}/${a.name} has no identity in the store yet: the operator has not allocated one`);
  const before = await inbound(receiver, sender);
  if (before.length === 0) return fail(NAME, `${receiver.name} has no inbound ESP SA from ${sender.name}: its agent has not installed ${sender.name}'s SAs`);
  if (before.every((st) => !st.setMark || decodeMark(st.setMark.value).identity === 0)) {
    return notApplicable(`Not applicable: the SAs from ${sender.name} on ${receiver.name} carry no identity (ipsec.granularity "node-pair"), so the receiver learns only the sending node`);
  }
  const r = await ping(a.netns, v4(remote), { count: 10, intervalS: 0.1 });
  const byIdentity = packetsByIdentity(before, await inbound(receiver, sender));
  const mine = byIdentity.get(identity) ?? 0n;
  const others = [...byIdentity].filter(([id]) => id !== identity);
  const ok = r.received > 0 && mine >= BigInt(r.received) && others.every(([, n]) => n < mine);
  const counts = [...byIdentity].map(([id, n]) => `identity ${id}: ${n}`).join(', ') || 'none';
  const detail = `${a.name} (identity ${identity}, ${sender.name}) → ${remote.name} (${receiver.name}): ${r.received}/${r.sent} pings answered; packets decrypted on ${receiver.name} by SAs whose set-mark names the sender: ${counts}`;
  return {
    name: NAME,
    ok,
    detail: ok ? detail : `${detail}; expected identity ${identity}'s SAs to carry every answered ping and more than any other identity's`,
    data: { identity, replies: r.received, packetsByIdentity: Object.fromEntries([...byIdentity].map(([id, n]) => [String(id), Number(n)])) },
  };
}
