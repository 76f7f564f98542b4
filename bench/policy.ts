/**
 * `npm run bench -- policy [--reps N] [--only identity,policy] [--identities N] [--policies N]`
 *
 * The policy compiler on a synthetic cluster (default 1,000 identities in 20 namespaces and 500
 * NetworkPolicies of the usual kinds: default deny, allow from an app on a port, allow from a
 * namespace, DNS egress, ipBlock egress). Each case measures one incremental change plus
 * compile() on a warm PolicyCompiler against the baseline a non-incremental compiler pays: a
 * fresh compilation of every policy against every identity, in the same run. Writes
 * bench/results/policy.json.
 */
import { loadavg } from 'node:os';
import { canonicalLabelSet, type LabelSet } from '../agent/identity/labels.js';
import { PolicyCompiler } from '../agent/policy/compiler.js';
import type { NetworkPolicy } from '../agent/policy/network-policy.js';
import { parsePolicies } from '../agent/policy/policy-file.js';
import { parseBenchArgs } from './lib/args.js';
import { compare, printTable, writeResults, type ComparisonCase } from './lib/report.js';

const NAMESPACES = 20;
const APPS = 10;

interface Workload {
  identities: Array<[number, LabelSet]>;
  policies: NetworkPolicy[];
}

function labelsFor(i: number): LabelSet {
  const ns = i % NAMESPACES;
  return canonicalLabelSet({
    namespace: `ns-${ns}`,
    serviceAccount: `sa-${i % APPS}`,
    podLabels: { app: `app-${i % APPS}`, tier: i % 3 === 0 ? 'front' : 'back', version: `v${Math.floor(i / (NAMESPACES * APPS))}` },
    namespaceLabels: { team: `team-${ns % 4}`, env: ns % 2 === 0 ? 'prod' : 'dev' },
  });
}

function policyYaml(i: number): string {
  const ns = `ns-${i % NAMESPACES}`;
  const app = `app-${i % APPS}`;
  const other = `app-${(i + 1) % APPS}`;
  const head = `---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: p-${i}\n  namespace: ${ns}\nspec:\n`;
  switch (i % 5) {
    case 0:
      return `${head}  podSelector: {}\n  policyTypes: [Ingress]\n`;
    case 1:
      return `${head}  podSelector: {matchLabels: {app: ${app}}}\n  ingress:\n  - from: [{podSelector: {matchLabels: {app: ${other}}}}]\n    ports: [{port: ${8000 + (i % 100)}}]\n`;
    case 2:
      return `${head}  podSelector: {matchLabels: {app: ${app}}}\n  ingress:\n  - from: [{namespaceSelector: {matchLabels: {team: team-${i % 4}}}, podSelector: {matchLabels: {tier: front}}}]\n    ports: [{port: 443}, {port: 8443, endPort: 8450}]\n`;
    case 3:
      return `${head}  podSelector: {matchLabels: {tier: back}}\n  policyTypes: [Egress]\n  egress:\n  - to: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: ns-0}}, podSelector: {matchLabels: {app: app-0}}}]\n    ports: [{protocol: UDP, port: 53}, {port: 53}]\n`;
    default:
      return `${head}  podSelector: {matchLabels: {app: ${app}}}\n  policyTypes: [Egress]\n  egress:\n  - to: [{ipBlock: {cidr: 10.${i % 256}.0.0/16, except: [10.${i % 256}.1.0/24]}}]\n    ports: [{port: 5432}]\n`;
  }
}

function workload(identities: number, policies: number): Workload {
  const ids: Array<[number, LabelSet]> = [];
  for (let i = 0; i < identities; i++) ids.push([256 + i, labelsFor(i)]);
  const text = Array.from({ length: policies }, (_, i) => policyYaml(i)).join('');
  return { identities: ids, policies: parsePolicies(text, { source: 'bench' }) };
}

function fresh(w: Workload): { compiler: PolicyCompiler; rules: number } {
  const compiler = new PolicyCompiler();
  for (const [id, labels] of w.identities) compiler.setIdentity(id, labels);
  for (const p of w.policies) compiler.setPolicy(p);
  return { compiler, rules: compiler.compile().rules.length };
}

function time(fn: () => void): number {
  const t0 = process.hrtime.bigint();
  fn();
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

export async function run(args: string[]): Promise<void> {
  const { counts, only } = parseBenchArgs(args, { counts: { reps: 9, identities: 1000, policies: 500 }, cases: ['identity', 'policy'] });
  const w = workload(counts.identities!, counts.policies!);
  const rows: ComparisonCase[] = [];
  let stats = fresh(w); // warm-up
  const baseline: number[] = [];
  for (let r = 0; r < counts.reps!; r++) baseline.push(time(() => (stats = fresh(w))));
  const base = `fresh compile (${w.identities.length} identities × ${w.policies.length} policies)`;
  const extra = { identities: w.identities.length, policies: w.policies.length, rules: stats.rules };

  if (only.has('identity')) {
    const ours: number[] = [];
    const { compiler } = fresh(w);
    for (let r = 0; r < counts.reps!; r++) {
      const id = 60_000 + r;
      ours.push(time(() => (compiler.setIdentity(id, labelsFor(r * 7 + 3)), compiler.compile())));
    }
    rows.push({ ...compare('identity-add + compile', 1, base, ours, baseline), load_1m: loadavg()[0]!, extra });
  }
  if (only.has('policy')) {
    const ours: number[] = [];
    const { compiler } = fresh(w);
    for (let r = 0; r < counts.reps!; r++) {
      const [p] = parsePolicies(policyYaml(100_000 + r * 5 + 1), { source: 'bench' });
      ours.push(time(() => (compiler.setPolicy(p!), compiler.compile())));
    }
    rows.push({ ...compare('policy-add + compile', 1, base, ours, baseline), load_1m: loadavg()[0]!, extra });
  }
  printTable(rows);
  process.stdout.write(`Rules: ${stats.rules} identity rules for ${w.identities.length} identities and ${w.policies.length} policies\n`);
  process.stdout.write(`Wrote ${writeResults('policy', rows)}\n`);
}
