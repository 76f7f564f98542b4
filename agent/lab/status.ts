/** `veil lab status`. */
import { podLabelSet } from '../cluster/pod-identity.js';
import { IdentityKeys, parseByLabels } from '../identity/records.js';
import { hostAddress } from './address-plan.js';
import type { LabDeps } from './deps.js';
import { openLabStore } from './lab-store.js';
import { isRunning } from './launcher.js';
import { DEFAULT_LAB_ROOT, readLabState } from './state.js';

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
        const set = podLabelSet(p, nsLabels);
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
    underlay: { netns: state.underlay.netns, bridge: state.underlay.bridge, ips: state.underlay.addresses.map(hostAddress) },
    etcd: state.etcd ? { url: state.etcd.url, running: etcdRunning } : null,
    nodes: state.nodes.map((n) => ({
      name: n.name,
      netns: n.netns,
      underlayIp: hostAddress(n.underlayAddresses[0]!),
      underlayIps: n.underlayAddresses.map(hostAddress),
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
