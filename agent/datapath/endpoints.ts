/**
 * The endpoint map (veil_endpoints): host-side ifindex of a pod's veth -> the pod's identity,
 * addresses and enforcement flags. from-pod reads it for anti-spoofing and the source identity.
 */
import { openShared, type BpfMap, type MapSource } from './bpf-map.js';
import { endpointCodec, endpointKeyCodec, type EndpointValue } from './layout.js';

export const ENDPOINT_MAP = 'veil_endpoints';
export type { EndpointValue };
export type EndpointMap = BpfMap<number, EndpointValue>;

/** Opens the endpoint map of a loaded object or a pin directory. */
export function openEndpointMap(source: MapSource): Promise<EndpointMap> {
  return openShared(source, ENDPOINT_MAP, endpointKeyCodec, endpointCodec);
}
