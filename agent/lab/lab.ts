/**
 * `veil lab` operations: up, down, status, pods add / delete. Each takes one typed list of what
 * it depends on (LabDeps); the CLI is the only place that builds it.
 */
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { ConfigError, MissingDependencyError } from '../errors.js';
import { checkRecord } from '../cluster/records.js';
import { canonicalLabelSet } from '../identity/labels.js';
import { IdentityKeys, parseByLabels } from '../identity/records.js';
import type { Logger } from '../log/logger.js';
import { quote } from '../net/ip.js';
import { deleteNetns } from '../netlink/netns.js';
import {
  DEFAULT_NAMESPACES,
  defaultPods,
  nextPodHost,
  nodePlan,
  podAddressPlan,
  podNetns,
  underlayPlan,
  type DefaultPod,
} from './address-plan.js';
import { LabError, LAB_CLEANUP, LAB_CONFLICT, LAB_INTERRUPTED, LAB_NOT_FOUND } from './errors.js';
import { probeEsp } from './esp-probe.js';
import { etcdSocketPath, startLabEtcd } from './lab-etcd.js';
import { openLabStore, type LabStore } from './lab-store.js';
import { isRunning, launch, stop, type LaunchSpec } from './launcher.js';
import type { LabUpOptions } from './options.js';
import { createLabCa, issueLabNodeCertificate } from './pki.js';
import {
  claimLabDir,
  DEFAULT_LAB_ROOT,
  labPaths,
  readLabState,
  removeLabDir,
  STATE_VERSION,
  writeLabState,
  type LabNodeState,
  type LabPodState,
  type LabState,
} from './state.js';
import { createNode, createPod, createUnderlay } from './topology.js';

export interface LabDeps {
  /** Where lab directories live; default /run/veil/lab. */
  root?: string;
  logger?: Logger;
  /** Aborted by SIGINT/SIGTERM: `up` stops and removes what it made. */
  signal?: AbortSignal;
  /**
   * The processes `up` starts for each node (the agent, once it exists). Each runs in the node's
   * namespace, is recorded in the state file and stopped by `down`. Default: none.
   */
  nodeProcesses?: (node: LabNodeState, state: LabState) => LaunchSpec[];
}

function checkAbort(signal: AbortSignal | undefined, name: string): void {
  if (signal?.aborted) {
    throw new LabError(LAB_INTERRUPTED, `Lab ${quote(name)} was interrupted while starting: everything it had created was removed`);
  }
}

/**
 * Builds a lab. On any failure or interruption everything created so far is removed again
 * (down on the partial state) and the error is rethrown.
 */
