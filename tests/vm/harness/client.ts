/**
 * What VM tests use to drive the shared VM (one boot for all VM test files; booted by
 * tests/vm/harness/global-setup.ts). The guest runs a real Debian kernel with the host's root
 * mounted read-only over 9p at the same paths, so `node`, the checkout (with its built `dist/`
 * and `build/`) and host tools are usable inside at the paths they have on the host.
 */
export interface VmExecResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface VmExecOptions {
  /** Default 120 s. */
  timeoutMs?: number;
  /** Working directory inside the guest (default: the checkout root). */
  cwd?: string;
}

export interface Vm {
  /** Runs `sh -c command` as root in the guest's initial network namespace. */
  exec(command: string, opts?: VmExecOptions): Promise<VmExecResult>;
  /** Like exec, but rejects with the command, exit code and stderr unless it exits 0. */
  check(command: string, opts?: VmExecOptions): Promise<string>;
  /** The guest kernel's release (uname -r). */
  readonly kernelRelease: string;
}
