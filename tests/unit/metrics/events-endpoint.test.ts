import { connect } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { EventFeed } from '../../../agent/datapath/event-feed.js';
import type { EventRecord } from '../../../agent/datapath/event-record.js';
import { Health } from '../../../agent/lifecycle/health.js';
import { eventsRoute } from '../../../agent/metrics/events-endpoint.js';
import { AgentStatusError, checkStatusUrl, readAgentEvents } from '../../../agent/metrics/events-client.js';
import { createAgentMetrics } from '../../../agent/metrics/metrics.js';
import { StatusServer } from '../../../agent/metrics/status-server.js';
import { flowEvent, sampleEvent } from '../datapath/event-sample.js';

let server: StatusServer | undefined;
afterEach(async () => {
  await server?.stop();
  server = undefined;
});

async function start(feed: EventFeed, maxBufferedBytes?: number) {
  server = new StatusServer({
    host: '127.0.0.1',
    port: 0,
    health: new Health(),
    registry: createAgentMetrics({ defaultMetrics: false }).registry,
    ready: () => true,
    routes: { '/events': eventsRoute(feed, maxBufferedBytes === undefined ? {} : { maxBufferedBytes }) },
  });
  const addr = await server.start();
  return new URL(`http://127.0.0.1:${addr.port}`);
}

const until = async (cond: () => boolean, what: string) => {
  const deadline = Date.now() + 5000;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
};

describe('GET /events', () => {
  it('returns the recent events as NDJSON, filtered and limited', async () => {
    const feed = new EventFeed();
    feed.push(sampleEvent({ sport: 1 }));
    feed.push(flowEvent({ sport: 2 }));
    feed.push(sampleEvent({ sport: 3 }));
    const base = await start(feed);
    const res = await fetch(new URL('/events?type=drop', base));
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/x-ndjson');
    const lines = (await res.text()).trim().split('\n').map((l) => JSON.parse(l) as EventRecord);
    expect(lines.map((r) => [r.type, r.sport])).toEqual([['drop', 1], ['drop', 3]]);
    const got: EventRecord[] = [];
    expect(await readAgentEvents(base, (r) => got.push(r), { limit: 1 })).toBe(1);
    expect(got[0]!.sport).toBe(3);
  });

  it('refuses a bad filter with 400 and the reason, and other methods with 405', async () => {
    const base = await start(new EventFeed());
    const res = await fetch(new URL('/events?reason=bogus', base));
    expect(res.status).toBe(400);
    expect(await res.text()).toMatch(/Unknown event reason "bogus"/);
    expect((await fetch(new URL('/events?limit=x', base))).status).toBe(400);
    expect((await fetch(new URL('/events', base), { method: 'POST' })).status).toBe(405);
    await expect(readAgentEvents(base, () => undefined, { filter: { reason: 'NOPE' } })).rejects.toThrow(AgentStatusError);
    await expect(readAgentEvents(base, () => undefined, { filter: { reason: 'NOPE' } })).rejects.toThrow(/refused the event request \(HTTP 400\): Unknown event reason "NOPE"/);
  });

  it('follows: recent events, then new ones as they come, until the reader aborts', async () => {
    const feed = new EventFeed();
    feed.push(sampleEvent({ sport: 1 }));
    const base = await start(feed);
    const got: EventRecord[] = [];
    const abort = new AbortController();
    const done = readAgentEvents(base, (r) => got.push(r), { follow: true, filter: { type: 'drop' }, signal: abort.signal });
    await until(() => got.length === 1 && feed.stats.subscribers === 1, 'the history and the subscription');
    feed.push(flowEvent({ sport: 2 }));
    feed.push(sampleEvent({ sport: 3 }));
    await until(() => got.length === 2, 'the followed event');
    expect(got.map((r) => r.sport)).toEqual([1, 3]);
    abort.abort();
    expect(await done).toBe(2);
    await until(() => feed.stats.subscribers === 0, 'the subscription to end');
  });

  it('disconnects a follower that does not read instead of buffering without bound', async () => {
    const feed = new EventFeed();
    const base = await start(feed, 4096);
    // a client that sends the request and never reads
    const sock = connect(Number(base.port), '127.0.0.1');
    sock.pause();
    await new Promise<void>((r) => sock.once('connect', () => r()));
    sock.write('GET /events?follow=1 HTTP/1.1\r\nHost: x\r\n\r\n');
    await until(() => feed.stats.subscribers === 1, 'the follower');
    const big = sampleEvent();
    for (let i = 0; i < 200_000 && feed.stats.slowSubscribers === 0; i++) {
      feed.push(big);
      if (i % 1000 === 0) await new Promise((r) => setImmediate(r));
    }
    expect(feed.stats.slowSubscribers).toBe(1);
    expect(feed.stats.subscribers).toBe(0);
    sock.destroy();
  });

  it('the client explains an unreachable agent and a bad URL', async () => {
    const base = await start(new EventFeed());
    await server!.stop();
    server = undefined;
    await expect(readAgentEvents(base, () => undefined)).rejects.toThrow(/Cannot read events from the agent at "http:\/\/127.0.0.1:\d+": ECONNREFUSED; check that the agent runs/);
    expect(() => checkStatusUrl('127.0.0.1:9876')).toThrow(/Invalid --node-status "127.0.0.1:9876"/);
    expect(() => checkStatusUrl('https://127.0.0.1:9876')).toThrow(/plain http/);
  });
});

describe('events client', () => {
  it('reports a stream the agent cut (here: the agent stopping) as an error, with how many events it read', async () => {
    const feed = new EventFeed();
    feed.push(sampleEvent());
    const base = await start(feed);
    const got: EventRecord[] = [];
    const done = readAgentEvents(base, (r) => got.push(r), { follow: true });
    await until(() => got.length === 1, 'the first event');
    await server!.stop();
    server = undefined;
    await expect(done).rejects.toThrow(/The event stream from "http:\/\/127.0.0.1:\d+" was cut after 1 events/);
  });
});
