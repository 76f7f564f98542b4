/**
 * The IPsec plan: from the desired state (ipsec-desired.ts) to the exact XFRM states and
 * policies one remote node needs on this node. Pure apart from key derivation (X25519 + HKDF)
 * and the receiver's SPI table, which the caller passes in.
 *
 * Per remote node B and address family f (when B has pod CIDRs of f and both nodes have an
 * underlay address of f), in "identity" granularity:
 *   out state   for each local identity X, each held generation gx of X's key and each published
 *               generation gb of B's node key: tunnel local → B, key derived from (X gx, B gb),
 *               SPI = the candidate B computes too, mark = encrypt(X, slot(gx, gb)).
 *   out policy  per out state and B pod CIDR: any → CIDR, mark = encrypt(X, slot), template to
 *               B's underlay with the state's SPI.
 *   in state    for each identity key (Y, gy) B publishes and each held generation ga of the
 *               local node key: tunnel B → local, key from (Y gy, local ga), SPI from the local
 *               SPI table, set-mark = decrypted(Y, slot(gy, ga)).
 *   in, fwd     per (B pod CIDR, local pod CIDR): B's pods → local pods must have come through
 *               one of B's SAs (template: B → local, reqid), so plaintext from B's pods is refused.
 * In "node-pair" granularity the node keys stand in for the identities (identity 0).
 * Besides, one block policy per family (blockPolicies()) drops anything with the encrypt mark
 * that no SA's policy takes, so nothing leaks in clear while SAs are swapped.
 */
import { deriveIpsecKey, type SaParty } from '../keys/ipsec-derive.js';
import { spiCandidate, type SpiRequest } from '../keys/spi.js';
import { X25519PublicKey, type X25519PrivateKey } from '../keys/x25519.js';
import { canonicalCidr, ipFamily, type IpFamily } from '../net/ip.js';
import type { XfrmPolicyConfig, XfrmStateConfig } from '../xfrm/types.js';
import { sendingGeneration, type IpsecOptions, type LocalIpsecNode, type LocalKey, type RemoteIpsecNode } from './ipsec-desired.js';
import { ANY_ENCRYPT_MARK, decryptedMark, encryptMark, keySlot } from './ipsec-marks.js';
import { saSpiRequest } from './ipsec-sa-spi.js';

/** SA generation in the key derivation: constant, since ESN never runs out and keys rotate. */
export const SA_GENERATION = 1;

export interface PlannedState {
  /** (dst, SPI, mark): the kernel's identity of a state. */
  key: string;
  direction: 'in' | 'out';
  /** Remote node. */
  node: string;
  family: IpFamily;
  /** The identity the SA speaks for (0 = node key). */
  identity: number;
  slot: number;
  senderGeneration: number;
  receiverGeneration: number;
  config: XfrmStateConfig;
  /** Inbound: the candidate the sender computes, when this receiver had to choose another SPI. */
  spiCollision?: { candidate: number };
}

export interface PlannedPolicy {
  /** (dir, selector, mark): the kernel's identity of a policy. */
  key: string;
  /** Remote node, or "" for the node-independent block policies. */
  node: string;
  config: XfrmPolicyConfig;
}

export interface NodePlan {
  node: string;
  states: PlannedState[];
  policies: PlannedPolicy[];
  /** The slot the datapath writes for traffic of `identity` to this node, per family. */
  sendingSlots: { identity: number; family: IpFamily; slot: number }[];
}

const markText = (m: { value: number; mask?: number } | null | undefined): string =>
  m && (m.mask ?? 0xffffffff) !== 0 ? `${(m.value >>> 0).toString(16)}/${((m.mask ?? 0xffffffff) >>> 0).toString(16)}` : '-';

export function stateKey(dst: string, spi: number, mark: { value: number; mask?: number } | null | undefined): string {
  return `${dst}|${spi >>> 0}|${markText(mark)}`;
}

export function policyKey(dir: string, src: string, srcLen: number, dst: string, dstLen: number, mark: { value: number; mask?: number } | null | undefined): string {
  return `${dir}|${src}/${srcLen}|${dst}/${dstLen}|${markText(mark)}`;
}

function cidrParts(c: string): { addr: string; len: number; family: IpFamily } {
  const p = canonicalCidr('cidr', c, { requirePrefix: true });
  return { addr: p.addr, len: p.prefixLen, family: p.family };
}

function plannedPolicy(node: string, config: XfrmPolicyConfig): PlannedPolicy {
  const s = cidrParts(config.selector.src);
  const d = cidrParts(config.selector.dst);
  return { key: policyKey(config.dir, s.addr, s.len, d.addr, d.len, config.mark), node, config };
}

const ANY: Record<IpFamily, string> = { 4: '0.0.0.0/0', 6: '::/0' };

/** The lowest-priority block policies on the encrypt mark, one per family. */
export function blockPolicies(opts: IpsecOptions): PlannedPolicy[] {
  return ([4, 6] as const).map((f) =>
    plannedPolicy('', { dir: 'out', selector: { src: ANY[f], dst: ANY[f] }, mark: { ...ANY_ENCRYPT_MARK }, priority: opts.blockPriority, action: 'block' }),
  );
}

interface Party {
  party: SaParty;
  privateKey?: X25519PrivateKey;
}

/** Local parties of one key (every held generation). */
function localParties(local: LocalIpsecNode, identity: number, key: LocalKey): Party[] {
  return key.generations.map((g) => ({
    party: { node: local.name, identity, keyGeneration: g.generation, bootId: local.bootId, publicKey: g.privateKey.publicKey },
    privateKey: g.privateKey,
  }));
}

