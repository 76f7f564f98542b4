/**
 * WireGuard in userspace: one supervised `wireguard-go` per device, configured through its UAPI
 * socket (agent/wireguard/uapi.ts) — for kernels without WireGuard. Same interface as the kernel
 * backend (agent/wireguard/backend.ts).
 *
 * Where things live: every namespace gets a private socket directory
 * STATE_DIR/wireguard/<namespace>/ (mode 0700) that the launcher (native/tools/veil-netns-exec.c)
 * mounts over /var/run/wireguard for the daemon only; the agent reaches the socket at
 * STATE_DIR/wireguard/<namespace>/NAME.sock. So two namespaces can each have a "wg0", and `wg`
 * run through the same launcher sees the same sockets.
 *
 * Lifecycle decisions:
 * - createDevice adopts a daemon whose socket answers (agent restart) instead of starting a
 *   second one; it removes a stale socket (dead daemon) before starting.
 * - close() stops supervising and leaves every daemon running, started or adopted: a restarting
 *   agent must not tear down the tunnel (no packet lost on agent restart); the next backend
 *   instance adopts them. An adopted daemon is not restarted if it dies (it is not our child).
 * - deleteDevice stops a daemon we started with SIGTERM (SIGKILL after 5 s). An adopted daemon
 *   is not our child and UAPI has no "shut down" verb, and Node cannot read SO_PEERCRED to find
 *   its pid; instead its socket file is removed, which wireguard-go watches (inotify) and answers
 *   by closing the device and exiting — what `wg-quick down` relies on too. If the TUN link is
 *   still there after a bound, it is deleted through WgLinkOps (`ip link del NAME`), which also
 *   ends the daemon.
 *
 * Atomicity: wireguard-go applies a `set` line by line and keeps what it applied before a bad
 * line, so every argument is validated before the first byte is sent; the only line that can fail
 * at run time (listen_port: EADDRINUSE) is sent first. replaceAllowedIps is implemented without a
 * gap (wireguard-go's own replace_allowed_ips empties the set before refilling it) by the handover
 * of allowed-ip-handover.ts, shared with the kernel backend: the new CIDRs are added to the peer,
 * then only the CIDRs that leave it are moved to a throw-away peer that is removed, all in the
 * same transaction (see encodeUapiSet). replacePeers uses the protocol's replace_peers, like
 * `wg setconf`.
 */
