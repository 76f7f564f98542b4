/**
 * The one duration parser (configuration, Helm values, CLI flags such as "veil certs --ttl"): "90s", "15m", "1h30m", "24h", "500ms" (Go/Kubernetes style, as Helm
 * values carry them) or a number of milliseconds. Bounded so a typo cannot schedule work in
 * microseconds or never.
 */
import { ConfigError } from '../errors.js';

const UNIT_MS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const PART = /(\d+(?:\.\d+)?)(ms|s|m|h|d)/gy;

export function parseDuration(field: string, value: unknown, bounds: { minMs: number; maxMs: number }): number {
  let ms: number;
  if (typeof value === 'number') {
    ms = value;
  } else if (typeof value === 'string' && value.length > 0 && value.length <= 32) {
    PART.lastIndex = 0;
    ms = 0;
    let consumed = 0;
    for (let m = PART.exec(value); m; m = PART.exec(value)) {
      ms += Number(m[1]) * UNIT_MS[m[2]!]!;
      consumed = PART.lastIndex;
    }
    if (consumed !== value.length) ms = Number.NaN;
  } else {
    ms = Number.NaN;
  }
  if (!Number.isFinite(ms)) {
    throw new ConfigError(`Invalid duration for "${field}": ${JSON.stringify(value)}; use a number with a unit such as "90s", "15m", "24h" or "1h30m"`);
  }
  if (ms < bounds.minMs || ms > bounds.maxMs) {
    throw new ConfigError(`Duration for "${field}" is out of range: ${JSON.stringify(value)}; use between ${formatDuration(bounds.minMs)} and ${formatDuration(bounds.maxMs)}`);
  }
  return Math.round(ms);
}

export function formatDuration(ms: number): string {
  for (const unit of ['d', 'h', 'm', 's'] as const) {
    const u = UNIT_MS[unit]!;
    if (ms >= u && ms % u === 0) return `${ms / u}${unit}`;
  }
  return `${ms}ms`;
}
