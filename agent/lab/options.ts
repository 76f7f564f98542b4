/** Options of `veil lab up`, validated once at the edge. */
import { ConfigError } from '../errors.js';
import { quote } from '../net/ip.js';
import { checkLabName, MAX_NODES, MAX_PODS_PER_NODE } from './address-plan.js';
import { LAB_MODES, type LabMode } from './state.js';

export const DEFAULT_LAB_NAME = 'veil';
export const DEFAULT_NODES = 3;
export const DEFAULT_PODS_PER_NODE = 2;

export interface LabUpOptions {
  name: string;
  nodes: number;
  podsPerNode: number;
  mode: LabMode;
}

function count(v: unknown, flag: string, min: number, max: number): number {
  const n = typeof v === 'string' && /^\d{1,4}$/.test(v) ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < min || n > max) {
    throw new ConfigError(`Invalid ${flag} ${quote(v)}: use a whole number from ${min} to ${max}`);
  }
  return n;
}

export function resolveLabUpOptions(raw: { name?: unknown; nodes?: unknown; podsPerNode?: unknown; mode?: unknown }): LabUpOptions {
  const mode = raw.mode ?? 'wireguard';
  if (!LAB_MODES.includes(mode as LabMode)) throw new ConfigError(`Invalid --mode ${quote(mode)}: use one of ${LAB_MODES.join(', ')}`);
  return {
    name: checkLabName(raw.name ?? DEFAULT_LAB_NAME),
    nodes: count(raw.nodes ?? DEFAULT_NODES, '--nodes', 1, MAX_NODES),
    podsPerNode: count(raw.podsPerNode ?? DEFAULT_PODS_PER_NODE, '--pods-per-node', 0, MAX_PODS_PER_NODE),
    mode: mode as LabMode,
  };
}
