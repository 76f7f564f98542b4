/**
 * What the IPsec reconciler is asked to hold in the kernel, and its checks.
 *
 * - The local node: name, boot id, underlay addresses, pod CIDRs, the node key generations it
 *   holds (private halves) and, for each identity with endpoints on this node, that identity's
 *   key generations. Which generation *sends* is explicit (the rotation state machine's
 *   "active" one); every held generation also gets SAs, so a new key is usable before the
 *   datapath switches to it and an old one keeps working until it is dropped.
 * - The remote nodes: their verified node records (agent/keys/node-record-verify.ts). Every
 *   published generation of a remote key is accepted; senders use a receiver's newest node key,
 *   because a node installs the inbound SAs of a new node key before it publishes it.
 */
import type { IpsecAead } from '../keys/ipsec-derive.js';
import type { NodeRecord } from '../keys/node-record.js';
import type { X25519PrivateKey } from '../keys/x25519.js';
import { ValidationError } from '../errors.js';
import { canonicalCidr, canonicalIp, quote } from '../net/ip.js';
import { isNodeName } from '../keys/node-record.js';

export type IpsecGranularity = 'identity' | 'node-pair';

/** One held generation of a local key. */
export interface LocalKeyGeneration {
  generation: number;
  privateKey: X25519PrivateKey;
}

/** A local key (the node key or one identity's key) with every generation this node holds. */
export interface LocalKey {
  generations: LocalKeyGeneration[];
  /** The generation the datapath sends with (selects the key slot). Defaults to the highest. */
  sending?: number;
}

export interface LocalIdentityKeys extends LocalKey {
  /** Identity id, 1..65535. */
  identity: number;
}

export interface LocalIpsecNode {
  name: string;
  bootId: string;
  /** Underlay addresses, canonical; the first of each family is the tunnel endpoint. */
  addresses: string[];
  podCidrs: string[];
  nodeKey: LocalKey;
  /** Identities with endpoints on this node (ignored in per-node-pair mode). */
  identities: LocalIdentityKeys[];
}

/** Limits of every state (kernel lifetimes). Keys rotate long before; these bound a stuck agent. */
export interface IpsecLifetime {
  softAddSeconds: number;
  hardAddSeconds: number;
}

export interface IpsecOptions {
  /** "identity": one SA per (local identity, remote node); "node-pair": one per node pair. */
  granularity: IpsecGranularity;
  aead: IpsecAead;
  /** Anti-replay window (packets); ESN is always on. */
  replayWindow: number;
  lifetime: IpsecLifetime;
  /** Priority of Veil's allow policies (lower wins). */
  priority: number;
  /** Priority of the block policy on the encrypt mark: the lowest of all (highest number). */
  blockPriority: number;
  /** reqid of every Veil state and template: how Veil recognises its own kernel objects. */
  reqid: number;
}

export const DEFAULT_IPSEC_OPTIONS: IpsecOptions = {
  granularity: 'identity',
  aead: 'rfc4106(gcm(aes))',
  replayWindow: 128,
  // Identity keys live 1 h and node keys days: an SA older than a week means the agent stopped
  // rotating. Soft expiry is reported by the kernel; hard expiry removes the SA (traffic then
  // hits the block policy: dropped, never sent in clear).
  lifetime: { softAddSeconds: 6 * 24 * 3600, hardAddSeconds: 7 * 24 * 3600 },
  priority: 100,
  blockPriority: 0x7fffffff,
  reqid: 0x7e11,
};

export function resolveIpsecOptions(o: Partial<IpsecOptions> = {}): IpsecOptions {
  const out = { ...DEFAULT_IPSEC_OPTIONS, ...o };
  if (out.granularity !== 'identity' && out.granularity !== 'node-pair') {
    throw new ValidationError('granularity', `Invalid granularity ${quote(out.granularity)}: use "identity" or "node-pair"`);
  }
  const int = (v: unknown, f: string, min: number, max: number) => {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
      throw new ValidationError(f, `Invalid ${f} ${quote(v)}: use an integer from ${min} to ${max}`);
    }
  };
  int(out.replayWindow, 'replayWindow', 1, 4096);
  int(out.priority, 'priority', 0, 0xffffffff);
  int(out.blockPriority, 'blockPriority', 0, 0xffffffff);
  int(out.reqid, 'reqid', 1, 0xffffffff);
  int(out.lifetime?.softAddSeconds, 'lifetime.softAddSeconds', 0, 0xffffffff);
  int(out.lifetime?.hardAddSeconds, 'lifetime.hardAddSeconds', 0, 0xffffffff);
  if (out.blockPriority <= out.priority) {
    throw new ValidationError('blockPriority', `Invalid blockPriority ${out.blockPriority}: it must be a higher number (lower priority) than priority ${out.priority}, or the block policy shadows the SAs`);
  }
  return out;
}

