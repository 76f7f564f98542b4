import { constants } from 'node:os';
import { inject } from 'vitest';
import type { Vm, VmExecOptions, VmExecResult } from './client.js';
import { VM_INFO_ENV, type ExecResult, type VmInfo } from './protocol.js';
import { RpcConnection } from './rpc-connection.js';

const DEFAULT_TIMEOUT_MS = 120_000;
// The guest enforces the command's timeout; this margin only bounds a guest that stopped answering.
const REPLY_MARGIN_MS = 30_000;

function vmInfo(): VmInfo {
  const fromEnv = process.env[VM_INFO_ENV];
  if (fromEnv) return JSON.parse(fromEnv) as VmInfo;
  const provided = inject('veilVm');
  if (!provided) {
    throw new Error(
      'No VM: tests/vm/harness/global-setup.ts did not run. Run VM tests with "npx vitest run --project vm"',
    );
  }
  return provided;
}

function quote(command: string): string {
  return command.length > 200 ? `"${command.slice(0, 200)}…"` : `"${command}"`;
}

class VmClient implements Vm {
  readonly kernelRelease: string;
  readonly checkout: string;
  readonly consoleLog: string;
  readonly #rpc: RpcConnection;

  constructor(rpc: RpcConnection, info: VmInfo) {
    this.#rpc = rpc;
    this.kernelRelease = info.kernelRelease;
    this.checkout = info.checkout;
    this.consoleLog = info.consoleLog;
  }

  async exec(command: string, opts: VmExecOptions = {}): Promise<VmExecResult> {
    if (typeof command !== 'string' || command.trim() === '') {
      throw new TypeError(`Cannot run ${JSON.stringify(command)} in the VM: pass a non-empty shell command`);
    }
    const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    if (!Number.isInteger(timeoutMs) || timeoutMs <= 0) {
      throw new TypeError(`Cannot run ${quote(command)} in the VM: timeoutMs "${timeoutMs}" must be a positive integer`);
    }
    const reply = await this.#rpc.call(
      {
        op: 'exec',
        command,
        cwd: opts.cwd ?? this.checkout,
        timeoutMs,
        ...(opts.stdin === undefined ? {} : { stdin: opts.stdin }),
      },
      timeoutMs + REPLY_MARGIN_MS,
    );
    if (!reply.ok) {
      throw new Error(`The VM agent could not run ${quote(command)}: ${reply.error} (console log "${this.consoleLog}")`);
    }
    const r = reply.result as ExecResult;
    if (r.timedOut) {
      throw new Error(
        `Command ${quote(command)} timed out after ${timeoutMs} ms in the VM and was killed; ` +
          `raise timeoutMs if it is slow under emulation\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`,
      );
    }
    const signalNumber = r.signal ? (constants.signals as Record<string, number>)[r.signal] ?? 0 : 0;
    return {
      code: r.code ?? 128 + signalNumber,
      stdout: r.stdout,
      stderr: r.stderr,
      durationMs: r.durationMs,
    };
  }

  async check(command: string, opts?: VmExecOptions): Promise<string> {
    const r = await this.exec(command, opts);
    if (r.code !== 0) {
      throw new Error(
        `Command ${quote(command)} failed in the VM with exit code ${r.code}\nstderr:\n${r.stderr.trimEnd()}\nstdout:\n${r.stdout.trimEnd()}`,
      );
    }
    return r.stdout;
  }
}

let shared: Promise<Vm> | undefined;

/**
 * The shared VM, connected once per test worker. Every VM test file gets it with
 * `const v = await vm();` (in a beforeAll or at the top of a test).
 */
export function vm(): Promise<Vm> {
  shared ??= (async () => {
    const info = vmInfo();
    const rpc = await RpcConnection.connect(info.socket, 'the VM broker');
    rpc.unref();
    return new VmClient(rpc, info);
  })();
  // A failed connection is retried by the next caller instead of being cached.
  shared.catch(() => {
    shared = undefined;
  });
  return shared;
}
