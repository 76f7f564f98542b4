/**
 * Connectivity scenario "key-rotation-under-load" (issue 5): a pod of the first node and a pod of
 * another node ping each other (IPv4, both directions, ~25 packets/s each) while the first node's
 * node key is rotated on demand — the request `veil keys rotate --node-key` writes to the store —
 * and, in IPsec mode, the key of the first identity that node hosts. The scenario waits until the
 * node's audit log says the rotation completed (new generation, old one destroyed) and then counts:
 * lost pings must be 0, and a capture on the underlay must show no plaintext pod packet.
 *
 * In WireGuard mode the audit log must also show the two-channel steps (key.channel_draining for
 * both channels): the key went through make-before-break, not a device-wide key swap.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { KeyStateDir } from '../keys/key-state-dir.js';
import { KeyStorePaths, slotLabel, type SlotRef } from '../keys/key-store-paths.js';
import { requestRotation } from '../keys/rotation-request.js';
import { labNodeDir } from '../lab/lab-processes.js';
import { openLabStore } from '../lab/lab-store.js';
import type { LabPodState, LabState } from '../lab/state.js';
import { podAddressTest, type ScenarioResult } from './lab-test.js';
import { ping, WireCapture, type EncryptedPacketTest } from './probes.js';

const NAME = 'key-rotation-under-load';
/** How long a rotation may take in the lab before the scenario fails. */
const ROTATION_TIMEOUT_MS = 60_000;
/** One ping batch: 25 packets 40 ms apart (about 1 s). Batches run back to back until the rotation completed. */
const BATCH = { count: 25, intervalS: 0.04, timeoutS: 2 };

interface Load {
  sent: number;
  received: number;
  lastOutput: string;
}

function v4(p: LabPodState): string {
  return p.addresses.find((a) => !a.includes(':'))!;
}

/** Pings in batches until `stop` is set; sums what was sent and answered. */
async function pingUntil(netns: string, target: string, stop: { done: boolean }): Promise<Load> {
  const load: Load = { sent: 0, received: 0, lastOutput: '' };
  while (!stop.done) {
    const r = await ping(netns, target, BATCH);
    load.sent += r.sent;
    load.received += r.received;
    if (r.received !== r.sent) load.lastOutput = r.output;
  }
  return load;
}

async function auditEvents(path: string): Promise<Record<string, unknown>[]> {
  const text = await readFile(path, 'utf8').catch(() => '');
  const out: Record<string, unknown>[] = [];
  for (const line of text.split('\n')) {
    if (!line) continue;
    try {
      out.push(JSON.parse(line) as Record<string, unknown>);
    } catch {
      // A line being written; read again on the next poll.
    }
  }
  return out;
}

const sameSlot = (e: Record<string, unknown>, s: SlotRef) => e.keyKind === s.kind && (s.kind === 'node' ? e.identity === undefined : e.identity === s.identity);

/** The active generation of each slot of the node's key state directory. */
async function activeGenerations(dir: string, slots: readonly SlotRef[]): Promise<Map<SlotRef, number | undefined>> {
  const state = await new KeyStateDir(dir).load();
  return new Map(
    slots.map((s) => {
      const slot = state?.slots.find((x) => x.rotation.slot.kind === s.kind && x.rotation.slot.identity === s.identity);
      return [s, slot?.rotation.generations.find((g) => g.phase === 'active')?.generation];
    }),
  );
}

