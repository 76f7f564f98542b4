// Adds up the per-run summaries written by tests/support/summary-reporter.ts and prints the one
// closing line: "N passed, N failed". A run whose summary file is missing (the runner crashed
// before reporting) counts as one failure.
import { existsSync, readFileSync } from 'node:fs';

const total = { passed: 0, failed: 0, skipped: 0 };
for (const file of process.argv.slice(2)) {
  if (!existsSync(file)) {
    total.failed++;
    continue;
  }
  const s = JSON.parse(readFileSync(file, 'utf8'));
  total.passed += s.passed;
  total.failed += s.failed;
  total.skipped += s.skipped;
}
process.stdout.write(`${total.passed} passed, ${total.failed} failed${total.skipped ? `, ${total.skipped} skipped` : ''}\n`);
process.exitCode = total.failed ? 1 : 0;
