/**
 * The kernel WireGuard backend against the host kernel, in namespaces the test creates. The host
 * kernel of this project's machines has no WireGuard (ENVIRONMENT.md): here the backend must say
 * so clearly and never half-work. Traffic over kernel WireGuard is tested in the VM tier.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NetlinkError, ValidationError, VeilError } from '../../../agent/errors.js';
import type { WgLinkOps } from '../../../agent/wireguard/backend.js';
import { KernelWireGuardBackend, KernelWireGuardUnavailableError } from '../../../agent/wireguard/kernel-backend.js';
import { ipJson, NetnsSet, run } from '../../support/netns.js';

/** Link operations through `ip` (the test's own; the agent injects its rtnetlink ones). */
const ipLinks: WgLinkOps = {
  async addWireGuardLink(name, netns) {
    await run('ip', ['-n', netns, 'link', 'add', name, 'type', 'wireguard']);
  },
  async deleteLink(name, netns) {
    await run('ip', ['-n', netns, 'link', 'del', name]);
  },
  async linkInfo(name, netns) {
    const links = await ipJson<{ ifname: string; ifindex: number; linkinfo?: { info_kind?: string } }[]>(netns, ['-d', 'link', 'show']);
    const l = links.find((x) => x.ifname === name);
    return l ? { ifindex: l.ifindex, kind: l.linkinfo?.info_kind ?? null } : null;
  },
};

const nets = new NetnsSet();
let ns: string;
let kernelHasWireGuard: boolean;

beforeAll(async () => {
  ns = await nets.add('vwg');
  // Independent probe: can the kernel create a wireguard link at all?
  kernelHasWireGuard = await run('ip', ['-n', ns, 'link', 'add', 'probe0', 'type', 'wireguard']).then(
    () => run('ip', ['-n', ns, 'link', 'del', 'probe0']).then(() => true),
    () => false,
  );
  // A link of another kind under a WireGuard-like name, for the refusal tests.
  await run('ip', ['-n', ns, 'link', 'add', 'veil_wg1', 'type', 'veth', 'peer', 'name', 'veil_wg1p']);
});
afterAll(() => nets.cleanup());

const backend = () => new KernelWireGuardBackend({ netns: ns, links: ipLinks });

describe('KernelWireGuardBackend on the host kernel', () => {
  it('available() agrees with whether the kernel can create a wireguard link', async () => {
    expect(await KernelWireGuardBackend.available(ns)).toBe(kernelHasWireGuard);
  });

  it('this host kernel has no WireGuard, as ENVIRONMENT.md says (kernel WireGuard is covered by tests/vm)', () => {
    expect(kernelHasWireGuard, 'the host kernel has WireGuard: move these expectations to the VM tier').toBe(false);
  });

  it('getDevice() and setDevice() fail with a typed error naming the missing kernel feature and the fix', async () => {
    const b = backend();
    for (const op of [() => b.getDevice('veil_wg0'), () => b.setDevice('veil_wg0', { listenPort: 51820 })]) {
      const err = await op().then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(KernelWireGuardUnavailableError);
      const e = err as KernelWireGuardUnavailableError;
      expect(e.code).toBe('VEIL_MISSING_DEPENDENCY');
      expect(e.netns).toBe(ns);
      expect(e.message).toContain('"wireguard" generic netlink family');
      expect(e.message).toContain('modprobe wireguard');
      expect(e.message).toContain('userspace backend');
      expect((e.cause as NetlinkError).op).toBe('genl.resolve');
    }
  });

  it('createDevice() reports the missing kernel feature and leaves no link behind', async () => {
    await expect(backend().createDevice('veil_wg0')).rejects.toBeInstanceOf(KernelWireGuardUnavailableError);
    expect(await ipLinks.linkInfo('veil_wg0', ns)).toBeNull();
  });

  it('createDevice() refuses a link of another kind with the same name and leaves it alone', async () => {
    const err = await backend()
      .createDevice('veil_wg1')
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(VeilError);
    expect((err as VeilError).code).toBe('EEXIST');
    expect((err as Error).message).toBe(
      `Cannot create WireGuard device "veil_wg1": a link of kind "veth" already has that name in network namespace "${ns}"; delete that link or choose another device name`,
    );
    expect((await ipLinks.linkInfo('veil_wg1', ns))?.kind).toBe('veth');
  });

  it('deleteDevice() refuses a link that is not WireGuard and reports ENODEV for a missing one', async () => {
    await expect(backend().deleteDevice('veil_wg1')).rejects.toThrow(/is of kind "veth", not "wireguard"/);
    expect((await ipLinks.linkInfo('veil_wg1', ns))?.kind).toBe('veth');
    const err = await backend()
      .deleteDevice('veil_nothere')
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NetlinkError);
    expect((err as NetlinkError).code).toBe('ENODEV');
  });

  it('validates configuration before talking to the kernel', async () => {
    const b = backend();
    await expect(b.setDevice('veil_wg0', { privateKey: Buffer.alloc(31) })).rejects.toBeInstanceOf(ValidationError);
    await expect(b.setDevice('veil_wg0', { peers: [{ publicKey: Buffer.alloc(32), endpoint: '10.0.0.1' }] })).rejects.toThrow(
      /Invalid endpoint "10\.0\.0\.1" at "config\.peers\[0\]\.endpoint"/,
    );
    await expect(b.getDevice('a/b')).rejects.toBeInstanceOf(ValidationError);
  });

  it('an unknown namespace is a NetlinkError naming it, not a false "unavailable"', async () => {
    const missing = `${ns}-gone`;
    const err = await KernelWireGuardBackend.available(missing).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NetlinkError);
    expect((err as NetlinkError).code).toBe('ENOENT');
    expect((err as NetlinkError).op).toBe('netns');
    expect((err as Error).message).toContain(missing);
    expect(() => new KernelWireGuardBackend({ netns: 'a/b', links: ipLinks })).toThrow(ValidationError);
  });
});
