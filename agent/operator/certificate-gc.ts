/**
 * Garbage collection of node certificate records (only the leader runs it): a request, answer or
 * bootstrap registration under /veil/certs/ whose node is no longer in the cluster model, a key
 * there that names no node at all, and a bootstrap registration past its expiry are removed once
 * they have been in that state for `graceMs` (so a node registered a moment after its token is not
 * raced). "Since when" is kept in memory: a new leader starts the grace period afresh, which only
 * ever delays a removal. Deletes are compare-and-swap: a record rewritten meanwhile stays.
 */
import type { ClusterClient } from '../cluster/client.js';
import { parseRegistration } from '../node-cert/bootstrap-token.js';
import { BOOTSTRAP_PREFIX, CERTS_PREFIX, ISSUED_PREFIX, nodeOfKey, REQUESTS_PREFIX } from '../node-cert/store-keys.js';
import type { KeyValue, Store } from '../store/store.js';

export interface CertificateGcOptions {
  store: Store;
  cluster: ClusterClient;
  graceMs: number;
  now?: () => number;
}

export interface CertificateGcReport {
  removed: string[];
  pending: string[];
}

export class CertificateRecordCollector {
  readonly #o: CertificateGcOptions;
  /** key → when it was first seen collectable. */
  readonly #since = new Map<string, number>();

  constructor(opts: CertificateGcOptions) {
    this.#o = opts;
  }

  async collect(): Promise<CertificateGcReport> {
    const now = (this.#o.now ?? Date.now)();
    const nodes = new Set((await this.#o.cluster.list('nodes')).items.map((n) => n.record.name));
    const { items } = await this.#o.store.list(CERTS_PREFIX);
    const report: CertificateGcReport = { removed: [], pending: [] };
    const seen = new Set<string>();
    for (const kv of items) {
      seen.add(kv.key);
      if (!this.#collectable(kv, nodes, now)) {
        this.#since.delete(kv.key);
        continue;
      }
      const since = this.#since.get(kv.key) ?? now;
      this.#since.set(kv.key, since);
      if (now - since < this.#o.graceMs) {
        report.pending.push(kv.key);
        continue;
      }
      if (await this.#o.store.delete(kv.key, kv.modRevision)) report.removed.push(kv.key);
      this.#since.delete(kv.key);
    }
    for (const k of [...this.#since.keys()]) if (!seen.has(k)) this.#since.delete(k);
    return report;
  }

  #collectable(kv: KeyValue, nodes: ReadonlySet<string>, now: number): boolean {
    for (const prefix of [REQUESTS_PREFIX, ISSUED_PREFIX, BOOTSTRAP_PREFIX]) {
      if (!kv.key.startsWith(prefix)) continue;
      const node = nodeOfKey(prefix, kv.key);
      if (node === undefined || !nodes.has(node)) return true;
      if (prefix !== BOOTSTRAP_PREFIX) return false;
      try {
        return parseRegistration(kv, node).expiresAt.getTime() <= now;
      } catch {
        return true;
      }
    }
    return true;
  }
}
