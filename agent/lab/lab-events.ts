/**
 * `veil lab events`: the datapath events of the lab's agents. Each agent's status server listens
 * on its node namespace's loopback (lab-processes.ts), so for every selected node this runs
 * `veil events --json` inside that namespace (through veil-netns-exec) and tags what it prints
 * with the node's name. Without follow, the nodes' recent events are merged by time.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { MissingDependencyError } from '../errors.js';
import { eventFilterQuery, type EventFilter } from '../datapath/event-filter.js';
import type { EventRecord } from '../datapath/event-record.js';
import { quote } from '../net/ip.js';
import { LabError, LAB_CONFLICT, LAB_PROCESS } from './errors.js';
import { netnsExecPath } from './launcher.js';
import { LAB_AGENT_STATUS_PORT, veilCommand } from './lab-processes.js';
import { DEFAULT_LAB_ROOT, readLabState, type LabNodeState } from './state.js';

export interface LabEventsOptions {
  /** One node (default: every node). */
  node?: string;
  filter?: EventFilter;
  follow?: boolean;
  limit?: number;
  signal?: AbortSignal;
  root?: string;
}

export type NodeEvent = EventRecord & { node: string };

/** Streams the lab's events to `onEvent`; resolves when every node's stream ended (or on abort). */
export async function labEvents(name: string, onEvent: (e: NodeEvent) => void, o: LabEventsOptions = {}): Promise<void> {
  const state = await readLabState(name, o.root ?? DEFAULT_LAB_ROOT);
  let nodes = state.nodes;
  if (o.node !== undefined) {
    nodes = nodes.filter((n) => n.name === o.node);
    if (nodes.length === 0) throw new LabError(LAB_CONFLICT, `Lab "${name}" has no node ${quote(o.node)}: use one of ${state.nodes.map((n) => n.name).join(', ')}`);
  }
  const exec = netnsExecPath();
  if (!existsSync(exec)) throw new MissingDependencyError(`Launcher ${quote(exec)} is not built: run "npm run build" in the checkout`);
  if (o.follow) {
    await Promise.all(nodes.map((n) => nodeEvents(exec, n, o, onEvent)));
    return;
  }
  const all: NodeEvent[] = [];
  await Promise.all(nodes.map((n) => nodeEvents(exec, n, o, (e) => all.push(e))));
  all.sort((a, b) => (a.time < b.time ? -1 : a.time > b.time ? 1 : a.node.localeCompare(b.node)));
  for (const e of all) onEvent(e);
}

function nodeEvents(exec: string, node: LabNodeState, o: LabEventsOptions, onEvent: (e: NodeEvent) => void): Promise<void> {
  const veil = veilCommand();
  const flags: string[] = ['--json', '--node-status', `http://127.0.0.1:${LAB_AGENT_STATUS_PORT}`];
  for (const [k, v] of eventFilterQuery(o.filter ?? {})) flags.push(`--${k}`, v);
  if (o.limit !== undefined) flags.push('--limit', String(o.limit));
  if (o.follow) flags.push('--follow');
  const child = spawn(exec, ['--netns', node.netns, '--', veil.command, ...veil.args, 'events', ...flags], { stdio: ['ignore', 'pipe', 'pipe'] });
  const stop = () => child.kill('SIGINT');
  o.signal?.addEventListener('abort', stop, { once: true });
  return new Promise((resolve, reject) => {
    let buf = '';
    let err = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (d: string) => {
      buf += d;
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        if (line.trim() !== '') onEvent({ node: node.name, ...(JSON.parse(line) as EventRecord) });
      }
    });
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (d: string) => (err = (err + d).slice(-2000)));
    child.once('error', (e) => reject(new LabError(LAB_PROCESS, `Cannot read the events of ${node.name}: ${e.message}`, { cause: e })));
    child.once('close', (code) => {
      o.signal?.removeEventListener('abort', stop);
      if (code === 0 || o.signal?.aborted) return resolve();
      reject(new LabError(LAB_PROCESS, `Cannot read the events of ${node.name} (netns ${quote(node.netns)}): ${err.trim().replace(/^veil events: /, '') || `exit status ${code}`}`));
    });
  });
}
