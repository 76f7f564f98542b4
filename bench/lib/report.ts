import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { projectRoot } from '../../agent/project-root.js';

/** One comparison of Veil against a baseline tool, measured in the same run. */
export interface ComparisonCase {
  case: string;
  /** Objects handled per run (routes, policies, peers). */
  count: number;
  ours_s: number;
  baseline: string;
  baseline_s: number;
  /** baseline_s / ours_s: above 1 means Veil is faster. */
  ratio: number;
  /** Every repetition, for the record. */
  runs: { ours_s: number[]; baseline_s: number[] };
  /** The goal from the issue (ratio at least this). */
  goal_ratio?: number;
  /** The 1-minute load average when the case finished (other work on a shared machine). */
  load_1m?: number;
  /**
   * Kernel-only floor: median system CPU time of our call (the kernel's own work on the batch),
   * and baseline_s / kernel_s, the ratio a program spending no time in user space would reach.
   */
  kernel_s?: number;
  ratio_cap?: number;
  /**
   * Median baseline CPU time / median ours CPU time (user + system): less sensitive than wall
   * clock to other work competing for the CPUs of a shared machine.
   */
  cpu_ratio?: number;
  /** Anything else a benchmark records per case (per-run CPU times, environment). */
  extra?: Record<string, unknown>;
  note?: string;
}

export function compare(
  name: string,
  count: number,
  baseline: string,
  ours: number[],
  base: number[],
  goal?: number,
): ComparisonCase {
  const o = median(ours);
  const b = median(base);
  return {
    case: name,
    count,
    ours_s: round(o),
    baseline,
    baseline_s: round(b),
    ratio: round(b / o, 2),
    runs: { ours_s: ours.map((v) => round(v)), baseline_s: base.map((v) => round(v)) },
    ...(goal !== undefined ? { goal_ratio: goal } : {}),
  };
}

export function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

export function round(v: number, digits = 4): number {
  const f = 10 ** digits;
  return Math.round(v * f) / f;
}

/** Seconds taken by fn (wall clock, high resolution). */
export async function seconds(fn: () => Promise<unknown>): Promise<number> {
  const t0 = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

export function printTable(rows: ComparisonCase[]): void {
  const header = ['case', 'count', 'ours_s', 'baseline', 'baseline_s', 'ratio', 'goal', 'cpu_ratio', 'kernel_s', 'ratio_cap', 'load_1m'];
  const data = rows.map((r) => [
    r.case,
    String(r.count),
    r.ours_s.toFixed(4),
    r.baseline,
    r.baseline_s.toFixed(4),
    r.ratio.toFixed(2),
    r.goal_ratio !== undefined ? `>= ${r.goal_ratio}` : '',
    r.cpu_ratio !== undefined ? r.cpu_ratio.toFixed(2) : '',
    r.kernel_s !== undefined ? r.kernel_s.toFixed(4) : '',
    r.ratio_cap !== undefined ? r.ratio_cap.toFixed(2) : '',
    r.load_1m !== undefined ? r.load_1m.toFixed(2) : '',
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...data.map((d) => d[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ');
  process.stdout.write(line(header) + '\n' + widths.map((w) => '-'.repeat(w)).join('  ') + '\n');
  for (const d of data) process.stdout.write(line(d) + '\n');
}

export function writeResults(name: string, rows: unknown[]): string {
  const dir = join(projectRoot(), 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  const path = join(dir, `${name}.json`);
  writeFileSync(path, JSON.stringify(rows, null, 2) + '\n');
  return path;
}
