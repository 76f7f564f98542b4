/**
 * The IPsec reconciler against the host kernel, which has XFRM policies but no ESP
 * (ENVIRONMENT.md): the policy side (block policies, adoption on restart, prune) for real, and
 * state installs failing with an error that names the missing kernel support and leaves nothing
 * half-applied. ESP with traffic, rotation and restart under load: tests/vm/ipsec-reconcile.test.ts.
 */
import { PassThrough } from 'node:stream';
import { beforeAll, describe, expect, it } from 'vitest';
import { createRootLogger } from '../../../agent/log/logger.js';
import { IpsecReconcileError } from '../../../agent/reconcile/ipsec-errors.js';
import { IpsecReconciler } from '../../../agent/reconcile/ipsec-reconciler.js';
import { SpiAllocator } from '../../../agent/keys/spi.js';
import { planNode } from '../../../agent/reconcile/ipsec-plan.js';
import { listPolicies } from '../../../agent/xfrm/policy.js';
import { listStates } from '../../../agent/xfrm/state.js';
import { netnsPerTest, run } from '../../support/netns.js';
import { BOOT_A, BOOT_B, localNode, recordOf, twoNodes } from '../../support/ipsec-nodes.js';
import { ipXfrmPolicies, requireIp } from '../xfrm/ip-xfrm-text.js';

const freshNetns = netnsPerTest('vip');
beforeAll(requireIp);

function logged() {
  const sink = new PassThrough();
  const lines: string[] = [];
  sink.on('data', (d: Buffer) => lines.push(...d.toString().split('\n').filter(Boolean)));
  return { log: createRootLogger({ destination: sink, level: 'debug' }), lines };
}

