/**
 * What VM tests use to drive the shared VM (one boot for all VM test files; booted by
 * tests/vm/harness/global-setup.ts). The guest runs a real Debian kernel with the host's root
 * mounted read-only over 9p at the same paths, so `node`, the checkout (with its built `dist/`
 * and `build/`) and host tools are usable inside at the paths they have on the host.
 */
export interface VmExecResult {
  /** Exit status; 128 + the signal's number when a signal ended the command (as in sh). */
  code: number;
  stdout: string;
  stderr: string;
  /** Wall time in the guest (TCG: several times slower than the host). */
  durationMs: number;
}

export interface VmExecOptions {
  /** Default 120 s. */
  timeoutMs?: number;
  /** Working directory inside the guest (default: the checkout root). */
  cwd?: string;
  /** Written to the command's standard input (default: none, stdin is /dev/null). */
  stdin?: string;
}

export interface Vm {
  /**
   * Runs `sh -c command` as root in the guest's initial network namespace. Rejects when the
   * command outlives its timeout (the guest kills its process group) or the VM is gone.
   */
  exec(command: string, opts?: VmExecOptions): Promise<VmExecResult>;
  /** Like exec, but rejects with the command, exit code and stderr unless it exits 0. */
  check(command: string, opts?: VmExecOptions): Promise<string>;
  /** The guest kernel's release (uname -r). */
  readonly kernelRelease: string;
  /** The checkout root: the same absolute path on the host and in the guest (read-only there). */
  readonly checkout: string;
  /** The guest's serial console log on the host, for debugging. */
  readonly consoleLog: string;
}