import { KeyedMutex } from '../util/keyed-mutex.js';
import { createHash } from 'node:crypto';
import { accessSync, chmodSync, constants as fsConstants, existsSync, mkdirSync, rmSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { delimiter, isAbsolute, join } from 'node:path';
import { UapiError, ValidationError, VeilError, MissingDependencyError } from '../errors.js';
import { createRootLogger, moduleLogger, type Logger } from '../log/logger.js';
import { projectRoot } from '../project-root.js';
import { needsAllowedIpHandover, planAllowedIpHandover, type AllowedIpHandoverPlan } from './allowed-ip-handover.js';
import type { WgBackendKind, WgDevice, WgDeviceConfig, WgLinkOps, WireGuardBackend } from './backend.js';
import { encodeUapiGet, encodeUapiSet, parseUapiGet, parseUapiSetResponse, uapiErrnoError } from './uapi.js';
import { missingWireGuardGo, WireGuardGoDaemon } from './userspace-daemon.js';
import { uapiExchange, UapiSocketError } from './userspace-socket.js';
import { checkDeviceName, validateWgDeviceConfig } from './keys.js';

const SUN_PATH_MAX = 107; // sizeof(sockaddr_un.sun_path) - 1
const GET_TIMEOUT_MS = 10_000;
const LINK_GONE_TIMEOUT_MS = 5_000;

export interface UserspaceBackendOptions {
  /** Network namespace: a name under /run/netns, an absolute path, or "" for the agent's own. */
  netns: string;
  links: WgLinkOps;
  /** Directory for sockets and daemon logs (created 0700). Keep it short: socket paths are limited to 107 bytes. */
  stateDir: string;
  /** wireguard-go binary (name looked up in PATH, or a path); default "wireguard-go". */
  wireguardGo?: string;
  log?: Logger;
  /** Called after a crashed daemon was restarted (empty): the owner re-applies the configuration. */
  onRestart?: (name: string) => void;
}

interface DeviceEntry {
  daemon: WireGuardGoDaemon | undefined; // undefined when adopted
}

function resolveBinary(binary: string): string {
  const candidates = binary.includes('/')
    ? [binary]
    : (process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin').split(delimiter).filter(Boolean).map((d) => join(d, binary));
  for (const c of candidates) {
    try {
      accessSync(c, fsConstants.X_OK);
      return c;
    } catch {
      // keep looking
    }
  }
  throw missingWireGuardGo(binary);
}

function launcherPath(): string {
  const path = join(projectRoot(), 'build', 'Release', 'veil-netns-exec');
  if (!existsSync(path)) {
    throw new MissingDependencyError(`Launcher "${path}" is not built: run "npm install" (or "npm run build") in the checkout`);
  }
  return path;
}

export class UserspaceWireGuardBackend implements WireGuardBackend {
  readonly kind: WgBackendKind = 'userspace';
  readonly netns: string;
  private readonly links: WgLinkOps;
  private readonly wireguardDir: string;
  private readonly wireguardGo: string;
  private readonly log: Logger;
  private readonly onRestart: ((name: string) => void) | undefined;
  private readonly devices = new Map<string, DeviceEntry>();
  private readonly locks = new KeyedMutex();

  constructor({ netns, links, stateDir, wireguardGo, log, onRestart }: UserspaceBackendOptions) {
    if (typeof netns !== 'string' || (netns !== '' && !isAbsolute(netns) && (netns.includes('/') || netns === '.' || netns === '..'))) {
      throw new ValidationError('netns', `Invalid network namespace ${JSON.stringify(netns)}: use a name under /run/netns, an absolute path or ""`);
    }
    if (typeof stateDir !== 'string' || !isAbsolute(stateDir)) {
      throw new ValidationError('stateDir', `Invalid stateDir ${JSON.stringify(stateDir)}: use an absolute path`);
    }
    this.netns = netns;
    this.links = links;
    const nsDir = netns === '' ? '@self' : isAbsolute(netns) ? `@${createHash('sha256').update(netns).digest('hex').slice(0, 16)}` : netns;
    this.wireguardDir = join(stateDir, 'wireguard', nsDir);
    this.wireguardGo = wireguardGo ?? 'wireguard-go';
    this.log = log ?? moduleLogger(createRootLogger(), 'wireguard-userspace');
    this.onRestart = onRestart;
  }

  /** The directory holding this namespace's UAPI sockets (for `wg` through the launcher). */
  get socketDirectory(): string {
    return this.wireguardDir;
  }

  /** The UAPI socket of a device. */
  socketPath(name: string): string {
    checkDeviceName(name);
    const path = join(this.wireguardDir, `${name}.sock`);
    if (Buffer.byteLength(path) > SUN_PATH_MAX) {
      throw new ValidationError('stateDir', `Socket path "${path}" is longer than ${SUN_PATH_MAX} bytes: choose a shorter stateDir`);
    }
    return path;
  }

  private where(name: string): string {
    return `WireGuard device "${name}" in namespace "${this.netns}"`;
  }

  private noDevice(name: string, op: string, cause?: unknown): UapiError {
    return new UapiError(
      'ENODEV',
      osConstants.errno.ENODEV,
      `Cannot ${op} ${this.where(name)}: no wireguard-go answers on "${this.socketPath(name)}"; create the device first`,
      { cause },
    );
  }


  /** True when a daemon answers on the device's socket. */
  private async answers(name: string): Promise<boolean> {
    try {
      (await uapiExchange(this.socketPath(name), encodeUapiGet(), GET_TIMEOUT_MS)).fill(0);
      return true;
    } catch (err) {
      if (err instanceof UapiSocketError && (err.code === 'ENOENT' || err.code === 'ECONNREFUSED')) return false;
      throw err;
    }
  }

  /** `wireguard-go NAME` (≈ `ip link add NAME type wireguard` for the kernel backend). */
  async createDevice(name: string): Promise<void> {
    checkDeviceName(name);
    const socketPath = this.socketPath(name);
    await this.locks.run(name, async () => {
      const known = this.devices.get(name);
      // A daemon we supervise is ours even while it is being restarted after a crash.
      if (known?.daemon) return;
      if (known && (await this.answers(name))) return;
      mkdirSync(this.wireguardDir, { recursive: true, mode: 0o700 });
      chmodSync(this.wireguardDir, 0o700);
      if (await this.answers(name)) {
        this.devices.set(name, { daemon: undefined });
        this.log.info({ device: name, netns: this.netns }, 'Adopted running wireguard-go device');
        return;
      }
      if (existsSync(socketPath)) {
        this.log.warn({ device: name, netns: this.netns, socket: socketPath }, 'Removing stale wireguard-go socket');
        rmSync(socketPath, { force: true });
      }
      if (await this.links.linkInfo(name, this.netns)) {
        throw new UapiError(
          'EEXIST',
          osConstants.errno.EEXIST,
          `Cannot create ${this.where(name)}: a link with that name exists and no wireguard-go answers for it; delete the link or choose another name`,
        );
      }
      const daemon = new WireGuardGoDaemon({
        name,
        netns: this.netns,
        wireguardDir: this.wireguardDir,
        socketPath,
        logPath: join(this.wireguardDir, `${name}.log`),
        launcher: launcherPath(),
        wireguardGo: resolveBinary(this.wireguardGo),
        log: this.log,
        onRestarted: () => this.onRestart?.(name),
      });
      await daemon.start();
      this.devices.set(name, { daemon });
    });
  }

  /** `ip link del NAME` (stops wireguard-go; see the file comment for adopted daemons). */
  async deleteDevice(name: string): Promise<void> {
    checkDeviceName(name);
    const socketPath = this.socketPath(name);
    await this.locks.run(name, async () => {
      const entry = this.devices.get(name);
      this.devices.delete(name);
      if (entry?.daemon) {
        await entry.daemon.stop();
        rmSync(socketPath, { force: true });
      } else {
        if (!(await this.answers(name))) {
          rmSync(socketPath, { force: true });
          throw this.noDevice(name, 'delete');
        }
        rmSync(socketPath, { force: true });
      }
      if (await this.waitLinkGone(name)) return;
      this.log.warn({ device: name, netns: this.netns }, 'wireguard-go left its link behind; deleting it');
      await this.links.deleteLink(name, this.netns).catch((err: unknown) => {
        if (!(err instanceof VeilError && err.code === 'ENODEV')) throw err;
      });
      if (!(await this.waitLinkGone(name))) {
        throw new VeilError('EBUSY', `Cannot delete ${this.where(name)}: the link is still present after deleting it`);
      }
    });
  }

  private async waitLinkGone(name: string): Promise<boolean> {
    const deadline = Date.now() + LINK_GONE_TIMEOUT_MS;
    for (;;) {
      if (!(await this.links.linkInfo(name, this.netns))) return true;
      if (Date.now() > deadline) return false;
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** `wg show NAME dump` equivalent; keys other than public ones are reported as flags only. */
  async getDevice(name: string): Promise<WgDevice> {
    checkDeviceName(name);
    const response = await this.exchange(name, encodeUapiGet(), GET_TIMEOUT_MS, 'read');
    try {
      const state = parseUapiGet(response, `Cannot read ${this.where(name)}`);
      const link = await this.links.linkInfo(name, this.netns);
      if (!link) throw this.noDevice(name, 'read');
      return { name, ifindex: link.ifindex, ...state };
    } finally {
      response.fill(0);
    }
  }

  /** `wg set NAME ...` / `wg setconf NAME FILE` equivalent, as one UAPI transaction. */
  async setDevice(name: string, config: WgDeviceConfig): Promise<void> {
    checkDeviceName(name);
    // The same checks and normal form as the kernel backend: one configuration, one verdict.
    const valid = validateWgDeviceConfig(config);
    await this.locks.run(name, async () => {
      const { config: plan, retire } = await this.planHandover(name, valid);
      const request = encodeUapiSet(plan, retire);
      const timeoutMs = 30_000 + 10 * (config.peers?.length ?? 0);
      const response = await this.exchange(name, request, timeoutMs, 'configure');
      const errno = parseUapiSetResponse(response);
      if (errno !== 0) throw uapiErrnoError(errno, `Cannot configure ${this.where(name)}`);
      this.log.debug({ device: name, netns: this.netns, peers: config.peers?.length ?? 0 }, 'Configured WireGuard device');
    });
  }

  /**
   * The gapless handover for replaceAllowedIps (allowed-ip-handover.ts), planned from a read
   * taken under the device lock; no read when nothing asks to replace allowed IPs.
   */
  private async planHandover(name: string, config: WgDeviceConfig): Promise<AllowedIpHandoverPlan> {
    if (!needsAllowedIpHandover(config)) return { config, retire: null };
    const response = await this.exchange(name, encodeUapiGet(), GET_TIMEOUT_MS, 'configure');
    try {
      return planAllowedIpHandover(parseUapiGet(response, `Cannot configure ${this.where(name)}`), config);
    } finally {
      response.fill(0);
    }
  }

  private async exchange(name: string, request: Buffer, timeoutMs: number, op: string): Promise<Buffer> {
    try {
      return await uapiExchange(this.socketPath(name), request, timeoutMs);
    } catch (err) {
      request.fill(0);
      if (err instanceof UapiSocketError && (err.code === 'ENOENT' || err.code === 'ECONNREFUSED')) throw this.noDevice(name, op, err);
      throw err;
    }
  }

  /** Stops supervising; every daemon keeps running for the next backend instance to adopt. */
  async close(): Promise<void> {
    await this.locks.idle();
    for (const [name, entry] of this.devices) {
      entry.daemon?.detach();
      this.log.info({ device: name, netns: this.netns }, 'Left wireguard-go running for adoption');
    }
    this.devices.clear();
  }
}
