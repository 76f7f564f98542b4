import { describe, expect, it } from 'vitest';
import { readdir } from 'node:fs/promises';
import { writeFileSync } from 'node:fs';
import { loadObject, loadObjects, testRun } from '../../../../agent/datapath/datapath.js';
import { bpfAddon } from '../../../../agent/datapath/native.js';
import { NetlinkError, ValidationError, VeilError } from '../../../../agent/errors.js';
import { fixtureObject, ipv4UdpFrame, pinDirPerTest } from '../../../support/bpf.js';
import { run } from '../../../support/netns.js';
import { projectRoot } from '../../../../agent/project-root.js';

const pinDir = pinDirPerTest('ld');
const TC_ACT_OK = 0;
const TC_ACT_SHOT = 2;

describe('loadObject()', () => {
  it('loads every program and pins the shared maps by name', async () => {
    const dir = pinDir();
    const obj = await loadObject(fixtureObject('loader-fixture'), { pinDir: dir });
    try {
      expect([...obj.programs.keys()].sort()).toEqual(['fixture_drop', 'fixture_pass']);
      expect(obj.map('veil_config').pinPath).toBe(`${dir}/veil_config`);
      expect(obj.map('veil_events').pinPath).toBeUndefined();
      const pinned = (await readdir(dir)).filter((n) => n !== 'links').sort();
      expect(pinned).toEqual(['veil_config', 'veil_counters', 'veil_endpoints', 'veil_ipc4_host', 'veil_ipc4_lpm', 'veil_ipc6_host', 'veil_ipc6_lpm', 'veil_policy']);
    } finally {
      obj.close();
    }
  });

  it('a second load re-uses the pinned maps and their contents', async () => {
    const dir = pinDir();
    const first = await loadObject(fixtureObject('loader-fixture'), { pinDir: dir });
    const key = Buffer.from([7, 0, 0, 0]);
    const value = Buffer.alloc(32, 0xab);
    await bpfAddon().bpfMapUpdate(first.map('veil_endpoints').fd, key, value, 0);
    const firstId = first.map('veil_endpoints').id;
    first.close();
    const second = await loadObject(fixtureObject('loader-fixture'), { pinDir: dir });
    try {
      expect(second.map('veil_endpoints').id).toBe(firstId);
      expect(await bpfAddon().bpfMapLookup(second.map('veil_endpoints').fd, key)).toEqual(value);
    } finally {
      second.close();
    }
  });

  it('loads only the programs asked for and sets rodata before load', async () => {
    const obj = await loadObject(fixtureObject('loader-fixture'), {
      pinDir: pinDir(),
      programs: ['fixture_pass'],
      rodata: { fixture_mark: Buffer.from(Uint32Array.of(0x12340e00).buffer) },
    });
    try {
      expect([...obj.programs.keys()]).toEqual(['fixture_pass']);
      const r = await testRun(obj.program('fixture_pass'), ipv4UdpFrame('10.0.0.1', '10.0.0.2'));
      expect(r.mark).toBe(0x12340e00);
      expect(() => obj.program('fixture_drop')).toThrow(/Program "fixture_drop" is not loaded/);
    } finally {
      obj.close();
    }
  });

  it('shares an unpinned map between objects with reuseMaps', async () => {
    const dir = pinDir();
    const a = await loadObject(fixtureObject('loader-fixture'), { pinDir: dir });
    const b = await loadObject(fixtureObject('loader-fixture'), { pinDir: dir, reuseMaps: { veil_events: a.map('veil_events') } });
    try {
      expect(b.map('veil_events').id).toBe(a.map('veil_events').id);
    } finally {
      a.close();
      b.close();
    }
  });

  it('loadObjects() gives every object the same maps, pinned or not, or loads none', async () => {
    const dir = pinDir();
    const objs = await loadObjects([fixtureObject('loader-fixture'), fixtureObject('loader-fixture')], { pinDir: dir });
    try {
      const [a, b] = objs as [Awaited<ReturnType<typeof loadObject>>, Awaited<ReturnType<typeof loadObject>>];
      for (const name of ['veil_events', 'veil_policy', 'veil_counters']) expect(b.map(name).id).toBe(a.map(name).id);
    } finally {
      for (const o of objs) o.close();
    }
    await expect(loadObjects([fixtureObject('loader-fixture'), '/nonexistent.bpf.o'], { pinDir: dir })).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('refuses bad input with typed errors', async () => {
    const dir = pinDir();
    await expect(loadObject('/nonexistent/x.bpf.o', { pinDir: dir })).rejects.toMatchObject({ code: 'ENOENT', message: expect.stringMatching(/Cannot read eBPF object "\/nonexistent\/x.bpf.o"/) });
    const notElf = `/tmp/veil-ld-not-elf-${process.pid}.o`;
    writeFileSync(notElf, 'this is not an ELF file\n');
    await expect(loadObject(notElf, { pinDir: dir })).rejects.toMatchObject({ code: 'ENOEXEC' });
    await expect(loadObject(fixtureObject('loader-fixture'), { pinDir: dir, programs: ['nope'] })).rejects.toMatchObject({
      code: 'ENOENT',
      message: expect.stringContaining('Program "nope" is not in'),
    });
    await expect(loadObject(fixtureObject('loader-fixture'), { pinDir: dir, rodata: { nope: Buffer.alloc(4) } })).rejects.toMatchObject({ code: 'ENOENT' });
    await expect(loadObject(fixtureObject('loader-fixture'), { pinDir: dir, rodata: { fixture_mark: Buffer.alloc(2) } })).rejects.toMatchObject({ code: 'EINVAL' });
    await expect(loadObject(fixtureObject('loader-fixture'), { pinDir: 'relative/dir' })).rejects.toBeInstanceOf(ValidationError);
    await expect(loadObject(fixtureObject('loader-fixture'), { pinDir: '/tmp' })).rejects.toMatchObject({ code: 'EINVAL', message: expect.stringContaining('is not on a bpf filesystem') });
    // The verifier's reason is the last line of a long log: the error carries it.
    const refused = (await loadObject(fixtureObject('verifier-reject'), { pinDir: dir }).catch((e: unknown) => e)) as Error;
    expect(refused).toBeInstanceOf(VeilError);
    expect(refused.message).toContain('fixture_reject');
    expect(refused.message).toMatch(/invalid access to packet/);
    expect(refused.message.match(/Cannot load eBPF object/g)).toHaveLength(1);
    const err = await loadObject('/nonexistent/x.bpf.o', { pinDir: dir }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NetlinkError);
    expect(err).toBeInstanceOf(VeilError);
  });
});

describe('testRun()', () => {
  it('returns the verdict, the mark and the packet, and runs repeatedly', async () => {
    const obj = await loadObject(fixtureObject('loader-fixture'), { pinDir: pinDir() });
    try {
      const frame = ipv4UdpFrame('10.0.0.1', '10.0.0.2');
      const pass = await testRun(obj.program('fixture_pass'), frame, { ctx: { mark: 0x5 }, repeat: 100 });
      expect(pass.retval).toBe(TC_ACT_OK);
      expect(pass.mark).toBe(0x00000e00); // node identity 0 in the empty config
      expect(pass.dataOut).toEqual(frame);
      expect(pass.durationNs).toBeGreaterThan(0);
      const drop = await testRun(obj.program('fixture_drop'), frame);
      expect(drop.retval).toBe(TC_ACT_SHOT);
    } finally {
      obj.close();
    }
  });

  it('refuses a frame shorter than an Ethernet header before calling the kernel', async () => {
    const obj = await loadObject(fixtureObject('loader-fixture'), { pinDir: pinDir() });
    try {
      await expect(testRun(obj.program('fixture_pass'), Buffer.alloc(10))).rejects.toBeInstanceOf(ValidationError);
      await expect(testRun(obj.program('fixture_pass'), ipv4UdpFrame('10.0.0.1', '10.0.0.2'), { ctx: { ifindex: 999999 } })).rejects.toMatchObject({ code: 'ENODEV' });
    } finally {
      obj.close();
    }
  });
});

describe('the addon edge, with the TypeScript checks bypassed', () => {
  it('refuses garbage with errors carrying an errno name, and does not crash', async () => {
    const a = bpfAddon() as unknown as Record<string, (...args: unknown[]) => unknown>;
    await expect(a.bpfLoad!(123)).rejects.toMatchObject({ code: 'EINVAL' });
    await expect(a.bpfLoad!('/x.o', { pinDir: 'relative' })).rejects.toMatchObject({ code: 'ENOENT' });
    await expect(a.bpfAttach!({})).rejects.toMatchObject({ code: 'EINVAL' });
    await expect(a.bpfAttach!({ progFd: 0, interface: 'lo', direction: 'up', pinDir: '/sys/fs/bpf/x' })).rejects.toMatchObject({ code: 'EINVAL' });
    await expect(a.bpfMapLookup!({}, Buffer.alloc(4))).rejects.toMatchObject({ code: 'EINVAL' });
    await expect(a.bpfMapLookup!(0, Buffer.alloc(4))).rejects.toMatchObject({ code: 'EINVAL', message: expect.stringContaining('is not a BPF map') });
    await expect(a.bpfTestRun!(-1, Buffer.alloc(64))).rejects.toMatchObject({ code: 'EBADF' });
    const obj = await loadObject(fixtureObject('loader-fixture'), { pinDir: pinDir() });
    try {
      await expect(a.bpfTestRun!(obj.program('fixture_pass').fd, Buffer.alloc(5))).rejects.toMatchObject({ code: 'EINVAL' });
      await expect(a.bpfAttach!({ progFd: obj.map('veil_policy').fd, interface: 'lo', direction: 'ingress', pinDir: '/sys/fs/bpf/x' })).rejects.toMatchObject({ code: 'EINVAL' });
      expect(() => a.bpfRingbufOpen!(obj.map('veil_policy').fd, () => undefined)).toThrow(expect.objectContaining({ code: expect.any(String) }));
      expect(() => a.bpfBtfStructLayout!(fixtureObject('loader-fixture'), 'no_such_struct')).toThrow(expect.objectContaining({ code: 'ENOENT' }));
      await expect(a.bpfMapDump!(obj.map('veil_events').fd, {})).rejects.toMatchObject({ code: 'EINVAL', message: expect.stringContaining('ring buffer') });
    } finally {
      obj.close();
    }
  });
});

describe('bpffs', () => {
  it('is mounted at /sys/fs/bpf with mount(2) when nothing is mounted there', async () => {
    // In a private mount namespace (the host's bpffs stays untouched): unmount every bpffs at
    // /sys/fs/bpf, let the built agent prepare a pin directory, then ask the kernel what is there.
    const script = [
      'while mountpoint -q /sys/fs/bpf; do umount -l /sys/fs/bpf; done',
      'stat -f -c %T /sys/fs/bpf',
      `node --input-type=module -e "const d = await import('${projectRoot()}/dist/agent/datapath/datapath.js'); await d.ensurePinDir('/sys/fs/bpf/veil-ld-mount/x');"`,
      'stat -f -c %T /sys/fs/bpf /sys/fs/bpf/veil-ld-mount/x',
    ].join(' && ');
    const out = (await run('unshare', ['--mount', '--propagation', 'private', 'sh', '-c', script])).stdout.trim().split('\n');
    expect(out).toEqual(['sysfs', 'bpf_fs', 'bpf_fs']);
  });
});
