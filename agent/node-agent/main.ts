/**
 * `veil agent`, composed in one place (STYLE.md: the only module that wires the others). Start
 * order, each a lifecycle hook (stopped in reverse on SIGTERM or when a later start fails):
 *
 *   store          etcd client, the node's own cluster record (addresses, pod CIDRs), the node lease
 *   audit          the hash-chained audit log, checkpoints signed with the node certificate's key
 *   datapath       eBPF programs loaded once (maps pinned), uplink programs attached
 *   wireguard      backend (kernel or wireguard-go), peer reconciler, key hooks; after a restart
 *                  the channel devices are adopted with the active node key from the state dir
 *   key-manager    node key, signed node record, peers' verified records → WireGuard peers
 *   svids          an SVID per hosted identity in <stateDir>/svids, renewed at half-life (audited)
 *   datapath-sync  cluster model + identities + policies → endpoints, ipcache, policy, config maps
 *   status-server  /healthz /readyz /metrics /status
 *
 * Stopping never removes kernel state: WireGuard devices (and their wireguard-go daemons), peers,
 * routes, attached programs and pinned maps stay, so traffic keeps flowing encrypted while the
 * agent restarts; the next agent adopts all of it (docs/agent.md).
 */
import { createPrivateKey, type KeyObject } from 'node:crypto';
import { checkCidr, cidrContains } from '../net/ip.js';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { openAuditLog, type AuditLog } from '../audit/audit-log.js';
import { keyObjectSigner } from '../audit/signer.js';
import { ClusterClient } from '../cluster/client.js';
import { CLUSTER_PREFIX } from '../cluster/keys.js';
import type { ClusterNode } from '../cluster/records.js';
import type { AgentConfig } from '../config/agent-config.js';
import { ConfigError } from '../errors.js';
import { IdentityAllocator } from '../identity/allocator.js';
import { hostedIdentities, storeIdentityHosting } from '../identity/hosting.js';
import { DEFAULT_IDENTITY_PREFIX } from '../identity/records.js';
import { IdentityReferences } from '../identity/references.js';
import { SvidManager } from '../identity/svid-manager.js';
import { readCertificatePem } from '../../certs/certificate.js';
import { nodeCredentials } from '../../certs/svid.js';
import { KeyManager } from '../keys/key-manager.js';
import { Health } from '../lifecycle/health.js';
import { Jobs } from '../lifecycle/jobs.js';
import { Lifecycle } from '../lifecycle/lifecycle.js';
import { moduleLogger, type Logger } from '../log/logger.js';
import { createAgentMetrics, type AgentMetrics } from '../metrics/metrics.js';
import { StatusServer } from '../metrics/status-server.js';
import { listAddresses } from '../netlink/address.js';
import { getLink } from '../netlink/link.js';
import { WireGuardPeerReconciler } from '../reconcile/wireguard-peers.js';
import { EtcdStore } from '../store/etcd-store.js';
import { PrefixMirror } from '../store/prefix-mirror.js';
import { untilStoreAnswers } from '../store/until-store-answers.js';
import type { Lease, Store } from '../store/store.js';
import { selectWireGuardBackend } from '../wireguard/select.js';
import type { WireGuardBackend } from '../wireguard/backend.js';
import { DatapathSync } from './datapath-sync.js';
import { NodeDatapath } from './node-datapath.js';
import { WireGuardKeyHooks } from './wireguard-key-hooks.js';

export interface NodeAgentDeps {
  log: Logger;
  /** How long to wait for this node's cluster record before giving up (default 60 s). */
  nodeRecordTimeoutMs?: number;
  /** Resync period of the datapath (default 10 s). */
  resyncMs?: number;
}

export interface RunningAgent {
  readonly health: Health;
  readonly metrics: AgentMetrics;
  readonly address: AddressInfo;
  stop(): Promise<void>;
}

const LEASE_TTL_SECONDS = 15;

async function readBootId(): Promise<string> {
  return (await readFile('/proc/sys/kernel/random/boot_id', 'utf8')).trim();
}

async function readPem(path: string, what: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`Cannot read the ${what} "${path}": ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}; check the pki settings (docs/configuration.md)`, { cause: err });
  }
}

