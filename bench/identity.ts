/**
 * `npm run bench -- identity [--reps N] [--only x25519,derive] [--ops N] [--nodes N] [--identities N]`
 *
 * Writes bench/results/identity.json (a list of ComparisonCase, ratio = baseline_s / ours_s) and
 * prints a table. Cases, each in its own file:
 *   - x25519: key generation and shared secret, node:crypto vs tweetnacl (bench/identity-crypto.ts)
 *   - derive: IPsec SA keys for 5,000 nodes × 20 identities (bench/identity-crypto.ts)
 *   - alloc: identity allocations per second against a real etcd (bench/identity-alloc.ts)
 *   - svid: SVID issuance per second against openssl (bench/identity-svid.ts)
 */
import { parseBenchArgs } from './lib/args.js';
import { printTable, type ComparisonCase } from './lib/report.js';
import { writeResults } from './lib/report.js';
import { allocCases } from './identity-alloc.js';
import { svidCase } from './identity-svid.js';
import { deriveCase, x25519Cases, type CryptoOptions } from './identity-crypto.js';

interface Options extends CryptoOptions {
  only: Set<string>;
}

type CaseRunner = (o: Options) => Promise<ComparisonCase[]> | ComparisonCase[];

const CASES: Record<string, CaseRunner> = {
  x25519: (o) => x25519Cases(o),
  derive: (o) => [deriveCase(o)],
  alloc: (o) => allocCases(o),
  svid: async (o) => [await svidCase(o)],
};

function parseArgs(args: string[]): Options {
  const { counts, only } = parseBenchArgs(args, {
    counts: { reps: 7, ops: 2000, nodes: 5000, identities: 20, 'baseline-pairs': 5000 },
    cases: Object.keys(CASES),
  });
  return {
    reps: counts.reps!,
    ops: counts.ops!,
    nodes: counts.nodes!,
    identities: counts.identities!,
    baselinePairs: counts['baseline-pairs']!,
    only,
  };
}

export async function run(args: string[]): Promise<void> {
  const o = parseArgs(args);
  const rows: ComparisonCase[] = [];
  for (const [name, runner] of Object.entries(CASES)) {
    if (!o.only.has(name)) continue;
    rows.push(...(await runner(o)));
  }
  printTable(rows);
  process.stdout.write(`Wrote ${writeResults('identity', rows)}\n`);
}
