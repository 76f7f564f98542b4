import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    reporters: ['default', './tests/support/summary-reporter.ts'],
    projects: [
      {
        test: {
          name: 'unit',
          include: ['tests/unit/**/*.test.ts'],
          testTimeout: 30_000,
        },
      },
      {
        test: {
          name: 'privileged',
          include: ['tests/privileged/**/*.test.ts'],
          globalSetup: ['tests/support/require-root.ts'],
          testTimeout: 120_000,
          hookTimeout: 120_000,
        },
      },
      {
        test: {
          name: 'vm',
          include: ['tests/vm/**/*.test.ts'],
          globalSetup: ['tests/support/require-root.ts', 'tests/vm/harness/global-setup.ts'],
          testTimeout: 600_000,
          hookTimeout: 600_000,
          // One VM is shared by every VM test; run the files one after another against it.
          fileParallelism: false,
        },
      },
    ],
  },
});
