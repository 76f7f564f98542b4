/**
 * Processes living in one of the lab's namespaces (`ip netns pids NS`): the ones the lab did not
 * start itself, such as the wireguard-go daemons an agent starts and deliberately leaves running
 * across its own restarts. `down` stops them before deleting the namespace; otherwise they would
 * keep the namespace (and its devices) alive after its name is gone.
 */
import { readdir, readlink, stat } from 'node:fs/promises';
import { join } from 'node:path';

/** Pids whose network namespace is the named one (never this process). */
export async function processesInNetns(name: string): Promise<number[]> {
  let ino: number;
  try {
    ino = (await stat(join('/run/netns', name))).ino;
  } catch {
    return [];
  }
  const want = `net:[${ino}]`;
  const pids: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    if (pid === process.pid) continue;
    try {
      if ((await readlink(`/proc/${pid}/ns/net`)) === want) pids.push(pid);
    } catch {
      // gone, or a kernel thread
    }
  }
  return pids;
}

/** SIGTERM to every process in the namespace, SIGKILL to those still there after `timeoutMs`. */
export async function stopProcessesInNetns(name: string, timeoutMs = 5_000): Promise<number> {
  const pids = await processesInNetns(name);
  const signal = (pid: number, sig: NodeJS.Signals) => {
    try {
      process.kill(pid, sig);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
    }
  };
  for (const pid of pids) signal(pid, 'SIGTERM');
  const deadline = Date.now() + timeoutMs;
  let left = pids;
  while (left.length > 0 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
    const now = new Set(await processesInNetns(name));
    left = left.filter((p) => now.has(p));
  }
  for (const pid of left) signal(pid, 'SIGKILL');
  return pids.length;
}
