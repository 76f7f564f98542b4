/**
 * `veil lab restart-agent --node NODE`: stops the node's agent (SIGTERM: it leaves the kernel
 * state in place) if it still runs, and starts it again with the same configuration, recorded in
 * the state file like the first one. Traffic keeps flowing meanwhile: the restarted agent adopts
 * the devices, peers, routes, programs and maps it finds (docs/agent.md).
 */
import type { LabDeps } from './deps.js';
import { LabError, LAB_NOT_FOUND } from './errors.js';
import { labAgentProcess } from './lab-processes.js';
import { launch, stop, type ProcessRecord } from './launcher.js';
import { DEFAULT_LAB_ROOT, readLabState, writeLabState } from './state.js';

export async function labRestartAgent(name: string, node: string, deps: LabDeps = {}): Promise<ProcessRecord> {
  const root = deps.root ?? DEFAULT_LAB_ROOT;
  const state = await readLabState(name, root);
  const n = state.nodes.find((x) => x.name === node);
  if (!n) throw new LabError(LAB_NOT_FOUND, `Lab "${name}" has no node "${node}": its nodes are ${state.nodes.map((x) => `"${x.name}"`).join(', ')}`);
  const processName = `agent-${node}`;
  const index = state.journal.findIndex((e) => e.kind === 'process' && e.name === processName);
  if (index >= 0) {
    const old = state.journal[index]!;
    if (old.kind === 'process') await stop(old);
  }
  const rec = await launch({ ...(await labAgentProcess(n, state, root)), netns: n.netns });
  if (index >= 0) state.journal[index] = { kind: 'process', ...rec };
  else state.journal.push({ kind: 'process', ...rec });
  await writeLabState(state, root);
  deps.logger?.info({ lab: name, node, pid: rec.pid }, 'Restarted agent');
  return rec;
}
