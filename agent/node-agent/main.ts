/**
 * `veil agent`, composed in one place (STYLE.md: the only module that wires the others). Start
 * order, each a lifecycle hook (stopped in reverse on SIGTERM or when a later start fails):
 *
 *   store          etcd client, the node's own cluster record (addresses, pod CIDRs), the node lease
 *   audit          the hash-chained audit log, checkpoints signed with the node certificate's key
 *   datapath       eBPF programs loaded once (maps pinned), uplink programs attached
 *   wireguard      (encryption.type wireguard) backend (kernel or wireguard-go), peer reconciler,
 *                  key hooks; after a restart the channel devices are adopted with the active
 *                  node key from the state dir
 *   ipsec          (encryption.type ipsec) key hooks driving the SA reconciler and the routes of
 *                  remote pod CIDRs; after a restart the SAs are adopted with the live keys of
 *                  the state dir (agent/node-agent/ipsec-key-hooks.ts)
 *   key-manager    node key (and in IPsec mode the hosted identities' keys), signed node record,
 *                  peers' verified records → WireGuard peers or IPsec SAs
 *   svids          an SVID per hosted identity in <stateDir>/svids, renewed at half-life (audited)
 *   datapath-sync  cluster model + identities + policies → endpoints, ipcache, policy, config maps
 *   status-server  /healthz /readyz /metrics /status
 *
 * Stopping never removes kernel state: WireGuard devices (and their wireguard-go daemons), peers,
 * IPsec SAs and policies, routes, attached programs and pinned maps stay, so traffic keeps flowing encrypted while the
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
import { ConfigError, hasCode } from '../errors.js';
import { STORE_UNAVAILABLE } from '../store/errors.js';
import { abortableSleep } from '../util/abortable-sleep.js';
import { Backoff } from '../util/backoff.js';
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
import type { Lease, Store } from '../store/store.js';
import { selectWireGuardBackend } from '../wireguard/select.js';
import type { WireGuardBackend } from '../wireguard/backend.js';
import { DatapathSync } from './datapath-sync.js';
import { NodeDatapath } from './node-datapath.js';
import { IpsecKeyHooks } from './ipsec-key-hooks.js';
import { WireGuardKeyHooks } from './wireguard-key-hooks.js';
import type { IpsecAead } from '../keys/ipsec-derive.js';
import type { KernelKeyHooks } from '../keys/kernel-key-hooks.js';

export interface NodeAgentDeps {
  log: Logger;
  /** How long to wait for this node's cluster record before giving up (default 60 s). */
  nodeRecordTimeoutMs?: number;
  /** Resync period of the datapath (default 10 s). */
  resyncMs?: number;
  /** Resync period of the IPsec SAs and routes (default 30 s: every resync re-derives the keys of every SA). */
  ipsecResyncMs?: number;
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

/**
 * A store request that timed out while the agent starts (a slow etcd, a loaded machine: the lab
 * under qemu emulation) is retried a few times with backoff before the start fails.
 */
async function retryUnavailable<T>(what: string, fn: () => Promise<T>, log: Logger, signal: AbortSignal): Promise<T> {
  const backoff = new Backoff(500, 5_000);
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      if (!hasCode(err, STORE_UNAVAILABLE) || attempt >= 5 || signal.aborted) throw err;
      log.warn({ err, attempt }, `${what}: the store did not answer in time; retrying`);
      await abortableSleep(backoff.next(), signal);
    }
  }
}

const IPSEC_AEAD: Record<AgentConfig['ipsec']['algorithm'], IpsecAead> = {
  'aes-gcm': 'rfc4106(gcm(aes))',
  'chacha20-poly1305': 'rfc7539esp(chacha20,poly1305)',
};

