/**
 * The identity label set of a pod of the cluster model: namespace, service account, pod labels
 * and the labels of the pod's namespace (agent/identity/labels.ts). One function, so the
 * operator that allocates, the agent that looks identities up and `veil lab status` agree on the
 * label set of every pod. A pod whose namespace object is missing gets no namespace labels (as
 * `veil lab status` always did); when the namespace appears, the label set changes and the
 * operator allocates again.
 */
import { canonicalLabelSet, type LabelSet } from '../identity/labels.js';
import type { ClusterPod, Labels } from './records.js';

export function podLabelSet(pod: Pick<ClusterPod, 'namespace' | 'serviceAccount' | 'labels'>, namespaceLabels: ReadonlyMap<string, Labels>): LabelSet {
  return canonicalLabelSet({
    namespace: pod.namespace,
    serviceAccount: pod.serviceAccount,
    podLabels: pod.labels,
    namespaceLabels: namespaceLabels.get(pod.namespace) ?? {},
  });
}
