/**
 * Helpers for privileged tests: every test creates its own network namespaces (unique names)
 * and removes them afterwards. Tests may use `ip`, `wg`, `tcpdump` to set up topology and to
 * cross-check what the addon did; the code under test never does.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import { afterEach } from 'vitest';

const execFileP = promisify(execFile);

export interface RunResult {
  stdout: string;
  stderr: string;
}

/** Runs a program and returns its output; rejects with stderr in the message on failure. */
export async function run(cmd: string, args: string[], opts: { timeoutMs?: number } = {}): Promise<RunResult> {
  try {
    const r = await execFileP(cmd, args, { timeout: opts.timeoutMs ?? 30_000, maxBuffer: 64 << 20 });
    return { stdout: r.stdout, stderr: r.stderr };
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`${cmd} ${args.join(' ')} failed: ${e.stderr?.trim() || e.message}`, { cause: err });
  }
}

/** Runs a program inside a namespace (`ip netns exec NS ...`). */
export function runIn(netns: string, cmd: string, args: string[], opts: { timeoutMs?: number } = {}): Promise<RunResult> {
  return run('ip', ['netns', 'exec', netns, cmd, ...args], opts);
}

/** `ip -j ...` inside a namespace, parsed. */
export async function ipJson<T = unknown>(netns: string, args: string[]): Promise<T> {
  const r = await run('ip', ['-n', netns, '-j', ...args]);
  return (r.stdout.trim() ? JSON.parse(r.stdout) : []) as T;
}

/** A unique, short namespace/device-safe name ("vt" + 8 hex chars + suffix). */
export function uniqueName(prefix = 'vt'): string {
  return `${prefix}${randomBytes(4).toString('hex')}`;
}

export class NetnsSet {
  readonly names: string[] = [];
  private readonly children: ChildProcess[] = [];

  /** Creates a namespace with loopback up. */
  async add(prefix = 'vt'): Promise<string> {
    const name = uniqueName(prefix);
    await run('ip', ['netns', 'add', name]);
    this.names.push(name);
    await run('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
    return name;
  }

  /** Starts a long-running process inside a namespace; killed by cleanup(). */
  spawnIn(netns: string, cmd: string, args: string[]): ChildProcess {
    const child = spawn('ip', ['netns', 'exec', netns, cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.children.push(child);
    return child;
  }

  /** Kills spawned processes and deletes every namespace this set created. */
  async cleanup(): Promise<void> {
    for (const c of this.children) {
      if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    }
    for (const n of this.names.splice(0)) {
      await run('ip', ['netns', 'del', n]).catch(() => undefined);
    }
  }
}

/**
 * A namespace factory for one test file: every namespace it creates is removed after the test
 * that created it. Call at module level.
 */
export function netnsPerTest(prefix = 'vt'): () => Promise<string> {
  const set = new NetnsSet();
  afterEach(() => set.cleanup());
  return () => set.add(prefix);
}

/** Joins two namespaces with a veth pair and gives each end an address. */
export async function vethPair(
  a: string,
  b: string,
  opts: { aName?: string; bName?: string; aAddr: string; bAddr: string },
): Promise<{ aName: string; bName: string }> {
  const aName = opts.aName ?? 'eth0';
  const bName = opts.bName ?? 'eth0';
  const tmpA = uniqueName('va');
  const tmpB = uniqueName('vb');
  await run('ip', ['link', 'add', tmpA, 'type', 'veth', 'peer', 'name', tmpB]);
  await run('ip', ['link', 'set', tmpA, 'netns', a, 'name', aName]);
  await run('ip', ['link', 'set', tmpB, 'netns', b, 'name', bName]);
  await run('ip', ['-n', a, 'addr', 'add', opts.aAddr, 'dev', aName]);
  await run('ip', ['-n', b, 'addr', 'add', opts.bAddr, 'dev', bName]);
  await run('ip', ['-n', a, 'link', 'set', aName, 'up']);
  await run('ip', ['-n', b, 'link', 'set', bName, 'up']);
  return { aName, bName };
}

/** Polls `check` until it returns a truthy value or the deadline passes. */
export async function eventually<T>(check: () => Promise<T | undefined | false> | T | undefined | false, opts: { timeoutMs?: number; intervalMs?: number; what?: string } = {}): Promise<T> {
  const deadline = Date.now() + (opts.timeoutMs ?? 10_000);
  let lastErr: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v) return v;
    } catch (err) {
      lastErr = err;
    }
    if (Date.now() > deadline) {
      throw new Error(`Timed out waiting for ${opts.what ?? 'condition'}`, { cause: lastErr });
    }
    await new Promise((r) => setTimeout(r, opts.intervalMs ?? 100));
  }
}
