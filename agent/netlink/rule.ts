/** Policy routing rules (IPv4 and IPv6) over rtnetlink: add, delete, list. */
import { ValidationError } from '../errors.js';
import { callNativeSync } from '../native/addon.js';
import { callRtnl, rtnl, where, withDumpRetry } from './call.js';
import { checkTable } from './route.js';
import type { DeleteOptions, NetnsOption } from './types.js';
import { checkCidr } from '../net/ip.js';
import { checkBool, checkArray, checkIfName, checkInt, checkKnownKeys, checkObject, nativeOpts, quote, U32_MAX } from './validate.js';

export type RuleAction = 'table' | 'blackhole' | 'unreachable' | 'prohibit';
/** FR_ACT_* (linux/fib_rules.h). */
export const RULE_ACTIONS: Record<RuleAction, number> = { table: 1, blackhole: 6, unreachable: 7, prohibit: 8 };

export interface RuleSpec {
  family: 4 | 6;
  priority: number;
  /** Table to look up (action "table"); ignored by the other actions, where 0 is fine. */
  table: number;
  fwmark?: number;
  /** Defaults to 0xffffffff in the kernel when fwmark is given alone. */
  fwmask?: number;
  /** Source prefix "CIDR". */
  src?: string;
  /** Destination prefix "CIDR". */
  dst?: string;
  iif?: string;
  oif?: string;
  /** Default "table". */
  action?: RuleAction;
  /** Match packets that do NOT match the selectors (`ip rule add not ...`). */
  invert?: boolean;
  /** Rule protocol (FRA_PROTOCOL), e.g. to mark rules as Veil's. */
  protocol?: number;
}

export interface Rule {
  family: 4 | 6;
  priority: number;
  table: number;
  fwmark: number | null;
  fwmask: number | null;
  src: string | null;
  dst: string | null;
  iif: string | null;
  oif: string | null;
  /** "table", "blackhole", "unreachable", "prohibit", "goto", "nop" (or the number as text). */
  action: string;
  invert: boolean;
  protocol: number;
}

interface NativeRule {
  family: 4 | 6;
  priority: number;
  table: number;
  fwmark?: number;
  fwmask?: number;
  src?: string;
  srcLen?: number;
  dst?: string;
  dstLen?: number;
  iif?: string;
  oif?: string;
  action?: number;
  invert?: boolean;
  protocol?: number;
}

const KNOWN = ['family', 'priority', 'table', 'fwmark', 'fwmask', 'src', 'dst', 'iif', 'oif', 'action', 'invert', 'protocol'] as const;

function toNative(rules: RuleSpec[]): NativeRule[] {
  checkArray('rules', rules);
  return rules.map((r, i) => {
    const f = `rules[${i}]`;
    checkKnownKeys(f, checkObject(f, r), KNOWN);
    if (r.family !== 4 && r.family !== 6) throw new ValidationError(`${f}.family`, `Invalid ${f}.family ${quote(r.family)}: use 4 or 6`);
    const action = r.action ?? 'table';
    const act = RULE_ACTIONS[action];
    if (act === undefined) throw new ValidationError(`${f}.action`, `Invalid ${f}.action ${quote(r.action)}: use one of ${Object.keys(RULE_ACTIONS).join(', ')}`);
    const n: NativeRule = {
      family: r.family,
      priority: checkInt(`${f}.priority`, r.priority, 0, U32_MAX),
      table: action === 'table' ? checkTable(`${f}.table`, r.table) : checkInt(`${f}.table`, r.table ?? 0, 0, U32_MAX),
    };
    if (act !== RULE_ACTIONS.table) n.action = act;
    if (r.fwmark !== undefined) n.fwmark = checkInt(`${f}.fwmark`, r.fwmark, 0, U32_MAX);
    if (r.fwmask !== undefined) {
      if (r.fwmark === undefined) throw new ValidationError(`${f}.fwmask`, `Invalid ${f}.fwmask without fwmark: set fwmark too`);
      n.fwmask = checkInt(`${f}.fwmask`, r.fwmask, 0, U32_MAX);
    }
    if (r.src !== undefined) {
      const c = checkCidr(`${f}.src`, r.src, { network: true, family: r.family });
      n.src = c.addr;
      n.srcLen = c.prefixLen;
    }
    if (r.dst !== undefined) {
      const c = checkCidr(`${f}.dst`, r.dst, { network: true, family: r.family });
      n.dst = c.addr;
      n.dstLen = c.prefixLen;
    }
    if (r.iif !== undefined) n.iif = checkIfName(`${f}.iif`, r.iif);
    if (r.oif !== undefined) n.oif = checkIfName(`${f}.oif`, r.oif);
    if (r.invert !== undefined) n.invert = checkBool(`${f}.invert`, r.invert);
    if (r.protocol !== undefined) n.protocol = checkInt(`${f}.protocol`, r.protocol, 0, 255);
    return n;
  });
}

