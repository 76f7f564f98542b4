/**
 * `veil operator`, composed in one place: store → status server → leader election. Only the
 * leader works: identity allocation for the pods of the cluster model (identity-sync.ts), a
 * resync timer, and the garbage collector that releases identities unreferenced for the grace
 * period (agent/identity/release.ts). Standbys serve health and metrics and wait.
 *
 * With a CA directory (--ca-dir) the leader also signs node certificates
 * (certificate-signer.ts: requests under /veil/certs/requests/, answers under /veil/certs/issued/)
 * and collects the certificate records of nodes gone from the cluster model (certificate-gc.ts).
 * The CA is loaded and validated at start, so a bad CA fails the operator at once.
 *
 * Health: "store" ok once connected; "leadership" ok as leader or standby (a standby is
 * healthy); the jobs report their own state. /status shows the role and the last sync.
 */
import type { AddressInfo } from 'node:net';
import { ClusterClient } from '../cluster/client.js';
import type { OperatorConfig } from '../config/operator-config.js';
import { IdentityAllocator } from '../identity/allocator.js';
import { IdentityReleaser } from '../identity/release.js';
import { Health } from '../lifecycle/health.js';
import { Jobs } from '../lifecycle/jobs.js';
import { Lifecycle } from '../lifecycle/lifecycle.js';
import { moduleLogger, type Logger } from '../log/logger.js';
import { createOperatorMetrics, type OperatorMetrics } from '../metrics/operator-metrics.js';
import { StatusServer } from '../metrics/status-server.js';
import { EtcdStore } from '../store/etcd-store.js';
import type { Store } from '../store/store.js';
import { loadClusterCaDirectory } from '../../certs/ca-directory.js';
import type { ClusterCa } from '../../certs/cluster-ca.js';
import { CertificateRecordCollector } from './certificate-gc.js';
import { CertificateSigner } from './certificate-signer.js';
import { untilStoreAnswers } from '../store/until-store-answers.js';
import { IdentitySync } from './identity-sync.js';
import { LeaderElection } from './leader-election.js';

/** How long the operator waits at start for an unreachable store before it gives up. */
const STORE_START_TIMEOUT_MS = 60_000;

export interface OperatorDeps {
  log: Logger;
  /** A store to use instead of connecting to config.store (tests); not closed by the operator. */
  store?: Store;
  /** Leader retry period (default 1000 ms). */
  leaderRetryMs?: number;
}

export interface RunningOperator {
  readonly health: Health;
  readonly metrics: OperatorMetrics;
  /** Where the status server listens. */
  readonly address: AddressInfo;
  isLeader(): boolean;
  stop(): Promise<void>;
}

