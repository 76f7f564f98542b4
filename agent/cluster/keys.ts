/**
 * Where the cluster model lives in the store. One prefix, one sub-prefix per kind; namespaced
 * kinds carry the namespace as a path segment (names are DNS-1123, so they never contain "/"):
 *
 *   /veil/cluster/nodes/<node>
 *   /veil/cluster/namespaces/<namespace>
 *   /veil/cluster/pods/<namespace>/<pod>
 *   /veil/cluster/policies/<namespace>/<policy>
 */
export const CLUSTER_PREFIX = '/veil/cluster/';

export type ClusterKind = 'nodes' | 'namespaces' | 'pods' | 'policies';
export const CLUSTER_KINDS: readonly ClusterKind[] = ['nodes', 'namespaces', 'pods', 'policies'];
export const NAMESPACED_KINDS: ReadonlySet<ClusterKind> = new Set(['pods', 'policies']);

/** The prefix of one kind, or of one namespace of a namespaced kind. */
export function kindPrefix(kind: ClusterKind, namespace?: string): string {
  return namespace === undefined ? `${CLUSTER_PREFIX}${kind}/` : `${CLUSTER_PREFIX}${kind}/${namespace}/`;
}

/** The key of one object: name for cluster-scoped kinds, namespace and name for namespaced ones. */
export function objectKey(kind: ClusterKind, name: string, namespace?: string): string {
  return `${kindPrefix(kind, namespace)}${name}`;
}

/**
 * Splits a key under CLUSTER_PREFIX into its kind, namespace and name; null when the key does
 * not have the shape of its kind (a stray key some other writer put there).
 */
export function parseObjectKey(key: string): { kind: ClusterKind; namespace?: string; name: string } | null {
  if (!key.startsWith(CLUSTER_PREFIX)) return null;
  const parts = key.slice(CLUSTER_PREFIX.length).split('/');
  const kind = parts[0] as ClusterKind;
  if (!CLUSTER_KINDS.includes(kind)) return null;
  if (NAMESPACED_KINDS.has(kind)) {
    if (parts.length !== 3 || !parts[1] || !parts[2]) return null;
    return { kind, namespace: parts[1], name: parts[2] };
  }
  if (parts.length !== 2 || !parts[1]) return null;
  return { kind, name: parts[1] };
}
