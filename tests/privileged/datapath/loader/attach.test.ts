import { describe, expect, it } from 'vitest';
import { existsSync, readdirSync } from 'node:fs';
import { attach, attachment, detach, listLinks, loadObject, pruneLinks, type BpfObject } from '../../../../agent/datapath/datapath.js';
import { ValidationError } from '../../../../agent/errors.js';
import { fixtureObject, pinDirPerTest } from '../../../support/bpf.js';
import { netnsPerTest, run, runIn, vethPair } from '../../../support/netns.js';

const newNetns = netnsPerTest('ld');
const pinDir = pinDirPerTest('ld');

async function topology() {
  const pod = await newNetns();
  const host = await newNetns();
  await vethPair(pod, host, { aName: 'eth0', bName: 'lxc0', aAddr: '10.99.0.2/24', bAddr: '10.99.0.1/24' });
  return { pod, host };
}

async function pingOnce(netns: string, addr: string): Promise<boolean> {
  return runIn(netns, 'ping', ['-c', '1', '-W', '1', addr]).then(
    () => true,
    () => false,
  );
}

/**
 * Whether pings get through: true as soon as one does (a neighbour entry left FAILED by an
 * earlier dropped ARP needs a retry or two), false when none of three does.
 */
async function ping(netns: string, addr: string): Promise<boolean> {
  for (let i = 0; i < 3; i++) if (await pingOnce(netns, addr)) return true;
  return false;
}

async function bpftoolPinnedLink(path: string): Promise<{ type: number | string; prog_id: number }> {
  const r = await run('bpftool', ['-j', 'link', 'show', 'pinned', path]);
  return JSON.parse(r.stdout) as { type: number | string; prog_id: number };
}

async function tcFilters(netns: string, dev: string, dir: string): Promise<string> {
  return (await run('tc', ['-n', netns, 'filter', 'show', 'dev', dev, dir])).stdout;
}

async function counter(obj: BpfObject, index: number): Promise<bigint> {
  const { bpfAddon } = await import('../../../../agent/datapath/native.js');
  const v = await bpfAddon().bpfMapLookup(obj.map('veil_counters').fd, Buffer.from(Uint32Array.of(index).buffer));
  let sum = 0n;
  for (let off = 0; v && off < v.length; off += 16) sum += v.readBigUInt64LE(off);
  return sum;
}

describe('attach() with tcx', () => {
  it('attaches, is idempotent, replaces atomically and detaches, on real packets', async () => {
    const { pod, host } = await topology();
    const dir = pinDir();
    const obj = await loadObject(fixtureObject('loader-fixture'), { pinDir: dir });
    try {
      const target = { interface: 'lxc0', direction: 'ingress' as const, netns: host };
      const pass = obj.program('fixture_pass');
      const drop = obj.program('fixture_drop');

      const first = await attach(pass, target, { pinDir: dir });
      expect(first).toMatchObject({ mode: 'tcx', action: 'created' });
      const links = readdirSync(`${dir}/links`);
      expect(links).toHaveLength(1);
      const linkPath = `${dir}/links/${links[0]}`;
      const shown = await bpftoolPinnedLink(linkPath);
      expect([11, 'tcx']).toContain(shown.type);
      expect(shown.prog_id).toBe(pass.id);
      expect(await ping(pod, '10.99.0.1')).toBe(true);
      expect(await counter(obj, 0 * 64 + 1)).toBeGreaterThan(0n); // from-pod, VEIL_FWD_LOCAL

      expect(await attach(pass, target, { pinDir: dir })).toMatchObject({ mode: 'tcx', action: 'unchanged' });
      const before = await attachment(target, { pinDir: dir });

      expect(await attach(drop, target, { pinDir: dir })).toMatchObject({ mode: 'tcx', action: 'replaced' });
      const after = await attachment(target, { pinDir: dir });
      expect(after.tcx?.progId).toBe(drop.id);
      expect(after.tcx?.linkId).toBe(before.tcx?.linkId); // the same link, program swapped in place
      expect((await bpftoolPinnedLink(linkPath)).prog_id).toBe(drop.id);
      expect(await ping(pod, '10.99.0.1')).toBe(false);
      expect(await counter(obj, 0 * 64 + 35)).toBeGreaterThan(0n); // VEIL_DROP_POLICY_DENY

      expect(await detach(target, { pinDir: dir })).toEqual(['tcx']);
      expect(existsSync(linkPath)).toBe(false);
      expect(await attachment(target, { pinDir: dir })).toEqual({ ifindex: after.ifindex });
      expect(await ping(pod, '10.99.0.1')).toBe(true);
      expect(await detach(target, { pinDir: dir })).toEqual([]);
    } finally {
      obj.close();
    }
  });

  it('keeps the program attached after the object is closed (the link is pinned)', async () => {
    const { pod, host } = await topology();
    const dir = pinDir();
    const obj = await loadObject(fixtureObject('loader-fixture'), { pinDir: dir });
    const target = { interface: 'lxc0', direction: 'ingress' as const, netns: host };
    await attach(obj.program('fixture_drop'), target, { pinDir: dir });
    const id = obj.program('fixture_drop').id;
    obj.close();
    expect((await attachment(target, { pinDir: dir })).tcx?.progId).toBe(id);
    expect(await ping(pod, '10.99.0.1')).toBe(false);
    // A restarted agent adopts it: loading again and attaching replaces it in place.
    const again = await loadObject(fixtureObject('loader-fixture'), { pinDir: dir });
    try {
      expect(await attach(again.program('fixture_pass'), target, { pinDir: dir })).toMatchObject({ mode: 'tcx', action: 'replaced' });
      expect(await ping(pod, '10.99.0.1')).toBe(true);
      await detach(target, { pinDir: dir });
    } finally {
      again.close();
    }
  });
});

