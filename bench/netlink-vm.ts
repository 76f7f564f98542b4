/**
 * `--vm`: boots the VM harness's guest (tests/vm/harness/qemu-vm.ts, the same boot the VM test
 * tier uses: a Debian kernel under qemu TCG with the host's root over 9p) and runs the kernel
 * WireGuard peers case inside it (bench/netlink-vm-guest.ts), addon against `wg setconf` there.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { projectRoot } from '../agent/project-root.js';
import type { ExecResult } from '../tests/vm/harness/protocol.js';
import { QemuVm } from '../tests/vm/harness/qemu-vm.js';
import type { PairRuns } from './netlink-wireguard.js';

export interface VmWireGuardResult {
  runs: PairRuns;
  load1m: number;
  kernelRelease: string;
  bootS: number;
}

export async function runVmWireGuard(peers: number, reps: number, progress: (msg: string) => void): Promise<VmWireGuardResult> {
  const checkout = projectRoot();
  const dir = mkdtempSync(join(tmpdir(), 'veil-vm-'));
  progress('booting the VM (qemu TCG)');
  const vm = await QemuVm.boot({ checkout, rpcSocket: join(dir, 'qemu.sock'), consoleLog: join(checkout, '.vm', 'bench-console.log'), bootTimeoutMs: 180_000 });
  try {
    progress(`VM up in ${(vm.timings.bootMs / 1000).toFixed(1)} s (kernel ${vm.timings.kernelRelease}); kernel WireGuard case`);
    const timeoutMs = 900_000;
    const reply = await vm.rpc.call(
      { op: 'exec', command: `node dist/bench/netlink-vm-guest.js ${peers} ${reps}`, cwd: checkout, timeoutMs },
      timeoutMs + 30_000,
    );
    if (!reply.ok) throw new Error(`The VM agent failed: ${reply.error}`);
    const r = reply.result as ExecResult;
    for (const line of r.stderr.trim().split('\n')) if (line.startsWith('guest: ')) progress(line);
    if (r.code !== 0) throw new Error(`The kernel WireGuard case failed in the VM (exit ${r.code ?? r.signal}): ${r.stderr.trim().slice(-2000)}`);
    const out = JSON.parse(r.stdout.trim().split('\n').pop()!) as Omit<VmWireGuardResult, 'bootS'>;
    return { ...out, bootS: vm.timings.bootMs / 1000 };
  } finally {
    await vm.shutdown().catch((err: unknown) => progress(`VM shutdown: ${(err as Error).message}`));
    rmSync(dir, { recursive: true, force: true });
  }
}
