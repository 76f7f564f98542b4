/**
 * Per-node references to identities: refs/<id>/<node>, attached to the node's lease, so a node
 * that dies drops its references when its lease expires. While any reference exists the releaser
 * never deletes the identity, so its id cannot be reused.
 *
 * Race with the releaser (release.ts), which marks a record "releasing", re-checks references,
 * then deletes the record at the "releasing" revision. addReference() writes its reference first
 * and reads the record afterwards:
 *   - "active": any later "releasing" mark is followed by the releaser's re-check, which sees
 *     this reference and aborts;
 *   - "releasing": the reference wins by writing "active" back at that revision, which makes the
 *     releaser's delete (at the "releasing" revision) fail;
 *   - gone (or claimed for other labels): the reference is withdrawn and IdentityReleasedError
 *     tells the caller to allocate again.
 */
import type { Lease, Store } from '../store/store.js';
import { IdentityConflictError, IdentityCorruptError, IdentityReleasedError } from './errors.js';
import type { LabelSet } from './labels.js';
import { checkNodeName, encode, encodeById, IdentityKeys, parseById, type IdentityRecord } from './records.js';
import { checkClusterId } from './reserved.js';

const MAX_ATTEMPTS = 16;

export class IdentityReferences {
  readonly keys: IdentityKeys;
  constructor(private readonly store: Store, prefix?: string) {
    this.keys = new IdentityKeys(prefix);
  }

  /**
   * Records that `node` uses identity `id` (for the label set `labels` it allocated), attached to
   * `lease`. Resolves with the identity's active record; IdentityReleasedError when it is gone.
   */
  async addReference(id: number, labels: LabelSet, node: string, lease: Lease): Promise<IdentityRecord> {
    checkClusterId('id', id);
    checkNodeName(node);
    const refKey = this.keys.ref(id, node);
    const refRevision = await this.writeReference(refKey, id, node, lease);
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const kv = await this.store.get(this.keys.byId(id));
      const record = kv ? parseById(this.keys, kv) : null;
      if (!record || record.labels.hash !== labels.hash) {
        await this.store.delete(refKey, refRevision);
        throw new IdentityReleasedError(id, `Identity ${id} was released before node "${node}" referenced it: allocate the label set again`);
      }
      if (record.state === 'active') return record;
      const revived = await this.store.update(this.keys.byId(id), encodeById(record.labels, 'active'), record.modRevision);
      if (revived.updated) return { ...record, state: 'active', modRevision: revived.kv!.modRevision };
    }
    throw new IdentityConflictError(MAX_ATTEMPTS, `Cannot reference identity ${id} from node "${node}": its record kept changing, retry later`);
  }

  /** Creates the reference on `lease`, or moves an existing one (a previous lease) to it. */
  private async writeReference(refKey: string, id: number, node: string, lease: Lease): Promise<string> {
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const created = await this.store.create(refKey, encode({ node }), { lease });
      if (created.created || created.kv.lease === lease.id) return created.kv.modRevision;
      // A reference from this node's previous lease (an agent restart): move it to the new one.
      const moved = await this.store.update(refKey, encode({ node }), created.kv.modRevision, { lease });
      if (moved.updated) return moved.kv!.modRevision;
    }
    throw new IdentityConflictError(MAX_ATTEMPTS, `Cannot reference identity ${id} from node "${node}": its reference kept changing, retry later`);
  }

  /** Withdraws `node`'s reference to `id` (nothing happens if there is none). */
  async removeReference(id: number, node: string): Promise<boolean> {
    checkClusterId('id', id);
    checkNodeName(node);
    return this.store.delete(this.keys.ref(id, node));
  }

  /** The nodes referring to `id` now. */
  async nodesReferencing(id: number): Promise<string[]> {
    checkClusterId('id', id);
    const base = this.keys.refsOf(id);
    const list = await this.store.list(base);
    return list.items.map((kv) => {
      try {
        return checkNodeName(kv.key.slice(base.length));
      } catch (err) {
        throw new IdentityCorruptError(kv.key, `Identity reference ${JSON.stringify(kv.key)} does not end in a node name: delete the key`, { cause: err });
      }
    });
  }
}