export async function labUp(opts: LabUpOptions, deps: LabDeps = {}): Promise<LabState> {
  const root = deps.root ?? DEFAULT_LAB_ROOT;
  const log = deps.logger;
  const paths = labPaths(opts.name, root);
  const u = underlayPlan(opts.name);
  if (opts.mode === 'ipsec') {
    // Before claiming anything: the answer does not depend on the lab.
    const esp = await probeEsp(`veil-${opts.name}-espprobe`);
    if (!esp.supported) {
      throw new MissingDependencyError(
        `IPsec mode needs ESP, which this kernel lacks (${esp.reason}): run the lab in the VM harness (tests/vm, a Debian kernel with ESP under qemu), or use --mode wireguard`,
      );
    }
  }
  await claimLabDir(opts.name, root);
  const state: LabState = {
    v: STATE_VERSION,
    name: opts.name,
    mode: opts.mode,
    phase: 'creating',
    createdAt: new Date().toISOString(),
    underlay: { netns: u.netns, bridge: u.bridge, addresses: u.addresses },
    etcd: null,
    pki: null,
    nodes: [],
    pods: [],
    auditLogs: [],
    journal: [],
  };
  const save = () => writeLabState(state, root);
  const recordNetns = async (name: string) => {
    state.journal.push({ kind: 'netns', name });
    await save();
  };
  await save();
  let store: LabStore | undefined;
  try {
    checkAbort(deps.signal, opts.name);
    await createUnderlay(u, recordNetns);
    log?.info({ lab: opts.name, netns: u.netns }, 'Created lab underlay');

    const { ca, caCert } = await createLabCa(paths.pki, opts.name);
    state.pki = { dir: paths.pki, caCert };
    await save();

    for (let i = 1; i <= opts.nodes; i++) {
      checkAbort(deps.signal, opts.name);
      const n = nodePlan(opts.name, i);
      await createNode(u, n, recordNetns);
      const creds = await issueLabNodeCertificate(paths.pki, ca, n.name);
      state.nodes.push({
        name: n.name,
        index: i,
        netns: n.netns,
        underlayAddresses: n.underlayAddresses,
        podCidrs: n.podCidrs,
        cert: creds.cert,
        key: creds.key,
      });
      await save();
      for (const pod of defaultPods(i, opts.podsPerNode)) {
        checkAbort(deps.signal, opts.name);
        await addPodToTopology(state, i, pod, recordNetns);
        await save();
      }
      log?.info({ lab: opts.name, node: n.name }, 'Created lab node');
    }

    checkAbort(deps.signal, opts.name);
    await mkdir(paths.logs, { recursive: true, mode: 0o700 });
    const etcdLog = join(paths.logs, 'etcd.log');
    await startLabEtcd(
      { labDir: paths.dir, dataDir: paths.etcdData, netns: u.netns, listenIp: u.addresses[0]!.split('/')[0]!, log: etcdLog },
      async (rec) => {
        state.journal.push({ kind: 'process', ...rec });
        state.etcd = { url: u.etcdUrl, socket: etcdSocketPath(paths.dir), dataDir: paths.etcdData, log: etcdLog };
        await save();
      },
    );
    checkAbort(deps.signal, opts.name);

    store = await openLabStore(etcdSocketPath(paths.dir), log ? { logger: log } : {});
    for (const ns of DEFAULT_NAMESPACES) await store.cluster.put('namespaces', { name: ns.name, labels: ns.labels });
    for (const n of state.nodes) {
      await store.cluster.put('nodes', { name: n.name, addresses: n.underlayAddresses.map(bare), podCidrs: n.podCidrs, labels: {} });
    }
    for (const p of state.pods) await store.cluster.put('pods', podRecord(p));

    for (const n of state.nodes) {
      for (const spec of deps.nodeProcesses?.(n, state) ?? []) {
        checkAbort(deps.signal, opts.name);
        const rec = await launch({ ...spec, netns: n.netns });
        state.journal.push({ kind: 'process', ...rec });
        await save();
      }
    }
    checkAbort(deps.signal, opts.name);
    state.phase = 'ready';
    await save();
    return state;
  } catch (err) {
    await store?.close().catch(() => undefined);
    store = undefined;
    log?.warn({ lab: opts.name, err }, 'Lab start failed: removing what it created');
    try {
      await removeLab(state, root, log);
    } catch (cleanupErr) {
      throw new LabError(
        LAB_CLEANUP,
        `${(err as Error).message}; removing what lab ${quote(opts.name)} had created also failed (${(cleanupErr as Error).message}): run "veil lab down --name ${opts.name}"`,
        { cause: err },
      );
    }
    throw err;
  } finally {
    await store?.close();
  }
}

function bare(cidr: string): string {
  return cidr.split('/')[0]!;
}

function podRecord(p: LabPodState) {
  return { name: p.name, namespace: p.namespace, labels: p.labels, serviceAccount: p.serviceAccount, node: p.node, addresses: p.addresses };
}

async function addPodToTopology(state: LabState, nodeIndex: number, pod: DefaultPod, recordNetns: (n: string) => Promise<void>): Promise<LabPodState> {
  const n = nodePlan(state.name, nodeIndex);
  const host = nextPodHost(state.pods.filter((p) => p.node === n.name).map((p) => p.host));
  if (host === null) throw new LabError(LAB_CONFLICT, `Node ${quote(n.name)} has no free pod address in ${quote(n.podCidrs[0])}: delete a pod first`);
  const plan = podAddressPlan(nodeIndex, host);
  const netns = podNetns(state.name, pod.namespace, pod.name);
  await createPod(n, plan, netns, recordNetns);
  const rec: LabPodState = { ...pod, node: n.name, netns, host, hostIface: plan.hostIface, addresses: plan.addresses };
  state.pods.push(rec);
  return rec;
}