export async function startNodeAgent(config: AgentConfig, deps: NodeAgentDeps, signal: AbortSignal = new AbortController().signal): Promise<RunningAgent> {
  const mode = config.encryption.type;
  if (mode === 'ipsec' && config.ipsec.granularity !== 'identity') {
    throw new ConfigError(
      `IPsec granularity "${config.ipsec.granularity}" is not run by "veil agent": the datapath always writes the sender's identity into the encrypt mark, so only per-identity SAs match it; set "ipsec.granularity: identity" (docs/agent.md §IPsec mode)`,
    );
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
  let ipsec!: IpsecKeyHooks;
  let kernelHooks!: KernelKeyHooks;
  let bootId!: string;
  let lastIdentities = '';
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
        const rec = await retryUnavailable(`Reading the record of "${me}"`, () => cluster.get('nodes', me), log, sig);
        if (rec) {
          self = rec.record;
          break;
        }
        if (Date.now() > deadline || sig.aborted) {
          throw new ConfigError(`Node "${me}" has no record in the cluster model (${CLUSTER_PREFIX}nodes/${me}): register the node (the lab does it) or fix --node`);
        }
        await new Promise((r) => setTimeout(r, 500));
      }
      await retryUnavailable('Granting the node lease', () => grantLease(), log, sig);
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

  if (mode === 'wireguard') lifecycle.append({
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
      kernelHooks = hooks;
      health.set('wireguard', 'starting', 'waiting for the first node key');
      if (await hooks.restore(config.stateDir)) log.info('Adopted WireGuard channel devices with the active node key');
    },
    stop: () => backend?.close(),
  });

  if (mode === 'ipsec') lifecycle.append({
    name: 'ipsec',
    start: async () => {
      bootId = await readBootId();
      ipsec = new IpsecKeyHooks({
        local: { name: me, bootId, addresses: self.addresses, podCidrs: self.podCidrs },
        options: { granularity: 'identity', aead: IPSEC_AEAD[config.ipsec.algorithm] },
        uplink: config.datapath.uplink,
        log: moduleLogger(log, 'ipsec'),
        onChanged: () => {
          health.set('ipsec', 'ok');
          sync?.kick();
        },
      });
      kernelHooks = ipsec;
      health.set('ipsec', 'starting', 'waiting for the first node key');
      if (await ipsec.restore(config.stateDir)) log.info({ identities: ipsec.localIdentities() }, 'Adopted IPsec SAs with the live keys of the key state directory');
    },
    // SAs, policies and routes stay in the kernel (see above).
    stop: async () => undefined,
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
        bootId: bootId ?? (await readBootId()),
        // WireGuard mode: identity keys are not used by the kernel (the receiver learns the sender
        // node from the tunnel, the identity from the ipcache). IPsec mode: the identities hosted
        // before a restart keep their keys until the first datapath pass says which are hosted now.
        identities: mode === 'ipsec' ? ipsec.localIdentities() : [],
        rotationIntervalMs: config.keys.rotationIntervalMs,
        acknowledgeTimeoutMs: config.keys.acknowledgeTimeoutMs,
        hooks: kernelHooks,
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
    start: async (sig) => {
      sync = new DatapathSync({
        node: me,
        cluster,
        allocator: new IdentityAllocator({ store }),
        references: new IdentityReferences(store),
        lease,
        datapath,
        strict: config.encryption.strictMode,
        mode,
        wireguardPort: config.wireguard.port,
        wireguardIfindexes: () => wgIfindexes,
        ...(mode === 'wireguard'
          ? { steering: (node: string) => reconciler.steeringChannel(node) }
          : { steering: (node: string) => ipsec.receiverGeneration(node), keyGeneration: (identity: number) => ipsec.senderGeneration(identity) }),
        log: moduleLogger(log, 'datapath-sync'),
      });
      sync.onPass((r) => {
        metrics.reconcileSeconds.observe({ reconciler: 'datapath' }, r.seconds);
        // IPsec mode: every identity with endpoints here gets an identity key (and SAs).
        const ids = r.localIdentities.join(',');
        if (mode === 'ipsec' && ids !== lastIdentities) {
          lastIdentities = ids;
          keys.setIdentities(r.localIdentities);
        }
        health.set('datapath-sync', r.waiting.length > 0 || r.badPolicies.length > 0 ? 'degraded' : 'ok', [...r.waiting, ...r.badPolicies].slice(0, 5).join('; ') || undefined);
      });
      sync.onError((err) => {
        metrics.reconcileErrors.inc({ reconciler: 'datapath' });
        health.set('datapath-sync', 'degraded', err.message);
      });
      for (const prefix of [CLUSTER_PREFIX, DEFAULT_IDENTITY_PREFIX]) {
        const m = new PrefixMirror({ store, prefix, onChange: () => sync.kick(), onResync: (err) => log.warn({ err, prefix }, 'Re-listing') });
        await retryUnavailable(`Listing "${prefix}"`, () => m.start(), log, sig);
        mirrors.push(m);
      }
      jobs.timer('datapath-resync', deps.resyncMs ?? 10_000, async () => {
        await sync.pass();
      });
      if (mode === 'ipsec') {
        jobs.timer('ipsec-resync', deps.ipsecResyncMs ?? 30_000, async () => {
          const t0 = performance.now();
          await ipsec.resync();
          // Prune only after the key manager's pass went through every peer record without error.
          await keys.settled();
          if (!keys.lastError) await ipsec.prune();
          metrics.reconcileSeconds.observe({ reconciler: 'ipsec' }, (performance.now() - t0) / 1000);
        });
      }
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
        ready: () => started && (mode === 'wireguard' ? wgIfindexes !== null : ipsec.reconciler !== null),
        beforeScrape: async () => {
          metrics.datapathPackets.reset();
          for (const row of await datapath.counters.read()) metrics.datapathPackets.set({ hook: row.hook, reason: row.reason }, Number(row.packets));
          if (mode === 'wireguard') {
            metrics.peers.set({ mode: 'wireguard' }, reconciler.knownNodes().length);
          } else {
            const c = ipsec.counts();
            metrics.peers.set({ mode: 'ipsec' }, c.nodes);
            metrics.xfrmStates.set({ direction: 'in' }, c.inStates);
            metrics.xfrmStates.set({ direction: 'out' }, c.outStates);
            metrics.xfrmSpiCollisions.set(c.spiCollisions);
          }
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
          mode,
          ...(mode === 'wireguard'
            ? {
                devices: reconciler.deviceNames,
                ifindexes: wgIfindexes,
                peers: reconciler.knownNodes().map((n) => ({ node: n, channel: reconciler.steeringChannel(n), generations: reconciler.installedGenerations(n) })),
              }
            : { sas: ipsec.counts(), ipsec: ipsec.status() }),
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