function describe(rules: RuleSpec[], verb: string, netns: string | undefined) {
  return (i: number | undefined) =>
    i === undefined
      ? `Cannot ${verb} rules${where(netns)}`
      : `Cannot ${verb} rule with priority ${quote(rules[i]?.priority)} (rules[${i}])${where(netns)}`;
}

/**
 * Adds rules (`ip [-6] rule add [not] [from S] [to D] [fwmark M/K] [iif I] [oif O] priority P
 * table T | blackhole | unreachable | prohibit`), pipelined. An identical rule fails with
 * EEXIST; when rule k fails, rules 0..k-1 are removed again.
 */
export async function addRules(rules: RuleSpec[], opts?: NetnsOption): Promise<void> {
  const n = toNative(rules);
  const o = nativeOpts(opts);
  if (n.length === 0) return;
  await callRtnl(describe(rules, 'add', opts?.netns), (a) => a.ruleAdd(n, o));
}

/** Deletes rules matching each spec (`ip rule del ...`); with `ignoreMissing`, absent rules are skipped. */
export async function deleteRules(rules: RuleSpec[], opts?: DeleteOptions): Promise<void> {
  const n = toNative(rules);
  const o = nativeOpts(opts, opts?.ignoreMissing ? { ignoreMissing: true } : {});
  if (n.length === 0) return;
  await callRtnl(describe(rules, 'delete', opts?.netns), (a) => a.ruleDelete(n, o));
}

/** Every rule of both families, or of `filter.family` (`ip [-6] rule show`). */
export async function listRules(filter: { family?: 4 | 6 } = {}, opts?: NetnsOption): Promise<Rule[]> {
  checkKnownKeys('filter', checkObject('filter', filter), ['family']);
  if (filter.family !== undefined && filter.family !== 4 && filter.family !== 6) {
    throw new ValidationError('filter.family', `Invalid filter.family ${quote(filter.family)}: use 4 or 6`);
  }
  const f = filter.family ? { family: filter.family } : {};
  const o = nativeOpts(opts);
  return withDumpRetry(() => callRtnl(() => `Cannot list rules${where(opts?.netns)}`, (a) => a.ruleList(f, o) as Promise<Rule[]>));
}

/** The messages addRules()/deleteRules() send. */
export function encodeRules(verb: 'add' | 'delete', rules: RuleSpec[]): Buffer[] {
  const n = toNative(rules);
  return callNativeSync('Cannot encode rules', () => (verb === 'add' ? rtnl().encodeRuleAdd(n) : rtnl().encodeRuleDelete(n)) as Buffer[]);
}

/** Parses RTM_NEWRULE messages; throws NetlinkError "EMALFORMED" on truncated input. */
export function parseRules(buf: Buffer): Rule[] {
  return callNativeSync('Cannot parse rule messages', () => rtnl().parseRules(buf) as Rule[]);
}
