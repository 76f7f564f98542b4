/**
 * Proves the VM harness and the guest-kernel features later VM tests rely on. `ip`, `bpftool` and
 * `stat` here probe the VM itself; they are not cross-checks of code under test.
 */
import { randomBytes } from 'node:crypto';
import { release } from 'node:os';
import { beforeAll, describe, expect, it } from 'vitest';
import type { Vm } from './harness/client.js';
import { vm } from './harness/vm.js';

let v: Vm;

beforeAll(async () => {
  v = await vm();
});

/** Runs `body` with a fresh network namespace in the guest, removed afterwards. */
async function withGuestNetns<T>(body: (ns: string) => Promise<T>): Promise<T> {
  const ns = `vmh${randomBytes(4).toString('hex')}`;
  await v.check(`ip netns add ${ns}`);
  try {
    return await body(ns);
  } finally {
    await v.exec(`ip netns del ${ns}`);
  }
}

describe('VM harness', () => {
  it('runs a Debian kernel other than the host kernel', async () => {
    const guest = (await v.check('uname -r')).trim();
    expect(guest).toBe(v.kernelRelease);
    expect(guest).not.toBe(release());
  });

  it('runs commands as root in the checkout root, the same path as on the host', async () => {
    expect((await v.check('id -u')).trim()).toBe('0');
    expect((await v.check('pwd')).trim()).toBe(v.checkout);
    expect((await v.check('pwd', { cwd: '/tmp' })).trim()).toBe('/tmp');
  });

  it('reports exit codes, stderr and stdin, and check() rejects with the exit code', async () => {
    const r = await v.exec('echo out; echo err >&2; exit 3');
    expect(r).toMatchObject({ code: 3, stdout: 'out\n', stderr: 'err\n' });
    expect((await v.check('cat', { stdin: 'through stdin\n' })).trim()).toBe('through stdin');
    await expect(v.check('echo nope >&2; exit 7')).rejects.toThrow(/exit code 7[\s\S]*nope/);
  });

  it('reports a command killed by a signal as 128 + the signal number', async () => {
    const r = await v.exec('kill -TERM $$');
    expect(r.code).toBe(128 + 15);
  });

  it('kills a command that outlives its timeout, children included, and rejects', async () => {
    const seconds = 3000 + randomBytes(2).readUInt16BE(0); // a sleep no other command runs
    await expect(v.exec(`sleep ${seconds} & wait`, { timeoutMs: 1_000 })).rejects.toThrow(/timed out after 1000 ms/);
    // "slee[p]" keeps the pattern from matching pgrep's own shell.
    const left = await v.exec(`pgrep -f 'slee[p] ${seconds}'`);
    expect(left.stdout).toBe('');
  });

  it('runs several commands at once on one connection', async () => {
    const finished: string[] = [];
    const slow = v.check('sleep 5; echo slow').then((out) => finished.push(out.trim()));
    const fast = v.check('echo fast').then((out) => finished.push(out.trim()));
    await Promise.all([slow, fast]);
    // The quick command did not wait behind the sleeping one sent before it.
    expect(finished).toEqual(['fast', 'slow']);
  });

  it('returns large output intact', async () => {
    const out = await v.check('head -c 3000000 /dev/zero | tr "\\0" a');
    expect(out.length).toBe(3_000_000);
    expect(out).toMatch(/^a+$/);
  });

  it('sees the host root read-only, with writable tmpfs on /tmp and /run (and /var/run)', async () => {
    const write = await v.exec('touch ./.vm-write-probe');
    expect(write.code).not.toBe(0);
    expect(write.stderr).toMatch(/Read-only file system/);
    await v.check('echo x > /tmp/probe && echo y > /run/probe && test "$(cat /var/run/probe)" = y');
    expect((await v.check('stat -f -c %T /tmp /run')).trim().split('\n')).toEqual(['tmpfs', 'tmpfs']);
  });

  it('has no network device besides loopback in its initial namespace', async () => {
    const links = JSON.parse(await v.check('ip -j link show')) as { ifname: string }[];
    expect(links.map((l) => l.ifname)).toEqual(['lo']);
  });
});

describe('VM guest toolchain', () => {
  it('runs the host node binary', async () => {
    expect((await v.check('node -e "console.log(process.versions.node)"')).trim()).toBe(process.versions.node);
  });

  it("loads the project's native addon from the checkout's build", async () => {
    const out = await v.check(
      `node --input-type=module -e "const m = await import('./dist/agent/native/addon.js'); console.log(typeof m.native())"`,
    );
    expect(out.trim()).toBe('object');
  });
});

describe('VM guest kernel features', () => {
  it('creates a kernel WireGuard device in a fresh namespace', async () => {
    await withGuestNetns(async (ns) => {
      await v.check(`ip -n ${ns} link add wg0 type wireguard`);
      const links = JSON.parse(await v.check(`ip -n ${ns} -d -j link show wg0`)) as {
        linkinfo?: { info_kind?: string };
      }[];
      expect(links[0]?.linkinfo?.info_kind).toBe('wireguard');
    });
  });

  it('installs an ESP state with rfc4106(gcm(aes)) (crypto modules autoload)', async () => {
    await withGuestNetns(async (ns) => {
      const key = `0x${'11'.repeat(20)}`; // 16-byte AES key + 4-byte salt; a test constant
      await v.check(
        `ip -n ${ns} xfrm state add src 10.200.0.1 dst 10.200.0.2 proto esp spi 0x1000 reqid 1 mode tunnel ` +
          `aead 'rfc4106(gcm(aes))' ${key} 128`,
      );
      const states = await v.check(`ip -n ${ns} xfrm state`);
      expect(states).toMatch(/proto esp spi 0x00001000/);
      expect(states).toMatch(/rfc4106\(gcm\(aes\)\)/);
    });
  });

  it('has bpffs mounted and BTF, and pins a BPF map', async () => {
    expect((await v.check('stat -f -c %T /sys/fs/bpf')).trim()).toBe('bpf_fs');
    await v.check('test -s /sys/kernel/btf/vmlinux');
    const pin = `/sys/fs/bpf/vmh${randomBytes(4).toString('hex')}`;
    try {
      await v.check(`bpftool map create ${pin} type hash key 4 value 4 entries 8 name vmh`);
      const map = JSON.parse(await v.check(`bpftool -j map show pinned ${pin}`)) as { type?: string };
      expect(map.type).toBe('hash');
    } finally {
      await v.exec(`rm -f ${pin}`);
    }
  });
});
