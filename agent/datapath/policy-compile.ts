/**
 * Compiles identity-level policy rules (agent/policy/rule.ts) into veil_policy map entries
 * (layout: bpf/include/veil/maps.h). The program looks keys up most specific first and stops at
 * the first hit:
 *
 *   (peer, proto, port) (peer, proto, 0) (peer, 0, 0) (0, proto, port) (0, proto, 0) (0, 0, 0)
 *
 * That order extends the "covers" order of keys, so if the set of keys is closed under
 * intersection (the meet of two keys that can match one packet), a packet's first hit is the most
 * specific key matching it, and every rule matching the packet covers that key. So each key's
 * value is folded here from all rules covering it: any deny -> deny ("deny wins"); else allow with
 * the least demanding requirement among the allows (NetworkPolicy allows are a union; requirements
 * are nested: authenticated identity implies encryption). A miss falls to the endpoint's default
 * (deny when isolated in that direction, else allow).
 *
 * A direction in which the subject is not isolated (PolicyEnforcement) allows by default, so its
 * allow rules change nothing and only its deny rules are compiled.
 *
 * Port ranges (endPort) are expanded to one key per port, at most `maxPortsPerRule` ports per
 * rule (default 1024): a rule above the bound is rejected with PolicyCompileError (widening it
 * would either allow too much or deny too much); a range of every port (1..65535) is exactly
 * "any port" and compiles to port 0. The whole result is bounded by `maxEntries` (the map size).
 */
import { VeilError } from '../errors.js';
import { quote } from '../net/ip.js';
import {
  PROTOCOL_NUMBERS,
  type PolicyDirection,
  type PolicyEnforcement,
  type PolicyProtocol,
  type PolicyRule,
} from '../policy/rule.js';
import { MapsAbi, type PolicyKey, type PolicyValue } from './layout.js';


export const DEFAULT_MAX_PORTS_PER_RULE = 1024;
export const DEFAULT_MAX_POLICY_ENTRIES = 65536;

export interface PolicyEntry {
  key: PolicyKey;
  value: PolicyValue;
}

export interface CompileOptions {
  maxPortsPerRule?: number;
  maxEntries?: number;
}

/** The rules cannot be compiled into the map (too large, or an invalid rule). */
export class PolicyCompileError extends VeilError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('VEIL_POLICY_COMPILE', message, options);
  }
}

const PORT_PROTOCOLS = new Set<PolicyProtocol>(['tcp', 'udp', 'sctp']);

/** A rule narrowed to one key pattern (one port of a range). */
interface Atom {
  peer: number;
  proto: number;
  port: number;
  deny: boolean;
  /** 0 none, 1 encryption, 2 authenticated identity (implies encryption). */
  level: number;
}

function describe(r: PolicyRule): string {
  const port = r.port === undefined ? '' : `/${r.port}${r.endPort !== undefined ? `-${r.endPort}` : ''}`;
  return `${r.verdict} ${r.direction} subject ${r.subject} peer ${r.peer} ${r.protocol}${port}`;
}

function checkIdentity(r: PolicyRule, field: 'subject' | 'peer', v: number): void {
  const min = field === 'subject' ? 1 : 0;
  if (!Number.isInteger(v) || v < min || v > 0xffffffff) {
    throw new PolicyCompileError(
      `Cannot compile rule ${quote(describe(r))}: ${field} ${quote(v)} is not an identity; use an integer from ${min} to 4294967295`,
    );
  }
}

