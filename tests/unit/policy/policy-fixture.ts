/** Builders for policy tests: identities from labels, policies from YAML, rule lookups. */
import { canonicalLabelSet, type LabelSet } from '../../../agent/identity/labels.js';
import { compilePolicies, type PolicyCompilation } from '../../../agent/policy/compiler.js';
import type { NetworkPolicy } from '../../../agent/policy/network-policy.js';
import { parsePolicies } from '../../../agent/policy/policy-file.js';

export interface Pod {
  id: number;
  namespace: string;
  labels?: Record<string, string>;
  namespaceLabels?: Record<string, string>;
}

export function labelSet(p: Pod): LabelSet {
  return canonicalLabelSet({ namespace: p.namespace, serviceAccount: 'default', podLabels: p.labels ?? {}, namespaceLabels: p.namespaceLabels ?? {} });
}

export function identities(pods: Pod[]): Array<[number, LabelSet]> {
  return pods.map((p) => [p.id, labelSet(p)]);
}

export function policies(yaml: string): NetworkPolicy[] {
  return parsePolicies(yaml, { source: 'test.yaml' });
}

export function compile(yaml: string, pods: Pod[]): PolicyCompilation {
  return compilePolicies(policies(yaml), identities(pods));
}

/** A NetworkPolicy document from its spec (YAML, indented by 2) and optional annotations. */
export function np(name: string, namespace: string, spec: string, annotations: Record<string, string> = {}): string {
  const ann = Object.entries(annotations).map(([k, v]) => `    ${k}: "${v}"`).join('\n');
  return `---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: ${name}
  namespace: ${namespace}
${ann ? `  annotations:\n${ann}\n` : ''}spec:
${spec.replace(/^\n/, '').split('\n').map((l) => `  ${l}`).join('\n')}
`;
}
