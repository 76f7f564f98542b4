/**
 * WireGuard in the kernel, programmed over generic netlink (family "wireguard", resolved by name
 * on every call so a module loaded after start is found). Devices are created and removed
 * through the injected rtnetlink link operations; configuration goes through the addon's
 * wgGetDevice/wgSetDevice (native/src/wireguard.cc). replaceAllowedIps is a gapless handover
 * (allowed-ip-handover.ts), as in the userspace backend.
 */
import { KeyedMutex } from '../util/keyed-mutex.js';
import { MissingDependencyError, NetlinkError, ValidationError, VeilError, hasCode } from '../errors.js';
import { callNative } from '../native/addon.js';
import type { WgDevice, WgDeviceConfig, WgLinkOps, WireGuardBackend } from './backend.js';
import { wgAddon, wgSetDevicePacked } from './kernel-netlink.js';
import { packWgSetDevice, type PackedWgSetDevice } from './pack.js';
import { needsAllowedIpHandover, planAllowedIpHandover } from './allowed-ip-handover.js';
import { checkDeviceName, validateWgDeviceConfig } from './keys.js';

const WG_LINK_KIND = 'wireguard';

/** The kernel has no WireGuard (no "wireguard" generic netlink family in the namespace). */
export class KernelWireGuardUnavailableError extends MissingDependencyError {
  readonly netns: string;
  constructor(netns: string, options?: { cause?: unknown }) {
    super(
      `Kernel WireGuard is not available in network namespace ${nsLabel(netns)}: the kernel has no "wireguard" ` +
        'generic netlink family (CONFIG_WIREGUARD); load the module ("modprobe wireguard") or use the userspace backend (wireguard-go)',
      options,
    );
    this.netns = netns;
  }
}

function nsLabel(netns: string): string {
  return netns === '' ? '"" (the agent\'s own)' : `"${netns}"`;
}

function checkNetns(netns: unknown): string {
  if (typeof netns !== 'string' || netns.includes('\0') || (!netns.startsWith('/') && netns.includes('/'))) {
    throw new ValidationError(
      'netns',
      `Invalid network namespace "${String(netns)}": use a name under /run/netns, an absolute path such as "/proc/1/ns/net", or "" for the agent's own`,
    );
  }
  return netns;
}

/** True when the addon reported that the "wireguard" genl family does not resolve. */
function isFamilyMissing(err: unknown): boolean {
  return err instanceof NetlinkError && err.op === 'genl.resolve' && err.code === 'ENOENT';
}

export class KernelWireGuardBackend implements WireGuardBackend {
  readonly kind = 'kernel' as const;
  readonly netns: string;
  private readonly links: WgLinkOps;
  private readonly locks = new KeyedMutex();

  constructor({ netns, links }: { netns: string; links: WgLinkOps }) {
    this.netns = checkNetns(netns);
    this.links = links;
  }

  /** True when the kernel's "wireguard" generic netlink family resolves in `netns`. */
  static async available(netns: string): Promise<boolean> {
    const ns = checkNetns(netns);
    return callNative(`Cannot check for kernel WireGuard in network namespace ${nsLabel(ns)}`, () =>
      wgAddon().wgAvailable({ netns: ns }),
    );
  }

  /**
   * `ip link add NAME type wireguard`; adopts an existing WireGuard link of that name (keeping
   * its configuration and sessions) and refuses a link of another kind.
   */
  async createDevice(name: string): Promise<void> {
    checkDeviceName(name);
    if (await this.adoptable(name)) return;
    try {
      await this.links.addWireGuardLink(name, this.netns);
    } catch (err) {
      // Lost a race with another creator: adopt what it made, if it is ours to adopt.
      if (hasCode(err, 'EEXIST') && (await this.adoptable(name))) return;
      if (!(await KernelWireGuardBackend.available(this.netns).catch(() => true))) {
        throw new KernelWireGuardUnavailableError(this.netns, { cause: err });
      }
      throw err;
    }
  }

  /** `ip link del NAME`, only for a link of kind "wireguard". */
  async deleteDevice(name: string): Promise<void> {
    checkDeviceName(name);
    const info = await this.links.linkInfo(name, this.netns);
    if (!info) {
      throw new NetlinkError(
        { code: 'ENODEV', errno: 19, op: 'wireguard.delete' },
        `Cannot delete WireGuard device "${name}": no link of that name exists in network namespace ${nsLabel(this.netns)}`,
      );
    }
    if (info.kind !== WG_LINK_KIND) {
      throw new VeilError(
        'EINVAL',
        `Cannot delete WireGuard device "${name}": the link of that name in network namespace ${nsLabel(this.netns)} ` +
          `is of kind "${info.kind ?? 'none'}", not "${WG_LINK_KIND}"; it is not Veil's, delete it by hand if it must go`,
      );
    }
    await this.links.deleteLink(name, this.netns);
  }

