/**
 * The node agent's configuration: defaults < file (--config / VEIL_CONFIG, YAML or JSON) <
 * environment (VEIL_*) < flags. Parsed and validated once, here, at the edge; the rest of the
 * agent receives the typed, frozen result and derives what it needs from it. Every error names the
 * setting, where it came from, the bad value and the fix. Unknown keys in the file are errors
 * (a typo must not silently fall back to a default).
 */
import { readFileSync } from 'node:fs';
import { isAbsolute } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { ConfigError } from '../errors.js';
import { parseDuration } from './duration.js';

export type EncryptionType = 'wireguard' | 'ipsec';

export interface AgentConfig {
  nodeName: string;
  stateDir: string;
  store: { endpoints: string[] };
  encryption: { type: EncryptionType; strictMode: boolean };
  wireguard: { device: string; port: number; backend: 'auto' | 'kernel' | 'userspace'; mtu: number };
  ipsec: { granularity: 'identity' | 'node'; algorithm: 'aes-gcm' | 'chacha20-poly1305' };
  keys: { rotationIntervalMs: number; svidTtlMs: number; acknowledgeTimeoutMs: number };
  datapath: { pinDir: string; uplink: string };
  /**
   * The node's PKI: the CA bundle, where the node certificate and key live, the one-time bootstrap
   * token used when there is no valid certificate, when to renew (remaining lifetime) and how long
   * to wait for the operator's answer (agent/node-cert).
   */
  pki: { caBundle: string; nodeCert: string; nodeKey: string; bootstrapToken: string; renewBeforeMs: number; requestTimeoutMs: number };
  audit: { file: string };
  status: { host: string; port: number };
  logLevel: 'trace' | 'debug' | 'info' | 'warn' | 'error';
}

type Source = 'default' | 'file' | 'env' | 'flag';

interface Setting {
  /** Dotted path in the file and in AgentConfig. */
  path: string;
  flag?: string;
  env?: string;
  /** Converts a raw value (string from env/flags, any JSON from the file) to the typed value. */
  parse(raw: unknown, field: string): unknown;
  /** Default; a function of the node name for per-node paths. */
  def?: unknown | ((c: { nodeName: string }) => unknown);
}

const MAX_STRING = 4096;

function str(field: string, raw: unknown, opts: { pattern?: RegExp; hint?: string } = {}): string {
  if (typeof raw !== 'string' || raw.length === 0 || raw.length > MAX_STRING || (opts.pattern && !opts.pattern.test(raw))) {
    throw new ConfigError(`Invalid value for "${field}": ${JSON.stringify(raw)}${opts.hint ? `; ${opts.hint}` : ''}`);
  }
  return raw;
}

function absPath(field: string, raw: unknown): string {
  const p = str(field, raw, { hint: 'use an absolute path' });
  if (!isAbsolute(p) || p.includes('\0')) throw new ConfigError(`Invalid path for "${field}": ${JSON.stringify(raw)}; use an absolute path`);
  return p;
}

function oneOf<T extends string>(values: readonly T[]) {
  return (raw: unknown, field: string): T => {
    if (typeof raw !== 'string' || !(values as readonly string[]).includes(raw)) {
      throw new ConfigError(`Invalid value for "${field}": ${JSON.stringify(raw)}; use one of ${values.map((v) => `"${v}"`).join(', ')}`);
    }
    return raw as T;
  };
}

function bool(raw: unknown, field: string): boolean {
  if (typeof raw === 'boolean') return raw;
  if (raw === 'true' || raw === '1') return true;
  if (raw === 'false' || raw === '0') return false;
  throw new ConfigError(`Invalid value for "${field}": ${JSON.stringify(raw)}; use true or false`);
}

function int(min: number, max: number) {
  return (raw: unknown, field: string): number => {
    const n = typeof raw === 'string' && /^\d+$/.test(raw) ? Number(raw) : raw;
    if (typeof n !== 'number' || !Number.isInteger(n) || n < min || n > max) {
      throw new ConfigError(`Invalid value for "${field}": ${JSON.stringify(raw)}; use an integer from ${min} to ${max}`);
    }
    return n;
  };
}

