/** Pods of a lab: created by `up` and by `veil lab pods add`, removed by `veil lab pods delete`. */
import { checkRecord, type ClusterPod } from '../cluster/records.js';
import { ConfigError } from '../errors.js';
import { quote } from '../net/ip.js';
import { deleteNetns } from '../netlink/netns.js';
import { nextPodHost, nodePlan, podAddressPlan, podNetns, type DefaultPod } from './address-plan.js';
import type { LabDeps } from './deps.js';
import { LabError, LAB_CONFLICT } from './errors.js';
import { openLabStore } from './lab-store.js';
import { DEFAULT_LAB_ROOT, readLabState, writeLabState, type LabPodState, type LabState } from './state.js';
import { createPod } from './topology.js';

/** The store record of a lab pod. */
export function podRecord(p: LabPodState): ClusterPod {
  return { name: p.name, namespace: p.namespace, labels: p.labels, serviceAccount: p.serviceAccount, node: p.node, addresses: p.addresses };
}

/** Creates a pod's namespace and veth on node `nodeIndex` at the lowest free address and adds it to `state`. */
export async function addPodToTopology(state: LabState, nodeIndex: number, pod: DefaultPod, recordNetns: (n: string) => Promise<void>): Promise<LabPodState> {
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