/** Remote parties of one (kind, identity) in a record (every published generation). */
function remoteParties(remote: RemoteIpsecNode, kind: 'node' | 'identity', identity: number): Party[] {
  return remote.keys
    .filter((k) => k.kind === kind && k.identity === identity)
    .map((k) => ({
      party: { node: remote.name, identity, keyGeneration: k.generation, bootId: remote.bootId, publicKey: X25519PublicKey.fromBase64(k.publicKey, `${remote.name}.keys`) },
    }));
}

/**
 * The states and policies remote node `remote` needs on this node. `allocateSpi` is the local
 * (receiver's) SPI table (SpiAllocator.allocate).
 */
export function planNode(local: LocalIpsecNode, remote: RemoteIpsecNode, opts: IpsecOptions, allocateSpi: (r: SpiRequest) => number): NodePlan {
  const plan: NodePlan = { node: remote.name, states: [], policies: [], sendingSlots: [] };
  const localNode = localParties(local, 0, local.nodeKey);
  const remoteNode = remoteParties(remote, 'node', 0);
  if (remoteNode.length === 0) return plan;
  const newestRemote = Math.max(...remoteNode.map((p) => p.party.keyGeneration));

  // Who sends to B from here (identity, key) and who sends from B to here (Y, published key).
  const senders: { identity: number; key: LocalKey }[] =
    opts.granularity === 'node-pair' ? [{ identity: 0, key: local.nodeKey }] : local.identities.map((k) => ({ identity: k.identity, key: k }));
  const remoteSenderIds =
    opts.granularity === 'node-pair' ? [0] : [...new Set(remote.keys.filter((k) => k.kind === 'identity').map((k) => k.identity))].sort((a, b) => a - b);

  for (const family of [4, 6] as const) {
    const remoteCidrs = remote.podCidrs.filter((c) => cidrParts(c).family === family);
    const localCidrs = local.podCidrs.filter((c) => cidrParts(c).family === family);
    const localU = local.addresses.find((a) => ipFamily(a) === family);
    const remoteU = remote.addresses.find((a) => ipFamily(a) === family);
    if (remoteCidrs.length === 0 || !localU || !remoteU) continue;

    const common = {
      mode: 'tunnel' as const,
      reqid: opts.reqid,
      esn: true,
      replayWindow: opts.replayWindow,
      lifetime: { softAddSeconds: opts.lifetime.softAddSeconds, hardAddSeconds: opts.lifetime.hardAddSeconds },
    };

    // Outbound.
    for (const s of senders) {
      const parties = s.identity === 0 ? localNode : localParties(local, s.identity, s.key);
      for (const snd of parties) {
        for (const rcv of remoteNode) {
          const params = { sender: snd.party, receiver: rcv.party, generation: SA_GENERATION, aead: opts.aead };
          const spi = spiCandidate(saSpiRequest(snd.party, rcv.party, opts.aead, SA_GENERATION));
          const slot = keySlot(snd.party.keyGeneration, rcv.party.keyGeneration);
          const mark = encryptMark(s.identity, slot);
          const k = deriveIpsecKey(snd.privateKey!, 'sender', params);
          plan.states.push({
            key: stateKey(remoteU, spi, mark),
            direction: 'out',
            node: remote.name,
            family,
            identity: s.identity,
            slot,
            senderGeneration: snd.party.keyGeneration,
            receiverGeneration: rcv.party.keyGeneration,
            config: { ...common, src: localU, dst: remoteU, spi, aead: { algorithm: opts.aead, key: k.key }, mark },
          });
          for (const cidr of remoteCidrs) {
            plan.policies.push(
              plannedPolicy(remote.name, {
                dir: 'out',
                selector: { src: ANY[family], dst: cidr },
                mark,
                priority: opts.priority,
                templates: [{ src: localU, dst: remoteU, proto: 'esp', spi, reqid: opts.reqid, mode: 'tunnel' }],
              }),
            );
          }
        }
      }
      plan.sendingSlots.push({ identity: s.identity, family, slot: keySlot(sendingGeneration(s.key), newestRemote) });
    }

    // Inbound.
    for (const y of remoteSenderIds) {
      const parties = y === 0 ? remoteNode : remoteParties(remote, 'identity', y);
      for (const snd of parties) {
        for (const rcv of localNode) {
          const params = { sender: snd.party, receiver: rcv.party, generation: SA_GENERATION, aead: opts.aead };
          const request = saSpiRequest(snd.party, rcv.party, opts.aead, SA_GENERATION);
          const spi = allocateSpi(request);
          const candidate = spiCandidate(request);
          const slot = keySlot(snd.party.keyGeneration, rcv.party.keyGeneration);
          const k = deriveIpsecKey(rcv.privateKey!, 'receiver', params);
          plan.states.push({
            key: stateKey(localU, spi, null),
            direction: 'in',
            node: remote.name,
            family,
            identity: y,
            slot,
            senderGeneration: snd.party.keyGeneration,
            receiverGeneration: rcv.party.keyGeneration,
            config: { ...common, src: remoteU, dst: localU, spi, aead: { algorithm: opts.aead, key: k.key }, setMark: decryptedMark(y, slot) },
            ...(spi !== candidate ? { spiCollision: { candidate } } : {}),
          });
        }
      }
    }
    for (const rc of remoteCidrs) {
      for (const lc of localCidrs) {
        for (const dir of ['in', 'fwd'] as const) {
          plan.policies.push(
            plannedPolicy(remote.name, {
              dir,
              selector: { src: rc, dst: lc },
              priority: opts.priority,
              templates: [{ src: remoteU, dst: localU, proto: 'esp', reqid: opts.reqid, mode: 'tunnel' }],
            }),
          );
        }
      }
    }
  }
  return plan;
}
