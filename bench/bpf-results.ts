/**
 * bench/results/bpf.json holds one object per case ({ "case": "attach", ... },
 * { "case": "from-pod", ... }). Several benchmarks add their cases to it: mergeBpfResults()
 * replaces the cases it is given (by name) and keeps the others.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { projectRoot } from '../agent/project-root.js';
import { writeResults } from './lib/report.js';

export interface BpfCase {
  case: string;
  [field: string]: unknown;
}

export function bpfResultsPath(): string {
  return join(projectRoot(), 'bench', 'results', 'bpf.json');
}

/** Merges `cases` into bench/results/bpf.json (same name = replaced) and returns the path. */
export function mergeBpfResults(cases: BpfCase[]): string {
  let current: BpfCase[] = [];
  if (existsSync(bpfResultsPath())) {
    const parsed = JSON.parse(readFileSync(bpfResultsPath(), 'utf8')) as unknown;
    if (Array.isArray(parsed)) current = parsed.filter((c): c is BpfCase => typeof c === 'object' && c !== null && typeof (c as BpfCase).case === 'string');
  }
  const names = new Set(cases.map((c) => c.case));
  return writeResults('bpf', [...current.filter((c) => !names.has(c.case)), ...cases]);
}
