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
  const o: Options = { reps: 7, ops: 2000, nodes: 5000, identities: 20, baselinePairs: 5000, only: new Set(Object.keys(CASES)) };
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    const value = (): string => {
      const v = args[++i];
      if (v === undefined) throw new Error(`Option ${a} needs a value`);
      return v;
    };
    const count = (min: number): number => {
      const v = value();
      const n = Number(v);
      if (!Number.isInteger(n) || n < min) throw new Error(`Invalid ${a} "${v}": use an integer >= ${min}`);
      return n;
    };
    if (a === '--reps') o.reps = count(1);
    else if (a === '--ops') o.ops = count(1);
    else if (a === '--nodes') o.nodes = count(1);
    else if (a === '--identities') o.identities = count(1);
    else if (a === '--baseline-pairs') o.baselinePairs = count(1);
    else if (a === '--only') {
      const v = value();
      const names = v.split(',');
      const bad = names.filter((n) => !(n in CASES));
      if (bad.length) throw new Error(`Invalid --only "${v}": use a comma-separated list of ${Object.keys(CASES).join(', ')}`);
      o.only = new Set(names);
    } else throw new Error(`Unknown option "${a}": use --reps N, --only ${Object.keys(CASES).join(',')}, --ops N, --nodes N, --identities N, --baseline-pairs N`);
  }
  return o;
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