export async function startNodeAgent(config: AgentConfig, deps: NodeAgentDeps, signal: AbortSignal = new AbortController().signal): Promise<RunningAgent> {
  if (config.encryption.type !== 'wireguard') {
    throw new ConfigError(`Encryption type "${config.encryption.type}" is not run by "veil agent" yet: use "wireguard" (IPsec reconciliation exists as agent/reconcile/ipsec-*, its agent wiring does not)`);
  }
  const log = deps.log;
  const me = config.nodeName;
  const lifecycle = new Lifecycle(moduleLogger(log, 'lifecycle'));
  const health = new Health();
  const metrics = createAgentMetrics();
  const jobs = new Jobs(health, moduleLogger(log, 'jobs'));
  let started = false;

  let store!: Store;
  let cluster!: ClusterClient;
  let self!: ClusterNode;
  let lease!: Lease;
  let audit!: AuditLog;
  let certPem!: string;
  let nodeKey!: KeyObject;
  let caPem!: string;
  let datapath!: NodeDatapath;
  let backend!: WireGuardBackend;
  let reconciler!: WireGuardPeerReconciler;
  let hooks!: WireGuardKeyHooks;
  let wgIfindexes: [number, number] | null = null;
  let keys!: KeyManager;
  let svids!: SvidManager;
  let sync!: DatapathSync;
  const mirrors: PrefixMirror[] = [];
  let server: StatusServer | undefined;
  let address: AddressInfo | undefined;

  const grantLease = async (): Promise<void> => {
    lease = await store.grantLease(LEASE_TTL_SECONDS);
    lease.onLost((err) => {
      if (signal.aborted || !started) return;
      health.set('store', 'degraded', `Node lease lost: ${err.message}`);
      log.warn({ err }, 'Node lease lost: granting a new one');
      void grantLease().then(
        () => {
          health.set('store', 'ok');
          sync?.resetReferences(lease);
        },
        (e: Error) => health.set('store', 'degraded', `Cannot grant a node lease: ${e.message}`),
      );
    });
  };

  lifecycle.append({
    name: 'store',
    start: async (sig) => {
      store = new EtcdStore({ endpoints: [...config.store.endpoints], logger: moduleLogger(log, 'store') });
      cluster = new ClusterClient(store, { onInvalid: (err) => log.warn({ err }, 'Skipping an invalid cluster record') });
      const deadline = Date.now() + (deps.nodeRecordTimeoutMs ?? 60_000);
      for (;;) {
        // An etcd that is still starting (or a slow first connection) is waited for, as a missing record is.
        const rec = await untilStoreAnswers(() => cluster.get('nodes', me), {
          timeoutMs: Math.max(0, deadline - Date.now()),
          signal: sig,
          onRetry: (err, delayMs) => log.warn({ err: err.message, delayMs }, 'Store not reachable yet: retrying'),
        });
        if (rec) {
          self = rec.record;
          break;
        }
        if (Date.now() > deadline || sig.aborted) {
          throw new ConfigError(`Node "${me}" has no record in the cluster model (${CLUSTER_PREFIX}nodes/${me}): register the node (the lab does it) or fix --node`);
        }
        await new Promise((r) => setTimeout(r, 500));
      }
      await grantLease();
      health.set('store', 'ok');
      log.info({ node: me, addresses: self.addresses, podCidrs: self.podCidrs }, 'Connected to the store');
    },
    stop: async () => {
      await lease?.revoke().catch(() => undefined);
      await store?.close();
    },
  });

  lifecycle.append({
    name: 'audit',
    start: async () => {
      [caPem, certPem] = await Promise.all([readPem(config.pki.caBundle, 'CA bundle'), readPem(config.pki.nodeCert, 'node certificate')]);
      nodeKey = createPrivateKey(await readPem(config.pki.nodeKey, 'node key'));
      // Key events are rare: each is followed by a signed checkpoint at once, so a verifier never
      // finds an unsigned tail while the agent runs.
      audit = openAuditLog({ path: config.audit.file, node: me, signer: keyObjectSigner(nodeKey, certPem), mirror: null, checkpointEvery: 1, onError: (err) => log.warn({ err }, 'Audit checkpoint failed') });
    },
    stop: () => audit?.close(),
  });

  lifecycle.append({
    name: 'datapath',
    start: async () => {
      datapath = await NodeDatapath.load({ pinDir: config.datapath.pinDir, log: moduleLogger(log, 'datapath') });
      await datapath.attachUplink(config.datapath.uplink);
      health.set('datapath', 'ok');
    },
    stop: () => datapath?.close(),
  });

  lifecycle.append({
    name: 'wireguard',
    start: async () => {
      backend = await selectWireGuardBackend({ netns: '', stateDir: join(config.stateDir, 'wg'), backend: config.wireguard.backend });
      // Host-originated traffic to remote pods leaves with an address of the local pod CIDR (the
      // gateway address the CNI puts on pod interfaces), which the peers' AllowedIPs accept.
      const addrs = await listAddresses();
      const source: { 4?: string; 6?: string } = {};
      for (const a of addrs) {
        const ip = a.address.split('/')[0]!;
        if (self.podCidrs.some((c) => cidrContains(checkCidr('podCidr', c), checkCidr('address', ip)))) source[a.family] ??= ip;
      }
      reconciler = new WireGuardPeerReconciler({
        backend,
        deviceBase: config.wireguard.device.replace(/\d+$/, ''),
        port: config.wireguard.port,
        localNode: me,
        localPodCidrs: self.podCidrs,
        routes: { source },
        log: moduleLogger(log, 'wireguard-peers'),
      });
      const uplink = await getLink(config.datapath.uplink);
      hooks = new WireGuardKeyHooks({
        backend,
        devices: { base: config.wireguard.device.replace(/\d+$/, ''), port: config.wireguard.port, underlayMtu: uplink.mtu },
        reconciler,
        log: moduleLogger(log, 'wireguard'),
        onDevicesUp: (ifx) => {
          wgIfindexes = ifx;
          health.set('wireguard', 'ok');
          sync?.kick();
        },
        onPeersChanged: () => {
          metrics.peers.set({ mode: 'wireguard' }, reconciler.knownNodes().length);
          sync?.kick();
        },
      });
      health.set('wireguard', 'starting', 'waiting for the first node key');
      if (await hooks.restore(config.stateDir)) log.info('Adopted WireGuard channel devices with the active node key');
    },
    stop: () => backend?.close(),
  });

  lifecycle.append({
    name: 'key-manager',
    start: async () => {
      keys = await KeyManager.open({
        node: me,
        stateDir: config.stateDir,
        store,
        audit,
        nodeCertificatePem: certPem,
        nodePrivateKey: nodeKey,
        trustAnchors: [caPem],
        addresses: self.addresses,
        podCidrs: self.podCidrs,
        bootId: await readBootId(),
        identities: [],
        rotationIntervalMs: config.keys.rotationIntervalMs,
        acknowledgeTimeoutMs: config.keys.acknowledgeTimeoutMs,
        hooks,
        identityHosted: storeIdentityHosting(store),
        log: moduleLogger(log, 'keys'),
      });
      await keys.start();
      health.set('key-manager', 'ok');
    },
    stop: () => keys?.stop(),
  });

  lifecycle.append({
    name: 'svids',
    start: async () => {
      svids = new SvidManager({
        node: nodeCredentials(readCertificatePem(certPem, `node certificate "${config.pki.nodeCert}"`), nodeKey),
        stateDir: config.stateDir,
        audit,
        hosted: () => hostedIdentities(store, me),
        log: moduleLogger(log, 'svids'),
      });
      await svids.start();
    },
    stop: () => svids?.stop(),
  });

  lifecycle.append({
    name: 'datapath-sync',
    start: async () => {
      sync = new DatapathSync({
        node: me,
        cluster,
        allocator: new IdentityAllocator({ store }),
        references: new IdentityReferences(store),
        lease,
        datapath,
        strict: config.encryption.strictMode,
        wireguardPort: config.wireguard.port,
        wireguardIfindexes: () => wgIfindexes,
        steering: (node) => reconciler.steeringChannel(node),
        log: moduleLogger(log, 'datapath-sync'),
      });
      sync.onPass((r) => {
        metrics.reconcileSeconds.observe({ reconciler: 'datapath' }, r.seconds);
        health.set('datapath-sync', r.waiting.length > 0 || r.badPolicies.length > 0 ? 'degraded' : 'ok', [...r.waiting, ...r.badPolicies].slice(0, 5).join('; ') || undefined);
      });
      sync.onError((err) => {
        metrics.reconcileErrors.inc({ reconciler: 'datapath' });
        health.set('datapath-sync', 'degraded', err.message);
      });
      for (const prefix of [CLUSTER_PREFIX, DEFAULT_IDENTITY_PREFIX]) {
        const m = new PrefixMirror({ store, prefix, onChange: () => sync.kick(), onResync: (err) => log.warn({ err, prefix }, 'Re-listing') });
        await m.start();
        mirrors.push(m);
      }
      jobs.timer('datapath-resync', deps.resyncMs ?? 10_000, async () => {
        await sync.pass();
      });
    },
    stop: async () => {
      await jobs.stop();
      for (const m of mirrors) await m.stop();
      await sync?.stop();
    },
  });

  lifecycle.append({
    name: 'status-server',
    start: async () => {
      server = new StatusServer({
        host: config.status.host,
        port: config.status.port,
        health,
        registry: metrics.registry,
        ready: () => started && wgIfindexes !== null,
        beforeScrape: async () => {
          metrics.datapathPackets.reset();
          for (const row of await datapath.counters.read()) metrics.datapathPackets.set({ hook: row.hook, reason: row.reason }, Number(row.packets));
          metrics.peers.set({ mode: 'wireguard' }, reconciler.knownNodes().length);
          for (const s of keys.status()) {
            const active = s.generations.find((g) => g.phase === 'active');
            if (active) metrics.keyGeneration.set({ key: s.kind }, active.generation);
          }
          if (keys.lastError) health.set('key-manager', 'degraded', keys.lastError.message);
          else health.set('key-manager', 'ok');
          health.set('svids', svids.lastError ? 'degraded' : 'ok', svids.lastError?.message);
        },
        status: async () => ({
          node: me,
          devices: reconciler.deviceNames,
          ifindexes: wgIfindexes,
          peers: reconciler.knownNodes().map((n) => ({ node: n, channel: reconciler.steeringChannel(n), generations: reconciler.installedGenerations(n) })),
          keys: keys.status(),
          svids: svids.status(),
          datapath: sync.lastReport ?? null,
          counters: (await datapath.counters.read()).map((r) => ({ hook: r.hook, reason: r.reason, drop: r.drop, packets: Number(r.packets) })),
        }),
      });
      address = await server.start();
      log.info({ address: address.address, port: address.port }, 'Status server listening');
    },
    stop: () => server?.stop(),
  });

  await lifecycle.start(signal);
  started = true;
  sync.kick();
  return { health, metrics, address: address!, stop: () => lifecycle.stop() };
}