/** The generation a local key sends with. */
export function sendingGeneration(k: LocalKey): number {
  return k.sending ?? Math.max(...k.generations.map((g) => g.generation));
}

function checkKey(k: LocalKey, field: string): void {
  if (typeof k !== 'object' || k === null || !Array.isArray(k.generations) || k.generations.length === 0) {
    throw new ValidationError(field, `Invalid ${field}: expected { generations: [{ generation, privateKey }, ...] } with at least one generation`);
  }
  const seen = new Set<number>();
  k.generations.forEach((g, i) => {
    const f = `${field}.generations[${i}]`;
    if (!Number.isInteger(g?.generation) || g.generation < 1 || g.generation > 0xffffffff) {
      throw new ValidationError(`${f}.generation`, `Invalid ${f}.generation ${quote(g?.generation)}: use an integer from 1 to 4294967295`);
    }
    if (seen.has(g.generation)) throw new ValidationError(f, `Generation ${g.generation} is listed twice in ${field}`);
    seen.add(g.generation);
    if (typeof g.privateKey?.publicKey?.raw !== 'object') throw new ValidationError(`${f}.privateKey`, `Invalid ${f}.privateKey: expected an X25519PrivateKey`);
  });
  if (seen.size > 3) {
    throw new ValidationError(field, `${field} holds ${seen.size} generations: at most 3 may coexist (key slots tell 4 apart); retire old generations first`);
  }
  if (k.sending !== undefined && !seen.has(k.sending)) {
    throw new ValidationError(`${field}.sending`, `Invalid ${field}.sending ${quote(k.sending)}: it is not one of the held generations ${[...seen].join(', ')}`);
  }
}

/** Checks the local node's description; returns it unchanged. */
export function validateLocalNode(l: LocalIpsecNode): LocalIpsecNode {
  if (typeof l !== 'object' || l === null) throw new ValidationError('local', 'Invalid local node: expected an object');
  if (!isNodeName(l.name)) throw new ValidationError('local.name', `Invalid local.name ${quote(l.name)}: use the Kubernetes node name`);
  if (typeof l.bootId !== 'string' || !/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(l.bootId)) {
    throw new ValidationError('local.bootId', `Invalid local.bootId ${quote(l.bootId)}: use the lowercase UUID from /proc/sys/kernel/random/boot_id`);
  }
  if (!Array.isArray(l.addresses) || l.addresses.length === 0) throw new ValidationError('local.addresses', 'Invalid local.addresses: list at least one underlay address');
  l.addresses.forEach((a, i) => {
    if (canonicalIp(`local.addresses[${i}]`, a) !== a) throw new ValidationError(`local.addresses[${i}]`, `Invalid local.addresses[${i}] ${quote(a)}: write it in canonical form`);
  });
  if (!Array.isArray(l.podCidrs)) throw new ValidationError('local.podCidrs', 'Invalid local.podCidrs: expected an array of CIDRs');
  l.podCidrs.forEach((c, i) => canonicalCidr(`local.podCidrs[${i}]`, c, { requirePrefix: true }));
  checkKey(l.nodeKey, 'local.nodeKey');
  if (!Array.isArray(l.identities)) throw new ValidationError('local.identities', 'Invalid local.identities: expected an array');
  const ids = new Set<number>();
  l.identities.forEach((k, i) => {
    const f = `local.identities[${i}]`;
    if (!Number.isInteger(k?.identity) || k.identity < 1 || k.identity > 0xffff) {
      throw new ValidationError(`${f}.identity`, `Invalid ${f}.identity ${quote(k?.identity)}: use an identity id from 1 to 65535`);
    }
    if (ids.has(k.identity)) throw new ValidationError(f, `Identity ${k.identity} is listed twice in local.identities`);
    ids.add(k.identity);
    checkKey(k, f);
  });
  return l;
}

/** The remote node as the plan reads it: a record that passed verification. */
export type RemoteIpsecNode = Pick<NodeRecord, 'name' | 'addresses' | 'podCidrs' | 'bootId' | 'keys'>;
