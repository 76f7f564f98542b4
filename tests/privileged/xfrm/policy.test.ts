import { beforeAll, describe, expect, it } from 'vitest';
import { NetlinkError } from '../../../agent/errors.js';
import {
  addPolicies,
  deletePolicies,
  deletePoliciesMatching,
  flushPolicies,
  getPolicy,
  listPolicies,
  updatePolicies,
} from '../../../agent/xfrm/policy.js';
import type { XfrmPolicyConfig } from '../../../agent/xfrm/types.js';
import { netnsPerTest, run } from '../../support/netns.js';
import { ipXfrmPolicies, requireIp, type IpPolicy } from './ip-xfrm-text.js';

const freshNetns = netnsPerTest('vx');
beforeAll(requireIp);

/** What `ip xfrm policy` must print for a policy we installed. */
function expectedIp(p: XfrmPolicyConfig): IpPolicy {
  const withLen = (s: string) => (s.includes('/') ? s : `${s}/${s.includes(':') ? 128 : 32}`);
  const out: IpPolicy = {
    src: withLen(p.selector.src),
    dst: withLen(p.selector.dst),
    dir: p.dir,
    action: p.action ?? 'allow',
    priority: p.priority ?? 0,
    templates: (p.templates ?? []).map((t) => {
      const any = (p.selector.src.includes(':') ? '::' : '0.0.0.0');
      return {
        src: t.src ?? any,
        dst: t.dst ?? any,
        proto: 'esp',
        ...(t.spi ? { spi: t.spi } : {}),
        reqid: t.reqid ?? 0,
        mode: t.mode ?? 'tunnel',
        optional: t.optional ?? false,
      };
    }),
  };
  if (p.selector.proto !== undefined) out.proto = String(p.selector.proto);
  if (p.selector.sport !== undefined) out.sport = p.selector.sport;
  if (p.selector.dport !== undefined) out.dport = p.selector.dport;
  if (p.mark) out.mark = { value: p.mark.value, mask: p.mark.mask ?? 0xffffffff };
  if (p.ifId) out.ifId = p.ifId;
  return out;
}

const byKey = (a: IpPolicy, b: IpPolicy) => `${a.dir} ${a.src} ${a.dst}`.localeCompare(`${b.dir} ${b.src} ${b.dst}`);

const everyKind: XfrmPolicyConfig[] = [
  {
    dir: 'out',
    selector: { src: '10.1.0.0/16', dst: '10.2.0.0/16', proto: 'tcp', sport: 80, dport: 443 },
    priority: 100,
    mark: { value: 0xe00, mask: 0xf00 },
    templates: [{ src: '192.0.2.1', dst: '192.0.2.2', reqid: 5, spi: 0x77 }],
  },
  {
    dir: 'in',
    selector: { src: '10.2.0.0/16', dst: '10.1.0.0/16' },
    priority: 100,
    mark: { value: 0xd00, mask: 0xf00 },
    templates: [{ src: '192.0.2.2', dst: '192.0.2.1', reqid: 5 }],
  },
  { dir: 'fwd', selector: { src: '10.2.0.0/16', dst: '10.1.0.0/16' }, priority: 200, templates: [{ src: '192.0.2.2', dst: '192.0.2.1', reqid: 6 }] },
  // The lowest-priority catch-all block on the encrypt mark (no plaintext while states swap).
  { dir: 'out', selector: { src: '0.0.0.0/0', dst: '0.0.0.0/0' }, priority: 0xffffff, action: 'block', mark: { value: 0xe00, mask: 0xf00 } },
  { dir: 'out', selector: { src: '10.9.0.1', dst: '10.9.0.2', proto: 'udp', dport: 53 }, templates: [{ mode: 'transport', reqid: 9, optional: true }] },
  { dir: 'in', selector: { src: 'fd00::/64', dst: 'fd01::/64', proto: 'ipv6-icmp' }, action: 'block', ifId: 7 },
  {
    dir: 'out',
    selector: { src: 'fd01::/64', dst: 'fd00::/64', proto: 'sctp', sport: 9 },
    priority: 3,
    mark: { value: 1 },
    templates: [{ src: '2001:db8::1', dst: '2001:db8::2', reqid: 0x10, spi: 0x1000 }],
  },
  // IPv6 inner, IPv4 tunnel endpoints.
  { dir: 'fwd', selector: { src: 'fd02::/48', dst: 'fd03::/48' }, templates: [{ src: '192.0.2.5', dst: '192.0.2.6', reqid: 11 }] },
];

