import type { Reporter, TestModule } from 'vitest/node';

/**
 * Prints the plain closing line CI reads, "N passed, N failed" (", N skipped" when any), after
 * vitest's own summary. Skipped tests are counted, never hidden: no test here may skip itself.
 */
export default class SummaryReporter implements Reporter {
  onTestRunEnd(testModules: ReadonlyArray<TestModule>, unhandledErrors: ReadonlyArray<unknown>): void {
    let passed = 0;
    let failed = 0;
    let skipped = 0;
    for (const mod of testModules) {
      let count = 0;
      for (const t of mod.children.allTests()) {
        count++;
        const state = t.result().state;
        if (state === 'passed') passed++;
        else if (state === 'failed') failed++;
        else skipped++;
      }
      // A file that failed to load (syntax error, failing beforeAll) has no passing tests: count it.
      if (count === 0 || mod.state() === 'failed') {
        if (!mod.ok() && count === 0) failed++;
      }
    }
    failed += unhandledErrors.length;
    const tail = skipped ? `, ${skipped} skipped` : '';
    // Written after vitest's own output so it is the last line.
    setImmediate(() => process.stdout.write(`${passed} passed, ${failed} failed${tail}\n`));
  }
}
