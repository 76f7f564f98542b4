/**
 * The client side of GET /events (events-endpoint.ts): reads an agent's NDJSON event stream and
 * hands each record to a callback, until the response ends (without follow), the agent closes
 * it, or `signal` aborts. Used by `veil events` and `veil lab events`.
 */
import { request } from 'node:http';
import type { EventFilter } from '../datapath/event-filter.js';
import { eventFilterQuery } from '../datapath/event-filter.js';
import type { EventRecord } from '../datapath/event-record.js';
import { ConfigError, VeilError } from '../errors.js';
import { quote } from '../net/ip.js';

/** The agent's status server could not be reached or refused the request. */
export class AgentStatusError extends VeilError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('VEIL_AGENT_STATUS', message, options);
  }
}

export interface ReadEventsOptions {
  filter?: EventFilter;
  follow?: boolean;
  limit?: number;
  signal?: AbortSignal;
}

/** Checks a status server URL ("http://127.0.0.1:9876"). */
export function checkStatusUrl(v: string): URL {
  let u: URL;
  try {
    u = new URL(v);
  } catch {
    throw new ConfigError(`Invalid --node-status ${quote(v)}: give the agent's status address such as "http://127.0.0.1:9876"`);
  }
  if (u.protocol !== 'http:') throw new ConfigError(`Invalid --node-status ${quote(v)}: the status server speaks plain http on loopback; use "http://HOST:PORT"`);
  return u;
}

/** Streams the events; resolves with how many were read when the stream ends. */
export function readAgentEvents(base: URL, onRecord: (r: EventRecord) => void, o: ReadEventsOptions = {}): Promise<number> {
  const q = eventFilterQuery(o.filter ?? {});
  if (o.follow) q.set('follow', '1');
  if (o.limit !== undefined) q.set('limit', String(o.limit));
  const url = new URL(`/events?${q}`, base);
  return new Promise((resolve, reject) => {
    let n = 0;
    const req = request(url, { method: 'GET', signal: o.signal }, (res) => {
      res.setEncoding('utf8');
      if (res.statusCode !== 200) {
        let body = '';
        res.on('data', (d: string) => (body = (body + d).slice(0, 2000)));
        res.on('end', () => reject(new AgentStatusError(`The agent at ${quote(base.origin)} refused the event request (HTTP ${res.statusCode}): ${body.trim() || 'no reason given'}`)));
        return;
      }
      let buf = '';
      res.on('data', (d: string) => {
        buf += d;
        let i;
        while ((i = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, i);
          buf = buf.slice(i + 1);
          if (line.trim() === '') continue;
          n++;
          onRecord(JSON.parse(line) as EventRecord);
        }
      });
      const cut = (cause?: unknown) =>
        o.signal?.aborted
          ? resolve(n)
          : reject(new AgentStatusError(`The event stream from ${quote(base.origin)} was cut after ${n} events: the agent stopped, or dropped this reader for reading too slowly; run the command again`, { cause }));
      res.on('end', () => resolve(n));
      res.on('error', cut);
      res.on('close', () => {
        if (!res.complete) cut();
      });
    });
    req.on('error', (err: NodeJS.ErrnoException) => {
      if (o.signal?.aborted) return resolve(n);
      reject(new AgentStatusError(`Cannot read events from the agent at ${quote(base.origin)}: ${err.code ?? err.message}; check that the agent runs and that --node-status is its status address`, { cause: err }));
    });
    req.end();
  });
}
