/**
 * The key cases of `npm run bench -- identity`: X25519 on node:crypto (ours) against tweetnacl
 * (the implementation the design named), and the time to derive IPsec SA keys for a node whose
 * 20 local identities talk to 5,000 remote nodes.
 *
 * Fairness: both implementations run in the same process on the same inputs, alternating which
 * goes first per repetition; repetition 0 is a warm-up (JIT) kept in `extra.warmup` and left out
 * of the median.
 */
import { hkdfSync } from 'node:crypto';
import { loadavg } from 'node:os';
import nacl from 'tweetnacl';
import { deriveIpsecKey, ipsecKeyInfo, IPSEC_HKDF_SALT, type IpsecKeyParams, type SaParty } from '../agent/keys/ipsec-derive.js';
import { SpiAllocator } from '../agent/keys/spi.js';
import { X25519PrivateKey, X25519PublicKey, x25519SharedSecret } from '../agent/keys/x25519.js';
import { compare, median, round, type ComparisonCase } from './lib/report.js';

export interface CryptoOptions {
  reps: number;
  /** X25519 operations per timed run. */
  ops: number;
  nodes: number;
  identities: number;
  /** Pairs the tweetnacl derivation baseline actually runs (scaled up to nodes × identities). */
  baselinePairs: number;
}