function duration(minMs: number, maxMs: number) {
  return (raw: unknown, field: string) => parseDuration(field, raw, { minMs, maxMs });
}

const DNS_NAME = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;
const IFNAME = /^[A-Za-z0-9_.-]{1,15}$/;

/** Etcd client URLs from a flag, env value or file: "http://a:2379,http://b:2379" or a list. */
export function parseStoreEndpoints(raw: unknown, field: string): string[] {
  const list = typeof raw === 'string' ? raw.split(',').map((s) => s.trim()) : raw;
  if (!Array.isArray(list) || list.length === 0 || list.length > 16) {
    throw new ConfigError(`Invalid value for "${field}": ${JSON.stringify(raw)}; give 1 to 16 etcd URLs, comma separated, e.g. "http://10.0.0.1:2379"`);
  }
  return list.map((u, i) => {
    const s = str(`${field}[${i}]`, u);
    let url: URL;
    try {
      url = new URL(s);
    } catch {
      throw new ConfigError(`Invalid etcd URL for "${field}[${i}]": ${JSON.stringify(s)}; use http://HOST:PORT or https://HOST:PORT`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      throw new ConfigError(`Invalid etcd URL for "${field}[${i}]": ${JSON.stringify(s)}; use http://HOST:PORT or https://HOST:PORT`);
    }
    return s;
  });
}

function listen(raw: unknown, field: string): { host: string; port: number } {
  const s = str(field, raw);
  const m = /^(?:\[([0-9a-fA-F:]+)\]|([^:]+)):(\d{1,5})$/.exec(s);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) throw new ConfigError(`Invalid value for "${field}": ${JSON.stringify(raw)}; use HOST:PORT, e.g. "127.0.0.1:9876" (port 0 = any)`);
  return { host: (m[1] ?? m[2])!, port };
}

