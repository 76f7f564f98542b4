import { defineConfig } from 'vitest/config';

/** Privileged tests that count lost packets under load (see the "traffic" project). */
const TRAFFIC = [
  'tests/privileged/reconcile/wireguard-peers.test.ts',
  'tests/privileged/datapath/topology.test.ts',
  'tests/privileged/lab-e2e/**/*.test.ts',
  'tests/privileged/keys/wireguard-rotation.test.ts',
];

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
          exclude: TRAFFIC,
          globalSetup: ['tests/support/require-root.ts'],
          testTimeout: 120_000,
          hookTimeout: 120_000,
        },
      },
      {
        // Tests that count every packet of a stream through userspace WireGuard while keys rotate
        // or agents restart: wireguard-go needs CPU on time, so these files run one at a time,
        // in their own vitest run after the parallel host tiers (scripts/test.sh).
        test: {
          name: 'traffic',
          include: TRAFFIC,
          globalSetup: ['tests/support/require-root.ts'],
          testTimeout: 180_000,
          hookTimeout: 180_000,
          fileParallelism: false,
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
