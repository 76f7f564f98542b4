/**
 * The key manager's state directory: `<stateDir>/keys/` (mode 0700) holding
 *
 *   state.json                  rotation state of every slot (fingerprints, phases, peers; no key)
 *   node.<generation>.key       node key of one generation            (0600, `wg genkey` format)
 *   identity-<id>.<generation>.key
 *
 * Written atomically (temporary file, fsync, rename) with 0600 like every secret file, so a crash
 * leaves the old state or the new one. The order of writes makes a restart safe: a key file is
 * written before the state that names its generation, and wiped only after the state dropped it
 * (or the state marks it retired), so a state never names a generation whose key should still
 * exist but does not — except after outside interference, which the manager handles (a lost
 * pending key is abandoned, a lost active key is an error).
 */
import { chmod, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { KeyFileError } from './errors.js';
import { isFingerprint } from './fingerprint.js';
import { readSecretFile, SECRET_DIR_MODE, writeSecretFile } from './key-file.js';
import type { SlotRef } from './key-store-paths.js';
import { isNodeName } from './node-record.js';
import type { RotationState } from './rotation.js';

export interface SlotState {
  rotation: RotationState;
  /** When the next scheduled rotation is due (interval after activation, minus jitter). */
  dueAt: number | null;
  /** When the pending generation was published (the acknowledgement timeout runs from here). */
  publishedAt: number | null;
  /** Why the superseded generation will be retired ("rotation" or "on-demand"). */
  retireReason: 'rotation' | 'on-demand';
}

export interface KeyManagerState {
  v: 1;
  node: string;
  /** Sequence of the last node record this node published. */
  sequence: number;
  slots: SlotState[];
}

const PHASES = ['generated', 'published', 'acknowledged', 'active', 'superseded', 'retired'];

export class KeyStateDir {
  readonly dir: string;
  constructor(stateDir: string) {
    this.dir = join(stateDir, 'keys');
  }

  get statePath(): string {
    return join(this.dir, 'state.json');
  }

  keyPath(slot: SlotRef, generation: number): string {
    return join(this.dir, `${slot.kind === 'node' ? 'node' : `identity-${slot.identity}`}.${generation}.key`);
  }

  /** Creates the directory 0700 (and tightens an existing one). */
  async prepare(): Promise<void> {
    try {
      await mkdir(this.dir, { recursive: true, mode: SECRET_DIR_MODE });
      await chmod(this.dir, SECRET_DIR_MODE);
    } catch (err) {
      throw new KeyFileError(this.dir, `Cannot prepare key directory "${this.dir}": ${(err as NodeJS.ErrnoException).code ?? 'error'}; check the state directory`, { cause: err });
    }
  }

  /** The saved state, or null when there is none yet. */
  async load(): Promise<KeyManagerState | null> {
    let buf: Buffer;
    try {
      buf = await readSecretFile(this.statePath, 16 * 1024 * 1024);
    } catch (err) {
      if (err instanceof KeyFileError && (err.cause as NodeJS.ErrnoException | undefined)?.code === 'ENOENT') return null;
      throw err;
    }
    return parseState(this.statePath, buf);
  }

  async save(state: KeyManagerState): Promise<void> {
    await writeSecretFile(this.statePath, Buffer.from(`${JSON.stringify(state)}\n`));
  }
}

function parseState(path: string, buf: Buffer): KeyManagerState {
  const bad = (what: string): never => {
    throw new KeyFileError(path, `Invalid key state file "${path}": ${what}; restore it from a backup or move the key directory aside to start with new keys`);
  };
  let raw: unknown;
  try {
    raw = JSON.parse(buf.toString('utf8'));
  } catch {
    return bad('not JSON');
  }
  const s = raw as KeyManagerState;
  if (typeof raw !== 'object' || raw === null || s.v !== 1) bad('expected {"v":1,...}');
  if (!isNodeName(s.node)) bad('"node" is not a node name');
  if (!Number.isSafeInteger(s.sequence) || s.sequence < 0) bad('"sequence" is not a non-negative integer');
  if (!Array.isArray(s.slots)) bad('"slots" is not an array');
  for (const [i, slot] of s.slots.entries()) {
    const r = slot?.rotation;
    const ok =
      r && typeof r === 'object' && r.slot && (r.slot.kind === 'node' || r.slot.kind === 'identity') && r.slot.node === s.node &&
      Number.isSafeInteger(r.slot.identity) && Array.isArray(r.peers) && r.peers.every(isNodeName) &&
      Array.isArray(r.generations) && Number.isSafeInteger(r.lastGeneration) && Number.isSafeInteger(r.intervalMs) &&
      r.generations.every((g) => Number.isSafeInteger(g.generation) && g.generation >= 1 && g.generation <= r.lastGeneration && isFingerprint(g.fingerprint) && PHASES.includes(g.phase)) &&
      (slot.dueAt === null || Number.isSafeInteger(slot.dueAt)) && (slot.publishedAt === null || Number.isSafeInteger(slot.publishedAt)) &&
      (slot.retireReason === 'rotation' || slot.retireReason === 'on-demand');
    if (!ok) bad(`slot ${i} is malformed`);
  }
  return s;
}
