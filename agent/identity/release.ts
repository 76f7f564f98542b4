/**
 * Release of unused identities (run by the operator's garbage collector): an identity is deleted
 * only after it has had no reference for a whole grace period, and never while a reference
 * exists — so an id is not reused while any node still refers to it.
 *
 * Per identity, each run:
 *   - referenced: forget any unused marker; a record left "releasing" by a crashed run is
 *     set back to "active";
 *   - unreferenced, no marker: write unused/<id> {since: now} (the grace period starts);
 *   - unreferenced for at least the grace period: mark the record "releasing" (CAS), list its
 *     references again — any new one aborts the release and restores "active" — then delete the
 *     record at the "releasing" revision (fails if a new reference revived it), then the label
 *     mapping if it still points to this id, then the marker.
 * The grace clock is the releaser's own (`now`); run one releaser per cluster.
 */
import { ValidationError } from '../errors.js';
import type { KeyValue, Store } from '../store/store.js';
import { IdentityCorruptError } from './errors.js';
import { encode, encodeById, IdentityKeys, parseById, parseByLabels, parseUnused } from './records.js';

export interface ReleaseOptions {
  /** How long an identity must have been without references before it is deleted. */
  graceMs: number;
  /** The current time in ms (default Date.now()). */
  now?: number;
}

export interface ReleaseReport {
  /** Ids deleted in this run. */
  released: number[];
  /** Ids without references, waiting for their grace period to end. */
  pending: number[];
  /** Ids whose release was aborted because a reference appeared during it. */
  aborted: number[];
  /** Keys whose values were not valid identity records (left alone, reported). */
  corrupt: string[];
}

export class IdentityReleaser {
  readonly keys: IdentityKeys;
  constructor(private readonly store: Store, prefix?: string) {
    this.keys = new IdentityKeys(prefix);
  }

  async releaseUnused(opts: ReleaseOptions): Promise<ReleaseReport> {
    const graceMs = opts.graceMs;
    if (!Number.isSafeInteger(graceMs) || graceMs < 0) {
      throw new ValidationError('graceMs', `Grace period ${graceMs} is invalid: use a whole number of milliseconds >= 0`);
    }
    const now = opts.now ?? Date.now();
    const report: ReleaseReport = { released: [], pending: [], aborted: [], corrupt: [] };
    const [records, refs, markers] = await Promise.all([
      this.store.list(this.keys.byIdPrefix()),
      this.store.list(this.keys.refsPrefix()),
      this.store.list(this.keys.unusedPrefix()),
    ]);
    // Keys that name no cluster id are reported, never acted on.
    const idOf = (base: string, key: string): number | undefined => {
      try {
        return this.keys.idIn(base, key);
      } catch (err) {
        if (!(err instanceof IdentityCorruptError)) throw err;
        report.corrupt.push(key);
        return undefined;
      }
    };
    const referenced = new Set<number>();
    for (const kv of refs.items) {
      const id = idOf(this.keys.refsPrefix(), kv.key);
      if (id !== undefined) referenced.add(id);
    }
    const marked = new Map<number, KeyValue>();
    for (const kv of markers.items) {
      const id = idOf(this.keys.unusedPrefix(), kv.key);
      if (id !== undefined) marked.set(id, kv);
    }

    for (const kv of records.items) {
      let record;
      try {
        record = parseById(this.keys, kv);
      } catch (err) {
        if (!(err instanceof IdentityCorruptError)) throw err;
        report.corrupt.push(kv.key);
        continue;
      }
      const { id } = record;
      const marker = marked.get(id);
      marked.delete(id);
      if (referenced.has(id)) {
        if (marker) await this.store.delete(marker.key, marker.modRevision);
        if (record.state === 'releasing') await this.store.update(kv.key, encodeById(record.labels, 'active'), record.modRevision);
        continue;
      }
      if (!marker) {
        await this.store.create(this.keys.unused(id), encode({ since: now }));
        report.pending.push(id);
        continue;
      }
      let since: number;
      try {
        since = parseUnused(marker);
      } catch (err) {
        if (!(err instanceof IdentityCorruptError)) throw err;
        // A damaged clock restarts the grace period rather than shortening it.
        await this.store.update(marker.key, encode({ since: now }), marker.modRevision);
        report.corrupt.push(marker.key);
        report.pending.push(id);
        continue;
      }
      if (now - since < graceMs) {
        report.pending.push(id);
        continue;
      }
      let releasingRevision = record.modRevision;
      if (record.state === 'active') {
        const marking = await this.store.update(kv.key, encodeById(record.labels, 'releasing'), record.modRevision);
        if (!marking.updated) continue; // changed under us: look again next run
        releasingRevision = marking.kv!.modRevision;
      }
      const again = await this.store.list(this.keys.refsOf(id));
      if (again.items.length > 0) {
        await this.store.update(kv.key, encodeById(record.labels, 'active'), releasingRevision);
        await this.store.delete(marker.key, marker.modRevision);
        report.aborted.push(id);
        continue;
      }
      if (!(await this.store.delete(kv.key, releasingRevision))) {
        report.aborted.push(id); // a new reference revived it
        continue;
      }
      const mapping = await this.store.get(this.keys.byLabels(record.labels.hash));
      if (mapping && parseByLabels(mapping) === id) await this.store.delete(mapping.key, mapping.modRevision);
      await this.store.delete(marker.key, marker.modRevision);
      report.released.push(id);
    }
    // Markers of identities that no longer exist.
    for (const marker of marked.values()) await this.store.delete(marker.key, marker.modRevision);
    return report;
  }
}