  /** The device and its peers (`wg show NAME dump`, without keys: has-key flags only). */
  async getDevice(name: string): Promise<WgDevice> {
    checkDeviceName(name);
    return this.call(`Cannot read WireGuard device "${name}" in network namespace ${nsLabel(this.netns)}`, () =>
      wgAddon().wgGetDevice({ netns: this.netns }, name),
    );
  }

  /**
   * `wg set NAME ...` (`wg setconf` with replacePeers). Validates everything before anything is
   * sent; large peer sets go out as several pipelined messages (see wgSetDevice in
   * native/src/wireguard.cc for the order and for what a failure part-way leaves behind: a
   * refused listen port leaves the device unchanged).
   *
   * replaceAllowedIps is not sent as WGPEER_F_REPLACE_ALLOWEDIPS (the kernel empties the set
   * before refilling it, dropping packets in between) but as the handover of
   * allowed-ip-handover.ts, planned from a read of the device: the throwaway peer is added and
   * removed in the same request sequence, after the real peers. If the sequence fails part-way,
   * the throwaway peer is removed afterwards (best effort; removing an absent peer is a no-op).
   * Calls on one device are serialised so no other call of this backend changes it between the
   * read and the write.
   */
  async setDevice(name: string, config: WgDeviceConfig): Promise<void> {
    // Validates and packs in one pass; only a handover (rare) needs the normalised objects.
    let packed: PackedWgSetDevice | null = packWgSetDevice(name, config);
    let valid: WgDeviceConfig | null = null;
    if (needsAllowedIpHandover(config)) {
      packed.scrub();
      packed = null;
      valid = validateWgDeviceConfig(config);
    }
    const context = `Cannot configure WireGuard device "${name}" in network namespace ${nsLabel(this.netns)}`;
    try {
      await this.locks.run(name, async () => {
        if (packed) {
          const input = packed;
          packed = null;
          await this.call(context, () => wgSetDevicePacked(this.netns, input));
          return;
        }
        const { config: plan, retire } = planAllowedIpHandover(await this.getDevice(name), valid!);
        const input = packWgSetDevice(name, plan, retire);
        try {
          await this.call(context, () => wgSetDevicePacked(this.netns, input));
        } catch (err) {
          if (retire) {
            const cleanup = packWgSetDevice(name, { peers: [{ publicKey: retire.publicKey, remove: true }] });
            await wgSetDevicePacked(this.netns, cleanup).catch(() => undefined); // the original error is the one to report
          }
          throw err;
        }
      });
    } finally {
      // Still set only if the locked function never ran: the keys must not outlive the call.
      (packed as PackedWgSetDevice | null)?.scrub();
    }
  }


  async close(): Promise<void> {
    // Nothing held: every call opens and closes its own netlink socket. Let calls in progress end.
    await this.locks.idle();
  }

  private async adoptable(name: string): Promise<boolean> {
    const info = await this.links.linkInfo(name, this.netns);
    if (!info) return false;
    if (info.kind === WG_LINK_KIND) return true;
    throw new VeilError(
      'EEXIST',
      `Cannot create WireGuard device "${name}": a link of kind "${info.kind ?? 'none'}" already has that name in ` +
        `network namespace ${nsLabel(this.netns)}; delete that link or choose another device name`,
    );
  }

  private async call<T>(context: string, run: () => Promise<T>): Promise<T> {
    try {
      return await callNative(context, run);
    } catch (err) {
      if (isFamilyMissing(err)) throw new KernelWireGuardUnavailableError(this.netns, { cause: err });
      // The kernel's "No such device" / "Operation not supported" say little: say what they mean.
      const hint =
        err instanceof NetlinkError && err.op.startsWith('wireguard.')
          ? { ENODEV: 'no link of that name exists; create it with createDevice()', EOPNOTSUPP: 'the link of that name is not a WireGuard device' }[
              err.code as 'ENODEV' | 'EOPNOTSUPP'
            ]
          : undefined;
      if (hint && err instanceof NetlinkError) {
        const fields = { code: err.code, errno: err.errno, op: err.op, ...(err.extack ? { extack: err.extack } : {}), ...(err.index !== undefined ? { index: err.index } : {}) };
        const e = new NetlinkError(fields, `${context}: ${hint}`, { cause: err });
        e.stack = `${e.name}: ${e.message}\n${(err.stack ?? '').split('\n').slice(1).join('\n')}`;
        throw e;
      }
      throw err;
    }
  }
}
