/**
 * The operator's configuration: defaults < environment (VEIL_*) < flags, validated once here at
 * the edge; the operator receives the typed, frozen result. The operator has few settings and no
 * per-node paths, so it takes no config file (the Helm chart sets its environment).
 */
import { isAbsolute } from 'node:path';
import { MIN_TTL_MS } from '../../certs/validity.js';
import { ConfigError } from '../errors.js';
import { parseStoreEndpoints } from './agent-config.js';
import { parseDuration } from './duration.js';

export interface OperatorConfig {
  /** This replica's name in the leader record (the pod name in Kubernetes; default the host name). */
  id: string;
  store: { endpoints: string[] };
  /** Seconds the leader lease lives without refresh: a dead leader is replaced after about this long. */
  leaseTtlSeconds: number;
  /** How long an identity must be unreferenced before it is released. */
  identityGraceMs: number;
  /** How often the garbage collector runs. */
  gcIntervalMs: number;
  /** How often identities are re-synchronised even without store events. */
  resyncIntervalMs: number;
  /**
   * Directory of the cluster CA (`veil certs init` layout); when set, the operator signs node
   * certificates (agent/operator/certificate-signer.ts). Unset: no signing.
   */
  caDir: string | null;
  /** Lifetime of the node certificates the operator signs. */
  nodeCertTtlMs: number;
  /** How long certificate records of a node gone from the cluster model are kept. */
  certGraceMs: number;
  status: { host: string; port: number };
  logLevel: 'trace' | 'debug' | 'info' | 'warn' | 'error';
}

interface Setting {
  key: keyof typeof PARSERS;
  flag: string;
  env: string;
  def?: string;
  /** No default and not required: null when unset. */
  optional?: boolean;
}

const ID = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;
const LEVELS = ['trace', 'debug', 'info', 'warn', 'error'] as const;

const PARSERS = {
  id: (raw: string, field: string): string => {
    if (!ID.test(raw)) throw new ConfigError(`Invalid value for "${field}": ${JSON.stringify(raw)}; use a lowercase DNS name such as "veil-operator-0"`);
    return raw;
  },
  endpoints: (raw: string, field: string) => parseStoreEndpoints(raw, field),
  leaseTtl: (raw: string, field: string) => Math.round(parseDuration(field, raw, { minMs: 2_000, maxMs: 300_000 }) / 1000),
  grace: (raw: string, field: string) => parseDuration(field, raw, { minMs: 0, maxMs: 30 * 86_400_000 }),
  gcInterval: (raw: string, field: string) => parseDuration(field, raw, { minMs: 100, maxMs: 86_400_000 }),
  resync: (raw: string, field: string) => parseDuration(field, raw, { minMs: 1_000, maxMs: 86_400_000 }),
  caDir: (raw: string, field: string): string => {
    if (!isAbsolute(raw) || raw.includes('\0')) throw new ConfigError(`Invalid value for "${field}": ${JSON.stringify(raw)}; use an absolute path`);
    return raw;
  },
  certTtl: (raw: string, field: string) => parseDuration(field, raw, { minMs: MIN_TTL_MS, maxMs: 365 * 86_400_000 }),
  certGrace: (raw: string, field: string) => parseDuration(field, raw, { minMs: 0, maxMs: 30 * 86_400_000 }),
  listen: (raw: string, field: string): { host: string; port: number } => {
    const m = /^(?:\[([0-9a-fA-F:]+)\]|([^:]+)):(\d{1,5})$/.exec(raw);
    const port = m ? Number(m[3]) : NaN;
    if (!m || port > 65535) throw new ConfigError(`Invalid value for "${field}": ${JSON.stringify(raw)}; use HOST:PORT, e.g. "127.0.0.1:9877" (port 0 = any)`);
    return { host: (m[1] ?? m[2])!, port };
  },
  level: (raw: string, field: string) => {
    if (!(LEVELS as readonly string[]).includes(raw)) throw new ConfigError(`Invalid value for "${field}": ${JSON.stringify(raw)}; use one of ${LEVELS.map((l) => `"${l}"`).join(', ')}`);
    return raw as OperatorConfig['logLevel'];
  },
};