describe('concurrent attaches', () => {
  it('of the same hook leave exactly one link with one of the programs', async () => {
    const { host } = await topology();
    const dir = pinDir();
    const obj = await loadObject(fixtureObject('loader-fixture'), { pinDir: dir });
    try {
      const target = { interface: 'lxc0', direction: 'ingress' as const, netns: host };
      const progs = [obj.program('fixture_pass'), obj.program('fixture_drop')];
      const results = await Promise.all(Array.from({ length: 8 }, (_, i) => attach(progs[i % 2]!, target, { pinDir: dir })));
      expect(results.every((r) => r.mode === 'tcx')).toBe(true);
      const links = await listLinks({ pinDir: dir });
      expect(links).toHaveLength(1);
      expect(progs.map((p) => p.id)).toContain(links[0]!.progId);
      // The kernel agrees: one program on the hook (bpftool net lists tcx links by device).
      const r = JSON.parse((await run('bpftool', ['-j', 'link', 'show'])).stdout) as { type: number | string; prog_id: number }[];
      const onHook = r.filter((l) => (l.type === 11 || l.type === 'tcx') && progs.some((p) => p.id === l.prog_id));
      expect(onHook).toHaveLength(1);
      await detach(target, { pinDir: dir });
    } finally {
      obj.close();
    }
  });
});

describe('pinned links after their device is gone', () => {
  it('listLinks() shows them defunct and pruneLinks() unpins only those', async () => {
    const { host } = await topology();
    const dir = pinDir();
    const obj = await loadObject(fixtureObject('loader-fixture'), { pinDir: dir });
    try {
      await run('ip', ['-n', host, 'link', 'add', 'lxc9', 'type', 'veth', 'peer', 'name', 'pod9']);
      const kept = await attach(obj.program('fixture_pass'), { interface: 'lxc0', direction: 'ingress', netns: host }, { pinDir: dir });
      const gone = await attach(obj.program('fixture_pass'), { interface: 'lxc9', direction: 'egress', netns: host }, { pinDir: dir });
      const before = await listLinks({ pinDir: dir });
      expect(before.map((l) => [l.ifindex, l.direction, l.progId]).sort()).toEqual(
        [
          [kept.ifindex, 'ingress', obj.program('fixture_pass').id],
          [gone.ifindex, 'egress', obj.program('fixture_pass').id],
        ].sort(),
      );
      await run('ip', ['-n', host, 'link', 'del', 'lxc9']);
      const after = await listLinks({ pinDir: dir });
      expect(after.find((l) => l.name.endsWith(`-${gone.ifindex}-egress`))?.ifindex).toBe(0);
      const pruned = await pruneLinks({ pinDir: dir });
      expect(pruned).toHaveLength(1);
      expect(pruned[0]!.name).toMatch(new RegExp(`-${gone.ifindex}-egress$`));
      expect((await listLinks({ pinDir: dir })).map((l) => l.ifindex)).toEqual([kept.ifindex]);
      await detach({ interface: 'lxc0', direction: 'ingress', netns: host }, { pinDir: dir });
      expect(await listLinks({ pinDir: dir })).toEqual([]);
    } finally {
      obj.close();
    }
  });
});

