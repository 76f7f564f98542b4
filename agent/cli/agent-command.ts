/** `veil agent`: configuration (flags, environment, file) → agent/node-agent/main.ts, until SIGTERM. */
import { loadAgentConfig } from '../config/agent-config.js';
import { createRootLogger, moduleLogger } from '../log/logger.js';
import { startNodeAgent } from '../node-agent/main.js';
import type { Command } from './commands.js';
import { runUntilSignal } from './run-until-signal.js';

const USAGE = `Usage: veil agent --node NAME --store URLS [options]

Runs the node agent: node key and signed node record, WireGuard peers from the other nodes'
verified records, the eBPF datapath (endpoints, ipcache, policy, strict mode) and a status
endpoint. Settings come from --config FILE, VEIL_* environment variables and flags; every
setting is listed in docs/configuration.md.
`;

export const agentCommand: Command = {
  name: 'agent',
  summary: 'Run the node agent (one per node)',
  async run(args) {
    if (args.includes('--help') || args.includes('-h')) {
      process.stdout.write(USAGE);
      return 0;
    }
    const config = loadAgentConfig(args);
    const root = createRootLogger({ level: config.logLevel });
    const log = moduleLogger(root, 'agent').child({ node: config.nodeName });
    return runUntilSignal(log, (signal) => startNodeAgent(config, { log }, signal));
  },
};
