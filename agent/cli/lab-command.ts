/**
 * `veil lab`: a multi-node cluster out of network namespaces on this machine (agent/lab). This
 * module only parses flags, wires the lab's dependencies and prints; the logic is in agent/lab.
 */
import { ConfigError, MissingDependencyError } from '../errors.js';
import { createRootLogger, moduleLogger } from '../log/logger.js';
import type { LabDeps } from '../lab/deps.js';
import { labAgentProcess, labOperatorProcess } from '../lab/lab-processes.js';
import { labPodAdd, labPodDelete } from '../lab/pods.js';
import { labRestartAgent } from '../lab/restart-agent.js';
import { labPolicyApply, labPolicyDelete } from '../lab/policies.js';
import { labDown } from '../lab/remove.js';
import { labStatus, type LabStatus } from '../lab/status.js';
import { labUp } from '../lab/up.js';
import { parseLabelsArg } from '../lab/labels-arg.js';
import { DEFAULT_LAB_NAME, resolveLabUpOptions } from '../lab/options.js';
import { checkLabName } from '../lab/address-plan.js';
import { labEvents } from '../lab/lab-events.js';
import { parseCommandArgs, requiredFlag } from './args.js';
import { EVENT_FLAGS, eventFlags, printEvent, untilInterrupted } from './events-command.js';
import { commandGroup } from './command-group.js';

const USAGE = `Usage: veil lab <command> [options]

Commands:
  up      [--nodes 3] [--pods-per-node 2] [--mode wireguard|ipsec] [--name veil]
          Build a lab: underlay, node and pod namespaces, a real etcd, a CA and node certificates
  status  [--name veil] [--json]
          Show the lab's namespaces, addresses, pods and their identities
  down    [--name veil]
          Remove everything the lab created (and nothing else)
  pods add     --pod NAME --node NODE [--namespace default] [--labels k=v,...] [--service-account default] [--name veil]
  pods delete  --pod NAME [--namespace default] [--name veil]
          Add or remove a pod while the lab runs
  restart-agent --node NODE [--name veil]
          Stop a node's agent and start it again (it adopts the kernel state)
  policy apply FILE [--name veil]
  policy delete FILE [--name veil]
          Write or remove Kubernetes NetworkPolicies (YAML) in the lab's cluster model
  events  [--node NODE] [--follow] [--type drop|flow] [--reason R] [--identity N] [--address IP] [--json] [--name veil]
          The agents' datapath events (drops with reason and identities, new flows); see "veil events --help"

The lab needs root. State: /run/veil/lab/<name>/state.json. See docs/lab.md.
`;

function out(line: string): void {
  process.stdout.write(`${line}\n`);
}

function deps(extra: Partial<LabDeps> = {}): LabDeps {
  const root = createRootLogger({ destination: process.stderr, level: process.env.VEIL_LOG_LEVEL ?? 'warn' });
  return { logger: moduleLogger(root, 'lab'), ...extra };
}

function requireRoot(): void {
  if (typeof process.getuid === 'function' && process.getuid() !== 0) {
    throw new MissingDependencyError('The lab needs root (network namespaces, mounts under /run/netns): run "sudo veil lab ..."');
  }
}

