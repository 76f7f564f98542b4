import { describe, expect, it } from 'vitest';
import { Health } from '../../../agent/lifecycle/health.js';
import { Jobs } from '../../../agent/lifecycle/jobs.js';

async function until(cond: () => boolean, ms = 5_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('condition not reached');
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('Health', () => {
  it('reports the worst component status and keeps "since" while the status holds', () => {
    let now = 1_000;
    const h = new Health(() => now);
    expect(h.snapshot().status).toBe('ok');
    h.set('store', 'ok');
    h.set('datapath', 'degraded', 'map full');
    now = 2_000;
    h.set('datapath', 'degraded', 'map still full');
    expect(h.get('datapath')).toEqual({ name: 'datapath', status: 'degraded', detail: 'map still full', since: 1_000 });
    expect(h.snapshot().status).toBe('degraded');
    h.set('x', 'failed', 'gone');
    expect(h.snapshot().status).toBe('failed');
    h.remove('x');
    expect(h.snapshot().components.map((c) => c.name)).toEqual(['datapath', 'store']);
  });
});

describe('Jobs', () => {
  it('oneShot retries with backoff, reports degraded meanwhile and ok after success', async () => {
    const health = new Health();
    const jobs = new Jobs(health);
    let calls = 0;
    const seen: string[] = [];
    await jobs.oneShot(
      'sync',
      async () => {
        calls++;
        seen.push(health.get('job:sync')!.status);
        if (calls < 3) throw new Error(`attempt ${calls} failed`);
      },
      { initialDelayMs: 1, maxDelayMs: 5 },
    );
    expect(calls).toBe(3);
    expect(seen).toEqual(['starting', 'degraded', 'degraded']);
    expect(health.get('job:sync')!.status).toBe('ok');
    await jobs.stop();
  });

  it('oneShot with maxAttempts gives up and reports failed with the error', async () => {
    const health = new Health();
    const jobs = new Jobs(health);
    await jobs.oneShot('x', async () => { throw new Error('no route to etcd'); }, { initialDelayMs: 1, maxAttempts: 2 });
    expect(health.get('job:x')).toMatchObject({ status: 'failed', detail: 'no route to etcd' });
  });

  it('timer runs repeatedly until stop, and stop waits for the running body', async () => {
    const health = new Health();
    const jobs = new Jobs(health);
    let runs = 0;
    let inBody = false;
    jobs.timer('gc', 5, async () => {
      inBody = true;
      runs++;
      await new Promise((r) => setTimeout(r, 2));
      inBody = false;
    });
    await until(() => runs >= 3);
    await jobs.stop();
    expect(inBody).toBe(false);
    const after = runs;
    await new Promise((r) => setTimeout(r, 30));
    expect(runs).toBe(after);
  });

  it('observer restarts a loop that throws and reports degraded with the reason', async () => {
    const health = new Health();
    const jobs = new Jobs(health);
    let starts = 0;
    jobs.observer(
      'watch',
      async (signal) => {
        starts++;
        if (starts === 1) throw new Error('watch stream broke');
        await new Promise<void>((r) => signal.addEventListener('abort', () => r()));
      },
      { initialDelayMs: 1 },
    );
    await until(() => starts === 2);
    expect(health.get('job:watch')).toMatchObject({ status: 'degraded', detail: 'watch stream broke' });
    await jobs.stop();
    expect(starts).toBe(2);
  });
});
