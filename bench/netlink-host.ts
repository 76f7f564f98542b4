/**
 * Host plumbing for the netlink benchmark: running tools, namespaces made and removed per
 * measured run, and the two timers (the addon's call in this process, the tool as a child).
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';

const execFileP = promisify(execFile);

/** Runs a program; rejects with its stderr in the message. */
export async function sh(cmd: string, args: string[], timeoutMs = 120_000): Promise<string> {
  try {
    return (await execFileP(cmd, args, { timeout: timeoutMs, maxBuffer: 256 << 20 })).stdout;
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`${cmd} ${args.join(' ')} failed: ${e.stderr?.trim() || e.message}`, { cause: err });
  }
}

/** Fails naming the Debian package when a tool the benchmark needs is missing. */
export async function requireTool(tool: string, pkg: string): Promise<void> {
  await sh('sh', ['-c', `command -v ${tool}`]).catch(() => {
    throw new Error(`"${tool}" is missing: install the Debian package ${pkg} (bash scripts/setup.sh)`);
  });
}

/** A fresh namespace with loopback up (`ip netns add vbXXXXXXXX`). */
export async function addNetns(): Promise<string> {
  const name = `vb${randomBytes(4).toString('hex')}`;
  await sh('ip', ['netns', 'add', name]);
  await sh('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
  return name;
}

/**
 * Removes a namespace after emptying its route table and SPD synchronously, so that the
 * kernel's asynchronous namespace cleanup has little left to do while the next run is timed.
 */
export async function deleteNetns(name: string): Promise<void> {
  await sh('ip', ['-n', name, 'route', 'flush', 'table', 'main']).catch(() => undefined);
  await sh('ip', ['-n', name, 'xfrm', 'policy', 'flush']).catch(() => undefined);
  await sh('ip', ['netns', 'del', name]);
}

export interface Timed {
  /** Wall clock. */
  wall_s: number;
  /** CPU time spent in the kernel on the measured work (system time). */
  sys_s: number;
  /** CPU time spent in user space on the measured work. */
  user_s: number;
}

/**
 * Times an addon call made from this process: wall clock, and this process's system and user
 * CPU time over the call. Netlink requests are processed by the kernel in the sending thread's
 * sendmsg(), so the system time is the kernel's own work on the batch (plus syscall overhead):
 * the floor no user-space program can go below.
 */
export async function timeCall(fn: () => Promise<unknown>): Promise<Timed> {
  const c0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  await fn();
  const wall = Number(process.hrtime.bigint() - t0) / 1e9;
  const c = process.cpuUsage(c0);
  return { wall_s: wall, sys_s: c.system / 1e6, user_s: c.user / 1e6 };
}

/**
 * Times a command the way a shell user would (`time CMD`, bash's keyword: fork + exec + run,
 * without the cost of starting bash or of Node's spawn), with the child's system and user time
 * from getrusage(RUSAGE_CHILDREN). Its output is discarded.
 */
export async function timeCommand(argv: string[]): Promise<Timed> {
  const quoted = argv.map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
  const script = `TIMEFORMAT='%3R %3U %3S'; { time ${quoted} >/dev/null; } 2>&1 1>/dev/null`;
  let out: string;
  try {
    out = (await execFileP('bash', ['-c', `set -o pipefail; ${script}`], { timeout: 300_000 })).stdout;
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; message: string };
    throw new Error(`${argv.join(' ')} failed: ${(e.stdout ?? '').trim() || e.stderr?.trim() || e.message}`, { cause: err });
  }
  const last = out.trim().split('\n').pop() ?? '';
  const m = /^(\d+\.\d+) (\d+\.\d+) (\d+\.\d+)$/.exec(last);
  if (!m) throw new Error(`${argv.join(' ')} printed something unexpected: ${JSON.stringify(out.slice(0, 400))}`);
  return { wall_s: Number(m[1]), user_s: Number(m[2]), sys_s: Number(m[3]) };
}