function atomsOf(r: PolicyRule, maxPorts: number): Atom[] {
  checkIdentity(r, 'subject', r.subject);
  checkIdentity(r, 'peer', r.peer);
  if (r.direction !== 'ingress' && r.direction !== 'egress') {
    throw new PolicyCompileError(`Cannot compile rule ${quote(describe(r))}: direction must be "ingress" or "egress"`);
  }
  if (r.verdict !== 'allow' && r.verdict !== 'deny') {
    throw new PolicyCompileError(`Cannot compile rule ${quote(describe(r))}: verdict must be "allow" or "deny"`);
  }
  const proto = PROTOCOL_NUMBERS[r.protocol];
  if (proto === undefined) {
    throw new PolicyCompileError(
      `Cannot compile rule ${quote(describe(r))}: unknown protocol; use one of ${Object.keys(PROTOCOL_NUMBERS).join(', ')}`,
    );
  }
  const level = r.requireAuthenticatedIdentity ? 2 : r.requireEncryption ? 1 : 0;
  const base = { peer: r.peer, proto, deny: r.verdict === 'deny', level };
  if (r.port === undefined) {
    if (r.endPort !== undefined) {
      throw new PolicyCompileError(`Cannot compile rule ${quote(describe(r))}: endPort needs a port`);
    }
    return [{ ...base, port: 0 }];
  }
  if (!PORT_PROTOCOLS.has(r.protocol)) {
    throw new PolicyCompileError(
      `Cannot compile rule ${quote(describe(r))}: ports apply only to tcp, udp and sctp; drop the port or change the protocol`,
    );
  }
  const first = r.port;
  const last = r.endPort ?? r.port;
  if (!Number.isInteger(first) || !Number.isInteger(last) || first < 1 || last > 65535 || last < first) {
    throw new PolicyCompileError(
      `Cannot compile rule ${quote(describe(r))}: ports must be integers with 1 <= port <= endPort <= 65535`,
    );
  }
  if (first === 1 && last === 65535) return [{ ...base, port: 0 }];
  const count = last - first + 1;
  if (count > maxPorts) {
    throw new PolicyCompileError(
      `Cannot compile rule ${quote(describe(r))}: its port range has ${count} ports, above the bound of ${maxPorts}; split the rule, use every port (1-65535), or raise maxPortsPerRule`,
    );
  }
  const out: Atom[] = [];
  for (let p = first; p <= last; p++) out.push({ ...base, port: p });
  return out;
}

/** Key pattern as a string for sets: "peer/proto/port". */
const patternId = (a: { peer: number; proto: number; port: number }): string => `${a.peer}/${a.proto}/${a.port}`;

interface Pattern {
  peer: number;
  proto: number;
  port: number;
}

/** The most specific pattern matching every packet both match, or undefined if none can. */
function meet(a: Pattern, b: Pattern): Pattern | undefined {
  if (a.peer && b.peer && a.peer !== b.peer) return undefined;
  if (a.proto && b.proto && a.proto !== b.proto) return undefined;
  if (a.port && b.port && a.port !== b.port) return undefined;
  return { peer: a.peer || b.peer, proto: a.proto || b.proto, port: a.port || b.port };
}

/** `a` matches every packet `b` matches. */
function covers(a: Pattern, b: Pattern): boolean {
  return (!a.peer || a.peer === b.peer) && (!a.proto || a.proto === b.proto) && (!a.port || a.port === b.port);
}

/** Closure of `patterns` under meet. */
function closeUnderMeet(patterns: Map<string, Pattern>, maxEntries: number): Map<string, Pattern> {
  const out = new Map(patterns);
  let frontier = [...patterns.values()];
  while (frontier.length > 0) {
    const next: Pattern[] = [];
    const all = [...out.values()];
    for (const a of frontier) {
      for (const b of all) {
        const m = meet(a, b);
        if (!m) continue;
        const id = patternId(m);
        if (out.has(id)) continue;
        out.set(id, m);
        next.push(m);
        if (out.size > maxEntries) return out; // the caller reports the bound
      }
    }
    frontier = next;
  }
  return out;
}

function fold(atoms: Atom[], key: Pattern): PolicyValue | undefined {
  let allowLevel = Infinity;
  for (const a of atoms) {
    if (!covers(a, key)) continue;
    if (a.deny) return { verdict: 'deny', flags: 0 };
    allowLevel = Math.min(allowLevel, a.level);
  }
  if (allowLevel === Infinity) return undefined;
  const flags =
    allowLevel === 2
      ? MapsAbi.POL_F_REQUIRE_ENCRYPTION | MapsAbi.POL_F_REQUIRE_AUTH_IDENTITY
      : allowLevel === 1
        ? MapsAbi.POL_F_REQUIRE_ENCRYPTION
        : 0;
  return { verdict: 'allow', flags };
}

