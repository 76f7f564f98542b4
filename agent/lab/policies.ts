/**
 * `veil lab policy apply|delete FILE`: NetworkPolicy YAML (networking.k8s.io/v1, one or more
 * documents) into or out of the lab's cluster model, as `kubectl apply|delete -f` would. The
 * whole file is parsed and validated by the policy front end first (agent/policy): a bad file
 * changes nothing. Each document is stored as its own manifest under its namespace and name,
 * where the agents read it.
 */
import { parseAllDocuments } from 'yaml';
import type { NetworkPolicy } from '../policy/network-policy.js';
import { parsePolicies, readPolicyFile } from '../policy/policy-file.js';
import { readFile } from 'node:fs/promises';
import type { LabDeps } from './deps.js';
import { LabError, LAB_NOT_FOUND } from './errors.js';
import { openLabStore } from './lab-store.js';
import { DEFAULT_LAB_ROOT, readLabState } from './state.js';

async function manifests(file: string): Promise<{ policy: NetworkPolicy; manifest: string }[]> {
  await readPolicyFile(file); // validates everything (size, YAML, every policy) before any write
  const text = await readFile(file, 'utf8');
  const out: { policy: NetworkPolicy; manifest: string }[] = [];
  for (const doc of parseAllDocuments(text)) {
    if (doc.contents === null) continue;
    const manifest = doc.toString();
    for (const policy of parsePolicies(manifest, { source: file })) out.push({ policy, manifest });
  }
  return out;
}

async function withStore<T>(name: string, deps: LabDeps, fn: (s: Awaited<ReturnType<typeof openLabStore>>) => Promise<T>): Promise<T> {
  const state = await readLabState(name, deps.root ?? DEFAULT_LAB_ROOT);
  if (!state.etcd) throw new LabError(LAB_NOT_FOUND, `Lab "${name}" has no etcd: run "veil lab up --name ${name}" first`);
  const s = await openLabStore(state.etcd.socket, deps.logger ? { logger: deps.logger } : {});
  try {
    return await fn(s);
  } finally {
    await s.close();
  }
}

/** Writes every policy of the file; returns "namespace/name" of each. */
export async function labPolicyApply(name: string, file: string, deps: LabDeps = {}): Promise<string[]> {
  const list = await manifests(file);
  return withStore(name, deps, async (s) => {
    for (const { policy, manifest } of list) await s.cluster.put('policies', { name: policy.name, namespace: policy.namespace, manifest });
    return list.map(({ policy }) => `${policy.namespace}/${policy.name}`);
  });
}

/** Removes every policy the file names; returns those that existed. */
export async function labPolicyDelete(name: string, file: string, deps: LabDeps = {}): Promise<string[]> {
  const list = await manifests(file);
  return withStore(name, deps, async (s) => {
    const removed: string[] = [];
    for (const { policy } of list) if (await s.cluster.delete('policies', policy.name, policy.namespace)) removed.push(`${policy.namespace}/${policy.name}`);
    return removed;
  });
}
