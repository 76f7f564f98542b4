/**
 * Options of the etcd store, validated once when the store is constructed: endpoints are
 * http(s) URLs with an explicit port (1 to 16 of them, one scheme), timeouts are bounded so that
 * no call can hang.
 */
import { ConfigError } from '../errors.js';
import type { Logger } from '../log/logger.js';
import { quote } from './validate.js';

export interface EtcdStoreOptions {
  /** etcd client URLs, e.g. ["http://127.0.0.1:2379"]. */
  endpoints: string[];
  /** Deadline of every request (get, each list page, create, update, delete, lease calls). Default 5000. */
  requestTimeoutMs?: number;
  /** Cap of the reconnect backoff of watch streams and lease keep-alives. Default 2000. */
  maxBackoffMs?: number;
  /** Parent logger; the store logs reconnects and lost leases under module "store". */
  logger?: Logger;
}

export interface ResolvedEtcdOptions {
  endpoints: string[];
  requestTimeoutMs: number;
  maxBackoffMs: number;
  logger: Logger | undefined;
}

export const MAX_ENDPOINTS = 16;
const TIMEOUT_RANGE = { min: 100, max: 60_000 } as const;

export function resolveEtcdOptions(opts: EtcdStoreOptions): ResolvedEtcdOptions {
  if (!opts || typeof opts !== 'object') {
    throw new ConfigError('Options of the etcd store are missing: pass { endpoints: ["http://127.0.0.1:2379"] }');
  }
  const { endpoints } = opts;
  if (!Array.isArray(endpoints) || endpoints.length === 0 || endpoints.length > MAX_ENDPOINTS) {
    throw new ConfigError(
      `Cannot use etcd endpoints ${quote(endpoints)}: pass 1 to ${MAX_ENDPOINTS} client URLs such as "http://127.0.0.1:2379"`,
    );
  }
  const resolved = endpoints.map(checkEndpoint);
  const schemes = new Set(resolved.map((e) => new URL(e).protocol));
  if (schemes.size > 1) {
    throw new ConfigError(`Cannot use etcd endpoints ${quote(endpoints)}: they mix http and https, use one scheme for every endpoint`);
  }
  return {
    endpoints: resolved,
    requestTimeoutMs: checkTimeout('requestTimeoutMs', opts.requestTimeoutMs, 5_000),
    maxBackoffMs: checkTimeout('maxBackoffMs', opts.maxBackoffMs, 2_000),
    logger: opts.logger,
  };
}

function checkEndpoint(raw: unknown): string {
  const fix = 'use a client URL such as "http://127.0.0.1:2379"';
  if (typeof raw !== 'string' || raw.length === 0 || raw.length > 256) {
    throw new ConfigError(`Cannot use etcd endpoint ${quote(raw)}: ${fix}`);
  }
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new ConfigError(`Cannot use etcd endpoint ${quote(raw)}: it is not a URL, ${fix}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new ConfigError(`Cannot use etcd endpoint ${quote(raw)}: scheme "${url.protocol}" is neither http nor https, ${fix}`);
  }
  if (!url.hostname || !url.port) {
    throw new ConfigError(`Cannot use etcd endpoint ${quote(raw)}: it has no explicit host and port, ${fix}`);
  }
  if (url.username || url.password || (url.pathname !== '/' && url.pathname !== '') || url.search || url.hash) {
    throw new ConfigError(`Cannot use etcd endpoint ${quote(raw)}: it has credentials, a path or a query, ${fix}`);
  }
  return `${url.protocol}//${url.host}`;
}

function checkTimeout(field: string, value: unknown, dflt: number): number {
  if (value === undefined) return dflt;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < TIMEOUT_RANGE.min || value > TIMEOUT_RANGE.max) {
    throw new ConfigError(
      `Cannot use etcd store option ${field} ${quote(value)}: pass whole milliseconds from ${TIMEOUT_RANGE.min} to ${TIMEOUT_RANGE.max}`,
    );
  }
  return value;
}
