/** `veil operator`: flags and environment → agent/operator/operator.ts, until SIGTERM. */
import { hostname } from 'node:os';
import { loadOperatorConfig } from '../config/operator-config.js';
import { createRootLogger, moduleLogger } from '../log/logger.js';
import { startOperator } from '../operator/operator.js';
import type { Command } from './commands.js';
import { runUntilSignal } from './run-until-signal.js';

const USAGE = `Usage: veil operator --store URLS [options]

Allocates identities for the cluster's pods and releases unused ones and, with --ca-dir, signs
node certificates requested through the store; one active replica at a time (store lease).
Options (environment in brackets):
  --store URLS             etcd client URLs, comma separated [VEIL_STORE_ENDPOINTS]
  --id NAME                this replica's name (default: host name) [VEIL_OPERATOR_ID]
  --lease-ttl 15s          leader lease TTL [VEIL_OPERATOR_LEASE_TTL]
  --identity-grace 10m     release identities unreferenced this long [VEIL_IDENTITY_GRACE]
  --gc-interval 1m         garbage collection period [VEIL_GC_INTERVAL]
  --resync-interval 30s    identity re-sync period [VEIL_RESYNC_INTERVAL]
  --ca-dir DIR             cluster CA ("veil certs init" layout): sign node certificates [VEIL_CA_DIR]
  --node-cert-ttl 7d       lifetime of signed node certificates [VEIL_NODE_CERT_TTL]
  --cert-grace 10m         keep certificate records of removed nodes this long [VEIL_CERT_GRACE]
  --status-listen HOST:PORT  /healthz /readyz /metrics /status (default 127.0.0.1:9877) [VEIL_STATUS_LISTEN]
  --log-level info         [VEIL_LOG_LEVEL]
`;

export const operatorCommand: Command = {
  name: 'operator',
  summary: 'Run the operator (identity allocation, node certificate signing, garbage collection)',
  async run(args) {
    if (args.includes('--help') || args.includes('-h')) {
      process.stdout.write(USAGE);
      return 0;
    }
    const config = loadOperatorConfig(args, process.env, hostname());
    const root = createRootLogger({ level: config.logLevel });
    const log = moduleLogger(root, 'operator');
    return runUntilSignal(log, (signal) => startOperator(config, { log }, signal));
  },
};