export async function keyRotationUnderLoad(s: LabState, o: { wireguardPort: number; encrypted: EncryptedPacketTest }): Promise<ScenarioResult> {
  const fail = (detail: string, data?: Record<string, unknown>): ScenarioResult => ({ name: NAME, ok: false, detail, ...(data ? { data } : {}) });
  const node = s.nodes[0];
  const a = s.pods.find((p) => p.node === node?.name);
  const remote = s.pods.find((p) => p.node !== node?.name);
  if (!node || !a || !remote) return fail('Needs pods on two nodes: run "veil lab up --nodes 2" (or more)');
  if (!s.etcd) return fail('The lab has no etcd');
  const dir = labNodeDir(s.name, node.name);
  const auditPath = join(dir, 'audit.log');
  const state = await new KeyStateDir(dir).load();
  if (!state) return fail(`No key state in "${dir}": the agent of ${node.name} has not generated its keys; see its log (veil lab status)`);
  const slots: SlotRef[] = [{ kind: 'node', identity: 0 }];
  if (s.mode === 'ipsec') {
    const id = state.slots.find((x) => x.rotation.slot.kind === 'identity');
    if (!id) return fail(`${node.name} hosts no identity key to rotate in IPsec mode: add a pod to it`);
    slots.push({ kind: 'identity', identity: id.rotation.slot.identity });
  }
  // A lab just brought up may still be activating its first keys.
  let before = await activeGenerations(dir, slots);
  for (const deadline = Date.now() + 30_000; [...before.values()].includes(undefined) && Date.now() < deadline; ) {
    await new Promise((r) => setTimeout(r, 250));
    before = await activeGenerations(dir, slots);
  }
  for (const [slot, g] of before) if (g === undefined) return fail(`${node.name} has no active ${slotLabel(slot)} after 30 s: see its agent's log (veil lab status)`);
  const isPod = podAddressTest(s);

  const capture = await WireCapture.start(s.underlay.netns, s.underlay.bridge);
  const stop = { done: false };
  const loads = [pingUntil(a.netns, v4(remote), stop), pingUntil(remote.netns, v4(a), stop)];
  const started = Date.now();
  const progress: string[] = [];
  let completed: Map<SlotRef, number> | undefined;
  try {
    await new Promise((r) => setTimeout(r, 1000));
    const store = await openLabStore(s.etcd.socket);
    try {
      for (const slot of slots) await requestRotation(store.store, new KeyStorePaths(), node.name, slot);
    } finally {
      await store.close();
    }
    // Done when every slot's rotation.completed to a newer generation is in the audit log and
    // the key state has nothing but the new active generation.
    const deadline = started + ROTATION_TIMEOUT_MS;
    while (Date.now() < deadline) {
      const events = await auditEvents(auditPath);
      const done = new Map<SlotRef, number>();
      for (const slot of slots) {
        const e = events.find((x) => x.event === 'rotation.completed' && sameSlot(x, slot) && (x.fromGeneration as number) >= before.get(slot)!);
        if (e) done.set(slot, e.toGeneration as number);
      }
      if (done.size === slots.length) {
        const now = await activeGenerations(dir, slots);
        if (slots.every((x) => now.get(x) === done.get(x))) {
          completed = done;
          break;
        }
      }
      await new Promise((r) => setTimeout(r, 250));
    }
    // Let traffic run on the new keys for a moment.
    await new Promise((r) => setTimeout(r, 1000));
  } finally {
    stop.done = true;
  }
  const [out, back] = await Promise.all(loads);
  const wire = await capture.stop(isPod, o.encrypted);
  const encrypted = wire.encrypted;
  const ms = Date.now() - started;
  const sent = out!.sent + back!.sent;
  const lost = sent - (out!.received + back!.received);
  const events = await auditEvents(auditPath);
  for (const slot of slots) {
    const to = completed?.get(slot);
    progress.push(to === undefined ? `${slotLabel(slot)}: NOT rotated within ${ROTATION_TIMEOUT_MS / 1000} s` : `${slotLabel(slot)} ${before.get(slot)} → ${to}`);
  }
  let channels = '';
  if (s.mode === 'wireguard' && completed) {
    const to = completed.get(slots[0]!)!;
    const drained = events.filter((e) => e.event === 'key.channel_draining' && e.generation === to && e.keyKind === 'node').map((e) => e.channel);
    channels = drained.length === 2 && drained[0] !== drained[1] ? `; channels drained in turn: ${drained.join(' then ')}` : `; expected key.channel_draining for both channels, saw ${JSON.stringify(drained)}`;
    if (!channels.startsWith('; channels drained')) progress.push('not make-before-break');
  }
  const ok = completed !== undefined && lost === 0 && sent > 0 && wire.plaintext === 0 && encrypted > 0 && !progress.includes('not make-before-break');
  const detail =
    `${a.name} (${a.node}) ⇄ ${remote.name} (${remote.node}) while ${progress.join(', ')} (${(ms / 1000).toFixed(1)} s): ` +
    `${lost} of ${sent} pings lost, ${wire.plaintext} plaintext pod packets and ${encrypted} ${s.mode === 'ipsec' ? 'ESP' : 'WireGuard'} packets on the wire${channels}` +
    (ok ? '' : `; expected the rotation to complete with 0 lost and 0 plaintext${lost > 0 ? ` (ping said: ${out!.lastOutput || back!.lastOutput})` : ''}${wire.plaintext > 0 ? `, e.g. ${wire.samples.join(' / ')}` : ''}`);
  return { name: NAME, ok, detail, data: { sent, lost, plaintext: wire.plaintext, encrypted, rotationMs: ms, rotated: completed ? Object.fromEntries([...completed].map(([k, v]) => [slotLabel(k), v])) : null } };
}
