import { writeFileSync } from 'node:fs';
import type { Reporter, TestModule } from 'vitest/node';

export interface RunSummary {
  passed: number;
  failed: number;
  skipped: number;
}

/**
 * Prints the plain closing line CI reads, "N passed, N failed" (", N skipped" when any), after
 * vitest's own summary. Skipped tests are counted, never hidden: no test here may skip itself.
 * A run that failed outside any test (a global setup that could not boot the VM, an unhandled
 * error, a file that failed to load) counts as a failure, so the line never says "0 failed" for a
 * failed run. With VEIL_SUMMARY_FILE set, the counts are also written there as JSON, for
 * scripts/test.sh to add up the runs of several tiers.
 */
export default class SummaryReporter implements Reporter {
  onTestRunEnd(
    testModules: ReadonlyArray<TestModule>,
    unhandledErrors: ReadonlyArray<unknown>,
    reason: 'passed' | 'interrupted' | 'failed',
  ): void {
    const s: RunSummary = { passed: 0, failed: 0, skipped: 0 };
    for (const mod of testModules) {
      let count = 0;
      for (const t of mod.children.allTests()) {
        count++;
        const state = t.result().state;
        if (state === 'passed') s.passed++;
        else if (state === 'failed') s.failed++;
        else s.skipped++;
      }
      // A file that failed to load or whose hooks failed before any test ran.
      if (count === 0 && !mod.ok()) s.failed++;
    }
    s.failed += unhandledErrors.length;
    if (reason !== 'passed' && s.failed === 0) s.failed = 1;
    if (process.env.VEIL_SUMMARY_FILE) writeFileSync(process.env.VEIL_SUMMARY_FILE, JSON.stringify(s));
    // Written after vitest's own output so it is the last line.
    setImmediate(() => process.stdout.write(formatSummary(s) + '\n'));
  }
}

export function formatSummary(s: RunSummary): string {
  return `${s.passed} passed, ${s.failed} failed${s.skipped ? `, ${s.skipped} skipped` : ''}`;
}
