import { toDatapathEvent, type DatapathEvent } from '../../../agent/datapath/events.js';
import { MapsAbi, type RawEvent } from '../../../agent/datapath/layout.js';
import { Hook, Reason } from '../../../agent/datapath/reasons.js';

/** A decoded event as the reader delivers it: a UDP default-deny drop at from-pod unless overridden. */
export function sampleEvent(over: Partial<RawEvent> = {}): DatapathEvent {
  return toDatapathEvent({
    timestampNs: process.hrtime.bigint(),
    srcIdentity: 300,
    dstIdentity: 400,
    ifindex: 7,
    type: MapsAbi.EVENT_DROP,
    reason: Reason.DROP_POLICY_DEFAULT_DENY,
    hook: Hook.FROM_POD,
    family: 4,
    proto: 17,
    sport: 41000,
    dport: 5555,
    saddr: '10.0.1.10',
    daddr: '10.0.2.20',
    ...over,
  });
}

export const flowEvent = (over: Partial<RawEvent> = {}) => sampleEvent({ type: MapsAbi.EVENT_FLOW_NEW, reason: Reason.FWD_WIREGUARD, ...over });
