/**
 * A node's published record: what peers need before they install anything for it (DESIGN.md
 * §Concepts). This file defines its shape, its limits and the check every record read from
 * anywhere goes through; signing and verification are in node-record-sign.ts and
 * node-record-verify.ts.
 *
 * Records are strict: every member is required, unknown members are refused, and addresses and
 * CIDRs must already be in canonical text — the record is signed as canonical JSON
 * (canonical-json.ts), so there is exactly one spelling of each record.
 *
 * One member is optional: `wireguard`, the node's two-channel WireGuard state
 * (docs/wireguard-rotation.md). Version 1 readers before it refuse a record that carries it
 * (unknown member), which is what they must do: they cannot install such a rotation safely.
 */
import { canonicalIp, canonicalCidr, ipFamily, quote } from '../net/ip.js';
import { validateChannelState, type WireGuardChannelState } from '../reconcile/wireguard-channel-state.js';
import { WireGuardReconcileError } from '../reconcile/wireguard-errors.js';
import { NodeRecordError } from './errors.js';

export const NODE_RECORD_VERSION = 1;
export const MAX_NODE_NAME_BYTES = 253;
export const MAX_RECORD_ADDRESSES = 16;
export const MAX_RECORD_POD_CIDRS = 16;
/** Node key generations plus identity keys (two generations each during a rotation). */
export const MAX_RECORD_KEYS = 2048;

export interface NodeRecordKey {
  /** "node": the node key (WireGuard static key, per-node-pair IPsec); "identity": an identity key. */
  kind: 'node' | 'identity';
  /** The identity id for kind "identity" (1..65535); 0 for kind "node". */
  identity: number;
  /** Key generation (>= 1), bumped by every rotation. */
  generation: number;
  /** X25519 public key, base64 (44 characters, as `wg pubkey` prints). */
  publicKey: string;
  /**
   * Where the generation is in its rotation (docs/keys.md §Rotation as implemented): "pending" —
   * published, peers install receive state and acknowledge, nobody sends with it yet; "active" —
   * the generation the node sends with, peers move to it; "superseded" — the previous active
   * generation, still accepted until every peer moved. At most one of each per key slot.
   */
  state: NodeRecordKeyState;
}

export type NodeRecordKeyState = 'pending' | 'active' | 'superseded';
export const NODE_RECORD_KEY_STATES: readonly NodeRecordKeyState[] = ['pending', 'active', 'superseded'];

export interface NodeRecord {
  version: 1;
  /** Kubernetes node name (DNS-1123 subdomain); must equal the node certificate's name. */
  name: string;
  /** Underlay addresses (canonical IPv4/IPv6 text), at least one. */
  addresses: string[];
  /** Pod CIDRs (canonical, host bits zero). */
  podCidrs: string[];
  /** The node's boot id, a lowercase UUID (/proc/sys/kernel/random/boot_id). */
  bootId: string;
  keys: NodeRecordKey[];
  /** When the node issued this record, milliseconds since the Unix epoch. */
  issuedAt: number;
  /** Strictly increasing per node (>= 1). */
  sequence: number;
  /**
   * WireGuard mode only: which node key generation peers install on channel 0 and 1 and which
   * channel is being re-keyed (docs/wireguard-rotation.md). Every generation named must be a
   * node key of this record. Absent: both channels carry the record's only node key.
   */
  wireguard?: NodeRecordWireGuard;
}

/** `{ generations: [g0, g1], draining: 0 | 1 | null }`, signed with the record. */
export type NodeRecordWireGuard = WireGuardChannelState;

const NAME_RE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const KEY_RE = /^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$/;
const RECORD_MEMBERS = ['version', 'name', 'addresses', 'podCidrs', 'bootId', 'keys', 'issuedAt', 'sequence', 'wireguard'];
const WIREGUARD_MEMBERS = ['generations', 'draining'];
const KEY_MEMBERS = ['kind', 'identity', 'generation', 'publicKey', 'state'];

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Checks a node name (DNS-1123 subdomain, as Kubernetes requires of node names). */
export function isNodeName(v: unknown): v is string {
  return typeof v === 'string' && v.length > 0 && v.length <= MAX_NODE_NAME_BYTES && NAME_RE.test(v);
}

