/**
 * The operator's identity allocation: every pod of the cluster model gets the identity of its
 * label set (agent/cluster/pod-identity.ts) through the compare-and-swap allocator
 * (agent/identity/allocator.ts). The result is the allocator's `by-labels/<hash>` → id mapping,
 * which is where agents (and `veil lab status`) read a pod's identity.
 *
 * A pass lists namespaces and pods and allocates each distinct label set (allocate() of an
 * existing mapping is one read). Passes are kicked by changes under the pod and namespace
 * prefixes and by a resync timer; they never overlap. A pod whose label set cannot be allocated
 * (invalid labels, id range exhausted) is reported and skipped; the others still get theirs.
 */
import type { ClusterClient } from '../cluster/client.js';
import { kindPrefix } from '../cluster/keys.js';
import { podLabelSet } from '../cluster/pod-identity.js';
import type { IdentityAllocator } from '../identity/allocator.js';
import type { Logger } from '../log/logger.js';
import { PrefixMirror } from '../store/prefix-mirror.js';
import type { Store } from '../store/store.js';

export interface IdentitySyncReport {
  pods: number;
  /** Distinct label sets with an identity after the pass. */
  identities: number;
  /** Label sets this pass allocated for the first time. */
  created: number;
  /** "namespace/pod: reason" for pods that got no identity. */
  failed: string[];
}

export interface IdentitySyncOptions {
  store: Store;
  cluster: ClusterClient;
  allocator: IdentityAllocator;
  log?: Logger;
  onPass?(report: IdentitySyncReport, seconds: number): void;
}

export class IdentitySync {
  readonly #o: IdentitySyncOptions;
  #mirrors: PrefixMirror[] = [];
  #running: Promise<void> | undefined;
  #again = false;
  #stopped = false;
  #last: IdentitySyncReport | undefined;

  constructor(opts: IdentitySyncOptions) {
    this.#o = opts;
  }

  get lastReport(): IdentitySyncReport | undefined {
    return this.#last;
  }

  /** Watches pods and namespaces and runs a first pass; resolves when that pass is done. */
  async start(): Promise<void> {
    this.#stopped = false;
    this.#mirrors = (['pods', 'namespaces'] as const).map(
      (kind) =>
        new PrefixMirror({
          store: this.#o.store,
          prefix: kindPrefix(kind),
          onChange: () => this.kick(),
          onResync: (err) => this.#o.log?.warn({ err, kind }, 'Re-listing cluster objects'),
        }),
    );
    for (const m of this.#mirrors) await m.start();
    await this.pass();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    for (const m of this.#mirrors) await m.stop();
    this.#mirrors = [];
    while (this.#running) await this.#running.catch(() => undefined);
  }

  /** Schedules a pass (coalesced with a running one). */
  kick(): void {
    if (this.#stopped) return;
    if (this.#running) {
      this.#again = true;
      return;
    }
    this.#running = (async () => {
      do {
        this.#again = false;
        try {
          await this.#pass();
        } catch (err) {
          this.#o.log?.warn({ err }, 'Identity sync pass failed; retrying at the next change or resync');
        }
      } while (this.#again && !this.#stopped);
    })().finally(() => {
      this.#running = undefined;
    });
  }

  /** Runs one pass now (after a running one) and throws if it failed; for the resync job and tests. */
  async pass(): Promise<IdentitySyncReport> {
    while (this.#running) await this.#running.catch(() => undefined);
    const p = this.#pass();
    this.#running = p.then(() => undefined);
    try {
      return await p;
    } finally {
      this.#running = undefined;
    }
  }

  async #pass(): Promise<IdentitySyncReport> {
    const t0 = performance.now();
    const [namespaces, pods] = await Promise.all([this.#o.cluster.list('namespaces'), this.#o.cluster.list('pods')]);
    const nsLabels = new Map(namespaces.items.map((o) => [o.record.name, o.record.labels]));
    const report: IdentitySyncReport = { pods: pods.items.length, identities: 0, created: 0, failed: [] };
    const done = new Set<string>();
    for (const { record: pod } of pods.items) {
      const name = `${pod.namespace}/${pod.name}`;
      let hash: string;
      try {
        const set = podLabelSet(pod, nsLabels);
        hash = set.hash;
        if (done.has(hash)) continue;
        const before = this.#o.allocator.stats.created;
        const identity = await this.#o.allocator.allocate(set);
        done.add(hash);
        if (this.#o.allocator.stats.created > before) {
          report.created++;
          this.#o.log?.info({ pod: name, identity: identity.id }, 'Allocated identity');
        }
      } catch (err) {
        report.failed.push(`${name}: ${(err as Error).message}`);
        this.#o.log?.warn({ err, pod: name }, 'Cannot allocate an identity for pod');
      }
    }
    report.identities = done.size;
    this.#last = report;
    this.#o.onPass?.(report, (performance.now() - t0) / 1000);
    return report;
  }
}
