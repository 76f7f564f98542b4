/**
 * Launches the lab's per-node (and shared) processes: spawn inside a network namespace with
 * output to a log file, tell whether one still runs, supervise it (restart with bounded backoff
 * while the supervising process lives), stop it. Processes are detached: they outlive the
 * `veil lab up` that started them, and a later `veil lab down` stops them from the record alone.
 *
 * A process is identified by pid *and* start time (field 22 of /proc/PID/stat), so a pid the
 * kernel reused for a stranger is never signalled.
 *
 * Entering the namespace is done by the project's launcher binary `veil-netns-exec` (built with
 * the addon; the same as `ip netns exec NS PROG ARGS`), which execs the program: the recorded
 * pid is the program's own.
 */
import { spawn } from 'node:child_process';
import { accessSync, constants, existsSync } from 'node:fs';
import { mkdir, open, readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { MissingDependencyError } from '../errors.js';
import type { Logger } from '../log/logger.js';
import { quote } from '../net/ip.js';
import { projectRoot } from '../project-root.js';
import { Backoff } from '../util/backoff.js';
import { LabError, LAB_PROCESS } from './errors.js';
import { findProgram } from './programs.js';

export interface LaunchSpec {
  /** A short name for messages and the record ("etcd", "agent-node-1"). */
  name: string;
  command: string;
  args: string[];
  /** Network namespace to run in (a name under /run/netns); omitted = the caller's. */
  netns?: string;
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** stdout and stderr are appended here (file created 0640). */
  log: string;
}

export interface ProcessRecord {
  name: string;
  pid: number;
  /** Start time in clock ticks since boot, as /proc/PID/stat reports it. */
  startTime: string;
  log: string;
  netns?: string;
}

/** The launcher binary built by scripts/build.sh. */
export function netnsExecPath(): string {
  return join(projectRoot(), 'build', 'Release', 'veil-netns-exec');
}

/** Start time of a pid (field 22 of /proc/PID/stat), or null when there is no such process. */
export async function processStartTime(pid: number): Promise<string | null> {
  let stat: string;
  try {
    stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  // The command name (field 2) is in parentheses and may contain spaces: split after the last ")".
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // rest[0] is field 3 (state); field 22 is rest[19].
  if (rest[0] === 'Z' || rest[0] === 'X') return null;
  return rest[19] ?? null;
}

/** True when the recorded process (same pid, same start time) is still running. */
export async function isRunning(rec: ProcessRecord): Promise<boolean> {
  return (await processStartTime(rec.pid)) === rec.startTime;
}

/** Spawns a detached process; resolves once it runs (its record) or rejects when it cannot start. */
export async function launch(spec: LaunchSpec): Promise<ProcessRecord> {
  // Through veil-netns-exec a missing program would only show as exit status 127 later.
  if (!(spec.command.includes('/') ? executable(spec.command) : findProgram(spec.command))) {
    throw new LabError(LAB_PROCESS, `Cannot start ${spec.name}: program ${quote(spec.command)} is not installed or not executable`);
  }
  await mkdir(dirname(spec.log), { recursive: true, mode: 0o700 });
  const out = await open(spec.log, 'a', 0o640);
  let command = spec.command;
  let args = spec.args;
  if (spec.netns !== undefined) {
    const exec = netnsExecPath();
    if (!existsSync(exec)) {
      await out.close();
      throw new MissingDependencyError(`Launcher ${quote(exec)} is not built: run "npm run build" in the checkout`);
    }
    command = exec;
    args = ['--netns', spec.netns, '--', spec.command, ...spec.args];
  }
  try {
    const child = spawn(command, args, {
      detached: true,
      stdio: ['ignore', out.fd, out.fd],
      cwd: spec.cwd,
      env: spec.env ?? process.env,
    });
    const pid = await new Promise<number>((resolve, reject) => {
      child.once('error', (err) => reject(new LabError(LAB_PROCESS, `Cannot start ${spec.name} (${quote(spec.command)}): ${err.message}`, { cause: err })));
      child.once('spawn', () => resolve(child.pid as number));
    });
    child.unref();
    const startTime = await processStartTime(pid);
    if (startTime === null) {
      throw new LabError(LAB_PROCESS, `${capital(spec.name)} exited at once: see ${quote(spec.log)}`);
    }
    return { name: spec.name, pid, startTime, log: spec.log, ...(spec.netns !== undefined ? { netns: spec.netns } : {}) };
  } finally {
    await out.close();
  }
}

/**
 * Stops a recorded process: SIGTERM, then SIGKILL after `timeoutMs`. A process that is already
 * gone (or whose pid now belongs to another process) is left alone.
 */
export async function stop(rec: ProcessRecord, opts: { timeoutMs?: number } = {}): Promise<void> {
  if (!(await isRunning(rec))) return;
  signal(rec.pid, 'SIGTERM');
  const deadline = Date.now() + (opts.timeoutMs ?? 5_000);
  while (Date.now() < deadline) {
    if (!(await isRunning(rec))) return;
    await sleep(20);
  }
  signal(rec.pid, 'SIGKILL');
  const killDeadline = Date.now() + 5_000;
  while (await isRunning(rec)) {
    if (Date.now() > killDeadline) throw new LabError(LAB_PROCESS, `${capital(rec.name)} (pid ${rec.pid}) survived SIGKILL: check "ps ${rec.pid}"`);
    await sleep(20);
  }
}

export interface Supervision {
  /** The process currently running under supervision. */
  current(): ProcessRecord;
  /** How often it was restarted. */
  restarts(): number;
  /** Ends supervision and stops the process. */
  stop(): Promise<void>;
}

/**
 * Keeps a process running while the caller lives: polls every `intervalMs`; when the process is
 * gone it is launched again after a backoff, at most `maxRestarts` times (then `onGiveUp`).
 */
export function supervise(
  spec: LaunchSpec,
  first: ProcessRecord,
  opts: { intervalMs?: number; maxRestarts?: number; logger?: Logger; onRestart?: (rec: ProcessRecord) => void; onGiveUp?: (err: Error) => void } = {},
): Supervision {
  let rec = first;
  let restarts = 0;
  let stopped = false;
  const backoff = new Backoff(100, 5_000);
  const maxRestarts = opts.maxRestarts ?? 10;
  let timer: NodeJS.Timeout | undefined;
  let busy: Promise<void> = Promise.resolve();

  const tick = async (): Promise<void> => {
    if (stopped || (await isRunning(rec))) return;
    if (restarts >= maxRestarts) {
      stopped = true;
      opts.onGiveUp?.(new LabError(LAB_PROCESS, `${capital(spec.name)} exited ${restarts + 1} times: see ${quote(spec.log)}`));
      return;
    }
    await sleep(backoff.next());
    if (stopped) return;
    restarts++;
    try {
      rec = await launch(spec);
    } catch (err) {
      // Counted as an attempt; the next tick sees it is not running and tries again (or gives up).
      opts.logger?.warn({ process: spec.name, restarts, err }, 'Lab process did not restart');
      return;
    }
    opts.logger?.warn({ process: spec.name, pid: rec.pid, restarts }, 'Restarted lab process');
    opts.onRestart?.(rec);
  };
  const schedule = (): void => {
    timer = setTimeout(() => {
      busy = tick().catch((err: Error) => opts.onGiveUp?.(err)).finally(() => {
        if (!stopped) schedule();
      });
    }, opts.intervalMs ?? 200);
    timer.unref();
  };
  schedule();
  return {
    current: () => rec,
    restarts: () => restarts,
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      await busy;
      await stop(rec);
    },
  };
}

function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
  }
}

function capital(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