/**
 * Returns `raw` typed as a NodeRecord when it has exactly the record's shape within its limits;
 * otherwise throws NodeRecordError with reason "malformed" naming the member and the fix.
 */
export function validateNodeRecord(raw: unknown): NodeRecord {
  const node = isPlainObject(raw) && isNodeName(raw.name) ? raw.name : undefined;
  const bad = (field: string, fix: string): never => {
    throw new NodeRecordError('malformed', node, `Malformed node record${node ? ` of "${node}"` : ''} at "${field}": ${fix}`);
  };
  if (!isPlainObject(raw)) bad('record', 'expected an object');
  const r = raw as Record<string, unknown>;
  for (const k of Object.keys(r)) if (!RECORD_MEMBERS.includes(k)) bad(k, `unknown member ${quote(k)}; records of version ${NODE_RECORD_VERSION} have ${RECORD_MEMBERS.join(', ')}`);
  if (r.version !== NODE_RECORD_VERSION) bad('version', `got ${quote(r.version)}, this agent reads version ${NODE_RECORD_VERSION}`);
  if (!isNodeName(r.name)) bad('name', `got ${quote(r.name)}; use a Kubernetes node name (lowercase DNS-1123 subdomain, at most ${MAX_NODE_NAME_BYTES} characters)`);

  const list = (field: string, max: number, min: number): unknown[] => {
    const v = r[field];
    if (!Array.isArray(v)) return bad(field, 'expected an array');
    if (v.length < min || v.length > max) bad(field, `has ${v.length} entries; use ${min} to ${max}`);
    return v;
  };
  const seen = new Set<string>();
  list('addresses', MAX_RECORD_ADDRESSES, 1).forEach((a, i) => {
    const f = `addresses[${i}]`;
    if (typeof a !== 'string' || !ipFamily(a)) bad(f, `got ${quote(a)}; use an IPv4 or IPv6 address`);
    if (canonicalIp(f, a) !== a) bad(f, `${quote(a)} is not in canonical form; write ${quote(canonicalIp(f, a))}`);
    if (seen.has(`a${a}`)) bad(f, `${quote(a)} is listed twice`);
    seen.add(`a${a}`);
  });
  list('podCidrs', MAX_RECORD_POD_CIDRS, 0).forEach((c, i) => {
    const f = `podCidrs[${i}]`;
    let canon: string;
    try {
      const cidr = canonicalCidr(f, c, { requirePrefix: true });
      canon = `${cidr.addr}/${cidr.prefixLen}`;
    } catch {
      return bad(f, `got ${quote(c)}; use a CIDR such as "10.244.1.0/24"`);
    }
    if (canon !== c) bad(f, `${quote(c)} is not in canonical form; write ${quote(canon)}`);
    if (seen.has(`c${c}`)) bad(f, `${quote(c)} is listed twice`);
    seen.add(`c${c}`);
  });
  if (typeof r.bootId !== 'string' || !UUID_RE.test(r.bootId)) bad('bootId', `got ${quote(r.bootId)}; use the lowercase UUID from /proc/sys/kernel/random/boot_id`);

  const keySeen = new Set<string>();
  list('keys', MAX_RECORD_KEYS, 1).forEach((k, i) => {
    const f = `keys[${i}]`;
    if (!isPlainObject(k)) return bad(f, 'expected an object');
    for (const m of Object.keys(k)) if (!KEY_MEMBERS.includes(m)) bad(`${f}.${m}`, `unknown member; keys have ${KEY_MEMBERS.join(', ')}`);
    if (k.kind !== 'node' && k.kind !== 'identity') bad(`${f}.kind`, `got ${quote(k.kind)}; use "node" or "identity"`);
    const id = k.identity;
    if (k.kind === 'node' && id !== 0) bad(`${f}.identity`, `got ${quote(id)}; a node key has identity 0`);
    if (k.kind === 'identity' && (typeof id !== 'number' || !Number.isInteger(id) || id < 1 || id > 65535)) {
      bad(`${f}.identity`, `got ${quote(id)}; use an identity id from 1 to 65535`);
    }
    const g = k.generation;
    if (typeof g !== 'number' || !Number.isInteger(g) || g < 1 || g > 0xffffffff) bad(`${f}.generation`, `got ${quote(g)}; use an integer from 1 to 4294967295`);
    if (typeof k.publicKey !== 'string' || !KEY_RE.test(k.publicKey)) bad(`${f}.publicKey`, 'expected 44 characters of base64 encoding a 32-byte X25519 public key');
    if (typeof k.state !== 'string' || !(NODE_RECORD_KEY_STATES as readonly string[]).includes(k.state)) {
      bad(`${f}.state`, `got ${quote(k.state)}; use ${NODE_RECORD_KEY_STATES.map((x) => `"${x}"`).join(', ')}`);
    }
    const id2 = `${k.kind}/${id}/${g}`;
    if (keySeen.has(id2)) bad(f, `a second ${k.kind} key with identity ${id} and generation ${g}`);
    keySeen.add(id2);
    const slotState = `${k.kind}/${id}/${String(k.state)}`;
    if (keySeen.has(slotState)) bad(`${f}.state`, `a second ${String(k.state)} generation of the ${k.kind} key with identity ${id}; a key slot has at most one pending, one active and one superseded generation`);
    keySeen.add(slotState);
  });
  if (!r.keys || !(r.keys as NodeRecordKey[]).some((k) => k.kind === 'node')) bad('keys', 'has no node key; publish at least one key of kind "node"');

  const time = r.issuedAt;
  if (typeof time !== 'number' || !Number.isSafeInteger(time) || time < 0) bad('issuedAt', `got ${quote(time)}; use milliseconds since the Unix epoch`);
  const seq = r.sequence;
  if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < 1) bad('sequence', `got ${quote(seq)}; use an integer >= 1, increased with every record`);
  if (r.wireguard !== undefined) checkWireGuard(r.wireguard, r.keys as NodeRecordKey[], bad);
  return raw as NodeRecord;
}