describe('XFRM policies on the host kernel', () => {
  it('addPolicies() installs every kind of policy exactly as `ip xfrm policy` reads it back', async () => {
    const ns = await freshNetns();
    await addPolicies(everyKind, { netns: ns });
    const seen = (await ipXfrmPolicies(ns)).sort(byKey);
    const want = everyKind.map(expectedIp).sort(byKey);
    expect(seen).toEqual(want);

    // listPolicies() reads the same back through the addon.
    const listed = await listPolicies(undefined, { netns: ns });
    expect(listed).toHaveLength(everyKind.length);
    const first = listed.find((p) => p.dir === 'out' && p.selector.src === '10.1.0.0');
    expect(first).toMatchObject({
      priority: 100,
      action: 'allow',
      mark: { value: 0xe00, mask: 0xf00 },
      ifId: null,
      selector: { family: 4, srcLen: 16, dst: '10.2.0.0', dstLen: 16, proto: 6, sport: 80, dport: 443 },
      templates: [{ src: '192.0.2.1', dst: '192.0.2.2', proto: 'esp', spi: 0x77, reqid: 5, mode: 'tunnel', optional: false }],
    });
    expect(listed.find((p) => p.ifId === 7)).toMatchObject({ dir: 'in', action: 'block', selector: { family: 6, proto: 58 } });
  });

  it('getPolicy() finds a policy by selector and mark, and by the kernel index; null when absent', async () => {
    const ns = await freshNetns();
    await addPolicies(everyKind, { netns: ns });
    const p = await getPolicy({ dir: 'out', selector: everyKind[0]!.selector, mark: { value: 0xe00, mask: 0xf00 } }, { netns: ns });
    expect(p).toMatchObject({ dir: 'out', priority: 100, templates: [{ reqid: 5 }] });
    const again = await getPolicy({ dir: 'out', index: p!.index, mark: { value: 0xe00, mask: 0xf00 } }, { netns: ns });
    expect(again).toEqual(p);
    expect(await getPolicy({ dir: 'out', selector: everyKind[0]!.selector }, { netns: ns })).toBeNull();
    expect(await getPolicy({ dir: 'in', selector: { src: 'fd00::/64', dst: 'fd01::/64', proto: 'ipv6-icmp' }, ifId: 7 }, { netns: ns })).toMatchObject({
      action: 'block',
    });
  });

  it('updatePolicies() replaces priority, action and templates in place', async () => {
    const ns = await freshNetns();
    const base = everyKind[0]!;
    await addPolicies([base], { netns: ns });
    const changed: XfrmPolicyConfig = { ...base, priority: 50, templates: [{ src: '192.0.2.1', dst: '192.0.2.3', reqid: 8 }] };
    await updatePolicies([changed], { netns: ns });
    expect(await ipXfrmPolicies(ns)).toEqual([expectedIp(changed)]);
    await expect(addPolicies([base], { netns: ns })).rejects.toMatchObject({ code: 'EEXIST', index: 0 });
  });

  it('deletePolicies() removes by id; a missing one fails with its index unless ignoreMissing', async () => {
    const ns = await freshNetns();
    await addPolicies(everyKind, { netns: ns });
    const ids = [
      { dir: 'in' as const, selector: everyKind[5]!.selector, ifId: 7 },
      { dir: 'fwd' as const, selector: everyKind[2]!.selector },
    ];
    expect(await deletePolicies(ids, { netns: ns })).toBe(2);
    expect(await ipXfrmPolicies(ns)).toHaveLength(everyKind.length - 2);
    const err = await deletePolicies([ids[1]!, { dir: 'out', selector: everyKind[4]!.selector }], { netns: ns }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NetlinkError);
    expect(err).toMatchObject({ code: 'ENOENT', index: 0 });
    expect((err as Error).message).toMatch(/^Cannot delete XFRM policy 0 of 2, dir fwd "10.2.0.0\/16" -> "10.1.0.0\/16": no such policy/);
    // The existing one after the missing one was still deleted.
    expect(await ipXfrmPolicies(ns)).toHaveLength(everyKind.length - 3);
    expect(await deletePolicies(ids, { netns: ns, ignoreMissing: true })).toBe(0);
  });

  it('deletePoliciesMatching() removes exactly the policies with a mark, reqid or direction; flushPolicies() the rest', async () => {
    const ns = await freshNetns();
    await addPolicies(everyKind, { netns: ns });
    expect(await deletePoliciesMatching({ mark: { value: 0xe00, mask: 0xf00 } }, { netns: ns })).toBe(2);
    let left = await ipXfrmPolicies(ns);
    expect(left.some((p) => p.mark?.value === 0xe00)).toBe(false);
    expect(left).toHaveLength(everyKind.length - 2);
    expect(await deletePoliciesMatching({ reqid: 11 }, { netns: ns })).toBe(1);
    expect(await deletePoliciesMatching({ dir: 'in', family: 6 }, { netns: ns })).toBe(1);
    left = await ipXfrmPolicies(ns);
    expect(left.map((p) => p.dir).sort()).toEqual(['fwd', 'in', 'out', 'out']);
    await expect(deletePoliciesMatching({}, { netns: ns })).rejects.toMatchObject({ code: 'EINVAL' });
    await flushPolicies({ netns: ns });
    expect(await ipXfrmPolicies(ns)).toEqual([]);
  });

  it('installs a batch of 1,000 policies in one call, all visible to ip', async () => {
    const ns = await freshNetns();
    const many: XfrmPolicyConfig[] = Array.from({ length: 1000 }, (_, i) => ({
      dir: 'out',
      selector: { src: '10.0.0.0/16', dst: `10.${(i >> 8) + 1}.${i & 255}.0/24` },
      priority: i,
      mark: { value: 0xe00, mask: 0xf00 },
      templates: [{ src: '192.0.2.1', dst: `192.0.2.${(i % 200) + 2}`, reqid: i + 1 }],
    }));
    await addPolicies(many, { netns: ns });
    const seen = (await ipXfrmPolicies(ns)).sort(byKey);
    expect(seen).toEqual(many.map(expectedIp).sort(byKey));
    expect(await deletePoliciesMatching({ dir: 'out' }, { netns: ns })).toBe(1000);
    expect(await ipXfrmPolicies(ns)).toEqual([]);
  });

  it('a batch that fails at index k leaves nothing of itself behind and reports k', async () => {
    const ns = await freshNetns();
    const existing = everyKind[0]!;
    await addPolicies([existing], { netns: ns });
    const batch: XfrmPolicyConfig[] = Array.from({ length: 500 }, (_, i) => ({
      dir: 'in',
      selector: { src: `10.${(i >> 8) + 100}.${i & 255}.0/24`, dst: '10.0.0.0/16' },
    }));
    batch.splice(300, 0, existing);
    const err = await addPolicies(batch, { netns: ns }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NetlinkError);
    expect(err).toMatchObject({ code: 'EEXIST', errno: 17, index: 300, op: 'xfrm.policy.add' });
    expect((err as Error).message).toBe(
      'Cannot add XFRM policy 300 of 501, dir out "10.1.0.0/16" -> "10.2.0.0/16" proto 6 sport 80 dport 443 (mark 0xe00/0xf00): a policy with this direction, selector, mark and interface id already exists; delete it or use updatePolicies(); no policy of this batch was left installed',
    );
    expect(await ipXfrmPolicies(ns)).toEqual([expectedIp(existing)]);
  });

  it('a batch the kernel rejects with an extended ack carries the kernel text and leaves nothing', async () => {
    const ns = await freshNetns();
    const batch: XfrmPolicyConfig[] = [
      { dir: 'out', selector: { src: '10.0.0.0/8', dst: '10.1.0.0/16' } },
      { dir: 'in', selector: { src: 'fd00::/64', dst: 'fd01::/64' } },
      // The kernel refuses optional tunnel-mode ESP templates.
      { dir: 'out', selector: { src: '10.5.0.0/16', dst: '10.6.0.0/16' }, templates: [{ src: '192.0.2.1', dst: '192.0.2.2', optional: true }] },
    ];
    const err = (await addPolicies(batch, { netns: ns }).catch((e: unknown) => e)) as NetlinkError;
    expect(err).toBeInstanceOf(NetlinkError);
    expect(err.code).toBe('EINVAL');
    expect(err.index).toBe(2);
    expect(err.extack).toMatch(/template/i);
    expect(err.message).toContain(`(kernel: ${err.extack})`);
    expect(await ipXfrmPolicies(ns)).toEqual([]);
  });

  it('fails with a typed error for a namespace that does not exist', async () => {
    const err = await listPolicies(undefined, { netns: 'veil-no-such-netns-xfrm' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NetlinkError);
    expect(err).toMatchObject({ code: 'ENOENT', op: 'netns' });
    expect((err as Error).message).toContain('veil-no-such-netns-xfrm');
  });

  it('never touches the host namespace: policies stay inside the test namespace', async () => {
    const ns = await freshNetns();
    const before = (await run('ip', ['xfrm', 'policy', 'count'])).stdout;
    await addPolicies(everyKind.slice(0, 2), { netns: ns });
    expect((await run('ip', ['xfrm', 'policy', 'count'])).stdout).toBe(before);
  });
});
