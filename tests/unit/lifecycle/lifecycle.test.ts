import { describe, expect, it } from 'vitest';
import { Lifecycle, LifecycleError } from '../../../agent/lifecycle/lifecycle.js';

function recorder() {
  const events: string[] = [];
  const hook = (name: string, fail?: 'start' | 'stop') => ({
    name,
    start() {
      events.push(`start ${name}`);
      if (fail === 'start') throw new Error(`${name} broke`);
    },
    stop() {
      events.push(`stop ${name}`);
      if (fail === 'stop') throw new Error(`${name} would not stop`);
    },
  });
  return { events, hook };
}

describe('Lifecycle', () => {
  it('starts hooks in order and stops them in reverse', async () => {
    const { events, hook } = recorder();
    const lc = new Lifecycle();
    lc.append(hook('store'));
    lc.append(hook('datapath'));
    lc.append(hook('reconciler'));
    await lc.start(new AbortController().signal);
    await lc.stop();
    expect(events).toEqual(['start store', 'start datapath', 'start reconciler', 'stop reconciler', 'stop datapath', 'stop store']);
  });

  it('a failed start stops what already started, in reverse, and names the hook', async () => {
    const { events, hook } = recorder();
    const lc = new Lifecycle();
    lc.append(hook('store'));
    lc.append(hook('datapath'));
    lc.append(hook('reconciler', 'start'));
    lc.append(hook('never'));
    const err = await lc.start(new AbortController().signal).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LifecycleError);
    expect((err as Error).message).toBe('Cannot start "reconciler": reconciler broke');
    expect(events).toEqual(['start store', 'start datapath', 'start reconciler', 'stop datapath', 'stop store']);
    expect(lc.state).toBe('stopped');
  });

  it('stop runs every hook even when one fails, then reports the failure', async () => {
    const { events, hook } = recorder();
    const lc = new Lifecycle();
    lc.append(hook('a'));
    lc.append(hook('b', 'stop'));
    lc.append(hook('c'));
    await lc.start(new AbortController().signal);
    await expect(lc.stop()).rejects.toThrow('Stop failed: b would not stop');
    expect(events.slice(3)).toEqual(['stop c', 'stop b', 'stop a']);
    await lc.stop(); // idempotent
    expect(events).toHaveLength(6);
  });

  it('an aborted signal interrupts start between hooks', async () => {
    const { events, hook } = recorder();
    const ac = new AbortController();
    const lc = new Lifecycle();
    lc.append(hook('a'));
    lc.append({ name: 'aborter', start: () => ac.abort() });
    lc.append(hook('b'));
    await expect(lc.start(ac.signal)).rejects.toThrow('Start interrupted before "b"');
    expect(events).toEqual(['start a', 'stop a']);
  });

  it('refuses duplicate names and late registration', async () => {
    const lc = new Lifecycle();
    lc.append({ name: 'x' });
    expect(() => lc.append({ name: 'x' })).toThrow('Hook "x" is already registered');
    await lc.start(new AbortController().signal);
    expect(() => lc.append({ name: 'y' })).toThrow('Cannot add hook "y"');
    await expect(lc.start(new AbortController().signal)).rejects.toThrow('Cannot start: the lifecycle is "started"');
  });
});
