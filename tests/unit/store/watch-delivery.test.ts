/** WatchDelivery: the one place that makes watch delivery exactly-once and in order. */
import { describe, expect, it } from 'vitest';
import { StoreCompactedError, WatchHandlerError } from '../../../agent/store/errors.js';
import type { WatchEvent } from '../../../agent/store/store.js';
import { WatchDelivery, type RevisionedEvent } from '../../../agent/store/watch-delivery.js';
import { eventually } from '../../support/netns.js';

function put(rev: number, key = `/k${rev}`): RevisionedEvent {
  const r = String(rev);
  return { revision: BigInt(rev), event: { type: 'put', kv: { key, value: Buffer.from(r), createRevision: r, modRevision: r } } };
}
const revs = (events: WatchEvent[]) => events.map((e) => (e.type === 'put' ? e.kv.modRevision : e.modRevision));

function setup(after = 0) {
  const events: WatchEvent[] = [];
  const errors: Error[] = [];
  let stops = 0;
  const d = new WatchDelivery('/', { onEvent: (e) => void events.push(e), onError: (e) => void errors.push(e) }, BigInt(after), () => stops++);
  return { d, events, errors, stops: () => stops };
}

describe('WatchDelivery', () => {
  it('drops events at or below the last queued revision when a resumed stream repeats them', async () => {
    const { d, events } = setup(2);
    d.pushBatch([put(1), put(2), put(3), put(4)]);
    d.pushBatch([put(3), put(4), put(5)]);
    await eventually(() => events.length === 3);
    expect(revs(events)).toEqual(['3', '4', '5']);
    expect(d.resumeAfter).toBe(5n);
  });

  it('keeps every event of one revision (a transaction or a lease expiry deleting several keys)', async () => {
    const { d, events } = setup();
    d.pushBatch([put(7, '/a'), put(7, '/b'), put(8)]);
    await eventually(() => events.length === 3);
    expect(revs(events)).toEqual(['7', '7', '8']);
  });

  it('does not call onEvent inside pushBatch (no re-entry into the writer)', () => {
    const { d, events } = setup();
    d.pushBatch([put(1)]);
    expect(events).toHaveLength(0);
  });

  it('delivers queued events before the error of fail(), then stops', async () => {
    const { d, events, errors, stops } = setup();
    d.pushBatch([put(1), put(2)]);
    const err = new StoreCompactedError('3', '9', 'Compacted');
    d.fail(err);
    d.pushBatch([put(3)]);
    await eventually(() => errors.length === 1);
    expect(revs(events)).toEqual(['1', '2']);
    expect(errors[0]).toBe(err);
    expect(stops()).toBe(1);
  });

  it('a throwing handler stops delivery with WatchHandlerError carrying the cause', async () => {
    const errors: Error[] = [];
    const seen: string[] = [];
    const d = new WatchDelivery(
      '/p/',
      {
        onEvent: (e) => {
          seen.push(e.type);
          throw new Error('boom');
        },
        onError: (e) => void errors.push(e),
      },
      0n,
      () => undefined,
    );
    d.pushBatch([put(1), put(2)]);
    await eventually(() => errors.length === 1);
    expect(seen).toHaveLength(1);
    expect(errors[0]).toBeInstanceOf(WatchHandlerError);
    expect(errors[0]!.message).toContain('"/p/"');
    expect((errors[0] as WatchHandlerError).cause).toEqual(new Error('boom'));
  });

  it('close() stops delivery of what is still queued', async () => {
    const { d, events } = setup();
    d.pushBatch([put(1), put(2)]);
    d.close();
    await new Promise((r) => setTimeout(r, 20));
    expect(events).toEqual([]);
  });

  it('advance() moves the resume point forward only', () => {
    const { d } = setup(5);
    d.advance(3n);
    expect(d.resumeAfter).toBe(5n);
    d.advance(9n);
    expect(d.resumeAfter).toBe(9n);
  });
});
