/**
 * Cluster-wide identity allocation by compare-and-swap on the store. Any number of allocators
 * (one per agent or operator process) agree without talking to each other:
 *
 *   1. by-labels/<hash> exists → that id (after checking by-id/<id> still claims this label set).
 *   2. Otherwise claim a free id: create(by-id/<id>) only succeeds for one allocator per id, so
 *      no id is ever given to two label sets.
 *   3. Publish the mapping: create(by-labels/<hash>) only succeeds for one allocator per label
 *      set. The loser deletes its own claim (at its revision) and converges on the winner's id.
 *
 * A mapping whose by-id record is gone or claims other labels is stale (the id was released) and
 * is deleted at its revision before retrying. Every step is bounded: at most `maxAttempts` rounds,
 * then IdentityConflictError; no free id in the range → IdentityExhaustedError.
 */
import { ValidationError } from '../errors.js';
import type { Store } from '../store/store.js';
import { IdentityConflictError, IdentityCorruptError, IdentityExhaustedError } from './errors.js';
import { type LabelSet } from './labels.js';
import { encode, encodeById, IdentityKeys, parseById, parseByLabels, type IdentityRecord } from './records.js';
import { checkClusterId, MAX_CLUSTER_ID, MIN_CLUSTER_ID } from './reserved.js';

export interface IdentityAllocatorOptions {
  store: Store;
  /** Key prefix of the identity records (default "/veil/identities/"). */
  prefix?: string;
  /** The id range to allocate from (default 256..65535; narrower ranges are for tests). */
  minId?: number;
  maxId?: number;
  /** Compare-and-swap rounds before giving up (default 64). */
  maxAttempts?: number;
  /** Random source for picking candidate ids, [0, 1) (default Math.random). */
  random?: () => number;
}

export interface Identity {
  id: number;
  labels: LabelSet;
}

/** What one allocator did (for metrics, benchmarks and tests). */
export interface AllocatorStats {
  /** Label sets this allocator mapped first (it created by-labels/<hash>). */
  created: number;
  /** Id claims lost to another allocator (by-id/<id> existed). */
  claimsLost: number;
  /** Mappings lost to another allocator (its claim was given back). */
  mappingsLost: number;
  /** Stale mappings to released ids that were removed. */
  staleRemoved: number;
  /** Records being released that allocate() revived. */
  revived: number;
}

export class IdentityAllocator {
  readonly keys: IdentityKeys;
  readonly stats: AllocatorStats = { created: 0, claimsLost: 0, mappingsLost: 0, staleRemoved: 0, revived: 0 };
  private readonly store: Store;
  private readonly minId: number;
  private readonly maxId: number;
  private readonly maxAttempts: number;
  private readonly random: () => number;
  /** Ids known to be claimed or referenced (a hint; the store decides). */
  private readonly taken = new Set<number>();
  private listed = false;

  constructor(opts: IdentityAllocatorOptions) {
    this.store = opts.store;
    this.keys = new IdentityKeys(opts.prefix);
    this.minId = checkClusterId('minId', opts.minId ?? MIN_CLUSTER_ID);
    this.maxId = checkClusterId('maxId', opts.maxId ?? MAX_CLUSTER_ID);
    if (this.maxId < this.minId) {
      throw new ValidationError('maxId', `Identity range ${this.minId}..${this.maxId} is empty: set maxId >= minId`);
    }
    const attempts = opts.maxAttempts ?? 64;
    if (!Number.isInteger(attempts) || attempts < 1 || attempts > 10_000) {
      throw new ValidationError('maxAttempts', `maxAttempts ${attempts} is invalid: use an integer from 1 to 10000`);
    }
    this.maxAttempts = attempts;
    this.random = opts.random ?? Math.random;
  }

