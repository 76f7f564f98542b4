/** `veil lab up`. */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { MissingDependencyError } from '../errors.js';
import { quote } from '../net/ip.js';
import { DEFAULT_NAMESPACES, defaultPods, hostAddress, nodePlan, underlayPlan } from './address-plan.js';
import type { LabDeps } from './deps.js';
import { LabError, LAB_CLEANUP, LAB_INTERRUPTED } from './errors.js';
import { probeEsp } from './esp-probe.js';
import { etcdSocketPath, startLabEtcd } from './lab-etcd.js';
import { openLabStore, type LabStore } from './lab-store.js';
import { launch } from './launcher.js';
import type { LabUpOptions } from './options.js';
import { createLabCa, provisionLabNode, registerLabNodeToken } from './pki.js';
import { addPodToTopology, podRecord } from './pods.js';
import { removeLab } from './remove.js';
import { claimLabDir, DEFAULT_LAB_ROOT, labPaths, STATE_VERSION, writeLabState, type LabState } from './state.js';
import { createNode, createUnderlay } from './topology.js';

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
        `IPsec mode needs ESP, which this kernel lacks (${esp.reason}): run "bash scripts/lab.sh --mode ipsec", which runs the lab and the connectivity test in the VM harness (scripts/vm/vm.sh, a Debian kernel with ESP under qemu), or use --mode wireguard`,
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

    const { caCert } = await createLabCa(paths.pki, opts.name);
    state.pki = { dir: paths.pki, caCert };
    await save();

    for (let i = 1; i <= opts.nodes; i++) {
      checkAbort(deps.signal, opts.name);
      const n = nodePlan(opts.name, i);
      await createNode(u, n, recordNetns);
      const creds = await provisionLabNode(paths.pki, n.name);
      state.nodes.push({
        name: n.name,
        index: i,
        netns: n.netns,
        underlayAddresses: n.underlayAddresses,
        podCidrs: n.podCidrs,
        cert: creds.cert,
        key: creds.key,
        bootstrapToken: creds.bootstrapToken,
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
      { labDir: paths.dir, dataDir: paths.etcdData, netns: u.netns, listenIp: hostAddress(u.addresses[0]!), log: etcdLog },
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
      await store.cluster.put('nodes', { name: n.name, addresses: n.underlayAddresses.map(hostAddress), podCidrs: n.podCidrs, labels: {} });
      await registerLabNodeToken(store.store, n);
    }
    for (const p of state.pods) await store.cluster.put('pods', podRecord(p));

    for (const spec of (await deps.clusterProcesses?.(state)) ?? []) {
      checkAbort(deps.signal, opts.name);
      const rec = await launch({ ...spec, netns: u.netns });
      state.journal.push({ kind: 'process', ...rec });
      await save();
    }
    for (const n of state.nodes) {
      for (const spec of (await deps.nodeProcesses?.(n, state)) ?? []) {
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
