import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { addRules, deleteRules, listRules, type Rule, type RuleSpec } from '../../../agent/netlink/rule.js';
import { ipJson, NetnsSet } from '../../support/netns.js';
import { rejection } from '../../support/netlink-error.js';

interface IpRule {
  priority: number;
  src: string;
  srclen?: number;
  dst?: string;
  dstlen?: number;
  fwmark?: string;
  fwmask?: string;
  iif?: string;
  oif?: string;
  table?: string;
  action?: string;
  not?: null;
  protocol?: string;
}

const TABLE_NAMES: Record<string, number> = { local: 255, main: 254, default: 253 };

async function ipRules(ns: string, family: 4 | 6): Promise<IpRule[]> {
  return ipJson<IpRule[]>(ns, [`-${family}`, 'rule', 'show']);
}

/** Compares one rule read through the addon with what `ip -j rule show` printed for it. */
function expectSame(o: Rule, s: IpRule): void {
  expect(o.priority).toBe(s.priority);
  expect(o.src).toBe(s.src === 'all' ? null : `${s.src}/${s.srclen ?? (o.family === 4 ? 32 : 128)}`);
  expect(o.dst).toBe(s.dst === undefined || s.dst === 'all' ? null : `${s.dst}/${s.dstlen ?? (o.family === 4 ? 32 : 128)}`);
  expect(o.fwmark).toBe(s.fwmark === undefined ? null : Number(s.fwmark));
  if (s.fwmask !== undefined) expect(o.fwmask).toBe(Number(s.fwmask));
  expect(o.iif).toBe(s.iif ?? null);
  expect(o.oif).toBe(s.oif ?? null);
  expect(o.invert).toBe('not' in s);
  if (s.table !== undefined) {
    expect(o.action).toBe('table');
    expect(o.table).toBe(TABLE_NAMES[s.table] ?? Number(s.table));
  } else {
    expect(o.action).toBe(s.action);
  }
}


describe('rules (privileged)', () => {
  const set = new NetnsSet();
  let ns: string;
  const o = () => ({ netns: ns });

  beforeEach(async () => {
    ns = await set.add('vru');
  });
  afterEach(() => set.cleanup());

  const rules: RuleSpec[] = [
    { family: 4, priority: 100, table: 1000, fwmark: 0xe00, fwmask: 0xf00 },
    { family: 4, priority: 101, table: 200, src: '10.0.0.0/8', dst: '192.0.2.0/24', iif: 'lo' },
    { family: 4, priority: 102, table: 0, action: 'blackhole', fwmark: 0x1, invert: true },
    { family: 6, priority: 100, table: 1000, fwmark: 0xe00, fwmask: 0xf00 },
    { family: 6, priority: 103, table: 300, src: 'fd00::/16', oif: 'lo' },
    { family: 6, priority: 104, table: 0, action: 'unreachable', dst: 'fd00:9::/64' },
  ];

  it('addRules() installs IPv4 and IPv6 rules that ip rule show reports field by field', async () => {
    await addRules(rules, o());
    for (const family of [4, 6] as const) {
      const shown = await ipRules(ns, family);
      const ours = await listRules({ family }, o());
      expect(ours.map((r) => r.priority)).toEqual(shown.map((s) => s.priority));
      for (let i = 0; i < shown.length; i++) expectSame(ours[i]!, shown[i]!);
    }
    expect((await listRules({}, o())).length).toBe((await ipRules(ns, 4)).length + (await ipRules(ns, 6)).length);
  });

  it('an identical rule is EEXIST and a failing batch removes the rules it added first', async () => {
    await addRules([rules[0]!], o());
    const before4 = await ipRules(ns, 4);
    const before6 = await ipRules(ns, 6);
    const err = await rejection(addRules([rules[3]!, rules[1]!, rules[0]!, rules[2]!], o()));
    expect(err.code).toBe('EEXIST');
    expect(err.index).toBe(2);
    expect(err.message).toContain('"100"');
    expect(await ipRules(ns, 4)).toEqual(before4);
    expect(await ipRules(ns, 6)).toEqual(before6);
  });

  it('deleteRules() removes rules; a missing one is ENOENT unless ignoreMissing', async () => {
    const before4 = await ipRules(ns, 4);
    const before6 = await ipRules(ns, 6);
    await addRules(rules, o());
    await deleteRules(rules, o());
    expect(await ipRules(ns, 4)).toEqual(before4);
    expect(await ipRules(ns, 6)).toEqual(before6);
    const err = await rejection(deleteRules([rules[0]!], o()));
    expect(err.code).toBe('ENOENT');
    await deleteRules([rules[0]!, rules[3]!], { ...o(), ignoreMissing: true });
  });

  it('an unknown namespace is ENOENT naming it', async () => {
    const err = await rejection(listRules({}, { netns: 'veil-no-such-ns' }));
    expect(err.code).toBe('ENOENT');
    expect(err.message).toContain('veil-no-such-ns');
  });
});
