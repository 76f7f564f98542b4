/**
 * A datapath event as the agent serves it (GET /events, NDJSON) and `veil events` prints it:
 * names instead of numbers (hook and reason as the counters name them), a wall-clock time, and the
 * identities' descriptions when the agent knows them (labels, reserved names, ipBlock prefixes).
 * docs/agent.md "Events".
 */
import type { DatapathEvent } from './events.js';

export interface EventRecord {
  /** ISO 8601, from the event's monotonic timestamp. */
  time: string;
  type: 'drop' | 'flow' | 'unknown';
  /** FROM_POD, TO_POD, UPLINK_EGRESS, UPLINK_INGRESS (reasons.h). */
  hook: string;
  /** DROP_POLICY_DENY, FWD_WIREGUARD, ... (reasons.h). */
  reason: string;
  reasonCode: number;
  srcIdentity: number;
  dstIdentity: number;
  /** "default:app=web", "reserved:world", "cidr:198.51.100.0/24", when known. */
  srcLabels?: string;
  dstLabels?: string;
  /** 4, 6, or 0 when not IP. */
  family: number;
  /** "tcp", "udp", "icmp", "icmpv6", or the protocol number. */
  proto: string;
  saddr?: string;
  daddr?: string;
  /** Ports (ICMP: echo id and type << 8 | code). */
  sport: number;
  dport: number;
  ifindex: number;
}

const PROTOCOLS: Record<number, string> = { 1: 'icmp', 6: 'tcp', 17: 'udp', 58: 'icmpv6', 132: 'sctp' };

export function protocolName(proto: number): string {
  return PROTOCOLS[proto] ?? String(proto);
}

/**
 * Wall-clock nanoseconds minus CLOCK_MONOTONIC nanoseconds (bpf_ktime_get_ns and process.hrtime
 * are both CLOCK_MONOTONIC). Taken with sub-millisecond precision (performance.timeOrigin +
 * performance.now()), so one offset converts a stream of events without reordering them.
 */
export function monotonicOffsetNs(): bigint {
  const mono = process.hrtime.bigint();
  return BigInt(Math.round((performance.timeOrigin + performance.now()) * 1e6)) - mono;
}

/** The wall-clock time of a bpf_ktime_get_ns() timestamp. */
export function monotonicToDate(timestampNs: bigint, offsetNs = monotonicOffsetNs()): Date {
  return new Date(Number((timestampNs + offsetNs) / 1_000_000n));
}

export function eventRecord(e: DatapathEvent, describe?: (id: number) => string | undefined, time = monotonicToDate(e.timestampNs)): EventRecord {
  const r: EventRecord = {
    time: time.toISOString(),
    type: e.kind,
    hook: e.hookName,
    reason: e.reasonName,
    reasonCode: e.reason,
    srcIdentity: e.srcIdentity,
    dstIdentity: e.dstIdentity,
    family: e.family,
    proto: protocolName(e.proto),
    sport: e.sport,
    dport: e.dport,
    ifindex: e.ifindex,
  };
  const s = describe?.(e.srcIdentity);
  const d = describe?.(e.dstIdentity);
  if (s !== undefined) r.srcLabels = s;
  if (d !== undefined) r.dstLabels = d;
  if (e.saddr !== undefined) r.saddr = e.saddr;
  if (e.daddr !== undefined) r.daddr = e.daddr;
  return r;
}

function endpoint(addr: string | undefined, port: number, family: number, showPort: boolean): string {
  if (addr === undefined) return '-';
  if (!showPort) return addr;
  return family === 6 ? `[${addr}]:${port}` : `${addr}:${port}`;
}

function who(id: number, labels: string | undefined): string {
  return labels ? `${id}(${labels})` : String(id);
}

/**
 * One line for a terminal: time, hook, verdict/reason, protocol, source → destination with
 * identities. ICMP shows the type and code instead of ports.
 */
export function formatEventLine(r: EventRecord): string {
  const icmp = r.proto === 'icmp' || r.proto === 'icmpv6';
  const ports = r.proto === 'tcp' || r.proto === 'udp' || r.proto === 'sctp';
  const verdict = r.type === 'drop' ? `DROP ${r.reason.replace(/^DROP_/, '')}` : r.type === 'flow' ? `FLOW ${r.reason.replace(/^FWD_/, '')}` : `EVENT ${r.reason}`;
  const extra = icmp ? ` type ${r.dport >> 8} code ${r.dport & 0xff}${r.sport ? ` id ${r.sport}` : ''}` : '';
  return `${r.time} ${r.hook.padEnd(14)} ${verdict.padEnd(34)} ${r.proto.padEnd(6)} ${endpoint(r.saddr, r.sport, r.family, ports)} ${who(r.srcIdentity, r.srcLabels)} -> ${endpoint(r.daddr, r.dport, r.family, ports)} ${who(r.dstIdentity, r.dstLabels)}${extra}`;
}
