import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../../../agent/errors.js';
import { KernelWireGuardBackend } from '../../../agent/wireguard/kernel-backend.js';
import { parseBackendChoice, selectWireGuardBackend } from '../../../agent/wireguard/select.js';
import { run, NetnsSet } from '../../support/netns.js';

const nsSet = new NetnsSet();
let ns = '';
let stateDir = '';

/** Whether this kernel can create a WireGuard link, asked independently of the addon. */
async function kernelHasWireGuard(netns: string): Promise<boolean> {
  try {
    await run('ip', ['-n', netns, 'link', 'add', 'wgprobe0', 'type', 'wireguard']);
    await run('ip', ['-n', netns, 'link', 'del', 'wgprobe0']);
    return true;
  } catch {
    return false;
  }
}

beforeAll(async () => {
  ns = await nsSet.add('vsel');
  stateDir = mkdtempSync(join(tmpdir(), 'veil-select-'));
});
afterAll(async () => {
  await nsSet.cleanup();
  rmSync(stateDir, { recursive: true, force: true });
});

describe('selectWireGuardBackend()', () => {
  it('auto picks the kernel backend exactly when the kernel can make WireGuard links', async () => {
    const kernel = await kernelHasWireGuard(ns);
    const backend = await selectWireGuardBackend({ netns: ns, stateDir, backend: 'auto' });
    expect(backend.kind).toBe(kernel ? 'kernel' : 'userspace');
    expect(backend.netns).toBe(ns);
    expect(await KernelWireGuardBackend.available(ns)).toBe(kernel);
    await backend.close();
  });

  it('userspace can be forced on any kernel', async () => {
    const backend = await selectWireGuardBackend({ netns: ns, stateDir, backend: 'userspace' });
    expect(backend.kind).toBe('userspace');
    await backend.close();
  });

  it('forcing the kernel backend on a kernel without WireGuard fails at startup with the fix', async () => {
    if (await kernelHasWireGuard(ns)) {
      expect((await selectWireGuardBackend({ netns: ns, stateDir, backend: 'kernel' })).kind).toBe('kernel');
      return;
    }
    const err = await selectWireGuardBackend({ netns: ns, stateDir, backend: 'kernel' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toMatch(/has no WireGuard.*use backend "userspace"/);
  });

  it('reads VEIL_WIREGUARD_BACKEND and refuses unknown values', () => {
    expect(parseBackendChoice(undefined)).toBe('auto');
    expect(parseBackendChoice('')).toBe('auto');
    expect(parseBackendChoice('kernel')).toBe('kernel');
    expect(parseBackendChoice('userspace')).toBe('userspace');
    expect(() => parseBackendChoice('wg-go')).toThrow(/Unknown WireGuard backend "wg-go": use "kernel", "userspace" or "auto"/);
  });
});
