/**
 * `veil events`: the datapath events of one agent (drops with reason and identities, new flows),
 * read from its status server's GET /events. This module parses flags and prints; the client is
 * agent/metrics/events-client.ts, the records agent/datapath/event-record.ts.
 */
import { ConfigError } from '../errors.js';
import { parseEventFilter, type EventFilter } from '../datapath/event-filter.js';
import { formatEventLine, type EventRecord } from '../datapath/event-record.js';
import { checkStatusUrl, readAgentEvents } from '../metrics/events-client.js';
import { parseCommandArgs } from './args.js';
import type { Command } from './commands.js';

export const DEFAULT_STATUS_URL = 'http://127.0.0.1:9876';

const USAGE = `Usage: veil events [options]

Show the datapath events of the agent on this node: drops with their reason and identities, and
new connections (flows). Recent events first, then new ones with --follow.

Options:
  --node-status URL   The agent's status server (default ${DEFAULT_STATUS_URL})
  --follow, -f        Keep streaming new events until Ctrl-C
  --type drop|flow    Only drops, or only new flows
  --reason NAME       Only this reason (policy-deny, policy-default-deny, spoofed-source, ...)
  --hook NAME         Only this hook (from-pod, to-pod, uplink-egress, uplink-ingress)
  --identity N        Only events with this source or destination identity
  --address IP        Only events with this source or destination address
  --limit N           Recent events to show first (default 100)
  --json              One JSON object per line instead of text

See docs/agent.md "Events".
`;

/** Flags shared with `veil lab events`. */
export const EVENT_FLAGS = {
  follow: { type: 'boolean', short: 'f' },
  type: { type: 'string' },
  reason: { type: 'string' },
  hook: { type: 'string' },
  identity: { type: 'string' },
  address: { type: 'string' },
  limit: { type: 'string' },
  json: { type: 'boolean' },
} as const;

/** The filter and limit from parsed EVENT_FLAGS values; ConfigError for a bad one. */
export function eventFlags(values: Record<string, string | boolean | undefined>, command: string): { filter: EventFilter; limit: number | undefined } {
  let filter: EventFilter;
  try {
    filter = parseEventFilter({ type: values.type as string | undefined, reason: values.reason as string | undefined, hook: values.hook as string | undefined, identity: values.identity as string | undefined, address: values.address as string | undefined });
  } catch (err) {
    throw new ConfigError(`Invalid filter for "veil ${command}": ${(err as Error).message}`, { cause: err });
  }
  const l = values.limit as string | undefined;
  if (l !== undefined && !/^\d+$/.test(l)) throw new ConfigError(`Invalid --limit "${l}" for "veil ${command}": give a number of events such as 100`);
  return { filter, limit: l === undefined ? undefined : Number(l) };
}

export function printEvent(r: EventRecord, json: boolean, prefix = ''): void {
  process.stdout.write(json ? `${JSON.stringify(r)}\n` : `${prefix}${formatEventLine(r)}\n`);
}

export const eventsCommand: Command = {
  name: 'events',
  summary: 'Show the datapath events (drops with reason and identities, new flows) of this node\'s agent',
  async run(args: string[]): Promise<number> {
    if (args.includes('--help') || args.includes('-h')) {
      process.stdout.write(USAGE);
      return 0;
    }
    const { values } = parseCommandArgs('events', args, { 'node-status': { type: 'string' }, ...EVENT_FLAGS });
    const base = checkStatusUrl(values['node-status'] ?? DEFAULT_STATUS_URL);
    const { filter, limit } = eventFlags(values, 'events');
    const json = values.json === true;
    const read = (signal?: AbortSignal) => readAgentEvents(base, (r) => printEvent(r, json), { filter, follow: values.follow === true, ...(limit !== undefined ? { limit } : {}), ...(signal ? { signal } : {}) });
    if (!values.follow) {
      await read();
      return 0;
    }
    await untilInterrupted(read);
    return 0;
  },
};

/** Runs `fn` with a signal that aborts on SIGINT or SIGTERM (Ctrl-C ends a --follow cleanly). */
export async function untilInterrupted<T>(fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const abort = new AbortController();
  const onSignal = (): void => abort.abort();
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    return await fn(abort.signal);
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