function time(fn: () => void): number {
  const t0 = process.hrtime.bigint();
  fn();
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

/** Runs ours and the baseline `reps + 1` times, alternating order; drops the warm-up. */
function pairRuns(reps: number, ours: () => void, base: () => void): { ours: number[]; base: number[]; warmup: { ours_s: number; baseline_s: number } } {
  const o: number[] = [];
  const b: number[] = [];
  for (let i = 0; i <= reps; i++) {
    if (i % 2 === 0) {
      o.push(time(ours));
      b.push(time(base));
    } else {
      b.push(time(base));
      o.push(time(ours));
    }
  }
  return { ours: o.slice(1), base: b.slice(1), warmup: { ours_s: round(o[0]!), baseline_s: round(b[0]!) } };
}

function perOpUs(seconds: number, count: number): number {
  return round((seconds / count) * 1e6, 2);
}

export function x25519Cases(o: CryptoOptions): ComparisonCase[] {
  const rows: ComparisonCase[] = [];

  // Key generation: a fresh key pair with its raw public key, as the agent needs it.
  {
    let sink = 0;
    const r = pairRuns(
      o.reps,
      () => {
        for (let i = 0; i < o.ops; i++) sink ^= X25519PrivateKey.generate().publicKey.raw[0]!;
      },
      () => {
        for (let i = 0; i < o.ops; i++) sink ^= nacl.box.keyPair().publicKey[0]!;
      },
    );
    const c = compare('x25519 keygen', o.ops, 'tweetnacl box.keyPair', r.ours, r.base);
    c.load_1m = round(loadavg()[0]!, 2);
    c.extra = { ours_us_per_op: perOpUs(c.ours_s, o.ops), baseline_us_per_op: perOpUs(c.baseline_s, o.ops), warmup: r.warmup, sink };
    rows.push(c);
  }

  // Shared secret with a peer public key already imported (the steady state: peers' keys are
  // imported once, when their record is accepted).
  {
    const me = X25519PrivateKey.generate();
    const meRaw = me.exportRaw();
    const peers = Array.from({ length: o.ops }, () => X25519PrivateKey.generate().publicKey);
    for (const p of peers) void p.keyObject;
    let sink = 0;
    const r = pairRuns(
      o.reps,
      () => {
        for (const p of peers) sink ^= x25519SharedSecret(me, p)[0]!;
      },
      () => {
        for (const p of peers) sink ^= nacl.scalarMult(meRaw, p.raw)[0]!;
      },
    );
    const c = compare('x25519 shared secret', o.ops, 'tweetnacl scalarMult', r.ours, r.base);
    c.load_1m = round(loadavg()[0]!, 2);
    c.extra = { ours_us_per_op: perOpUs(c.ours_s, o.ops), baseline_us_per_op: perOpUs(c.baseline_s, o.ops), warmup: r.warmup, sink };
    rows.push(c);
  }

  // Shared secret including the import of the peer's raw public key (a peer seen for the first time).
  {
    const me = X25519PrivateKey.generate();
    const meRaw = me.exportRaw();
    const raws = Array.from({ length: o.ops }, () => X25519PrivateKey.generate().publicKey.raw);
    let sink = 0;
    const r = pairRuns(
      o.reps,
      () => {
        for (const raw of raws) sink ^= x25519SharedSecret(me, X25519PublicKey.fromRaw(raw))[0]!;
      },
      () => {
        for (const raw of raws) sink ^= nacl.scalarMult(meRaw, raw)[0]!;
      },
    );
    const c = compare('x25519 import + shared secret', o.ops, 'tweetnacl scalarMult', r.ours, r.base);
    c.load_1m = round(loadavg()[0]!, 2);
    c.extra = { ours_us_per_op: perOpUs(c.ours_s, o.ops), baseline_us_per_op: perOpUs(c.baseline_s, o.ops), warmup: r.warmup, sink };
    rows.push(c);
  }
  return rows;
}

const BOOT = '0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0';

/**
 * One node's outbound SA keys for `identities` local identities × `nodes` remote nodes, from the
 * raw public keys in the remote nodes' records: import each remote key once, then one
 * deriveIpsecKey() per pair. Also allocates the SPIs a receiver would for as many inbound SAs.
 */
export function deriveCase(o: CryptoOptions): ComparisonCase {
  const local = Array.from({ length: o.identities }, () => X25519PrivateKey.generate());
  const remoteRaw = Array.from({ length: o.nodes }, () => X25519PrivateKey.generate().publicKey.raw);
  const pairs = o.nodes * o.identities;
  const sender = (i: number, key: X25519PrivateKey): SaParty => ({ node: 'node-local', identity: 256 + i, keyGeneration: 1, bootId: BOOT, publicKey: key.publicKey });
  const receiver = (n: number, publicKey: X25519PublicKey): SaParty => ({ node: `node-${n}`, identity: 0, keyGeneration: 1, bootId: BOOT, publicKey });
  const senders = local.map((k, i) => sender(i, k));

  let sink = 0;
  const ours = () => {
    for (let n = 0; n < o.nodes; n++) {
      const rp = X25519PublicKey.fromRaw(remoteRaw[n]!);
      const r = receiver(n, rp);
      for (let i = 0; i < o.identities; i++) {
        const p: IpsecKeyParams = { aead: 'rfc4106(gcm(aes))', generation: 1, sender: senders[i]!, receiver: r };
        sink ^= deriveIpsecKey(local[i]!, 'sender', p).key[0]!;
      }
    }
  };
  // The same derivation with tweetnacl's scalarMult in place of OpenSSL (HKDF and info as ours),
  // on the first `baselinePairs` pairs, scaled to all pairs.
  const localRaw = local.map((k) => k.exportRaw());
  const subsetNodes = Math.max(1, Math.ceil(o.baselinePairs / o.identities));
  const scale = o.nodes / Math.min(subsetNodes, o.nodes);
  const base = () => {
    for (let n = 0; n < Math.min(subsetNodes, o.nodes); n++) {
      const rp = X25519PublicKey.fromRaw(remoteRaw[n]!);
      const r = receiver(n, rp);
      for (let i = 0; i < o.identities; i++) {
        const p: IpsecKeyParams = { aead: 'rfc4106(gcm(aes))', generation: 1, sender: senders[i]!, receiver: r };
        const secret = nacl.scalarMult(localRaw[i]!, rp.raw);
        sink ^= Buffer.from(hkdfSync('sha256', secret, IPSEC_HKDF_SALT, ipsecKeyInfo(p), 36))[0]!;
      }
    }
  };
  const reps = Math.max(1, Math.min(o.reps, 3));
  const r = pairRuns(reps, ours, base);
  const baseScaled = r.base.map((s) => s * scale);
  const c = compare(`derive SA keys ${o.nodes} nodes x ${o.identities} identities`, pairs, 'tweetnacl scalarMult + same HKDF', r.ours, baseScaled);
  c.load_1m = round(loadavg()[0]!, 2);

  // SPI allocation for as many inbound SAs on one receiver.
  const spiRuns: number[] = [];
  for (let k = 0; k < reps; k++) {
    const table = new SpiAllocator();
    spiRuns.push(
      time(() => {
        for (let n = 0; n < o.nodes; n++) for (let i = 0; i < o.identities; i++) table.allocate({ senderIdentity: 256 + i, senderNode: `node-${n}`, generation: 1, direction: 'in' });
      }),
    );
  }
  c.extra = {
    pairs,
    ours_us_per_pair: perOpUs(c.ours_s, pairs),
    derivations_per_s: Math.round(pairs / c.ours_s),
    baseline_measured_pairs: Math.min(subsetNodes, o.nodes) * o.identities,
    baseline_scale: round(scale, 2),
    spi_allocate_s: round(median(spiRuns)),
    spi_allocate_runs_s: spiRuns.map((s) => round(s)),
    warmup: r.warmup,
    sink,
  };
  c.note = `ours: all ${pairs} pairs (import of ${o.nodes} remote keys + X25519 + HKDF-SHA256); baseline: ${c.extra.baseline_measured_pairs} pairs, scaled x${c.extra.baseline_scale}`;
  return c;
}
