/**
 * One supervised `wireguard-go -f NAME` process, started through build/Release/veil-netns-exec
 * inside the backend's network namespace with a private UAPI socket directory:
 *
 *   veil-netns-exec --netns NS --wireguard-dir DIR -- wireguard-go -f NAME
 *   (≈ `ip netns exec NS wireguard-go -f NAME`, with DIR mounted over /var/run/wireguard)
 *
 * Output: wireguard-go's stdout/stderr go to DIR/NAME.log, which this class follows and forwards
 * line by line to the agent's logger. Not a pipe on purpose: the daemon outlives the agent (a
 * restarted agent adopts it), and a Go program that writes to a broken stdout/stderr pipe dies of
 * SIGPIPE; a file never breaks. The process runs in its own session (detached) for the same
 * reason. LOG_LEVEL=error keeps the file small (wireguard-go logs no keys at that level).
 *
 * Supervision: if the process exits while supervised, it is restarted after a backoff of
 * 0.25 s doubling up to 30 s (reset once it has stayed up for a minute); every restart is
 * logged and reported through `onRestarted` (a fresh wireguard-go has no configuration, so the
 * owner must apply it again). stop() ends it (SIGTERM, SIGKILL after a bound); detach() stops
 * supervising and leaves it running.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readSync, fstatSync, rmSync } from 'node:fs';
import { UapiError, MissingDependencyError, VeilError } from '../errors.js';
import type { Logger } from '../log/logger.js';
import { encodeUapiGet } from './uapi.js';
import { uapiExchange } from './userspace-socket.js';

export interface DaemonSpec {
  name: string;
  netns: string;
  /** Private UAPI socket directory (mounted over /var/run/wireguard for the daemon). */
  wireguardDir: string;
  socketPath: string;
  logPath: string;
  launcher: string;
  wireguardGo: string;
  log: Logger;
  onRestarted?: () => void;
}

const START_TIMEOUT_MS = 10_000;
const STOP_TIMEOUT_MS = 5_000;
const BACKOFF_MIN_MS = 250;
const BACKOFF_MAX_MS = 30_000;
const STABLE_AFTER_MS = 60_000;

/** Follows a log file from an offset and forwards complete lines to a logger. */
class LogFollower {
  private offset: number;
  private partial = '';
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly path: string,
    private readonly log: Logger,
    fromEnd: boolean,
  ) {
    this.offset = 0;
    if (fromEnd) {
      try {
        const fd = openSync(path, 'r');
        this.offset = fstatSync(fd).size;
        closeSync(fd);
      } catch {
        this.offset = 0;
      }
    }
    this.timer = setInterval(() => this.drain(), 500);
    this.timer.unref();
  }

  /** Reads what was appended since the last call; returns the lines it forwarded. */
  drain(): string[] {
    let fd: number;
    try {
      fd = openSync(this.path, 'r');
    } catch {
      return [];
    }
    const lines: string[] = [];
    try {
      const buf = Buffer.alloc(64 * 1024);
      for (;;) {
        const n = readSync(fd, buf, 0, buf.length, this.offset);
        if (n <= 0) break;
        this.offset += n;
        this.partial += buf.toString('utf8', 0, n);
      }
    } finally {
      closeSync(fd);
    }
    const parts = this.partial.split('\n');
    this.partial = parts.pop() ?? '';
    for (const line of parts) {
      if (!line.trim()) continue;
      lines.push(line);
      if (line.startsWith('ERROR:')) this.log.error({ daemon: 'wireguard-go' }, line);
      else if (line.startsWith('DEBUG:')) this.log.debug({ daemon: 'wireguard-go' }, line);
      else this.log.info({ daemon: 'wireguard-go' }, line);
    }
    return lines;
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.drain();
  }
}

export class WireGuardGoDaemon {
  private child: ChildProcess | undefined;
  private follower: LogFollower | undefined;
  private supervising = false;
  private restartTimer: NodeJS.Timeout | undefined;
  private backoffMs = BACKOFF_MIN_MS;
  private startedAt = 0;
  private exited: Promise<void> = Promise.resolve();

  constructor(private readonly spec: DaemonSpec) {}

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** Starts the process and resolves once its UAPI socket answers; then supervises it. */
  async start(): Promise<void> {
    await this.startOnce(false);
    this.supervising = true;
  }