/**
 * The `wireguard` member: exactly { generations, draining } (validateChannelState's rules), each
 * generation a node key this record publishes, so a peer never installs a channel key the
 * signature does not cover.
 */
function checkWireGuard(raw: unknown, keys: readonly NodeRecordKey[], bad: (field: string, fix: string) => never): void {
  if (!isPlainObject(raw)) bad('wireguard', 'expected an object { generations: [g0, g1], draining: 0 | 1 | null }');
  const w = raw as Record<string, unknown>;
  for (const m of Object.keys(w)) if (!WIREGUARD_MEMBERS.includes(m)) bad(`wireguard.${m}`, `unknown member; the WireGuard channel state has ${WIREGUARD_MEMBERS.join(', ')}`);
  if (!('draining' in w)) bad('wireguard.draining', 'missing; use 0, 1 or null');
  let state: WireGuardChannelState;
  try {
    state = validateChannelState(w, undefined);
  } catch (err) {
    if (!(err instanceof WireGuardReconcileError)) throw err;
    return bad('wireguard', err.message.replace(/^Invalid WireGuard channel state: /, ''));
  }
  const published = keys.filter((k) => k.kind === 'node').map((k) => k.generation);
  state.generations.forEach((g, d) => {
    if (!published.includes(g)) bad(`wireguard.generations[${d}]`, `channel ${d} names node key generation ${g}, which the record does not publish (it has ${published.join(', ')}); publish the key with the channel state`);
  });
}
