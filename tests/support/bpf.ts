/**
 * Helpers for tests of eBPF objects: compiled fixtures and programs (build/bpf-test/,
 * build/bpf/), a bpffs pin directory per test (removed afterwards, with everything pinned in it),
 * and a minimal Ethernet + IPv4 frame for loader tests (the general packet builder for program
 * tests is tests/support/packets.ts).
 */
import { existsSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach } from 'vitest';
import { projectRoot } from '../../agent/project-root.js';
import { uniqueName } from './netns.js';
import { udp } from './packets.js';

/** Path of a compiled test fixture (tests/fixtures/bpf/NAME.bpf.c); fails saying how to build it. */
export function fixtureObject(name: string): string {
  const p = join(projectRoot(), 'build', 'bpf-test', `${name}.bpf.o`);
  if (!existsSync(p)) throw new Error(`eBPF fixture "${p}" is not built: run "bash scripts/build.sh" (needs clang and libbpf-dev)`);
  return p;
}

/** Path of a compiled datapath program (bpf/NAME.bpf.c); fails saying how to build it. */
export function programObject(name: string): string {
  const p = join(projectRoot(), 'build', 'bpf', `${name}.bpf.o`);
  if (!existsSync(p)) throw new Error(`eBPF object "${p}" is not built: run "bash scripts/build.sh" (needs clang and libbpf-dev)`);
  return p;
}

/**
 * A pin-directory factory for one test file: each call gives a fresh directory under
 * /sys/fs/bpf (created by the loader), removed with its pins after the test that asked for it.
 */
export function pinDirPerTest(tag = 'vt'): () => string {
  const dirs: string[] = [];
  afterEach(async () => {
    for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
  });
  return () => {
    const d = `/sys/fs/bpf/veil-test-${uniqueName(tag)}`;
    dirs.push(d);
    return d;
  };
}

/** An Ethernet + IPv4 + UDP frame from the one packet builder (tests/support/packets.ts). */
export function ipv4UdpFrame(src: string, dst: string, sport = 1000, dport = 2000, payload = 16): Buffer {
  return Buffer.from(udp({ src, dst, sport, dport, payload: new Uint8Array(payload) }));
}