const SETTINGS: Setting[] = [
  { path: 'nodeName', flag: '--node', env: 'VEIL_NODE_NAME', parse: (r, f) => str(f, r, { pattern: DNS_NAME, hint: 'use a Kubernetes node name (lowercase DNS name)' }) },
  { path: 'stateDir', flag: '--state-dir', env: 'VEIL_STATE_DIR', parse: (r, f) => absPath(f, r), def: (c: { nodeName: string }) => `/var/lib/veil/${c.nodeName}` },
  { path: 'store.endpoints', flag: '--store', env: 'VEIL_STORE_ENDPOINTS', parse: parseStoreEndpoints },
  { path: 'encryption.type', flag: '--mode', env: 'VEIL_ENCRYPTION_TYPE', parse: oneOf(['wireguard', 'ipsec'] as const), def: 'wireguard' },
  { path: 'encryption.strictMode', flag: '--strict-mode', env: 'VEIL_STRICT_MODE', parse: bool, def: true },
  { path: 'wireguard.device', env: 'VEIL_WIREGUARD_DEVICE', parse: (r, f) => str(f, r, { pattern: IFNAME, hint: 'use an interface name of at most 15 characters' }), def: 'veil_wg0' },
  { path: 'wireguard.port', env: 'VEIL_WIREGUARD_PORT', parse: int(1, 65535), def: 51871 },
  { path: 'wireguard.backend', env: 'VEIL_WIREGUARD_BACKEND', parse: oneOf(['auto', 'kernel', 'userspace'] as const), def: 'auto' },
  { path: 'wireguard.mtu', parse: int(1280, 9000), def: 1420 },
  { path: 'ipsec.granularity', parse: oneOf(['identity', 'node'] as const), def: 'identity' },
  { path: 'ipsec.algorithm', parse: oneOf(['aes-gcm', 'chacha20-poly1305'] as const), def: 'aes-gcm' },
  { path: 'keys.rotationInterval', flag: '--key-rotation-interval', env: 'VEIL_KEY_ROTATION_INTERVAL', parse: duration(60_000, 365 * 86_400_000), def: 86_400_000 },
  { path: 'keys.svidTtl', parse: duration(60_000, 30 * 86_400_000), def: 3_600_000 },
  { path: 'keys.acknowledgeTimeout', parse: duration(1_000, 3_600_000), def: 120_000 },
  { path: 'datapath.pinDir', env: 'VEIL_BPF_PIN_DIR', parse: (r, f) => absPath(f, r), def: (c: { nodeName: string }) => `/sys/fs/bpf/veil/${c.nodeName}` },
  { path: 'datapath.uplink', flag: '--uplink', env: 'VEIL_UPLINK', parse: (r, f) => str(f, r, { pattern: IFNAME, hint: 'use the name of the node interface that carries inter-node traffic' }), def: 'eth0' },
  { path: 'pki.caBundle', flag: '--ca', env: 'VEIL_CA_BUNDLE', parse: (r, f) => absPath(f, r), def: (c: { nodeName: string }) => `/var/lib/veil/${c.nodeName}/pki/ca.pem` },
  { path: 'pki.nodeCert', env: 'VEIL_NODE_CERT', parse: (r, f) => absPath(f, r), def: (c: { nodeName: string }) => `/var/lib/veil/${c.nodeName}/pki/node.pem` },
  { path: 'pki.nodeKey', env: 'VEIL_NODE_KEY', parse: (r, f) => absPath(f, r), def: (c: { nodeName: string }) => `/var/lib/veil/${c.nodeName}/pki/node-key.pem` },
  { path: 'pki.bootstrapToken', env: 'VEIL_BOOTSTRAP_TOKEN', parse: (r, f) => absPath(f, r), def: (c: { nodeName: string }) => `/var/lib/veil/${c.nodeName}/pki/bootstrap-token` },
  { path: 'pki.renewBefore', env: 'VEIL_NODE_CERT_RENEW_BEFORE', parse: duration(10_000, 365 * 86_400_000), def: 2 * 86_400_000 },
  { path: 'pki.requestTimeout', parse: duration(1_000, 3_600_000), def: 300_000 },
  { path: 'audit.file', flag: '--audit-log', env: 'VEIL_AUDIT_LOG', parse: (r, f) => absPath(f, r), def: (c: { nodeName: string }) => `/var/lib/veil/${c.nodeName}/audit.log` },
  { path: 'status.listen', flag: '--status-listen', env: 'VEIL_STATUS_LISTEN', parse: listen, def: { host: '127.0.0.1', port: 9876 } },
  { path: 'logLevel', flag: '--log-level', env: 'VEIL_LOG_LEVEL', parse: oneOf(['trace', 'debug', 'info', 'warn', 'error'] as const), def: 'info' },
];

const FILE_KEYS = new Set(SETTINGS.map((s) => s.path));
const MAX_CONFIG_BYTES = 64 * 1024;

/** Flattens a parsed config file to dotted paths, refusing unknown keys. */
function flatten(obj: unknown, file: string, prefix = '', out = new Map<string, unknown>()): Map<string, unknown> {
  if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) {
    throw new ConfigError(`Config file "${file}"${prefix ? ` at "${prefix.slice(0, -1)}"` : ''} must be a mapping of settings`);
  }
  for (const [k, v] of Object.entries(obj)) {
    const path = `${prefix}${k}`;
    if (FILE_KEYS.has(path)) out.set(path, v);
    else if ([...FILE_KEYS].some((p) => p.startsWith(`${path}.`))) flatten(v, file, `${path}.`, out);
    else throw new ConfigError(`Unknown setting "${path}" in config file "${file}": check the spelling; the settings are listed in docs/configuration.md`);
  }
  return out;
}

