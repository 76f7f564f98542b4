/**
 * The datapath program cases as data: one "world" (devices, config, endpoints, ipcache, policy)
 * and an ordered list of packets per program, each with what must happen. Built here on the
 * host with the one packet builder; run by tests/support/program-runner.mjs on the host kernel
 * (tests/privileged/datapath/programs/) or in the Debian guest (tests/vm/datapath-programs.test.ts),
 * and judged by checkResult() below in both.
 *
 * Cases run in order against one load, so conntrack state carries from a case to the next: a
 * reply case follows the case that opened its connection.
 */
import { expect } from 'vitest';
import { MapsAbi, type RawEvent } from '../../agent/datapath/layout.js';
import { compilePolicy } from '../../agent/datapath/policy-compile.js';
import { Hook, hookName, Reason, reasonName } from '../../agent/datapath/reasons.js';
import type { PolicyEnforcement, PolicyRule } from '../../agent/policy/rule.js';

export const TC_ACT_OK = 0;
export const TC_ACT_SHOT = 2;
export const TC_ACT_REDIRECT = 7;

/** Flag sets of include/veil/maps.h, named for the cases (values from the agent's mirror). */
export const EP_F = {
  HAS_IPV4: MapsAbi.EP_F_HAS_IPV4,
  HAS_IPV6: MapsAbi.EP_F_HAS_IPV6,
  ENFORCE_INGRESS: MapsAbi.EP_F_ENFORCE_INGRESS,
  ENFORCE_EGRESS: MapsAbi.EP_F_ENFORCE_EGRESS,
} as const;
export const IPC_F = { LOCAL: MapsAbi.IPC_F_LOCAL, POD: MapsAbi.IPC_F_POD, NODE: MapsAbi.IPC_F_NODE, TUNNEL_V6: MapsAbi.IPC_F_TUNNEL_V6 } as const;
export const CFG_F = { STRICT: MapsAbi.CFG_F_STRICT, MODE_WIREGUARD: MapsAbi.CFG_F_MODE_WIREGUARD, MODE_IPSEC: MapsAbi.CFG_F_MODE_IPSEC } as const;
export const EVENT = { DROP: MapsAbi.EVENT_DROP, FLOW_NEW: MapsAbi.EVENT_FLOW_NEW } as const;

export type ProgramName = 'from-pod' | 'to-pod' | 'uplink-egress' | 'uplink-ingress';

const HOOK_OF: Record<ProgramName, number> = {
  'from-pod': Hook.FROM_POD,
  'to-pod': Hook.TO_POD,
  'uplink-egress': Hook.UPLINK_EGRESS,
  'uplink-ingress': Hook.UPLINK_INGRESS,
};

export interface WorldSpec {
  devices: string[];
  config?: { flags: number; wireguard?: string[]; nodeIdentity?: number; wireguardPort?: number; nodeIndex?: number };
  endpoints?: Array<{ dev: string; identity: number; flags: number; ipv4?: string; ipv6?: string; keyGeneration?: number }>;
  ipcache?: Array<{ prefix: string; identity: number; nodeIndex?: number; keySlot?: number; flags: number; tunnel?: string }>;
  rules?: PolicyRule[];
  enforcement?: PolicyEnforcement[];
}

/** The world as the runner takes it (policy compiled to map entries). */
export function encodeWorld(w: WorldSpec): unknown {
  const { rules, enforcement, ...rest } = w;
  return { ...rest, policy: compilePolicy(rules ?? [], enforcement ?? []) };
}

export interface Expect {
  retval: number;
  /** The one counter this packet must bump (hook from the program). */
  reason: number;
  mark?: number;
  /** A drop event (always expected with a drop reason) or a new-flow event. */
  event?: { type: number; src: number; dst: number; sport?: number; dport?: number; saddr?: string; daddr?: string };
}

export interface ProgramCase {
  name: string;
  prog: ProgramName;
  frame: Uint8Array;
  ctx?: { dev?: string; ingressDev?: string; mark?: number };
  expect: Expect;
}

/** The cases as the runner takes them. */
export function encodeCases(cases: ProgramCase[]): unknown[] {
  return cases.map((c) => ({
    name: c.name,
    prog: c.prog,
    frame: Buffer.from(c.frame).toString('hex'),
    ...(c.ctx ? { ctx: c.ctx } : {}),
    events: c.expect.event ? 1 : 0,
  }));
}

export interface CaseResult {
  name: string;
  retval?: number;
  mark?: number;
  counters?: Record<string, number>;
  events?: Array<Omit<RawEvent, 'timestampNs'>>;
  ifindex?: number;
  error?: string;
}

/** Asserts one result against its case. */
export function checkResult(c: ProgramCase, r: CaseResult | undefined): void {
  expect(r, `no result for "${c.name}"`).toBeDefined();
  expect(r!.error).toBeUndefined();
  const hook = HOOK_OF[c.prog];
  expect({ retval: r!.retval, counters: r!.counters }).toEqual({
    retval: c.expect.retval,
    counters: { [`${hookName(hook)}/${reasonName(c.expect.reason)}`]: 1 },
  });
  if (c.expect.mark !== undefined) expect((r!.mark! >>> 0).toString(16)).toBe((c.expect.mark >>> 0).toString(16));
  const e = c.expect.event;
  if (!e) {
    expect(r!.events).toEqual([]);
    return;
  }
  expect(r!.events).toHaveLength(1);
  const ev = r!.events![0]!;
  expect(ev).toMatchObject({
    type: e.type,
    reason: c.expect.reason,
    hook,
    srcIdentity: e.src,
    dstIdentity: e.dst,
    ifindex: r!.ifindex,
    ...(e.sport !== undefined ? { sport: e.sport } : {}),
    ...(e.dport !== undefined ? { dport: e.dport } : {}),
    ...(e.saddr !== undefined ? { saddr: e.saddr } : {}),
    ...(e.daddr !== undefined ? { daddr: e.daddr } : {}),
  });
}

export { Reason, Hook };
