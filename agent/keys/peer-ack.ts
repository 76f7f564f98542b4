/**
 * A peer's acknowledgement document for one owner's keys (store key
 * <prefix>keys/acks/<owner>/<peer>, written only by <peer>):
 *
 *   {"v":1,"owner":"node-a","peer":"node-b",
 *    "installed":[{"kind":"node","identity":0,"generation":4}, …],   receive state installed
 *    "using":[{"kind":"node","identity":0,"generation":3}, …],        generation it sends with
 *    "channels":[4,3]}                                                 WireGuard mode only
 *
 * "installed" for a pending generation is the acknowledgement; "using" equal to the owner's
 * active generation is the move. "channels" (WireGuard mode, docs/wireguard-rotation.md) is the
 * owner's node key generation the peer has installed on its channel device 0 and 1; the owner's
 * two-channel rotation waits for it, channel by channel. The peer rewrites the whole document (CAS) after its kernel
 * hooks succeeded. Documents read from the store are hostile: bounded and checked strictly.
 */
import { canonicalJson } from './canonical-json.js';
import { NodeRecordError } from './errors.js';
import { isNodeName } from './node-record.js';
import type { SlotRef } from './key-store-paths.js';

export interface SlotGeneration extends SlotRef {
  generation: number;
}

export interface PeerAck {
  v: 1;
  owner: string;
  peer: string;
  installed: SlotGeneration[];
  using: SlotGeneration[];
  /** WireGuard mode: the owner's node key generation installed on channel 0 and 1. */
  channels?: readonly [number, number];
}

/** At most this many entries per list (the record's key limit). */
export const MAX_ACK_ENTRIES = 2048;
export const MAX_ACK_BYTES = 256 * 1024;

function malformed(peer: string | undefined, message: string): never {
  throw new NodeRecordError('malformed', peer, message);
}

function slotGenerations(raw: unknown, field: string, peer: string): SlotGeneration[] {
  if (!Array.isArray(raw) || raw.length > MAX_ACK_ENTRIES) malformed(peer, `Malformed acknowledgement from "${peer}" at "${field}": expected an array of at most ${MAX_ACK_ENTRIES} entries`);
  return (raw as unknown[]).map((e, i) => {
    const o = e as Record<string, unknown>;
    const ok =
      typeof e === 'object' && e !== null && !Array.isArray(e) && Object.keys(o).length === 3 &&
      ((o.kind === 'node' && o.identity === 0) || (o.kind === 'identity' && Number.isInteger(o.identity) && (o.identity as number) >= 1 && (o.identity as number) <= 65535)) &&
      Number.isInteger(o.generation) && (o.generation as number) >= 1 && (o.generation as number) <= 0xffffffff;
    if (!ok) malformed(peer, `Malformed acknowledgement from "${peer}" at "${field}[${i}]": expected {"kind","identity","generation"} of a published key`);
    return { kind: o.kind as SlotGeneration['kind'], identity: o.identity as number, generation: o.generation as number };
  });
}

/** Parses a document read from `<acks of owner>/<peer>`; its owner and peer must match the key. */
export function parsePeerAck(bytes: Buffer, expected: { owner: string; peer: string }): PeerAck {
  const { owner, peer } = expected;
  if (bytes.length > MAX_ACK_BYTES) malformed(peer, `Malformed acknowledgement from "${peer}": ${bytes.length} bytes exceeds ${MAX_ACK_BYTES}`);
  let raw: unknown;
  try {
    raw = JSON.parse(bytes.toString('utf8'));
  } catch {
    return malformed(peer, `Malformed acknowledgement from "${peer}": not JSON`);
  }
  const o = raw as Record<string, unknown>;
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return malformed(peer, `Malformed acknowledgement from "${peer}": expected an object`);
  for (const k of Object.keys(o)) if (!['v', 'owner', 'peer', 'installed', 'using', 'channels'].includes(k)) malformed(peer, `Malformed acknowledgement from "${peer}": unknown member "${k.slice(0, 64)}"`);
  if (o.v !== 1) malformed(peer, `Malformed acknowledgement from "${peer}": version ${JSON.stringify(o.v)}, this agent reads 1`);
  if (o.owner !== owner || o.peer !== peer || !isNodeName(o.peer)) {
    malformed(peer, `Malformed acknowledgement under "${owner}/${peer}": it names owner ${JSON.stringify(o.owner)} and peer ${JSON.stringify(o.peer)}; a peer acknowledges only under its own name`);
  }
  const ack: PeerAck = { v: 1, owner, peer, installed: slotGenerations(o.installed, 'installed', peer), using: slotGenerations(o.using, 'using', peer) };
  if (o.channels !== undefined) ack.channels = channelGenerations(o.channels, peer);
  return ack;
}

function channelGenerations(raw: unknown, peer: string): [number, number] {
  const ok = Array.isArray(raw) && raw.length === 2 && raw.every((g) => Number.isInteger(g) && (g as number) >= 1 && (g as number) <= 0xffffffff);
  if (!ok) malformed(peer, `Malformed acknowledgement from "${peer}" at "channels": expected [g0, g1], the node key generation installed on channel 0 and 1 (integers from 1 to 4294967295)`);
  return [(raw as number[])[0]!, (raw as number[])[1]!];
}

export function encodePeerAck(ack: PeerAck): Buffer {
  const order = (a: SlotGeneration, b: SlotGeneration) => a.kind.localeCompare(b.kind) || a.identity - b.identity || a.generation - b.generation;
  const { channels, ...rest } = ack;
  return Buffer.from(canonicalJson({ ...rest, installed: [...ack.installed].sort(order), using: [...ack.using].sort(order), ...(channels ? { channels: [...channels] } : {}) }, 'ack'));
}

export function ackHas(list: readonly SlotGeneration[], slot: SlotRef, generation: number): boolean {
  return list.some((e) => e.kind === slot.kind && e.identity === slot.identity && e.generation === generation);
}
