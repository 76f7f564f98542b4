/**
 * Identity number ranges. Ids 1..255 are reserved for identities that exist on every node
 * without allocation; their numbers follow Cilium's so that operators who know one know the
 * other (1 host, 2 world, 3 unmanaged, 4 health, 5 init, 6 remote-node, 7 kube-apiserver; 8..255
 * are kept free for later reserved identities). Cluster ids, allocated through the store for
 * label sets, are 256..65535 (16 bits: they fit the datapath's identity field and packet marks).
 * Id 0 is "unknown" and is never allocated.
 */
import { ValidationError } from '../errors.js';
import { quote } from '../store/validate.js';

export const RESERVED_IDENTITIES = Object.freeze({
  host: 1,
  world: 2,
  unmanaged: 3,
  health: 4,
  init: 5,
  'remote-node': 6,
  'kube-apiserver': 7,
} as const);

export type ReservedIdentityName = keyof typeof RESERVED_IDENTITIES;

export const MIN_RESERVED_ID = 1;
export const MAX_RESERVED_ID = 255;
export const MIN_CLUSTER_ID = 256;
export const MAX_CLUSTER_ID = 65_535;

const NAMES = new Map<number, ReservedIdentityName>(
  Object.entries(RESERVED_IDENTITIES).map(([name, id]) => [id, name as ReservedIdentityName]),
);

/** True for 1..255 (whether or not a name is assigned to the id yet). */
export function isReservedId(id: number): boolean {
  return Number.isInteger(id) && id >= MIN_RESERVED_ID && id <= MAX_RESERVED_ID;
}

/** True for 256..65535, the ids the allocator hands out. */
export function isClusterId(id: number): boolean {
  return Number.isInteger(id) && id >= MIN_CLUSTER_ID && id <= MAX_CLUSTER_ID;
}

/** The name of a reserved id ("host", "world", ...), or undefined for an unassigned or cluster id. */
export function reservedName(id: number): ReservedIdentityName | undefined {
  return NAMES.get(id);
}

/** Validates a cluster id (an argument or a number read from the store). */
export function checkClusterId(field: string, id: unknown): number {
  if (typeof id !== 'number' || !isClusterId(id)) {
    throw new ValidationError(
      field,
      `Identity id ${quote(id)} is not a cluster id: use an integer from ${MIN_CLUSTER_ID} to ${MAX_CLUSTER_ID} (1..${MAX_RESERVED_ID} are reserved)`,
    );
  }
  return id;
}
