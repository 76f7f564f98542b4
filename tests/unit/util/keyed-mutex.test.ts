import { describe, expect, it } from 'vitest';
import { KeyedMutex } from '../../../agent/util/keyed-mutex.js';

const tick = () => new Promise((r) => setTimeout(r, 5));

describe('KeyedMutex', () => {
  it('runs calls with one key one after another, also after a failure', async () => {
    const m = new KeyedMutex();
    const order: string[] = [];
    const a = m.run('wg0', async () => {
      order.push('a start');
      await tick();
      order.push('a end');
      throw new Error('a failed');
    });
    const b = m.run('wg0', async () => {
      order.push('b start');
      await tick();
      order.push('b end');
      return 'b';
    });
    await expect(a).rejects.toThrow('a failed');
    await expect(b).resolves.toBe('b');
    expect(order).toEqual(['a start', 'a end', 'b start', 'b end']);
  });

  it('runs calls with different keys concurrently and idle() waits for all', async () => {
    const m = new KeyedMutex();
    const order: string[] = [];
    void m.run('wg0', async () => {
      order.push('wg0 start');
      await tick();
      order.push('wg0 end');
    });
    void m.run('wg1', async () => {
      order.push('wg1 start');
      await tick();
      order.push('wg1 end');
    });
    await m.idle();
    expect(order.slice(0, 2).sort()).toEqual(['wg0 start', 'wg1 start']);
    expect(order).toHaveLength(4);
  });
});
