/**
 * GET /events on the agent's status server: datapath events as NDJSON (one EventRecord per line,
 * agent/datapath/event-record.ts). Query parameters: the filter (type, reason, hook, identity,
 * address; agent/datapath/event-filter.ts), `limit` (recent events first sent, default 100, at
 * most the history size) and `follow=1` (then stay open and stream new events as they come).
 *
 * A follower whose connection does not drain (more than `maxBufferedBytes` waiting in the
 * socket's buffer) is disconnected rather than buffered without bound; at most a fixed number of
 * followers are served at once (503 beyond). docs/agent.md "Events".
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { VeilError } from '../errors.js';
import type { EventFeed } from '../datapath/event-feed.js';
import { parseEventFilter } from '../datapath/event-filter.js';

export const NDJSON = 'application/x-ndjson';

export interface EventsRouteOptions {
  /** Bytes allowed to wait in one follower's socket buffer before it is dropped (default 256 KiB). */
  maxBufferedBytes?: number;
}

function refuse(res: ServerResponse, code: number, text: string): void {
  res.writeHead(code, { 'content-type': 'text/plain', 'cache-control': 'no-store' });
  res.end(`${text}\n`);
}

export function eventsRoute(feed: EventFeed, opts: EventsRouteOptions = {}): (req: IncomingMessage, res: ServerResponse, url: URL) => void {
  const maxBuffered = opts.maxBufferedBytes ?? 256 * 1024;
  return (req, res, url) => {
    let filter;
    let limit = 100;
    try {
      filter = parseEventFilter(url.searchParams);
      const l = url.searchParams.get('limit');
      if (l !== null) {
        if (!/^\d+$/.test(l)) throw new VeilError('EINVAL', `Invalid limit "${l}": use a number of events such as 100`);
        limit = Number(l);
      }
    } catch (err) {
      if (err instanceof VeilError) return refuse(res, 400, err.message);
      throw err;
    }
    const follow = ['1', 'true', 'yes'].includes(url.searchParams.get('follow') ?? '');
    const lines = feed.recent(filter, limit).map((r) => `${JSON.stringify(r)}\n`);
    if (!follow) {
      res.writeHead(200, { 'content-type': NDJSON, 'cache-control': 'no-store' });
      res.end(lines.join(''));
      return;
    }
    let unsubscribe: (() => void) | undefined;
    const sub = feed.subscribe({
      filter,
      send: (r) => {
        if (res.writableLength > maxBuffered) return false;
        res.write(`${JSON.stringify(r)}\n`);
        return true;
      },
      dropped: (reason) => {
        unsubscribe = undefined;
        if (reason === 'slow') res.destroy();
        else res.end();
      },
    });
    if (sub === false) return refuse(res, 503, 'Too many event streams are open: close one or read without follow');
    unsubscribe = sub;
    res.writeHead(200, { 'content-type': NDJSON, 'cache-control': 'no-store' });
    res.flushHeaders();
    if (lines.length > 0) res.write(lines.join(''));
    req.socket.setTimeout(0);
    res.once('close', () => unsubscribe?.());
  };
}