  /** The id of `labels`, allocating one if the label set has none yet. */
  async allocate(labels: LabelSet): Promise<Identity> {
    const mappingKey = this.keys.byLabels(labels.hash);
    let lastConflict = '';
    for (let attempt = 1; attempt <= this.maxAttempts; attempt++) {
      const mapping = await this.store.get(mappingKey);
      if (mapping) {
        const id = parseByLabels(mapping);
        const record = await this.readRecord(id);
        if (record && record.labels.hash === labels.hash) {
          if (record.state === 'active') return { id, labels: record.labels };
          // Being released: revive it (the releaser's delete at its revision then fails).
          const revived = await this.store.update(this.keys.byId(id), encodeById(record.labels, 'active'), record.modRevision);
          if (revived.updated) {
            this.stats.revived++;
            return { id, labels: record.labels };
          }
          lastConflict = `identity ${id} changed while reviving it`;
          continue;
        }
        // Stale: the id was released (and perhaps claimed again for other labels).
        if (await this.store.delete(mappingKey, mapping.modRevision)) this.stats.staleRemoved++;
        lastConflict = `mapping to released identity ${id}`;
        continue;
      }
      const id = await this.pickCandidate();
      const claim = await this.store.create(this.keys.byId(id), encodeById(labels, 'active'));
      this.taken.add(id);
      if (!claim.created) {
        this.stats.claimsLost++;
        lastConflict = `identity ${id} already claimed`;
        continue;
      }
      const link = await this.store.create(mappingKey, encode({ id }));
      if (link.created) {
        this.stats.created++;
        return { id, labels };
      }
      // Another allocator mapped this label set first: give our claim back and use theirs.
      await this.store.delete(this.keys.byId(id), claim.kv.modRevision);
      this.taken.delete(id);
      this.stats.mappingsLost++;
      lastConflict = `label set mapped concurrently`;
    }
    throw new IdentityConflictError(
      this.maxAttempts,
      `Cannot allocate an identity for label set "${labels.hash}" after ${this.maxAttempts} attempts (last: ${lastConflict}): the store is changing too fast, retry later`,
    );
  }

  /** The identity with this id (active or being released), or null. For verifiers. */
  async lookupById(id: number): Promise<IdentityRecord | null> {
    return this.readRecord(checkClusterId('id', id));
  }

  /** The identity of this label set if one is allocated (and its record agrees), or null. */
  async lookupByLabels(labels: LabelSet): Promise<IdentityRecord | null> {
    const mapping = await this.store.get(this.keys.byLabels(labels.hash));
    if (!mapping) return null;
    const record = await this.readRecord(parseByLabels(mapping));
    return record && record.labels.hash === labels.hash ? record : null;
  }

  private async readRecord(id: number): Promise<IdentityRecord | null> {
    const kv = await this.store.get(this.keys.byId(id));
    if (!kv) return null;
    const record = parseById(this.keys, kv);
    if (record.id !== id) throw new IdentityCorruptError(kv.key, `Identity record at "${kv.key}" names id ${record.id}: delete the key`);
    return record;
  }

  /** A random id in range not known to be taken; re-lists the store once the hint runs out. */
  private async pickCandidate(): Promise<number> {
    if (!this.listed || this.taken.size >= this.maxId - this.minId + 1) await this.refreshTaken();
    const size = this.maxId - this.minId + 1;
    if (this.taken.size >= size) {
      throw new IdentityExhaustedError(
        this.minId,
        this.maxId,
        `Cannot allocate an identity: all ${size} ids from ${this.minId} to ${this.maxId} are allocated or still referenced; release unused identities or reduce label cardinality`,
      );
    }
    const start = Math.floor(this.random() * size) % size;
    for (let i = 0; i < size; i++) {
      const id = this.minId + ((start + i) % size);
      if (!this.taken.has(id)) return id;
    }
    throw new Error('unreachable: a free id exists');
  }

  private async refreshTaken(): Promise<void> {
    this.taken.clear();
    const [ids, refs] = await Promise.all([this.store.list(this.keys.byIdPrefix()), this.store.list(this.keys.refsPrefix())]);
    // Stray keys that name no cluster id cannot block one; skip them.
    const add = (base: string, key: string) => {
      try {
        this.taken.add(this.keys.idIn(base, key));
      } catch (err) {
        if (!(err instanceof IdentityCorruptError)) throw err;
      }
    };
    for (const kv of ids.items) add(this.keys.byIdPrefix(), kv.key);
    for (const kv of refs.items) add(this.keys.refsPrefix(), kv.key);
    for (const id of [...this.taken]) if (id < this.minId || id > this.maxId) this.taken.delete(id);
    this.listed = true;
  }
}
