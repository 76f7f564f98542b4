/**
 * Calls into the addon for the rtnetlink wrappers: batch errors name the failing object, and
 * interrupted dumps are retried a bounded number of times.
 */
import { hasCode } from '../errors.js';
import { native, toNetlinkError } from '../native/addon.js';

type Fn = (...args: any[]) => any; // eslint-disable-line @typescript-eslint/no-explicit-any

/** The addon's rtnetlink exports (native/src/link.cc, addr.cc, route.cc, rule.cc). */
export interface RtnlAddon {
  linkAdd: Fn; linkDelete: Fn; linkGet: Fn; linkList: Fn; linkSet: Fn;
  encodeLinkAdd: Fn; encodeLinkSet: Fn; encodeLinkDelete: Fn; parseLinks: Fn;
  addrAdd: Fn; addrDelete: Fn; addrList: Fn; encodeAddrAdd: Fn; encodeAddrDelete: Fn; parseAddrs: Fn;
  routeAdd: Fn; routeReplace: Fn; routeDelete: Fn; routeList: Fn;
  encodeRouteAdd: Fn; encodeRouteReplace: Fn; encodeRouteDelete: Fn; encodeRouteDump: Fn; parseRoutes: Fn;
  ruleAdd: Fn; ruleDelete: Fn; ruleList: Fn; encodeRuleAdd: Fn; encodeRuleDelete: Fn; parseRules: Fn;
}

/** The loaded addon, typed for the rtnetlink wrappers. */
export function rtnl(): RtnlAddon {
  return native() as unknown as RtnlAddon;
}

/** How often a dump interrupted by a concurrent change (EDUMPINTR) is retried. */
export const DUMP_ATTEMPTS = 5;

/**
 * Awaits an addon promise; on failure throws a NetlinkError whose message starts with
 * `describe(index)` (index = failing object of a batch, when the addon reports one) and whose
 * stack is the caller's.
 */
export async function callRtnl<T>(describe: (index: number | undefined) => string, run: (addon: RtnlAddon) => Promise<T>): Promise<T> {
  const site: { stack?: string } = {};
  Error.captureStackTrace(site, callRtnl);
  try {
    return await run(rtnl());
  } catch (err) {
    const raw = err as { index?: unknown } | null;
    const index = typeof raw?.index === 'number' ? raw.index : undefined;
    const converted = toNetlinkError(err, describe(index));
    if (site.stack) converted.stack = `${converted.name}: ${converted.message}\n${site.stack.split('\n').slice(1).join('\n')}`;
    throw converted;
  }
}

/** Runs a dump, retrying up to DUMP_ATTEMPTS times when the kernel flags it interrupted. */
export async function withDumpRetry<T>(dump: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await dump();
    } catch (err) {
      if (!hasCode(err, 'EDUMPINTR') || attempt >= DUMP_ATTEMPTS) throw err;
    }
  }
}

/** " in namespace "x"" or "" for the caller's namespace. */
export function where(netns: string | undefined): string {
  return netns ? ` in network namespace "${netns}"` : '';
}