export function readConfigFile(file: string): Map<string, unknown> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`Cannot read config file "${file}": ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { cause: err });
  }
  if (text.length > MAX_CONFIG_BYTES) throw new ConfigError(`Config file "${file}" is larger than ${MAX_CONFIG_BYTES} bytes: it cannot be a Veil configuration`);
  let doc: unknown;
  try {
    doc = parseYaml(text, { maxAliasCount: 0 });
  } catch (err) {
    throw new ConfigError(`Config file "${file}" is not valid YAML or JSON: ${(err as Error).message.split('\n')[0]}`, { cause: err });
  }
  return flatten(doc ?? {}, file);
}

/** Splits `--flag value` and `--flag=value` arguments; refuses unknown flags. */
export function parseFlags(args: string[], extra: readonly string[] = []): Map<string, string> {
  const known = new Set([...SETTINGS.flatMap((s) => (s.flag ? [s.flag] : [])), '--config', ...extra]);
  const out = new Map<string, string>();
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    const eq = a.indexOf('=');
    const name = eq > 0 ? a.slice(0, eq) : a;
    if (!known.has(name)) throw new ConfigError(`Unknown option "${name}": the options are ${[...known].sort().join(', ')}`);
    const value = eq > 0 ? a.slice(eq + 1) : args[++i];
    if (value === undefined) throw new ConfigError(`Option "${name}" needs a value`);
    out.set(name, value);
  }
  return out;
}

function setPath(target: Record<string, unknown>, path: string, value: unknown): void {
  const parts = path.split('.');
  let o = target;
  for (const p of parts.slice(0, -1)) o = (o[p] ??= {}) as Record<string, unknown>;
  o[parts.at(-1)!] = value;
}

/** The config path → typed-field mapping where a file name differs from AgentConfig. */
const RENAMED: Record<string, string> = {
  'keys.rotationInterval': 'keys.rotationIntervalMs',
  'keys.svidTtl': 'keys.svidTtlMs',
  'keys.acknowledgeTimeout': 'keys.acknowledgeTimeoutMs',
  'status.listen': 'status',
  'pki.renewBefore': 'pki.renewBeforeMs',
  'pki.requestTimeout': 'pki.requestTimeoutMs',
};

/** Builds the agent configuration from flags, environment and the config file they name. */
export function loadAgentConfig(args: string[], env: NodeJS.ProcessEnv = process.env): AgentConfig {
  const flags = parseFlags(args);
  const configFile = flags.get('--config') ?? env.VEIL_CONFIG;
  const file = configFile ? readConfigFile(absPath('--config', configFile)) : new Map<string, unknown>();

  const raw = new Map<string, { value: unknown; source: Source; field: string }>();
  for (const s of SETTINGS) {
    const flag = s.flag ? flags.get(s.flag) : undefined;
    const fromEnv = s.env ? env[s.env] : undefined;
    if (flag !== undefined) raw.set(s.path, { value: flag, source: 'flag', field: s.flag! });
    else if (fromEnv !== undefined && fromEnv !== '') raw.set(s.path, { value: fromEnv, source: 'env', field: s.env! });
    else if (file.has(s.path)) raw.set(s.path, { value: file.get(s.path), source: 'file', field: s.path });
  }

  const out: Record<string, unknown> = {};
  const nodeRaw = raw.get('nodeName');
  if (!nodeRaw) throw new ConfigError('The node name is not set: pass --node NAME, set VEIL_NODE_NAME (the DaemonSet sets it from spec.nodeName) or "nodeName" in the config file');
  const nodeName = SETTINGS[0]!.parse(nodeRaw.value, nodeRaw.field) as string;
  for (const s of SETTINGS) {
    const given = raw.get(s.path);
    let value: unknown;
    if (given) value = s.parse(given.value, given.field);
    else if (s.def !== undefined) value = typeof s.def === 'function' ? (s.def as (c: { nodeName: string }) => unknown)({ nodeName }) : s.def;
    else throw new ConfigError(`Setting "${s.path}" is required: pass ${[s.flag, s.env && `${s.env}=...`].filter(Boolean).join(' or ')} or set "${s.path}" in the config file`);
    setPath(out, RENAMED[s.path] ?? s.path, value);
  }
  return deepFreeze(out) as unknown as AgentConfig;
}

function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object') {
    for (const v of Object.values(o)) deepFreeze(v);
    Object.freeze(o);
  }
  return o;
}
