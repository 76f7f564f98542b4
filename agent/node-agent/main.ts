/**
 * `veil agent`, composed in one place (STYLE.md: the only module that wires the others). Start
 * order, each a lifecycle hook (stopped in reverse on SIGTERM or when a later start fails):
 *
 *   store          etcd client, the node's own cluster record (addresses, pod CIDRs), the node lease
 *   audit          the node certificate (from the files, or requested from the operator with the
 *                  bootstrap token, renewed while running), then the hash-chained audit log,
 *                  checkpoints signed with the node certificate's key
 *   datapath       eBPF programs loaded once (maps pinned), uplink programs attached
 *   events         the one ring-buffer reader → event feed (counted, recent history, GET /events)
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
 *   status-server  /healthz /readyz /metrics /status /events
 *
 * Stopping never removes kernel state: WireGuard devices (and their wireguard-go daemons), peers,
 * IPsec SAs and policies, routes, attached programs and pinned maps stay, so traffic keeps flowing encrypted while the
 * agent restarts; the next agent adopts all of it (docs/agent.md).
 */
import type { KeyObject } from 'node:crypto';
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
import { eventsRoute } from '../metrics/events-endpoint.js';
import { EventFeed } from '../datapath/event-feed.js';
import type { EventReader } from '../datapath/events.js';
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
import { NodeCertificateClient } from '../node-cert/node-certificate-client.js';
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
  let nodeCerts: NodeCertificateClient | undefined;
  let datapath!: NodeDatapath;
  let feed!: EventFeed;
  let events: EventReader | undefined;
  let eventsLostSeen = 0;
  let streamsDroppedSeen = 0;
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
      await untilStoreAnswers(() => grantLease(), { timeoutMs: 60_000, signal: sig, onRetry: (err, delayMs) => log.warn({ err: err.message, delayMs }, 'Granting the node lease: store not reachable yet, retrying') });
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
      // The node certificate first: the files as they are, renewed, or bootstrapped through the
      // operator with the one-time token (agent/node-cert, docs/keys.md).
      nodeCerts = new NodeCertificateClient({ store, node: me, files: config.pki, renewBeforeMs: config.pki.renewBeforeMs, timeoutMs: config.pki.requestTimeoutMs, log: moduleLogger(log, 'node-certificate') });
      const got = await nodeCerts.ensure();
      [caPem, certPem, nodeKey] = [got.state.caPem, got.state.certificate.pem, got.state.privateKey];
      // Key events are rare: each is followed by a signed checkpoint at once, so a verifier never
      // finds an unsigned tail while the agent runs.
      audit = openAuditLog({ path: config.audit.file, node: me, signer: keyObjectSigner(nodeKey, certPem), mirror: null, checkpointEvery: 1, onError: (err) => log.warn({ err }, 'Audit checkpoint failed') });
      if (got.event) await audit.record(got.event);
      // A renewed certificate signs the audit log, the node record and the SVIDs from then on.
      nodeCerts.startRenewal({
        onRenewed: async (r) => {
          [certPem, nodeKey] = [r.state.certificate.pem, r.state.privateKey];
          await audit.replaceSigner(keyObjectSigner(nodeKey, certPem));
          if (r.event) await audit.record(r.event);
          keys?.replaceNodeCertificate(certPem, nodeKey);
          await svids?.replaceNodeCredentials(nodeCredentials(r.state.certificate, nodeKey));
          health.set('node-certificate', 'ok');
        },
        onError: (err) => health.set('node-certificate', 'degraded', err.message),
      });
      health.set('node-certificate', 'ok');
    },
    stop: async () => {
      await nodeCerts?.stop();
      await audit?.close();
    },
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
    name: 'events',
    start: () => {
      feed = new EventFeed({
        describe: (id) => sync?.describeIdentity(id),
        onRecord: (r) => metrics.datapathEvents.inc({ type: r.type, reason: r.reason }),
      });
      events = datapath.readEvents((e) => feed.push(e));
    },
    stop: () => {
      events?.close();
      feed?.close();
    },
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
        // Pod traffic follows the ipcache's key_slot: rewrite it before a channel is left for
        // re-keying, and give packets already queued for that channel a moment to leave.
        onSteeringChanged: async () => {
          if (sync) await sync.pass();
          await new Promise((r) => setTimeout(r, 250));
        },
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
        // WireGuard mode: node key rotations run through the two channels (docs/wireguard-rotation.md).
        ...(mode === 'wireguard' ? { wireguard: { channels: hooks.rotation } } : {}),
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
        await untilStoreAnswers(() => m.start(), { timeoutMs: 60_000, signal: sig, onRetry: (err, delayMs) => log.warn({ err: err.message, delayMs, prefix }, 'Listing: store not reachable yet, retrying') });
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
        routes: { '/events': eventsRoute(feed) },
        beforeScrape: async () => {
          const lost = events?.lost ?? 0;
          metrics.datapathEventsLost.inc(lost - eventsLostSeen);
          eventsLostSeen = lost;
          metrics.eventStreamsDropped.inc(feed.stats.slowSubscribers - streamsDroppedSeen);
          streamsDroppedSeen = feed.stats.slowSubscribers;
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
          events: { ...feed.stats, lost: events?.lost ?? 0 },
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