  private async startOnce(appendLog: boolean): Promise<void> {
    const { name, netns, wireguardDir, socketPath, logPath, launcher, wireguardGo, log } = this.spec;
    // A dead daemon leaves its socket behind; wireguard-go would refuse to start on it.
    rmSync(socketPath, { force: true });
    const logFd = openSync(logPath, appendLog ? 'a' : 'w', 0o600);
    let child: ChildProcess;
    try {
      const args = [...(netns ? ['--netns', netns] : []), '--wireguard-dir', wireguardDir, '--', wireguardGo, '-f', name];
      child = spawn(launcher, args, {
        stdio: ['ignore', logFd, logFd],
        detached: true,
        env: { ...process.env, WG_PROCESS_FOREGROUND: '1', LOG_LEVEL: process.env.VEIL_WIREGUARD_GO_LOG_LEVEL ?? 'error' },
      });
    } finally {
      closeSync(logFd);
    }
    child.unref();
    this.child = child;
    this.follower?.stop();
    const follower = new LogFollower(logPath, log, appendLog);
    this.follower = follower;
    let exitInfo: { code: number | null; signal: NodeJS.Signals | null } | undefined;
    let spawnError: Error | undefined;
    this.exited = new Promise<void>((resolve) => {
      child.once('exit', (code, signal) => {
        exitInfo = { code, signal };
        resolve();
        if (this.child === child) this.onExit(code, signal);
      });
      child.once('error', (err) => {
        spawnError = err;
        if (child.exitCode === null && child.pid === undefined) resolve();
      });
    });

    const deadline = Date.now() + START_TIMEOUT_MS;
    for (;;) {
      if (spawnError || exitInfo) {
        const lines = follower.drain();
        this.child = undefined;
        const why = spawnError ? spawnError.message : `exited with ${exitInfo!.signal ?? `status ${exitInfo!.code}`}`;
        throw new VeilError(
          'VEIL_WIREGUARD_GO',
          `Cannot start wireguard-go for device "${name}" in namespace "${netns}": it ${why}` +
            (lines.length ? `; it said: ${lines.slice(-3).join(' | ')}` : ''),
        );
      }
      try {
        (await uapiExchange(socketPath, encodeUapiGet(), 1000)).fill(0);
        this.startedAt = Date.now();
        log.info({ device: name, netns, pid: child.pid }, 'Started wireguard-go');
        return;
      } catch (err) {
        if (!(err instanceof UapiError)) throw err;
      }
      if (Date.now() > deadline) {
        child.kill('SIGKILL');
        this.child = undefined;
        throw new VeilError(
          'ETIMEDOUT',
          `Cannot start wireguard-go for device "${name}" in namespace "${netns}": its socket "${socketPath}" did not answer within ${START_TIMEOUT_MS} ms`,
        );
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  private onExit(code: number | null, signal: NodeJS.Signals | null): void {
    this.child = undefined;
    this.follower?.drain();
    if (!this.supervising) return;
    const { name, netns, log } = this.spec;
    if (Date.now() - this.startedAt > STABLE_AFTER_MS) this.backoffMs = BACKOFF_MIN_MS;
    log.error(
      { device: name, netns, code, signal, restartInMs: this.backoffMs },
      'wireguard-go exited unexpectedly; restarting it (its configuration is lost and must be applied again)',
    );
    this.scheduleRestart();
  }

  private scheduleRestart(): void {
    const delay = this.backoffMs;
    this.backoffMs = Math.min(this.backoffMs * 2, BACKOFF_MAX_MS);
    this.restartTimer = setTimeout(() => {
      this.restartTimer = undefined;
      if (!this.supervising) return;
      this.startOnce(true).then(
        () => {
          if (!this.supervising) return;
          this.spec.log.warn({ device: this.spec.name, netns: this.spec.netns, pid: this.child?.pid }, 'Restarted wireguard-go');
          this.spec.onRestarted?.();
        },
        (err: unknown) => {
          this.spec.log.error({ device: this.spec.name, netns: this.spec.netns, err }, 'Cannot restart wireguard-go; retrying');
          if (this.supervising) this.scheduleRestart();
        },
      );
    }, delay);
    this.restartTimer.unref();
  }

  /** Ends supervision and the process: SIGTERM, then SIGKILL after a bound. */
  async stop(): Promise<void> {
    this.supervising = false;
    if (this.restartTimer) clearTimeout(this.restartTimer);
    const child = this.child;
    if (child && child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      // A referenced timer: the child is unref'd, so this keeps a short-lived process (a CLI
      // verb) alive until the daemon is really gone.
      let timer: NodeJS.Timeout | undefined;
      const killed = await Promise.race([
        this.exited.then(() => false),
        new Promise<boolean>((r) => (timer = setTimeout(() => r(true), STOP_TIMEOUT_MS))),
      ]);
      clearTimeout(timer);
      if (killed) {
        this.spec.log.warn({ device: this.spec.name, pid: child.pid }, 'wireguard-go ignored SIGTERM; killing it');
        child.kill('SIGKILL');
        const hold = setInterval(() => undefined, 1000); // keep the event loop alive (see above)
        await this.exited.finally(() => clearInterval(hold));
      }
    }
    this.child = undefined;
    this.follower?.stop();
    this.follower = undefined;
  }

  /** Stops supervising and following the log; the process keeps running (to be adopted later). */
  detach(): void {
    this.supervising = false;
    if (this.restartTimer) clearTimeout(this.restartTimer);
    this.child?.removeAllListeners('exit');
    this.child = undefined;
    this.follower?.stop();
    this.follower = undefined;
  }
}

/** The error for a missing binary, with the fix. */
export function missingWireGuardGo(binary: string): MissingDependencyError {
  return new MissingDependencyError(
    `Cannot start userspace WireGuard: "${binary}" was not found; install wireguard-go (Debian package wireguard-go)`,
  );
}
