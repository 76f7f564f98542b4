/**
 * The JSON-lines protocol between the host and the guest agent (tests/vm/harness/guest-agent.mjs),
 * spoken on the virtio-serial port and, unchanged, between test workers and the broker in the
 * vitest main process. One JSON object per line; every request has an `id` that its response
 * repeats, so several requests can be in flight on one connection.
 */
export interface ExecRequest {
  op: 'exec';
  command: string;
  cwd: string;
  timeoutMs: number;
  stdin?: string;
}

export interface PingRequest {
  op: 'ping';
}

export interface PoweroffRequest {
  op: 'poweroff';
}

export type Request = ExecRequest | PingRequest | PoweroffRequest;

export interface ExecResult {
  /** Exit status; null when the command was killed by a signal (see `signal`). */
  code: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
  /** The guest killed the command's process group after `timeoutMs`. */
  timedOut: boolean;
  /** Output beyond 16 MiB per stream was dropped. */
  truncated: boolean;
  durationMs: number;
}

export interface PingResult {
  kernelRelease: string;
  nodeVersion: string;
  uptimeS: number;
}

export type Response = { id: number; ok: true; result: unknown } | { id: number; ok: false; error: string };

/** What global-setup hands to test workers (vitest provide/inject, or the environment). */
export interface VmInfo {
  /** Unix socket of the broker in the vitest main process. */
  socket: string;
  kernelRelease: string;
  /** The checkout root: the same absolute path on the host and in the guest. */
  checkout: string;
  consoleLog: string;
}

/** Environment variable carrying a JSON VmInfo to processes that cannot use vitest's inject. */
export const VM_INFO_ENV = 'VEIL_VM_INFO';
