import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../../agent/errors.js';
import { StoreUnavailableError } from '../../../agent/store/errors.js';
import { untilStoreAnswers } from '../../../agent/store/until-store-answers.js';

const unavailable = () => new StoreUnavailableError(['http://127.0.0.1:2379'], 'Cannot reach etcd at "http://127.0.0.1:2379" (get)');

describe('untilStoreAnswers()', () => {
  it('repeats the call while the store is unavailable and returns its first answer', async () => {
    let calls = 0;
    const retries: number[] = [];
    const v = await untilStoreAnswers(
      async () => {
        calls++;
        if (calls < 3) throw unavailable();
        return 'answer';
      },
      { timeoutMs: 10_000, signal: new AbortController().signal, onRetry: (_e, ms) => retries.push(ms) },
    );
    expect(v).toBe('answer');
    expect(calls).toBe(3);
    expect(retries).toHaveLength(2);
    for (const ms of retries) expect(ms).toBeGreaterThan(0);
  });

  it('throws any other error at once', async () => {
    let calls = 0;
    const err = new ValidationError('key', 'Invalid key "x"');
    await expect(
      untilStoreAnswers(
        async () => {
          calls++;
          throw err;
        },
        { timeoutMs: 10_000, signal: new AbortController().signal },
      ),
    ).rejects.toBe(err);
    expect(calls).toBe(1);
  });

  it('throws the last unavailability once the deadline has passed', async () => {
    let calls = 0;
    const t0 = Date.now();
    await expect(
      untilStoreAnswers(
        async () => {
          calls++;
          throw unavailable();
        },
        { timeoutMs: 700, signal: new AbortController().signal },
      ),
    ).rejects.toBeInstanceOf(StoreUnavailableError);
    expect(calls).toBeGreaterThan(1);
    expect(Date.now() - t0).toBeLessThan(3_000);
  });

  it('stops waiting when the signal aborts', async () => {
    const ac = new AbortController();
    let calls = 0;
    const p = untilStoreAnswers(
      async () => {
        calls++;
        throw unavailable();
      },
      { timeoutMs: 60_000, signal: ac.signal },
    );
    setTimeout(() => ac.abort(), 100);
    const t0 = Date.now();
    await expect(p).rejects.toBeInstanceOf(StoreUnavailableError);
    expect(Date.now() - t0).toBeLessThan(2_000);
    expect(calls).toBeGreaterThanOrEqual(1);
  });
});
