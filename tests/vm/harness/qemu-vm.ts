import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import type { PingResult } from './protocol.js';
import { RpcConnection } from './rpc-connection.js';

const run = promisify(execFile);

export interface BootOptions {
  /** The checkout root (holds scripts/vm/vm.sh and the .vm/ cache). */
  checkout: string;
  /** Unix socket qemu listens on for the guest agent's virtio-serial port. */
  rpcSocket: string;
  /** The guest's serial console is written here. */
  consoleLog: string;
  /** Bound on kernel boot + agent start. */
  bootTimeoutMs: number;
}

export interface BootTimings {
  kernelRelease: string;
  initramfs: string;
  /** Building (or finding the cached) initramfs. */
  initramfsMs: number;
  /** From starting qemu to the agent's first reply. */
  bootMs: number;
  /** The guest's uptime at that reply (kernel + init + node start, in guest time). */
  guestUptimeS: number;
  nodeVersion: string;
}

/** The last `count` lines of the console log, for error messages. */
export function consoleTail(path: string, count = 50): string {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return '(no console log)';
  }
  // Strip the terminal control sequences SeaBIOS prints.
  const lines = text.replace(/\x1b\[[0-9;?]*[A-Za-z]|\x1bc/g, '').split(/\r?\n/);
  return lines.slice(-count).join('\n');
}

/**
 * One running guest: qemu started through scripts/vm/vm.sh (the single place that knows the
 * kernel command line and devices) with the RPC agent reachable over `rpc`.
 */
export class QemuVm {
  readonly rpc: RpcConnection;
  readonly timings: BootTimings;
  readonly #qemu: ChildProcess;
  readonly #exited: Promise<void>;
  readonly #consoleLog: string;

  private constructor(qemu: ChildProcess, exited: Promise<void>, rpc: RpcConnection, timings: BootTimings, consoleLog: string) {
    this.#qemu = qemu;
    this.#exited = exited;
    this.rpc = rpc;
    this.timings = timings;
    this.#consoleLog = consoleLog;
  }

  static async boot(opts: BootOptions): Promise<QemuVm> {
    const script = join(opts.checkout, 'scripts/vm/vm.sh');
    const t0 = Date.now();
    const kernelRelease = (await run('bash', [script, 'kernel'])).stdout.trim();
    const initramfs = (await run('bash', [script, 'initramfs'])).stdout.trim();
    const initramfsMs = Date.now() - t0;

    mkdirSync(join(opts.consoleLog, '..'), { recursive: true });
    const log = openSync(opts.consoleLog, 'w');
    const t1 = Date.now();
    const qemu = spawn('bash', [script, 'run', opts.rpcSocket], { stdio: ['ignore', log, log] });
    closeSync(log);
    let exitStatus: string | undefined;
    const exited = new Promise<void>((resolve) => {
      qemu.once('exit', (code, signal) => {
        exitStatus = signal ? `signal ${signal}` : `status ${code}`;
        resolve();
      });
      qemu.once('error', (err) => {
        exitStatus = err.message;
        resolve();
      });
    });
    // A runner that exits without teardown (Ctrl-C) must not leave qemu behind; vm.sh also sets
    // the parent-death signal on qemu.
    const killOnExit = (): void => {
      qemu.kill('SIGKILL');
    };
    process.once('exit', killOnExit);
    void exited.then(() => process.off('exit', killOnExit));

    const deadline = t1 + opts.bootTimeoutMs;
    const failBoot = async (why: string): Promise<never> => {
      qemu.kill('SIGKILL');
      await Promise.race([exited, sleep(5_000, undefined, { ref: false })]);
      throw new Error(
        `The VM did not boot: ${why}. Console log "${opts.consoleLog}", last 50 lines:\n${consoleTail(opts.consoleLog)}`,
      );
    };

    let rpc: RpcConnection;
    try {
      rpc = await Promise.race([
        RpcConnection.connect(opts.rpcSocket, 'the VM agent', deadline),
        exited.then(() => {
          throw new Error(`qemu exited with ${exitStatus}`);
        }),
      ]);
    } catch (err) {
      return failBoot((err as Error).message);
    }

    // Ping until the agent answers: requests wait in qemu until the guest opens its port.
    let ping: PingResult | undefined;
    while (!ping) {
      if (exitStatus !== undefined) return failBoot(`qemu exited with ${exitStatus} before the agent answered`);
      if (Date.now() > deadline) return failBoot(`no answer from the guest agent within ${opts.bootTimeoutMs / 1000} s`);
      const reply = await Promise.race([rpc.call({ op: 'ping' }).catch(() => undefined), sleep(1_000, undefined, { ref: false }), exited]);
      if (reply && reply.ok) ping = reply.result as PingResult;
    }
    const timings: BootTimings = {
      kernelRelease,
      initramfs,
      initramfsMs,
      bootMs: Date.now() - t1,
      guestUptimeS: ping.uptimeS,
      nodeVersion: ping.nodeVersion,
    };
    if (ping.kernelRelease !== kernelRelease) {
      return failBoot(`the guest runs kernel "${ping.kernelRelease}", expected "${kernelRelease}"`);
    }
    return new QemuVm(qemu, exited, rpc, timings, opts.consoleLog);
  }

  /**
   * Powers the guest off through the agent and waits for qemu to exit; kills qemu when either
   * takes longer than `timeoutMs`. Never leaves qemu running.
   */
  async shutdown(timeoutMs = 20_000): Promise<void> {
    if (this.#qemu.exitCode !== null || this.#qemu.signalCode !== null) return;
    await this.rpc.call({ op: 'poweroff' }, timeoutMs / 2).catch(() => undefined);
    const exitedInTime = await Promise.race([this.#exited.then(() => true), sleep(timeoutMs, undefined, { ref: false }).then(() => false)]);
    this.rpc.close();
    if (!exitedInTime) {
      this.#qemu.kill('SIGKILL');
      await this.#exited;
      throw new Error(
        `The VM did not power off within ${timeoutMs / 1000} s; qemu was killed. Console log "${this.#consoleLog}"`,
      );
    }
  }
}