export async function startOperator(config: OperatorConfig, deps: OperatorDeps, signal: AbortSignal = new AbortController().signal): Promise<RunningOperator> {
  const log = deps.log;
  const lifecycle = new Lifecycle(moduleLogger(log, 'lifecycle'));
  const health = new Health();
  const metrics = createOperatorMetrics();
  let store: Store | undefined = deps.store;
  let election: LeaderElection | undefined;
  let sync: IdentitySync | undefined;
  let server: StatusServer | undefined;
  let address: AddressInfo | undefined;
  let started = false;
  let ca: ClusterCa | undefined;

  lifecycle.append({
    name: 'store',
    start: async (sig) => {
      if (!store) store = new EtcdStore({ endpoints: [...config.store.endpoints], logger: moduleLogger(log, 'store') });
      const s = store;
      // An etcd that is still starting (or a slow first connection) is waited for, up to a minute.
      await untilStoreAnswers(() => s.get('/veil/operator/leader'), {
        timeoutMs: STORE_START_TIMEOUT_MS,
        signal: sig,
        onRetry: (err, delayMs) => log.warn({ err: err.message, delayMs }, 'Store not reachable yet: retrying'),
      });
      health.set('store', 'ok');
    },
    stop: async () => {
      if (!deps.store) await store?.close();
    },
  });

  lifecycle.append({
    name: 'ca',
    start: async () => {
      if (config.caDir === null) {
        log.info('No CA directory (--ca-dir): node certificates are not signed by this operator');
        return;
      }
      ca = await loadClusterCaDirectory(config.caDir);
      log.info({ trustDomain: ca.trustDomain, fingerprint: ca.certificate.fingerprint, notAfter: ca.certificate.notAfter.toISOString() }, 'Loaded the cluster CA: signing node certificates');
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
        ready: () => started,
        status: () => ({
          id: config.id,
          leader: election?.isLeader ?? false,
          lastSync: sync?.lastReport ?? null,
          nodeCertificates: ca ? { signing: true, trustDomain: ca.trustDomain, caFingerprint: ca.certificate.fingerprint, ttlMs: config.nodeCertTtlMs } : { signing: false },
        }),
      });
      address = await server.start();
      log.info({ address: address.address, port: address.port }, 'Status server listening');
    },
    stop: () => server?.stop(),
  });

  lifecycle.append({
    name: 'leader-election',
    start: () => {
      const s = store!;
      const cluster = new ClusterClient(s, { onInvalid: (err) => log.warn({ err }, 'Skipping an invalid cluster record') });
      const allocator = new IdentityAllocator({ store: s });
      const releaser = new IdentityReleaser(s);
      health.set('leadership', 'ok', 'standby');
      election = new LeaderElection({
        store: s,
        id: config.id,
        ttlSeconds: config.leaseTtlSeconds,
        ...(deps.leaderRetryMs !== undefined ? { retryMs: deps.leaderRetryMs } : {}),
        log: moduleLogger(log, 'leader-election'),
        onChange: (leader) => {
          metrics.leader.set(leader ? 1 : 0);
          health.set('leadership', 'ok', leader ? 'leader' : 'standby');
        },
        lead: async (term) => {
          const jobs = new Jobs(health, moduleLogger(log, 'jobs'));
          sync = new IdentitySync({
            store: s,
            cluster,
            allocator,
            log: moduleLogger(log, 'identity-sync'),
            onPass: (r, seconds) => {
              metrics.identities.set(r.identities);
              metrics.allocations.inc(r.created);
              metrics.allocationFailures.set(r.failed.length);
              metrics.syncSeconds.observe(seconds);
            },
          });
          const certJobs: string[] = [];
          let signer: CertificateSigner | undefined;
          try {
            if (ca) {
              signer = new CertificateSigner({
                store: s,
                cluster,
                ca,
                ttlMs: config.nodeCertTtlMs,
                log: moduleLogger(log, 'certificate-signer'),
                onIssued: (proof) => metrics.nodeCertificatesIssued.inc({ proof }),
                onRefused: (reason) => metrics.nodeCertificateRequestsRefused.inc({ reason }),
              });
              const collector = new CertificateRecordCollector({ store: s, cluster, graceMs: config.certGraceMs });
              await jobs.oneShot('certificate-watch', async () => {
                await signer!.start();
              });
              jobs.timer('certificate-resync', config.resyncIntervalMs, async () => {
                await signer!.pass();
              });
              jobs.timer('certificate-gc', config.gcIntervalMs, async () => {
                const r = await collector.collect();
                metrics.certificateRecordsRemoved.inc(r.removed.length);
                if (r.removed.length > 0) log.info({ removed: r.removed }, 'Removed certificate records of nodes gone from the cluster');
              });
              certJobs.push('certificate-watch', 'certificate-resync', 'certificate-gc');
            }
            await jobs.oneShot('identity-watch', async () => {
              await sync!.start();
            });
            jobs.timer('identity-resync', config.resyncIntervalMs, async () => {
              const r = await sync!.pass();
              if (r.failed.length > 0) throw new Error(`${r.failed.length} pods have no identity: ${r.failed.slice(0, 3).join('; ')}`);
            });
            jobs.timer('identity-gc', config.gcIntervalMs, async () => {
              const r = await releaser.releaseUnused({ graceMs: config.identityGraceMs });
              metrics.released.inc(r.released.length);
              metrics.releasePending.set(r.pending.length);
              if (r.released.length > 0) log.info({ released: r.released }, 'Released unused identities');
            });
            await new Promise((resolve) => term.addEventListener('abort', resolve, { once: true }));
          } finally {
            await jobs.stop();
            await sync.stop();
            await signer?.stop();
            for (const j of ['identity-watch', 'identity-resync', 'identity-gc', ...certJobs]) health.remove(`job:${j}`);
          }
        },
      });
      election.start();
    },
    stop: () => election?.stop(),
  });

  await lifecycle.start(signal);
  started = true;
  return {
    health,
    metrics,
    address: address!,
    isLeader: () => election?.isLeader ?? false,
    stop: () => lifecycle.stop(),
  };
}
