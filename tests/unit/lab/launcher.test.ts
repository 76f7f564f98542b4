import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isRunning, launch, processStartTime, stop, supervise, type ProcessRecord } from '../../../agent/lab/launcher.js';
import { eventually } from '../../support/netns.js';

let dir: string;
const started: ProcessRecord[] = [];
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'veil-launcher-'));
});
afterEach(async () => {
  for (const r of started.splice(0)) await stop(r, { timeoutMs: 500 });
  await rm(dir, { recursive: true, force: true });
});

describe('process launcher', () => {
  it('launches a detached process with its output in the log file, and stops it', async () => {
    const log = join(dir, 'logs', 'p.log');
    const rec = await launch({ name: 'sleeper', command: 'sh', args: ['-c', 'echo started; exec sleep 60'], log });
    started.push(rec);
    expect(await isRunning(rec)).toBe(true);
    await eventually(async () => (await readFile(log, 'utf8')).includes('started'), { what: 'log output' });
    expect((await stat(log)).mode & 0o777).toBe(0o640);
    await stop(rec);
    expect(await isRunning(rec)).toBe(false);
  });

  it('stop() escalates to SIGKILL for a process that ignores SIGTERM', async () => {
    const rec = await launch({ name: 'stubborn', command: 'sh', args: ['-c', 'trap "" TERM; while :; do sleep 0.05; done'], log: join(dir, 's.log') });
    started.push(rec);
    await new Promise((r) => setTimeout(r, 100));
    const t0 = Date.now();
    await stop(rec, { timeoutMs: 300 });
    expect(await isRunning(rec)).toBe(false);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(250);
  });

  it('never signals a process whose start time differs from the record (reused pid)', async () => {
    const rec = await launch({ name: 'victim', command: 'sleep', args: ['60'], log: join(dir, 'v.log') });
    started.push(rec);
    const stale: ProcessRecord = { ...rec, startTime: String(Number(rec.startTime) - 1) };
    expect(await isRunning(stale)).toBe(false);
    await stop(stale);
    expect(await isRunning(rec)).toBe(true);
    expect(await processStartTime(rec.pid)).toBe(rec.startTime);
  });

  it('reports a program that does not exist', async () => {
    await expect(launch({ name: 'ghost', command: '/nonexistent/veil-ghost', args: [], log: join(dir, 'g.log') })).rejects.toMatchObject({
      code: 'VEIL_LAB_PROCESS',
      message: 'Cannot start ghost: program "/nonexistent/veil-ghost" is not installed or not executable',
    });
  });

  it('supervise() restarts a process that died and stops it at the end', async () => {
    const spec = { name: 'worker', command: 'sleep', args: ['60'], log: join(dir, 'w.log') };
    const first = await launch(spec);
    started.push(first);
    const restarted: ProcessRecord[] = [];
    const sup = supervise(spec, first, { intervalMs: 20, onRestart: (r) => restarted.push(r) });
    try {
      process.kill(first.pid, 'SIGKILL');
      const second = await eventually(() => restarted[0], { what: 'a restart', timeoutMs: 5_000 });
      expect(second.pid).not.toBe(first.pid);
      expect(await isRunning(second)).toBe(true);
      expect(sup.restarts()).toBe(1);
    } finally {
      await sup.stop();
    }
    expect(await isRunning(sup.current())).toBe(false);
  });

  it('supervise() gives up after maxRestarts and says so', async () => {
    const spec = { name: 'crasher', command: 'sh', args: ['-c', 'exit 3'], log: join(dir, 'c.log') };
    const first = await launch(spec).catch(() => null);
    // A process that exits at once may already be gone when launch() looks: either way it is not running.
    const rec = first ?? { name: 'crasher', pid: 999_999, startTime: '0', log: spec.log };
    let gaveUp: Error | undefined;
    const sup = supervise(spec, rec, { intervalMs: 10, maxRestarts: 2, onGiveUp: (e) => (gaveUp = e) });
    await eventually(() => gaveUp, { what: 'give up', timeoutMs: 10_000 });
    expect(gaveUp?.message).toMatch(/Crasher exited 3 times: see/);
    await sup.stop();
  });
});