/**
 * Removes everything the state names, newest first, tolerating objects that are already gone,
 * then the lab directory. Errors are collected; the first is rethrown after everything else
 * was attempted (one stuck object never keeps the rest alive).
 */
async function removeLab(state: LabState, root: string, log: Logger | undefined): Promise<void> {
  const errors: unknown[] = [];
  for (const e of [...state.journal].reverse()) {
    try {
      if (e.kind === 'process') await stop(e);
      else await deleteNetns(e.name, { ignoreMissing: true });
    } catch (err) {
      log?.warn({ lab: state.name, entry: e, err }, 'Cannot remove lab object');
      errors.push(err);
    }
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

export interface LabStatus {
  name: string;
  mode: string;
  phase: string;
  underlay: { netns: string; bridge: string; ips: string[] };
  etcd: { url: string; running: boolean } | null;
  nodes: Array<{ name: string; netns: string; underlayIp: string; underlayIps: string[]; podCidr: string; podCidrs: string[] }>;
  pods: Array<{ name: string; namespace: string; labels: Record<string, string>; serviceAccount: string; netns: string; ip: string; ips: string[]; node: string; identity: number | null }>;
  processes: Array<{ name: string; pid: number; netns: string | null; running: boolean; log: string }>;
  auditLogs: string[];
  caCert: string | null;
  /** Why identity can be null. */
  notes: string[];
}

/**
 * `veil lab status`: the state file, whether processes still run, and each pod's identity from
 * the store (null until an agent has allocated one).
 */
export async function labStatus(name: string, deps: LabDeps = {}): Promise<LabStatus> {
  const root = deps.root ?? DEFAULT_LAB_ROOT;
  const state = await readLabState(name, root);
  const processes = await Promise.all(
    state.journal.flatMap((e) => (e.kind === 'process' ? [e] : [])).map(async (p) => ({
      name: p.name,
      pid: p.pid,
      netns: p.netns ?? null,
      running: await isRunning(p),
      log: p.log,
    })),
  );
  const etcdRunning = processes.some((p) => p.name === 'etcd' && p.running);
  const identities = new Map<string, number | null>();
  const notes: string[] = [];
  if (state.etcd && etcdRunning) {
    const s = await openLabStore(state.etcd.socket, deps.logger ? { logger: deps.logger } : {});
    try {
      const nsLabels = new Map((await s.cluster.list('namespaces')).items.map((o) => [o.record.name, o.record.labels]));
      const keys = new IdentityKeys();
      for (const p of state.pods) {
        const set = canonicalLabelSet({ namespace: p.namespace, serviceAccount: p.serviceAccount, podLabels: p.labels, namespaceLabels: nsLabels.get(p.namespace) ?? {} });
        const kv = await s.store.get(keys.byLabels(set.hash));
        identities.set(`${p.namespace}/${p.name}`, kv ? parseByLabels(kv) : null);
      }
    } finally {
      await s.close();
    }
  } else {
    notes.push('etcd is not running: identities cannot be read');
  }
  if (state.pods.some((p) => (identities.get(`${p.namespace}/${p.name}`) ?? null) === null)) {
    notes.push('identity is null until an agent (or the operator) allocates identities for the pod\'s labels');
  }
  return {
    name: state.name,
    mode: state.mode,
    phase: state.phase,
    underlay: { netns: state.underlay.netns, bridge: state.underlay.bridge, ips: state.underlay.addresses.map(bare) },
    etcd: state.etcd ? { url: state.etcd.url, running: etcdRunning } : null,
    nodes: state.nodes.map((n) => ({
      name: n.name,
      netns: n.netns,
      underlayIp: bare(n.underlayAddresses[0]!),
      underlayIps: n.underlayAddresses.map(bare),
      podCidr: n.podCidrs[0]!,
      podCidrs: n.podCidrs,
    })),
    pods: state.pods.map((p) => ({
      name: p.name,
      namespace: p.namespace,
      labels: p.labels,
      serviceAccount: p.serviceAccount,
      netns: p.netns,
      ip: p.addresses[0]!,
      ips: p.addresses,
      node: p.node,
      identity: identities.get(`${p.namespace}/${p.name}`) ?? null,
    })),
    processes,
    auditLogs: state.auditLogs,
    caCert: state.pki?.caCert ?? null,
    notes,
  };
}

export interface PodAddOptions {
  pod: string;
  namespace: string;
  node: string;
  labels: Record<string, string>;
  serviceAccount: string;
}

/** `veil lab pods add`: a pod namespace on a node, in the state file and in the store. */
export async function labPodAdd(name: string, o: PodAddOptions, deps: LabDeps = {}): Promise<LabPodState> {
  const root = deps.root ?? DEFAULT_LAB_ROOT;
  const state = await readLabState(name, root);
  if (state.phase !== 'ready') throw new LabError(LAB_CONFLICT, `Lab ${quote(name)} is still starting: wait for "veil lab up" to finish`);
  if (!state.etcd) throw new LabError(LAB_CONFLICT, `Lab ${quote(name)} has no store: run "veil lab down" and "veil lab up" again`);
  const node = state.nodes.find((n) => n.name === o.node);
  if (!node) throw new ConfigError(`Unknown node ${quote(o.node)} in lab ${quote(name)}: use one of ${state.nodes.map((n) => n.name).join(', ')}`);
  if (state.pods.some((p) => p.name === o.pod && p.namespace === o.namespace)) {
    throw new LabError(LAB_CONFLICT, `Pod ${quote(`${o.namespace}/${o.pod}`)} already exists in lab ${quote(name)}: delete it first or choose another name`);
  }
  // Validate the record (names, labels) before any kernel object exists.
  checkRecord('pods', { name: o.pod, namespace: o.namespace, labels: o.labels, serviceAccount: o.serviceAccount, node: o.node, addresses: [] });
  const s = await openLabStore(state.etcd.socket, deps.logger ? { logger: deps.logger } : {});
  let created: LabPodState | undefined;
  try {
    const save = () => writeLabState(state, root);
    created = await addPodToTopology(state, node.index, { name: o.pod, namespace: o.namespace, labels: o.labels, serviceAccount: o.serviceAccount }, async (n) => {
      state.journal.push({ kind: 'netns', name: n });
      await save();
    });
    await save();
    if (!(await s.cluster.get('namespaces', o.namespace))) await s.cluster.put('namespaces', { name: o.namespace, labels: { 'kubernetes.io/metadata.name': o.namespace } });
    await s.cluster.put('pods', podRecord(created));
    return created;
  } catch (err) {
    // Undo the half-made pod: its namespace (and veth with it) and its entries in the state.
    const netns = podNetns(name, o.namespace, o.pod);
    if (state.journal.some((e) => e.kind === 'netns' && e.name === netns)) {
      await deleteNetns(netns, { ignoreMissing: true }).catch(() => undefined);
      state.journal = state.journal.filter((e) => !(e.kind === 'netns' && e.name === netns));
      state.pods = state.pods.filter((p) => p.netns !== netns);
      await writeLabState(state, root);
    }
    throw err;
  } finally {
    await s.close();
  }
}

/** `veil lab pods delete`: removes the pod from the store, then its namespace, then from the state. */
export async function labPodDelete(name: string, o: { pod: string; namespace: string }, deps: LabDeps = {}): Promise<LabPodState> {
  const root = deps.root ?? DEFAULT_LAB_ROOT;
  const state = await readLabState(name, root);
  const pod = state.pods.find((p) => p.name === o.pod && p.namespace === o.namespace);
  if (!pod) {
    throw new ConfigError(`No pod ${quote(`${o.namespace}/${o.pod}`)} in lab ${quote(name)}: "veil lab status --name ${name}" lists the pods`);
  }
  if (state.etcd) {
    const s = await openLabStore(state.etcd.socket, deps.logger ? { logger: deps.logger } : {});
    try {
      await s.cluster.delete('pods', pod.name, pod.namespace);
    } finally {
      await s.close();
    }
  }
  await deleteNetns(pod.netns, { ignoreMissing: true });
  state.pods = state.pods.filter((p) => p !== pod);
  state.journal = state.journal.filter((e) => !(e.kind === 'netns' && e.name === pod.netns));
  await writeLabState(state, root);
  return pod;
}