const SETTINGS: Setting[] = [
  { key: 'id', flag: '--id', env: 'VEIL_OPERATOR_ID' },
  { key: 'endpoints', flag: '--store', env: 'VEIL_STORE_ENDPOINTS' },
  { key: 'leaseTtl', flag: '--lease-ttl', env: 'VEIL_OPERATOR_LEASE_TTL', def: '15s' },
  { key: 'grace', flag: '--identity-grace', env: 'VEIL_IDENTITY_GRACE', def: '10m' },
  { key: 'gcInterval', flag: '--gc-interval', env: 'VEIL_GC_INTERVAL', def: '1m' },
  { key: 'resync', flag: '--resync-interval', env: 'VEIL_RESYNC_INTERVAL', def: '30s' },
  { key: 'caDir', flag: '--ca-dir', env: 'VEIL_CA_DIR', optional: true },
  { key: 'certTtl', flag: '--node-cert-ttl', env: 'VEIL_NODE_CERT_TTL', def: '7d' },
  { key: 'certGrace', flag: '--cert-grace', env: 'VEIL_CERT_GRACE', def: '10m' },
  { key: 'listen', flag: '--status-listen', env: 'VEIL_STATUS_LISTEN', def: '127.0.0.1:9877' },
  { key: 'level', flag: '--log-level', env: 'VEIL_LOG_LEVEL', def: 'info' },
];

/** Builds the operator configuration from flags (`--flag value` or `--flag=value`) and environment. */
export function loadOperatorConfig(args: string[], env: NodeJS.ProcessEnv = process.env, hostname = 'veil-operator'): OperatorConfig {
  const flags = new Map<string, string>();
  const known = SETTINGS.map((s) => s.flag);
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    const eq = a.indexOf('=');
    const name = eq > 0 ? a.slice(0, eq) : a;
    if (!known.includes(name)) throw new ConfigError(`Unknown option "${name}" for "veil operator": the options are ${[...known].sort().join(', ')}`);
    const value = eq > 0 ? a.slice(eq + 1) : args[++i];
    if (value === undefined) throw new ConfigError(`Option "${name}" needs a value`);
    flags.set(name, value);
  }
  const values = new Map<string, unknown>();
  for (const s of SETTINGS) {
    const flag = flags.get(s.flag);
    const fromEnv = env[s.env];
    let raw: string | undefined;
    let field: string;
    if (flag !== undefined) [raw, field] = [flag, s.flag];
    else if (fromEnv !== undefined && fromEnv !== '') [raw, field] = [fromEnv, s.env];
    else [raw, field] = [s.key === 'id' ? hostname.toLowerCase() : s.def, s.flag];
    if (raw === undefined && s.optional) {
      values.set(s.key, null);
      continue;
    }
    if (raw === undefined) throw new ConfigError(`Setting "${s.flag}" is required: pass ${s.flag} or set ${s.env}`);
    values.set(s.key, (PARSERS[s.key] as (r: string, f: string) => unknown)(raw, field));
  }
  const config: OperatorConfig = {
    id: values.get('id') as string,
    store: { endpoints: values.get('endpoints') as string[] },
    leaseTtlSeconds: values.get('leaseTtl') as number,
    identityGraceMs: values.get('grace') as number,
    gcIntervalMs: values.get('gcInterval') as number,
    resyncIntervalMs: values.get('resync') as number,
    caDir: values.get('caDir') as string | null,
    nodeCertTtlMs: values.get('certTtl') as number,
    certGraceMs: values.get('certGrace') as number,
    status: values.get('listen') as { host: string; port: number },
    logLevel: values.get('level') as OperatorConfig['logLevel'],
  };
  return Object.freeze({ ...config, store: Object.freeze(config.store), status: Object.freeze(config.status) });
}
