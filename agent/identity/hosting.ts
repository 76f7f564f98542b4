/**
 * "Does the issuing node actually host that identity?" (DESIGN.md §Concepts), answered from the
 * store for certs/verify.ts `issuingNodeHostsIdentity`. An SVID names a service account
 * (spiffe://<td>/ns/<ns>/sa/<sa>); a node hosts it when it holds a live reference
 * (refs/<id>/<node>, attached to the node's lease) to an active identity whose label set has that
 * namespace and service account. Several identities can share a service account (they differ in
 * pod labels); any one of them counts.
 *
 * The store is hostile input: references and records go through the identity parsers, and a
 * corrupt entry makes the check fail closed (IdentityCorruptError) rather than say yes.
 */
import { parseWorkloadId } from '../../certs/spiffe-id.js';
import type { IssuingNodeHostsIdentity } from '../../certs/verify.js';
import type { Store } from '../store/store.js';
import { checkNodeName, IdentityKeys, parseById } from './records.js';

export interface HostingCheckOptions {
  trustDomain: string;
  /** Identity key prefix (default "/veil/identities/"). */
  prefix?: string;
}

/** The identity ids `node` references now. */
async function referencedIds(store: Store, keys: IdentityKeys, node: string): Promise<number[]> {
  const base = keys.refsPrefix();
  const list = await store.list(base);
  const ids: number[] = [];
  for (const kv of list.items) {
    if (!kv.key.endsWith(`/${node}`)) continue;
    const id = keys.idIn(base, kv.key);
    if (kv.key === keys.ref(id, node)) ids.push(id);
  }
  return ids;
}

/** A store-backed `issuingNodeHostsIdentity(node, spiffeId)` for verifySvid(). */
export function storeHostingCheck(store: Store, opts: HostingCheckOptions): IssuingNodeHostsIdentity {
  const keys = new IdentityKeys(opts.prefix);
  return async (nodeName, spiffeId) => {
    const node = checkNodeName(nodeName);
    const want = parseWorkloadId(spiffeId, opts.trustDomain);
    for (const id of await referencedIds(store, keys, node)) {
      const kv = await store.get(keys.byId(id));
      if (!kv) continue;
      const record = parseById(keys, kv);
      if (record.state !== 'active') continue;
      const labels = new Map(record.labels.entries);
      if (labels.get('veil:namespace') === want.namespace && labels.get('veil:service-account') === want.serviceAccount) return true;
    }
    return false;
  };
}

/**
 * For node records: may `node` publish a key for identity `id`? Only while it references the
 * identity (refs/<id>/<node>). The key manager rejects a peer's record that carries an identity
 * key the peer does not host (audit "record.rejected", reason "identity-not-hosted").
 */
export function storeIdentityHosting(store: Store, prefix?: string): (node: string, id: number) => Promise<boolean> {
  const keys = new IdentityKeys(prefix);
  return async (node, id) => (await store.get(keys.ref(id, checkNodeName(node)))) !== null;
}

/** An identity a node hosts, with the service account its SVID names. */
export interface HostedIdentity {
  id: number;
  namespace: string;
  serviceAccount: string;
}

/**
 * The active identities `node` references now (refs/<id>/<node>) that name a namespace and a
 * service account: the identities the node issues SVIDs for. Sorted by id. A corrupt record
 * throws (IdentityCorruptError): the caller keeps what it has rather than drop SVIDs.
 */
export async function hostedIdentities(store: Store, node: string, prefix?: string): Promise<HostedIdentity[]> {
  const keys = new IdentityKeys(prefix);
  const out: HostedIdentity[] = [];
  for (const id of await referencedIds(store, keys, checkNodeName(node))) {
    const kv = await store.get(keys.byId(id));
    if (!kv) continue;
    const record = parseById(keys, kv);
    if (record.state !== 'active') continue;
    const labels = new Map(record.labels.entries);
    const namespace = labels.get('veil:namespace');
    const serviceAccount = labels.get('veil:service-account');
    if (namespace !== undefined && serviceAccount !== undefined) out.push({ id, namespace, serviceAccount });
  }
  return out.sort((a, b) => a.id - b.id);
}
