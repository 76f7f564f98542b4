import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { DatapathLoader } from '../../../../agent/datapath/loader.js';
import { createRootLogger } from '../../../../agent/log/logger.js';
import { fixtureObject, pinDirPerTest } from '../../../support/bpf.js';
import { netnsPerTest, run } from '../../../support/netns.js';

const newNetns = netnsPerTest('ld');
const pinDir = pinDirPerTest('ld');

function capture() {
  const lines: Record<string, unknown>[] = [];
  const destination = new Writable({
    write(chunk, _enc, cb) {
      for (const l of String(chunk).split('\n')) if (l.trim()) lines.push(JSON.parse(l) as Record<string, unknown>);
      cb();
    },
  });
  return { log: createRootLogger({ level: 'debug', destination }), lines };
}

describe('DatapathLoader', () => {
  it('loads, attaches, adopts after a restart, prunes and logs every kernel change', async () => {
    const ns = await newNetns();
    await run('ip', ['-n', ns, 'link', 'add', 'lxc0', 'type', 'veth', 'peer', 'name', 'pod0']);
    await run('ip', ['-n', ns, 'link', 'add', 'lxc1', 'type', 'veth', 'peer', 'name', 'pod1']);
    const dir = pinDir();
    const { log, lines } = capture();

    const first = new DatapathLoader({ log, pinDir: dir });
    await first.prepare();
    const [obj] = await first.load([fixtureObject('loader-fixture')]);
    expect(await first.attach(obj!.program('fixture_pass'), { interface: 'lxc0', direction: 'ingress', netns: ns })).toMatchObject({ action: 'created' });
    expect(await first.attach(obj!.program('fixture_pass'), { interface: 'lxc1', direction: 'ingress', netns: ns })).toMatchObject({ action: 'created' });
    obj!.close();

    // A restarted agent: same pin directory; lxc1's pod went away meanwhile.
    await run('ip', ['-n', ns, 'link', 'del', 'lxc1']);
    const second = new DatapathLoader({ log, pinDir: dir });
    const [again] = await second.load([fixtureObject('loader-fixture')]);
    try {
      expect((await second.links()).map((l) => l.ifindex === 0).sort()).toEqual([false, true]);
      expect(await second.attach(again!.program('fixture_drop'), { interface: 'lxc0', direction: 'ingress', netns: ns })).toMatchObject({ action: 'replaced' });
      expect(await second.attach(again!.program('fixture_drop'), { interface: 'lxc0', direction: 'ingress', netns: ns })).toMatchObject({ action: 'unchanged' });
      expect(await second.prune()).toHaveLength(1);
      expect(await second.detach({ interface: 'lxc0', direction: 'ingress', netns: ns })).toEqual(['tcx']);
      expect(await second.links()).toEqual([]);
    } finally {
      again!.close();
    }
    const msgs = lines.map((l) => [l.module, l.msg]);
    expect(msgs).toEqual([
      ['datapath', 'Loaded eBPF object'],
      ['datapath', 'Attached eBPF program'],
      ['datapath', 'Attached eBPF program'],
      ['datapath', 'Loaded eBPF object'],
      ['datapath', 'Replaced attached eBPF program'],
      ['datapath', 'eBPF program already attached'],
      ['datapath', 'Unpinned eBPF links of deleted devices'],
      ['datapath', 'Detached eBPF program'],
    ]);
    expect(lines[1]).toMatchObject({ program: 'fixture_pass', interface: 'lxc0', mode: 'tcx', action: 'created', netns: ns });
  });
});