/**
 * veil_policy entries for `rules`, sorted by (subject, direction, peer, proto, port). Throws
 * PolicyCompileError for an invalid rule or when the result exceeds a bound.
 */
export function compilePolicy(
  rules: readonly PolicyRule[],
  enforcement: readonly PolicyEnforcement[],
  options: CompileOptions = {},
): PolicyEntry[] {
  const maxPorts = options.maxPortsPerRule ?? DEFAULT_MAX_PORTS_PER_RULE;
  const maxEntries = options.maxEntries ?? DEFAULT_MAX_POLICY_ENTRIES;
  const isolated = new Map<number, PolicyEnforcement>();
  for (const e of enforcement) isolated.set(e.identity, e);

  // group atoms by (subject, direction)
  const groups = new Map<string, { subject: number; direction: PolicyDirection; atoms: Atom[] }>();
  for (const r of rules) {
    const atoms = atomsOf(r, maxPorts);
    const enforced = isolated.get(r.subject)?.[r.direction] === true;
    if (!enforced && r.verdict === 'allow') continue; // default allow already
    const gid = `${r.subject}/${r.direction}`;
    let g = groups.get(gid);
    if (!g) {
      g = { subject: r.subject, direction: r.direction, atoms: [] };
      groups.set(gid, g);
    }
    for (const a of atoms) g.atoms.push(a);
  }

  const entries: PolicyEntry[] = [];
  for (const g of groups.values()) {
    const patterns = new Map<string, Pattern>();
    for (const a of g.atoms) patterns.set(patternId(a), { peer: a.peer, proto: a.proto, port: a.port });
    const closed = closeUnderMeet(patterns, maxEntries - entries.length);
    if (entries.length + closed.size > maxEntries) {
      throw new PolicyCompileError(
        `Cannot compile the policy of identity ${quote(g.subject)} (${g.direction}): more than ${maxEntries} map entries; raise the policy map size or use fewer port-specific rules`,
      );
    }
    for (const p of closed.values()) {
      const value = fold(g.atoms, p);
      if (!value) continue; // unreachable: every pattern is covered by the atoms it came from
      entries.push({
        key: { subject: g.subject, peer: p.peer, dport: p.port, proto: p.proto, direction: g.direction },
        value,
      });
    }
  }
  entries.sort(
    (a, b) =>
      a.key.subject - b.key.subject ||
      a.key.direction.localeCompare(b.key.direction) ||
      a.key.peer - b.key.peer ||
      a.key.proto - b.key.proto ||
      a.key.dport - b.key.dport,
  );
  return entries;
}

/**
 * What the program decides for a new connection, given compiled entries: the same lookup order
 * as bpf/lib/policy.h. For tests, the CLI's "explain" and the benchmark's set-up.
 */
export function lookupPolicy(
  entries: ReadonlyMap<string, PolicyValue>,
  q: { subject: number; peer: number; direction: PolicyDirection; proto: number; port: number },
): PolicyValue | undefined {
  const order: Array<[number, number, number]> = [];
  const port = q.proto === PROTOCOL_NUMBERS.tcp || q.proto === PROTOCOL_NUMBERS.udp || q.proto === PROTOCOL_NUMBERS.sctp ? q.port : 0;
  for (const peer of q.peer === 0 ? [0] : [q.peer, 0]) {
    if (port) order.push([peer, q.proto, port]);
    order.push([peer, q.proto, 0], [peer, 0, 0]);
  }
  for (const [peer, proto, dport] of order) {
    const v = entries.get(policyKeyId({ subject: q.subject, peer, dport, proto, direction: q.direction }));
    if (v) return v;
  }
  return undefined;
}

/** A string id of a key (for maps of entries). */
export function policyKeyId(k: PolicyKey): string {
  return `${k.subject}/${k.direction}/${k.peer}/${k.proto}/${k.dport}`;
}
