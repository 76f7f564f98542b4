/**
 * Runs program cases on the host kernel: the shared runner (program-runner.mjs) with the
 * TypeScript datapath API, a fresh bpffs pin directory and a fresh network namespace per run.
 */
import { join } from 'node:path';
import { ConfigMap } from '../../agent/datapath/config-map.js';
import { Counters } from '../../agent/datapath/counters.js';
import { loadObjects, testRun } from '../../agent/datapath/datapath.js';
import { openEndpointMap } from '../../agent/datapath/endpoints.js';
import { EventReader } from '../../agent/datapath/events.js';
import { Ipcache } from '../../agent/datapath/ipcache.js';
import { openPolicyMap } from '../../agent/datapath/policy-map.js';
import { projectRoot } from '../../agent/project-root.js';
import { programObject } from './bpf.js';
import { uniqueName } from './netns.js';
import { encodeCases, encodeWorld, type CaseResult, type ProgramCase, type WorldSpec } from './program-cases.js';
// @ts-expect-error plain JavaScript module shared with the VM guest
import { runProgramCases } from './program-runner.mjs';

export async function runOnHost(world: WorldSpec, cases: ProgramCase[]): Promise<Map<string, CaseResult>> {
  programObject('from-pod'); // fails early, saying how to build, when the objects are missing
  const out = (await runProgramCases(
    { loadObjects, testRun, Ipcache, openEndpointMap, ConfigMap, openPolicyMap, Counters, EventReader },
    {
      objectsDir: join(projectRoot(), 'build', 'bpf'),
      pinDir: `/sys/fs/bpf/veil-test-${uniqueName('pg')}`,
      netns: uniqueName('pg'),
      world: encodeWorld(world),
      cases: encodeCases(cases),
    },
  )) as { results: CaseResult[] };
  const names = new Set<string>();
  for (const c of cases) {
    if (names.has(c.name)) throw new Error(`Duplicate case name "${c.name}"`);
    names.add(c.name);
  }
  return new Map(out.results.map((r) => [r.name, r]));
}