async function up(args: string[]): Promise<number> {
  const { values } = parseCommandArgs('lab up', args, {
    nodes: { type: 'string' },
    'pods-per-node': { type: 'string' },
    mode: { type: 'string' },
    name: { type: 'string' },
  });
  const opts = resolveLabUpOptions({ name: values.name, nodes: values.nodes, podsPerNode: values['pods-per-node'], mode: values.mode });
  requireRoot();
  const abort = new AbortController();
  const onSignal = (sig: NodeJS.Signals): void => {
    if (abort.signal.aborted) return;
    process.stderr.write(`veil lab up: ${sig} received: removing what was created so far\n`);
    abort.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    const state = await labUp(
      opts,
      deps({
        signal: abort.signal,
        clusterProcesses: (st) => [labOperatorProcess(st)],
        nodeProcesses: async (n, st) => [await labAgentProcess(n, st)],
      }),
    );
    out(`Lab "${state.name}" is up (${state.mode} mode): ${state.nodes.length} nodes, ${state.pods.length} pods, etcd at ${state.etcd?.url}`);
    out(`  veil lab status --name ${state.name}    veil lab down --name ${state.name}`);
    return 0;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

async function down(args: string[]): Promise<number> {
  const { values } = parseCommandArgs('lab down', args, { name: { type: 'string' } });
  const name = checkLabName(values.name ?? DEFAULT_LAB_NAME);
  requireRoot();
  const { removed } = await labDown(name, deps());
  out(`Lab "${name}" removed: ${removed} objects (namespaces and processes)`);
  return 0;
}

async function status(args: string[]): Promise<number> {
  const { values } = parseCommandArgs('lab status', args, { name: { type: 'string' }, json: { type: 'boolean' } });
  const name = checkLabName(values.name ?? DEFAULT_LAB_NAME);
  requireRoot();
  const s = await labStatus(name, deps());
  if (values.json) {
    out(JSON.stringify(s, null, 2));
    return 0;
  }
  printStatus(s);
  return 0;
}

function printStatus(s: LabStatus): void {
  out(`Lab "${s.name}" (${s.mode}, ${s.phase})`);
  out(`  underlay  ${s.underlay.netns} bridge ${s.underlay.bridge} ${s.underlay.ips.join(' ')}`);
  out(`  etcd      ${s.etcd ? `${s.etcd.url} ${s.etcd.running ? 'running' : 'NOT RUNNING'}` : 'none'}`);
  out(`  CA        ${s.caCert ?? 'none'}`);
  out('  nodes');
  for (const n of s.nodes) out(`    ${n.name.padEnd(10)} ${n.underlayIps.join(' ').padEnd(28)} pods ${n.podCidrs.join(' ')}`);
  out('  pods');
  for (const p of s.pods) {
    out(`    ${`${p.namespace}/${p.name}`.padEnd(24)} ${p.node.padEnd(10)} ${p.ips.join(' ').padEnd(30)} identity ${p.identity ?? '-'}`);
  }
  for (const p of s.processes) out(`  process   ${p.name} pid ${p.pid} ${p.running ? 'running' : 'NOT RUNNING'} log ${p.log}`);
  for (const n of s.notes) out(`  note: ${n}`);
}

async function pods(args: string[]): Promise<number> {
  const [verb, ...rest] = args;
  if (verb === 'add') {
    const { values } = parseCommandArgs('lab pods add', rest, {
      name: { type: 'string' },
      pod: { type: 'string' },
      namespace: { type: 'string' },
      node: { type: 'string' },
      labels: { type: 'string' },
      'service-account': { type: 'string' },
    });
    const name = checkLabName(values.name ?? DEFAULT_LAB_NAME);
    const pod = requiredFlag(values, 'pod', 'lab pods add');
    const node = requiredFlag(values, 'node', 'lab pods add');
    const labels = parseLabelsArg(values.labels);
    requireRoot();
    const p = await labPodAdd(
      name,
      { pod, node, namespace: values.namespace ?? 'default', labels, serviceAccount: values['service-account'] ?? 'default' },
      deps(),
    );
    out(`Added pod "${p.namespace}/${p.name}" on ${p.node}: ${p.addresses.join(' ')} (netns ${p.netns})`);
    return 0;
  }
  if (verb === 'delete') {
    const { values } = parseCommandArgs('lab pods delete', rest, { name: { type: 'string' }, pod: { type: 'string' }, namespace: { type: 'string' } });
    const name = checkLabName(values.name ?? DEFAULT_LAB_NAME);
    const pod = requiredFlag(values, 'pod', 'lab pods delete');
    requireRoot();
    const p = await labPodDelete(name, { pod, namespace: values.namespace ?? 'default' }, deps());
    out(`Deleted pod "${p.namespace}/${p.name}" from ${p.node}`);
    return 0;
  }
  throw new ConfigError(`Unknown command "veil lab pods ${verb ?? ''}": use "add" or "delete" (run "veil lab --help")`);
}

async function policy(args: string[]): Promise<number> {
  const [verb, ...rest] = args;
  if (verb !== 'apply' && verb !== 'delete') throw new ConfigError(`Unknown command "veil lab policy ${verb ?? ''}": use "apply FILE" or "delete FILE" (run "veil lab --help")`);
  const { values, positionals } = parseCommandArgs(`lab policy ${verb}`, rest, { name: { type: 'string' } }, 1);
  const file = positionals[0];
  if (!file) throw new ConfigError(`"veil lab policy ${verb}" needs a file of NetworkPolicy YAML: run "veil lab --help"`);
  const name = checkLabName(values.name ?? DEFAULT_LAB_NAME);
  requireRoot();
  const done = verb === 'apply' ? await labPolicyApply(name, file, deps()) : await labPolicyDelete(name, file, deps());
  out(`${verb === 'apply' ? 'Applied' : 'Deleted'} ${done.length} NetworkPolicies${done.length ? `: ${done.join(', ')}` : ''}`);
  return 0;
}

async function restartAgent(args: string[]): Promise<number> {
  const { values } = parseCommandArgs('lab restart-agent', args, { name: { type: 'string' }, node: { type: 'string' } });
  const name = checkLabName(values.name ?? DEFAULT_LAB_NAME);
  const node = requiredFlag(values, 'node', 'lab restart-agent');
  requireRoot();
  const rec = await labRestartAgent(name, node, deps());
  out(`Restarted the agent of ${node} (pid ${rec.pid}, log ${rec.log})`);
  return 0;
}

async function events(args: string[]): Promise<number> {
  const { values } = parseCommandArgs('lab events', args, { name: { type: 'string' }, node: { type: 'string' }, ...EVENT_FLAGS });
  const name = checkLabName(values.name ?? DEFAULT_LAB_NAME);
  const { filter, limit } = eventFlags(values, 'lab events');
  const json = values.json === true;
  requireRoot();
  await untilInterrupted((signal) =>
    labEvents(name, (e) => printEvent(e, json, `${e.node.padEnd(8)} `), {
      filter,
      follow: values.follow === true,
      signal,
      ...(values.node !== undefined ? { node: values.node } : {}),
      ...(limit !== undefined ? { limit } : {}),
    }),
  );
  return 0;
}

export const labCommand = commandGroup({
  name: 'lab',
  summary: 'Run a multi-node Veil lab in network namespaces on this machine (up, status, down, pods, policy, restart-agent, events)',
  usage: USAGE,
  subcommands: { up, down, status, pods, policy, 'restart-agent': restartAgent, events },
});
