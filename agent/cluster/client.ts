/**
 * A small typed client over the Store for the cluster model: put, get, list, delete and watch
 * per kind. Writes are validated before they leave; reads are validated as hostile input. A list
 * or watch never fails because of one bad record: the record is reported through `onInvalid`
 * (and skipped) so one stray writer cannot blind every agent.
 */
import type { KeyValue, Store, Watch } from '../store/store.js';
import { quote } from '../store/validate.js';
import { ClusterRecordError } from './errors.js';
import { kindPrefix, NAMESPACED_KINDS, objectKey, parseObjectKey, type ClusterKind } from './keys.js';
import { checkRecord, decodeRecord, encodeRecord, type ClusterObjects } from './records.js';
import { ValidationError } from '../errors.js';
import { isDns1123Subdomain, validateNamespace, validateNodeName } from '../../certs/names.js';

export interface ClusterObject<K extends ClusterKind> {
  key: string;
  record: ClusterObjects[K];
  modRevision: string;
}

export type ClusterEvent<K extends ClusterKind> =
  | { type: 'put'; object: ClusterObject<K> }
  | { type: 'delete'; key: string; name: string; namespace?: string; modRevision: string };

export interface ClusterWatchHandlers<K extends ClusterKind> {
  onEvent(event: ClusterEvent<K>): void | Promise<void>;
  /** The watch cannot continue (see Store.watch); re-list and watch again. */
  onError(err: Error): void;
}

export interface ClusterClientOptions {
  /** Called for every record that fails validation (skipped by list and watch). */
  onInvalid?: (err: ClusterRecordError) => void;
}

export class ClusterClient {
  private readonly onInvalid: (err: ClusterRecordError) => void;

  constructor(
    private readonly store: Store,
    opts: ClusterClientOptions = {},
  ) {
    this.onInvalid = opts.onInvalid ?? (() => undefined);
  }

  /** Creates or replaces an object (last writer wins; the lab is the only writer). */
  async put<K extends ClusterKind>(kind: K, record: ClusterObjects[K]): Promise<ClusterObject<K>> {
    const checked = checkRecord(kind, record);
    const key = keyOf(kind, checked);
    const value = encodeRecord(kind, checked);
    for (let attempt = 0; attempt < 5; attempt++) {
      const existing = await this.store.get(key);
      if (!existing) {
        const r = await this.store.create(key, value);
        if (r.created) return { key, record: checked, modRevision: r.kv.modRevision };
      } else {
        const r = await this.store.update(key, value, existing.modRevision);
        if (r.updated && r.kv) return { key, record: checked, modRevision: r.kv.modRevision };
      }
    }
    throw new ClusterRecordError(key, `Cannot write ${quote(key)}: it changed under five attempts in a row; retry when other writers are done`);
  }

  /** One object, or null when absent. ClusterRecordError when the stored value is invalid. */
  async get<K extends ClusterKind>(kind: K, name: string, namespace?: string): Promise<ClusterObject<K> | null> {
    const key = objectKey(kind, checkName(kind, name), checkNamespaceArg(kind, namespace));
    const kv = await this.store.get(key);
    return kv ? this.decode(kind, kv) : null;
  }

  /** Every valid object of a kind (optionally in one namespace) and the revision to watch from. */
  async list<K extends ClusterKind>(kind: K, namespace?: string): Promise<{ items: ClusterObject<K>[]; revision: string }> {
    const ns = namespace === undefined ? undefined : validateNamespace(namespace);
    const r = await this.store.list(kindPrefix(kind, ns));
    const items: ClusterObject<K>[] = [];
    for (const kv of r.items) {
      const obj = this.tryDecode(kind, kv);
      if (obj) items.push(obj);
    }
    return { items, revision: r.revision };
  }

  /** Deletes an object; true when it existed. */
  async delete(kind: ClusterKind, name: string, namespace?: string): Promise<boolean> {
    return this.store.delete(objectKey(kind, checkName(kind, name), checkNamespaceArg(kind, namespace)));
  }

  /**
   * Watches a kind from `afterRevision` (take it from list()): puts arrive validated; invalid
   * puts go to onInvalid and are skipped.
   */
  async watch<K extends ClusterKind>(kind: K, handlers: ClusterWatchHandlers<K>, opts: { afterRevision?: string } = {}): Promise<Watch> {
    return this.store.watch(
      kindPrefix(kind),
      {
        onEvent: async (ev) => {
          if (ev.type === 'put') {
            const obj = this.tryDecode(kind, ev.kv);
            if (obj) await handlers.onEvent({ type: 'put', object: obj });
            return;
          }
          const parsed = parseObjectKey(ev.key);
          if (!parsed || parsed.kind !== kind) return;
          await handlers.onEvent({
            type: 'delete',
            key: ev.key,
            name: parsed.name,
            ...(parsed.namespace !== undefined ? { namespace: parsed.namespace } : {}),
            modRevision: ev.modRevision,
          });
        },
        onError: (err) => handlers.onError(err),
      },
      opts.afterRevision !== undefined ? { afterRevision: opts.afterRevision } : {},
    );
  }

  private decode<K extends ClusterKind>(kind: K, kv: KeyValue): ClusterObject<K> {
    const fail = (message: string) => new ClusterRecordError(kv.key, `Invalid ${kind} record at ${quote(kv.key)}: ${message}; fix or delete the key`);
    const parsed = parseObjectKey(kv.key);
    if (!parsed || parsed.kind !== kind) throw fail('the key does not have the shape of its kind');
    const record = decodeRecord(kind, kv.value, fail);
    const r = record as { name: string; namespace?: string };
    if (r.name !== parsed.name || r.namespace !== parsed.namespace) {
      throw fail(`the record names ${quote(r.namespace ? `${r.namespace}/${r.name}` : r.name)}, not the object of its key`);
    }
    return { key: kv.key, record, modRevision: kv.modRevision };
  }

  private tryDecode<K extends ClusterKind>(kind: K, kv: KeyValue): ClusterObject<K> | null {
    try {
      return this.decode(kind, kv);
    } catch (err) {
      if (err instanceof ClusterRecordError) {
        this.onInvalid(err);
        return null;
      }
      throw err;
    }
  }
}

function checkNamespaceArg(kind: ClusterKind, namespace: string | undefined): string | undefined {
  if (NAMESPACED_KINDS.has(kind)) return validateNamespace(namespace);
  if (namespace !== undefined) throw new ValidationError('namespace', `Kind ${quote(kind)} is cluster-scoped: drop the namespace ${quote(namespace)}`);
  return undefined;
}

function keyOf(kind: ClusterKind, record: { name: string; namespace?: string }): string {
  return objectKey(kind, record.name, NAMESPACED_KINDS.has(kind) ? record.namespace : undefined);
}

function checkName(kind: ClusterKind, name: unknown): string {
  if (kind === 'nodes') return validateNodeName(name, 'name');
  if (kind === 'namespaces') return validateNamespace(name, 'name');
  if (typeof name !== 'string' || !isDns1123Subdomain(name)) {
    throw new ValidationError('name', `Invalid ${kind.slice(0, -1)} name ${quote(name)}: use a Kubernetes object name (lowercase letters, digits, "-" and ".")`);
  }
  return name;
}
