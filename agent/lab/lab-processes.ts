/**
 * The lab's Veil processes: one `veil agent` per node (in the node's namespace) and one
 * `veil operator` (in the underlay namespace, next to etcd; the only process given the CA
 * directory: it signs the node certificates). Each agent gets a config file
 * written here, `<lab>/nodes/<node>/agent.json` (docs/configuration.md), with its state
 * directory, audit log, CA bundle and bootstrap token inside the lab directory and its eBPF pins under
 * `/sys/fs/bpf/veil-lab-<lab>/<node>` — all removed by `lab down`.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { caPaths } from '../../certs/directory.js';
import { projectRoot } from '../project-root.js';
import type { LaunchSpec } from './launcher.js';
import { DEFAULT_LAB_ROOT, labPaths, type LabNodeState, type LabState } from './state.js';

/** Root of the lab's eBPF pins (one directory per node below it). */
export function labPinRoot(lab: string): string {
  return `/sys/fs/bpf/veil-lab-${lab}`;
}

export function labNodeDir(lab: string, node: string, root = DEFAULT_LAB_ROOT): string {
  return join(labPaths(lab, root).dir, 'nodes', node);
}

/** Port of every agent's status server, on the node namespace's loopback. */
export const LAB_AGENT_STATUS_PORT = 9876;
/** Port of the operator's status server, on the underlay namespace's loopback. */
export const LAB_OPERATOR_STATUS_PORT = 9877;

/** How to run this checkout's `veil` (node and the built entry point). */
export function veilCommand(): { command: string; args: string[] } {
  return { command: process.execPath, args: [join(projectRoot(), 'dist', 'agent', 'cli', 'main.js')] };
}

/** Writes the node's agent config and returns the agent's launch spec (run in the node namespace by `up`). */
export async function labAgentProcess(node: LabNodeState, state: LabState, root = DEFAULT_LAB_ROOT): Promise<LaunchSpec> {
  const dir = labNodeDir(state.name, node.name, root);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const audit = join(dir, 'audit.log');
  const config = {
    nodeName: node.name,
    stateDir: dir,
    store: { endpoints: [state.etcd!.url] },
    encryption: { type: state.mode, strictMode: true },
    datapath: { pinDir: join(labPinRoot(state.name), node.name), uplink: 'eth0' },
    pki: { caBundle: caPaths(state.pki!.dir).bundle, nodeCert: node.cert, nodeKey: node.key, bootstrapToken: node.bootstrapToken },
    audit: { file: audit },
    status: { listen: `127.0.0.1:${LAB_AGENT_STATUS_PORT}` },
    logLevel: 'info',
  };
  const file = join(dir, 'agent.json');
  await writeFile(file, `${JSON.stringify(config, null, 2)}\n`, { mode: 0o600 });
  if (!state.auditLogs.includes(audit)) state.auditLogs.push(audit);
  const veil = veilCommand();
  return { name: `agent-${node.name}`, command: veil.command, args: [...veil.args, 'agent', '--config', file], log: join(labPaths(state.name, root).logs, `agent-${node.name}.log`) };
}

/** The operator's launch spec (run in the underlay namespace by `up`). */
export function labOperatorProcess(state: LabState, root = DEFAULT_LAB_ROOT): LaunchSpec {
  const veil = veilCommand();
  return {
    name: 'operator',
    command: veil.command,
    args: [
      ...veil.args,
      'operator',
      '--store',
      state.etcd!.url,
      '--id',
      `${state.name}-operator`,
      '--status-listen',
      `127.0.0.1:${LAB_OPERATOR_STATUS_PORT}`,
      '--resync-interval',
      '5s',
      '--ca-dir',
      state.pki!.dir,
    ],
    log: join(labPaths(state.name, root).logs, 'operator.log'),
  };
}