describe('IPsec reconciler on the host kernel (policies only, no ESP)', () => {
  it('installs the lowest-priority block policies on adopt, and a restarted reconciler re-creates nothing', async () => {
    const ns = await freshNetns();
    const { a } = twoNodes();
    const r1 = new IpsecReconciler(a, { log: logged().log, netns: ns });
    await r1.adopt();
    const ip = await ipXfrmPolicies(ns);
    expect(ip.map((p) => ({ src: p.src, dst: p.dst, dir: p.dir, action: p.action, priority: p.priority, mark: p.mark }))).toEqual(
      expect.arrayContaining([
        { src: '0.0.0.0/0', dst: '0.0.0.0/0', dir: 'out', action: 'block', priority: 0x7fffffff, mark: { value: 0xe00, mask: 0xf00 } },
        { src: '::/0', dst: '::/0', dir: 'out', action: 'block', priority: 0x7fffffff, mark: { value: 0xe00, mask: 0xf00 } },
      ]),
    );
    expect(ip).toHaveLength(2);
    const before = (await listPolicies(undefined, { netns: ns })).map((p) => p.index).sort();

    const { log, lines } = logged();
    const r2 = new IpsecReconciler(a, { log, netns: ns });
    await r2.adopt();
    await r2.prune();
    expect((await listPolicies(undefined, { netns: ns })).map((p) => p.index).sort()).toEqual(before);
    expect(lines.map((l) => JSON.parse(l))).toEqual([expect.objectContaining({ msg: 'Adopted IPsec kernel state', states: 0, policies: 2 })]);
  });

  it('fails update() naming the missing ESP support, and leaves no state and no allow policy behind', async () => {
    const ns = await freshNetns();
    const { a, b } = twoNodes();
    const { log, lines } = logged();
    const r = new IpsecReconciler(a, { log, netns: ns });
    await r.adopt();
    const err = await r.update('node-b', recordOf(b)).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(IpsecReconcileError);
    const e = err as IpsecReconcileError;
    expect(e).toMatchObject({ code: 'ENOSYS', node: 'node-b' });
    expect(e.message).toMatch(/^Cannot install IPsec SAs for node "node-b": Cannot add XFRM state 0 of 3, SPI 0x[0-9a-f]{8} to "192.0.2.1": the kernel has no AEAD algorithm "rfc4106\(gcm\(aes\)\)"; it needs CONFIG_INET_ESP/);
    expect(e.message).toMatch(/no state of this batch was left installed; what was installed before is unchanged$/);
    expect(await listStates(undefined, { netns: ns })).toEqual([]);
    const policies = await ipXfrmPolicies(ns);
    expect(policies.map((p) => p.action)).toEqual(['block', 'block']);
    // No key material in the error or the log: compare with the keys the plan derives.
    const keys = planNode(a, recordOf(b), r.options, (q) => new SpiAllocator().allocate(q)).states.map((s) => s.config.aead.key);
    const text = [e.message, String((e.cause as Error)?.message), ...lines].join('\n');
    for (const k of keys) {
      expect(text).not.toContain(k.toString('hex'));
      expect(text).not.toContain(k.toString('base64'));
    }
  });

  it("prunes Veil's policies that no node accounts for and leaves other software's alone", async () => {
    const ns = await freshNetns();
    const { a } = twoNodes();
    // A stale Veil policy (our reqid 0x7e11) left by a previous run, and a foreign one.
    await run('ip', ['-n', ns, 'xfrm', 'policy', 'add', 'src', '0.0.0.0/0', 'dst', '10.244.9.0/24', 'dir', 'out', 'priority', '100', 'mark', '0x12c0e00', 'mask', '0xffff0ff0',
      'tmpl', 'src', '192.0.2.1', 'dst', '192.0.2.9', 'proto', 'esp', 'reqid', String(0x7e11), 'mode', 'tunnel']);
    await run('ip', ['-n', ns, 'xfrm', 'policy', 'add', 'src', '10.9.0.0/16', 'dst', '10.8.0.0/16', 'dir', 'out', 'priority', '50',
      'tmpl', 'src', '198.51.100.1', 'dst', '198.51.100.2', 'proto', 'esp', 'reqid', '7', 'mode', 'tunnel']);
    const r = new IpsecReconciler(a, { log: logged().log, netns: ns });
    await r.adopt();
    expect(await ipXfrmPolicies(ns)).toHaveLength(4);
    await r.prune();
    const left = await ipXfrmPolicies(ns);
    expect(left.map((p) => `${p.dst} ${p.action} ${p.templates.map((t) => t.reqid).join()}`).sort()).toEqual(['0.0.0.0/0 block ', '10.8.0.0/16 allow 7', '::/0 block '].sort());
  });

  it('reconciles the policy side of a node for real: adds, changes only differences, adopts on restart, re-creates what went missing, deletes', async () => {
    const ns = await freshNetns();
    // No identity keys on either side: the plan for B is its in/fwd policies only (no state), which
    // the host kernel can hold.
    const a = localNode('node-a', BOOT_A, ['192.0.2.1'], ['10.244.1.0/24'], {});
    const b = localNode('node-b', BOOT_B, ['192.0.2.2'], ['10.244.2.0/24'], {});
    const { log, lines } = logged();
    const r = new IpsecReconciler(a, { log, netns: ns });
    await r.adopt();
    await r.update('node-b', recordOf(b));
    const inbound = (cidr: string) =>
      (['fwd', 'in'] as const).map((dir) => ({
        src: cidr, dst: '10.244.1.0/24', dir, action: 'allow', priority: 100,
        templates: [{ src: '192.0.2.2', dst: '192.0.2.1', proto: 'esp', reqid: 0x7e11, mode: 'tunnel', optional: false }],
      }));
    const allow = async () => (await ipXfrmPolicies(ns)).filter((p) => p.action === 'allow').sort((x, y) => x.dir.localeCompare(y.dir));
    expect(await allow()).toEqual(inbound('10.244.2.0/24'));
    const indexes = async () => (await listPolicies(undefined, { netns: ns })).map((p) => p.index).sort();
    const first = await indexes();

    // The same record again, and a restarted reconciler: nothing changes in the kernel.
    await r.update('node-b', recordOf(b));
    const restarted = new IpsecReconciler(a, { log, netns: ns });
    await restarted.adopt();
    await restarted.update('node-b', recordOf(b));
    await restarted.prune();
    expect(await indexes()).toEqual(first);
    expect(lines.map((l) => JSON.parse(l).msg).filter((m: string) => m === 'Applied IPsec changes')).toHaveLength(2); // block policies, then node-b's

    // B's pod CIDR moves: the new policies are added, then the old ones removed.
    await restarted.update('node-b', { ...recordOf(b), podCidrs: ['10.244.3.0/24'] });
    expect(await allow()).toEqual(inbound('10.244.3.0/24'));
    expect(JSON.parse(lines.at(-1)!)).toMatchObject({ msg: 'Applied IPsec changes', node: 'node-b', addedPolicies: 2, deletedPolicies: 2, addedStates: 0 });

    // Removed behind the reconciler's back (an operator, a flush): resync() puts it back.
    await run('ip', ['-n', ns, 'xfrm', 'policy', 'delete', 'src', '10.244.3.0/24', 'dst', '10.244.1.0/24', 'dir', 'fwd']);
    await run('ip', ['-n', ns, 'xfrm', 'policy', 'delete', 'src', '::/0', 'dst', '::/0', 'dir', 'out', 'mark', '0xe00', 'mask', '0xf00']);
    await restarted.resync();
    expect(await allow()).toEqual(inbound('10.244.3.0/24'));
    expect((await ipXfrmPolicies(ns)).filter((p) => p.action === 'block')).toHaveLength(2);

    await restarted.delete('node-b');
    expect(await allow()).toEqual([]);
    expect((await ipXfrmPolicies(ns)).map((p) => p.action)).toEqual(['block', 'block']);
    expect(restarted.counts()).toEqual({ nodes: 0, inStates: 0, outStates: 0, policies: 0, spiCollisions: 0 });
  });

  it('refuses a record with a low-order node key before touching the kernel, and keeps what was installed', async () => {
    const ns = await freshNetns();
    const { a, b } = twoNodes();
    const r = new IpsecReconciler(a, { log: logged().log, netns: ns });
    await r.adopt();
    const policiesBefore = await ipXfrmPolicies(ns);
    const rec = recordOf(b);
    // 32 zero bytes: a low-order X25519 point, whose shared secret is all zero.
    const bad = { ...rec, keys: rec.keys.map((k) => (k.kind === 'node' ? { ...k, publicKey: Buffer.alloc(32).toString('base64') } : k)) };
    const err = (await r.update('node-b', bad).catch((e: unknown) => e)) as IpsecReconcileError;
    expect(err).toBeInstanceOf(IpsecReconcileError);
    expect(err).toMatchObject({ code: 'VEIL_KEY_MATERIAL', node: 'node-b' });
    expect((err.cause as Error).name).toBe('KeyMaterialError');
    expect(err.message).toMatch(/^Cannot plan IPsec SAs for node "node-b": .+; nothing was changed in the kernel$/);
    expect(await listStates(undefined, { netns: ns })).toEqual([]);
    expect(await ipXfrmPolicies(ns)).toEqual(policiesBefore);
    expect(r.counts()).toEqual({ nodes: 0, inStates: 0, outStates: 0, policies: 0, spiCollisions: 0 });
  });

  it('refuses update() before adopt() and a record published under another name', async () => {
    const ns = await freshNetns();
    const { a, b } = twoNodes();
    const r = new IpsecReconciler(a, { log: logged().log, netns: ns });
    await expect(r.update('node-b', recordOf(b))).rejects.toThrow(`Cannot update IPsec SAs of node "node-b" before adopt(): the reconciler has not read the kernel's IPsec state yet; call adopt() first`);
    await r.adopt();
    await expect(r.update('node-c', recordOf(b))).rejects.toThrow('Cannot install IPsec SAs for node "node-c" from a record of node "node-b": the store key and the record disagree; fix the publisher');
    expect(await listStates(undefined, { netns: ns })).toEqual([]);
  });
});
