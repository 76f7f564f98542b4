/**
 * What the policy compiler knows about identities: for every cluster identity, the namespace,
 * the pod labels and the namespace labels of its canonical label set (agent/identity/labels.ts),
 * as Kubernetes selectors see them:
 *
 * - a podSelector sees the `k8s:` labels, and only in the policy's own namespace;
 * - a namespaceSelector sees the `ns:` labels plus `kubernetes.io/metadata.name` = the namespace
 *   name, which the API server sets on every namespace (so `matchLabels:
 *   {kubernetes.io/metadata.name: prod}` works even where the namespace's stored labels lack it).
 *
 * Reserved identities (host, world, ...) carry no labels and are never matched by selectors:
 * they appear in rules only as "any peer" (0), as the always-allowed local host (see
 * compiler.ts), or through CIDR rules.
 */
import { ValidationError } from '../errors.js';
import { checkClusterId } from '../identity/reserved.js';
import type { LabelSet } from '../identity/labels.js';
import { quote } from '../store/validate.js';
import type { Labels } from './label-selector.js';

/** The label Kubernetes puts on every namespace with the namespace's own name. */
export const NAMESPACE_NAME_LABEL = 'kubernetes.io/metadata.name';

export interface IdentityLabels {
  readonly id: number;
  readonly namespace: string;
  readonly podLabels: Labels;
  readonly namespaceLabels: Labels;
}

/** Splits a canonical label set into what selectors see. */
export function identityLabels(id: number, set: LabelSet): IdentityLabels {
  checkClusterId('id', id);
  let namespace: string | undefined;
  const pod = new Map<string, string>();
  const ns = new Map<string, string>();
  for (const [full, value] of set.entries) {
    if (full === 'veil:namespace') namespace = value;
    else if (full.startsWith('k8s:')) pod.set(full.slice(4), value);
    else if (full.startsWith('ns:')) ns.set(full.slice(3), value);
  }
  if (namespace === undefined) {
    throw new ValidationError('labels', `Identity ${id} has no veil:namespace label: build its label set with canonicalLabelSet()`);
  }
  const stored = ns.get(NAMESPACE_NAME_LABEL);
  if (stored !== undefined && stored !== namespace) {
    throw new ValidationError('labels', `Identity ${id} has namespace label ${NAMESPACE_NAME_LABEL}=${quote(stored)} but is in namespace ${quote(namespace)}: the API server keeps them equal; fix the namespace labels`);
  }
  ns.set(NAMESPACE_NAME_LABEL, namespace);
  return Object.freeze({ id, namespace, podLabels: pod, namespaceLabels: ns });
}
