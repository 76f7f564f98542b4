/** Removing a lab (`veil lab down`, and `up` cleaning up after itself). */
import { existsSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import type { Logger } from '../log/logger.js';
import { deleteNetns } from '../netlink/netns.js';
import type { LabDeps } from './deps.js';
import { LabError, LAB_NOT_FOUND } from './errors.js';
import { stop } from './launcher.js';
import { labPinRoot } from './lab-processes.js';
import { stopProcessesInNetns } from './netns-processes.js';
import { DEFAULT_LAB_ROOT, labPaths, readLabState, removeLabDir, type LabState } from './state.js';


/**
 * Removes everything the state names, newest first, tolerating objects that are already gone,
 * then the lab directory. Errors are collected; the first is rethrown after everything else
 * was attempted (one stuck object never keeps the rest alive).
 */
export async function removeLab(state: LabState, root: string, log: Logger | undefined): Promise<void> {
  const errors: unknown[] = [];
  for (const e of [...state.journal].reverse()) {
    try {
      if (e.kind === 'process') await stop(e);
      else {
        // Processes the lab did not journal (the agents' wireguard-go daemons) go first.
        await stopProcessesInNetns(e.name);
        await deleteNetns(e.name, { ignoreMissing: true });
      }
    } catch (err) {
      log?.warn({ lab: state.name, entry: e, err }, 'Cannot remove lab object');
      errors.push(err);
    }
  }
  try {
    // The agents' eBPF pins (maps and links): bpffs keeps them until they are unlinked.
    await rm(labPinRoot(state.name), { recursive: true, force: true });
  } catch (err) {
    log?.warn({ lab: state.name, err }, 'Cannot remove the lab\'s eBPF pins');
    errors.push(err);
  }
  if (errors.length === 0) await removeLabDir(state.name, root);
  if (errors.length > 0) throw errors[0];
}

/** `veil lab down`: removes exactly what the state file names, in reverse. */
export async function labDown(name: string, deps: LabDeps = {}): Promise<{ removed: number }> {
  const root = deps.root ?? DEFAULT_LAB_ROOT;
  let state: LabState;
  try {
    state = await readLabState(name, root);
  } catch (err) {
    // A directory without a state file: `up` stopped between claiming the name and its first
    // write, before it created anything. Release the name.
    if (err instanceof LabError && err.code === LAB_NOT_FOUND && existsSync(labPaths(name, root).dir)) {
      await removeLabDir(name, root);
      return { removed: 0 };
    }
    throw err;
  }
  await removeLab(state, root, deps.logger);
  return { removed: state.journal.length };
}
