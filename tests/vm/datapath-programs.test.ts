/**
 * The datapath programs on Debian's 6.1 kernel: the same cases as the privileged program tests
 * (tests/support/program-worlds.ts, every world), run in the guest through the shared runner and
 * the built agent, judged here by the same checkResult(); then the four programs attach through
 * the TypeScript API (clsact: 6.1 has no tcx). `tc` cross-checks nothing here: the loader's VM
 * test covers attach details.
 */
import { randomBytes } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { checkResult, encodeCases, encodeWorld, type CaseResult } from '../support/program-cases.js';
import { allRuns } from '../support/program-worlds.js';
import type { Vm } from './harness/client.js';
import { vm } from './harness/vm.js';

const id = randomBytes(3).toString('hex');
const runs = allRuns();
let v: Vm;
let out: { runs: Record<string, CaseResult[]>; attach: Array<{ program: string; mode: string; action: string }> };

beforeAll(async () => {
  v = await vm();
  const input = {
    runs: runs.map((r) => ({ name: r.name, world: encodeWorld(r.world), cases: encodeCases(r.cases) })),
    pinBase: `/sys/fs/bpf/veil-vm-pg-${id}`,
    nsBase: `pg${id}`,
  };
  const r = await v.exec('node tests/vm/scenarios/datapath-programs.mjs', { stdin: JSON.stringify(input), timeoutMs: 600_000 });
  if (r.code !== 0) throw new Error(`datapath-programs.mjs failed (${r.code})\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`);
  out = JSON.parse(r.stdout);
});

describe('datapath programs on the Debian 6.1 kernel', () => {
  it('runs on a 6.1 kernel', () => {
    expect(v.kernelRelease).toMatch(/^6\.1\./);
  });

  for (const run of runs) {
    describe(run.name, () => {
      for (const c of run.cases) {
        it(c.name, () => checkResult(c, out.runs[run.name]?.find((r) => r.name === c.name)));
      }
    });
  }

  it('the four programs load and attach (clsact)', () => {
    expect(out.attach.map((a) => [a.program, a.mode, a.action])).toEqual([
      ['veil_from_pod_prog', 'clsact', 'created'],
      ['veil_to_pod_prog', 'clsact', 'created'],
      ['veil_uplink_egress_prog', 'clsact', 'created'],
      ['veil_uplink_ingress_prog', 'clsact', 'created'],
    ]);
  });
});