describe('attach() with clsact (forced)', () => {
  it('adds a cls_bpf direct-action filter that tc shows, replaces it in place and removes it', async () => {
    const { pod, host } = await topology();
    const dir = pinDir();
    const obj = await loadObject(fixtureObject('loader-fixture'), { pinDir: dir });
    try {
      const target = { interface: 'lxc0', direction: 'ingress' as const, netns: host };
      const pass = obj.program('fixture_pass');
      const drop = obj.program('fixture_drop');
      expect(await attach(drop, target, { pinDir: dir, mode: 'clsact' })).toMatchObject({ mode: 'clsact', action: 'created' });
      let tc = await tcFilters(host, 'lxc0', 'ingress');
      expect(tc).toMatch(/pref 1 bpf .*handle 0x1 veil direct-action/);
      expect(tc).toContain(`id ${drop.id} `);
      expect(await ping(pod, '10.99.0.1')).toBe(false);

      expect(await attach(drop, target, { pinDir: dir, mode: 'clsact' })).toMatchObject({ action: 'unchanged' });
      expect(await attach(pass, target, { pinDir: dir, mode: 'clsact' })).toMatchObject({ mode: 'clsact', action: 'replaced' });
      tc = await tcFilters(host, 'lxc0', 'ingress');
      expect(tc).toContain(`id ${pass.id} `);
      expect(tc.match(/handle 0x1 veil/g)).toHaveLength(1);
      expect(await ping(pod, '10.99.0.1')).toBe(true);
      expect(await attachment(target, { pinDir: dir })).toMatchObject({ clsact: { progId: pass.id } });

      // Switching to tcx removes the filter, so the program runs once.
      expect(await attach(pass, target, { pinDir: dir })).toMatchObject({ mode: 'tcx', action: 'replaced' });
      expect(await tcFilters(host, 'lxc0', 'ingress')).not.toContain('veil');
      expect(await attach(drop, target, { pinDir: dir, mode: 'clsact' })).toMatchObject({ mode: 'clsact', action: 'replaced' });
      expect((await attachment(target, { pinDir: dir })).tcx).toBeUndefined();

      expect(await detach(target, { pinDir: dir })).toEqual(['clsact']);
      expect(await tcFilters(host, 'lxc0', 'ingress')).not.toContain('veil');
      expect(await ping(pod, '10.99.0.1')).toBe(true);
    } finally {
      obj.close();
    }
  });
});

describe('attach() bad input', () => {
  it('a missing interface or namespace is a typed error and leaves nothing attached', async () => {
    const { host } = await topology();
    const dir = pinDir();
    const obj = await loadObject(fixtureObject('loader-fixture'), { pinDir: dir });
    try {
      const pass = obj.program('fixture_pass');
      await expect(attach(pass, { interface: 'nope0', direction: 'ingress', netns: host }, { pinDir: dir })).rejects.toMatchObject({
        code: 'ENODEV',
        message: expect.stringContaining('Device "nope0" does not exist'),
      });
      await expect(attach(pass, { interface: 'lxc0', direction: 'ingress', netns: 'ld-missing-netns' }, { pinDir: dir })).rejects.toMatchObject({
        code: 'ENOENT',
        message: expect.stringContaining('ld-missing-netns'),
      });
      await expect(attach(pass, { interface: 'lxc0', direction: 'sideways' as 'ingress', netns: host }, { pinDir: dir })).rejects.toBeInstanceOf(ValidationError);
      await expect(attach(pass, { interface: 'lxc0', direction: 'ingress', netns: host }, { pinDir: dir, mode: 'xdp' as 'tcx' })).rejects.toBeInstanceOf(ValidationError);
      await expect(attach(pass, { interface: 'way-too-long-name0', direction: 'ingress', netns: host }, { pinDir: dir })).rejects.toBeInstanceOf(ValidationError);
      expect(await attachment({ interface: 'lxc0', direction: 'ingress', netns: host }, { pinDir: dir })).toEqual({ ifindex: expect.any(Number) });
      expect(existsSync(`${dir}/links`) ? readdirSync(`${dir}/links`) : []).toEqual([]);
      expect(await tcFilters(host, 'lxc0', 'ingress')).toBe('');
    } finally {
      obj.close();
    }
  });
});
