import { existsSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { addLinks, getLink } from '../../../agent/netlink/link.js';
import { addNetns, deleteNetns, getSysctl, setSysctl } from '../../../agent/netlink/netns.js';
import { ValidationError } from '../../../agent/errors.js';
import { native } from '../../../agent/native/addon.js';
import { run, runIn, uniqueName } from '../../support/netns.js';

const created: string[] = [];
afterEach(async () => {
  for (const n of created.splice(0)) await run('ip', ['netns', 'del', n]).catch(() => undefined);
});

function name(): string {
  const n = uniqueName('lbns');
  created.push(n);
  return n;
}

async function ipNetnsList(): Promise<string[]> {
  const r = await run('ip', ['-j', 'netns', 'list']);
  const list = (r.stdout.trim() ? JSON.parse(r.stdout) : []) as { name: string }[];
  return list.map((e) => e.name);
}

describe('named network namespaces', () => {
  it('addNetns() makes a namespace that ip netns lists and ip netns exec enters', async () => {
    const ns = name();
    await addNetns(ns);
    expect(await ipNetnsList()).toContain(ns);
    // A namespace of its own: only loopback, and not the host's links.
    const links = JSON.parse((await run('ip', ['-n', ns, '-j', 'link', 'show'])).stdout) as { ifname: string }[];
    expect(links.map((l) => l.ifname)).toEqual(['lo']);
    const inode = (await runIn(ns, 'stat', ['-L', '-c', '%i', '/proc/self/ns/net'])).stdout.trim();
    const host = (await run('stat', ['-L', '-c', '%i', '/proc/self/ns/net'])).stdout.trim();
    expect(inode).not.toBe(host);
  });

  it('the addon’s netlink calls reach a namespace made by addNetns()', async () => {
    const ns = name();
    await addNetns(ns);
    await addLinks([{ name: 'lbdummy0', kind: 'bridge', up: true }], { netns: ns });
    expect((await getLink('lbdummy0', { netns: ns })).kind).toBe('bridge');
    await expect(run('ip', ['link', 'show', 'lbdummy0'])).rejects.toThrow();
  });

  it('addNetns() refuses an existing name with EEXIST and leaves it intact', async () => {
    const ns = name();
    await addNetns(ns);
    await addLinks([{ name: 'lbdummy0', kind: 'bridge' }], { netns: ns });
    await expect(addNetns(ns)).rejects.toMatchObject({ code: 'EEXIST' });
    expect((await getLink('lbdummy0', { netns: ns })).kind).toBe('bridge');
  });

  it('deleteNetns() removes the mount and the file; a second delete is ENOENT unless ignoreMissing', async () => {
    const ns = name();
    await addNetns(ns);
    await deleteNetns(ns);
    expect(existsSync(`/run/netns/${ns}`)).toBe(false);
    expect(await ipNetnsList()).not.toContain(ns);
    await expect(deleteNetns(ns)).rejects.toMatchObject({ code: 'ENOENT' });
    await expect(deleteNetns(ns, { ignoreMissing: true })).resolves.toBeUndefined();
  });

  it('deleteNetns() removes a namespace made by ip netns add', async () => {
    const ns = name();
    await run('ip', ['netns', 'add', ns]);
    await deleteNetns(ns);
    expect(await ipNetnsList()).not.toContain(ns);
  });

  it('setSysctl() changes the namespace only, as sysctl inside it reports', async () => {
    const ns = name();
    await addNetns(ns);
    const hostBefore = (await run('cat', ['/proc/sys/net/ipv4/ip_forward'])).stdout.trim();
    await setSysctl('net.ipv4.ip_forward', 1, { netns: ns });
    await setSysctl('net.ipv6.conf.all.forwarding', '1', { netns: ns });
    expect((await runIn(ns, 'cat', ['/proc/sys/net/ipv4/ip_forward'])).stdout.trim()).toBe('1');
    expect((await runIn(ns, 'cat', ['/proc/sys/net/ipv6/conf/all/forwarding'])).stdout.trim()).toBe('1');
    expect(await getSysctl('net.ipv4.ip_forward', { netns: ns })).toBe('1');
    expect((await run('cat', ['/proc/sys/net/ipv4/ip_forward'])).stdout.trim()).toBe(hostBefore);
  });

  it('rejects bad names, keys and values before anything reaches the kernel', async () => {
    await expect(addNetns('a/b')).rejects.toThrow(ValidationError);
    await expect(addNetns('..')).rejects.toThrow(ValidationError);
    await expect(addNetns('')).rejects.toThrow(ValidationError);
    await expect(setSysctl('kernel.hostname', 'x', { netns: 'x' })).rejects.toThrow(/only "net\." sysctls/);
    await expect(setSysctl('net.ipv4/../x', '1')).rejects.toThrow(ValidationError);
    await expect(setSysctl('net.ipv4.ip_forward', '')).rejects.toThrow(ValidationError);
    await expect(setSysctl('net.ipv4.no_such_key', '1', { netns: 'lbnonexistent' })).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('the addon refuses bad input on its own when the TypeScript checks are bypassed', async () => {
    const raw = native();
    for (const call of [
      () => raw.netnsAdd!('a/b'),
      () => raw.netnsAdd!('..'),
      () => raw.netnsAdd!(5),
      () => raw.netnsDelete!(''),
      () => raw.sysctlSet!('net..x', '1'),
      () => raw.sysctlSet!('net.ipv4/../../x', '1'),
      () => raw.sysctlSet!('net.ipv4.ip_forward', ''),
      () => raw.sysctlGet!('.net', {}),
    ]) {
      await expect(call()).rejects.toMatchObject({ code: 'EINVAL' });
    }
    expect(existsSync('/run/netns/a')).toBe(false);
  });

  it('setSysctl() on a missing key names the key and the errno', async () => {
    const ns = name();
    await addNetns(ns);
    await expect(setSysctl('net.ipv4.no_such_key', '1', { netns: ns })).rejects.toMatchObject({
      code: 'ENOENT',
      message: expect.stringContaining('"net.ipv4.no_such_key"'),
    });
  });
});
