import { describe, expect, it } from 'vitest';
import { EventFeed } from '../../../agent/datapath/event-feed.js';
import type { EventRecord } from '../../../agent/datapath/event-record.js';
import { flowEvent, sampleEvent } from './event-sample.js';

describe('EventFeed', () => {
  it('keeps a bounded history of the most recent events, oldest first', () => {
    const feed = new EventFeed({ history: 3 });
    for (let i = 1; i <= 5; i++) feed.push(sampleEvent({ sport: i }));
    expect(feed.recent().map((r) => r.sport)).toEqual([3, 4, 5]);
    expect(feed.recent({}, 2).map((r) => r.sport)).toEqual([4, 5]);
    expect(feed.stats).toMatchObject({ received: 5, drops: 5, flows: 0 });
  });

  it('filters the history and counts by type', () => {
    const feed = new EventFeed();
    feed.push(sampleEvent());
    feed.push(flowEvent());
    feed.push(sampleEvent({ srcIdentity: 301 }));
    expect(feed.recent({ type: 'flow' })).toHaveLength(1);
    expect(feed.recent({ identity: 301 }).map((r) => r.srcIdentity)).toEqual([301]);
    expect(feed.stats).toMatchObject({ received: 3, drops: 2, flows: 1 });
  });

  it('describes identities and reports every record', () => {
    const seen: EventRecord[] = [];
    const feed = new EventFeed({ describe: (id) => (id === 400 ? 'cidr:10.0.2.0/24' : undefined), onRecord: (r) => seen.push(r) });
    feed.push(sampleEvent());
    expect(seen[0]!.dstLabels).toBe('cidr:10.0.2.0/24');
    expect(seen[0]!.srcLabels).toBeUndefined();
  });

  it('hands matching events to subscribers and drops one that cannot keep up, without blocking the others', () => {
    const feed = new EventFeed({ maxSubscribers: 2 });
    const fast: EventRecord[] = [];
    let slowTaken = 0;
    const dropped: string[] = [];
    const unsubscribe = feed.subscribe({ filter: { type: 'drop' }, send: (r) => (fast.push(r), true), dropped: (why) => dropped.push(`fast:${why}`) });
    expect(unsubscribe).toBeTypeOf('function');
    feed.subscribe({ filter: {}, send: () => ++slowTaken <= 2, dropped: (why) => dropped.push(`slow:${why}`) });
    expect(feed.subscribe({ filter: {}, send: () => true, dropped: () => undefined })).toBe(false);
    for (let i = 0; i < 4; i++) feed.push(sampleEvent({ sport: i }));
    feed.push(flowEvent());
    expect(fast.map((r) => r.sport)).toEqual([0, 1, 2, 3]);
    expect(slowTaken).toBe(3);
    expect(dropped).toEqual(['slow:slow']);
    expect(feed.stats).toMatchObject({ subscribers: 1, slowSubscribers: 1 });
    (unsubscribe as () => void)();
    expect(feed.stats.subscribers).toBe(0);
    feed.push(sampleEvent());
    expect(fast).toHaveLength(4);
  });

  it('closing ends every subscriber', () => {
    const feed = new EventFeed();
    const why: string[] = [];
    feed.subscribe({ filter: {}, send: () => true, dropped: (w) => why.push(w) });
    feed.close();
    expect(why).toEqual(['closed']);
    expect(feed.stats.subscribers).toBe(0);
  });
});
