import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TestProject } from 'vitest/node';
import { Broker } from './broker.js';
import { VM_INFO_ENV, type VmInfo } from './protocol.js';
import { QemuVm } from './qemu-vm.js';

declare module 'vitest' {
  export interface ProvidedContext {
    veilVm: VmInfo;
  }
}

const BOOT_TIMEOUT_MS = 180_000;

/**
 * Boots the one VM every VM test file shares (a Debian kernel under qemu TCG, the host's root
 * mounted read-only over 9p), serves it to test workers through a broker socket, and powers it
 * off after the last test. See docs/testing.md.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const checkout = resolve(fileURLToPath(new URL('../../..', import.meta.url)));
  // Short path: unix socket paths are limited to 107 bytes.
  const dir = mkdtempSync(join(tmpdir(), 'veil-vm-'));
  const consoleLog = join(checkout, '.vm', 'console.log');
  let vm: QemuVm;
  try {
    vm = await QemuVm.boot({ checkout, rpcSocket: join(dir, 'qemu.sock'), consoleLog, bootTimeoutMs: BOOT_TIMEOUT_MS });
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  const t = vm.timings;
  console.log(
    `VM: kernel ${t.kernelRelease} ready in ${(t.bootMs / 1000).toFixed(1)} s (guest uptime ${t.guestUptimeS.toFixed(1)} s, ` +
      `node ${t.nodeVersion}); initramfs ${(t.initramfsMs / 1000).toFixed(2)} s; console log ${consoleLog}`,
  );

  const socket = join(dir, 'rpc.sock');
  let broker: Broker;
  try {
    broker = await Broker.listen(socket, vm.rpc);
  } catch (err) {
    await vm.shutdown();
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  const info: VmInfo = { socket, kernelRelease: t.kernelRelease, checkout, consoleLog };
  project.provide('veilVm', info);
  process.env[VM_INFO_ENV] = JSON.stringify(info);

  return async () => {
    const t0 = Date.now();
    try {
      await broker.close();
      await vm.shutdown();
      console.log(`VM: powered off in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };
}
