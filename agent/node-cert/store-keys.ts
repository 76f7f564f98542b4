/**
 * Where node certificate issuance lives in the store (docs/keys.md §Node certificate lifecycle):
 *
 *   /veil/certs/bootstrap/<node>   the provisioner's registration of the node's one-time
 *                                  bootstrap token (its public verification key, its expiry)
 *   /veil/certs/requests/<node>    the agent's request: CSR + proof it may claim <node>
 *   /veil/certs/issued/<node>      the operator's answer: the certificate, or the refusal
 *
 * One key per node and kind: a node has at most one request in flight.
 */
import { validateNodeName } from '../../certs/names.js';

export const CERTS_PREFIX = '/veil/certs/';
export const BOOTSTRAP_PREFIX = `${CERTS_PREFIX}bootstrap/`;
export const REQUESTS_PREFIX = `${CERTS_PREFIX}requests/`;
export const ISSUED_PREFIX = `${CERTS_PREFIX}issued/`;

export const bootstrapKey = (node: string): string => `${BOOTSTRAP_PREFIX}${validateNodeName(node)}`;
export const requestKey = (node: string): string => `${REQUESTS_PREFIX}${validateNodeName(node)}`;
export const issuedKey = (node: string): string => `${ISSUED_PREFIX}${validateNodeName(node)}`;

/** The node a key under `prefix` is about, or undefined when the rest is not one valid node name. */
export function nodeOfKey(prefix: string, key: string): string | undefined {
  if (!key.startsWith(prefix)) return undefined;
  const rest = key.slice(prefix.length);
  try {
    return validateNodeName(rest);
  } catch {
    return undefined;
  }
}
