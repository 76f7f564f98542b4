/** `veil connectivity-test --lab`: runs agent/connectivity against a lab; table, JSON, exit status. */
import { writeFile } from 'node:fs/promises';
import { ConfigError, MissingDependencyError } from '../errors.js';
import { runLabConnectivityTest, SCENARIOS, type ScenarioResult } from '../connectivity/lab-test.js';
import { checkLabName } from '../lab/address-plan.js';
import { DEFAULT_LAB_NAME } from '../lab/options.js';
import { parseDuration } from '../config/duration.js';
import { parseCommandArgs } from './args.js';
import type { Command } from './commands.js';

const USAGE = `Usage: veil connectivity-test --lab [--name veil] [--json FILE] [--only a,b] [--wait 30s]

Proves a running lab with real packets: ${SCENARIOS.map(([n]) => n).join(', ')}.
Prints a table; --json FILE also writes the results as JSON. Exits 1 when any scenario fails.
--wait: how long to wait for every agent to be ready first (default 30s; minutes in the VM).
Spawns ping and tcpdump inside the lab's namespaces (a test tool; the agent never does).
`;

function table(results: ScenarioResult[]): string {
  const w = Math.max(...results.map((r) => r.name.length), 8);
  const lines = [`${'SCENARIO'.padEnd(w)}  RESULT  DETAIL`];
  for (const r of results) lines.push(`${r.name.padEnd(w)}  ${(r.ok ? (r.notApplicable ? 'n/a' : 'ok') : 'FAIL').padEnd(6)}  ${r.detail}`);
  const failed = results.filter((r) => !r.ok).length;
  lines.push('', failed === 0 ? `All ${results.length} scenarios passed` : `${failed} of ${results.length} scenarios failed`);
  return `${lines.join('\n')}\n`;
}

export const connectivityCommand: Command = {
  name: 'connectivity-test',
  summary: 'Prove encryption, reachability and policy with real packets (--lab)',
  async run(args) {
    if (args.includes('--help') || args.includes('-h')) {
      process.stdout.write(USAGE);
      return 0;
    }
    const { values } = parseCommandArgs('connectivity-test', args, { lab: { type: 'boolean' }, name: { type: 'string' }, json: { type: 'string' }, only: { type: 'string' }, wait: { type: 'string' } });
    if (!values.lab) throw new ConfigError('"veil connectivity-test" runs against a lab for now: pass --lab (run "veil connectivity-test --help")');
    if (typeof process.getuid === 'function' && process.getuid() !== 0) throw new MissingDependencyError('The connectivity test enters the lab\'s namespaces and needs root: run "sudo veil connectivity-test --lab"');
    const known = SCENARIOS.map(([n]) => n);
    const only = values.only?.split(',').map((x) => x.trim());
    for (const o of only ?? []) if (!known.includes(o)) throw new ConfigError(`Unknown scenario "${o}": the scenarios are ${known.join(', ')}`);
    const readyTimeoutMs = values.wait === undefined ? undefined : parseDuration('--wait', values.wait, { minMs: 0, maxMs: 3_600_000 });
    const results = await runLabConnectivityTest({ name: checkLabName(values.name ?? DEFAULT_LAB_NAME), ...(only ? { only } : {}), ...(readyTimeoutMs === undefined ? {} : { readyTimeoutMs }) });
    process.stdout.write(table(results));
    if (values.json) await writeFile(values.json, `${JSON.stringify({ lab: values.name ?? DEFAULT_LAB_NAME, passed: results.every((r) => r.ok), results }, null, 2)}\n`);
    return results.every((r) => r.ok) ? 0 : 1;
  },
};
