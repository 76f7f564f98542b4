/**
 * The eBPF loader on Debian's 6.1 kernel (no tcx): load, attach in auto mode (clsact is
 * chosen), idempotent re-attach, replace, BPF_PROG_TEST_RUN, ring-buffer events, per-CPU
 * counters and detach, through the built agent (tests/vm/scenarios/bpf-loader.mjs). The test
 * creates the namespace and veth and cross-checks with `tc`.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Vm } from './harness/client.js';
import { vm } from './harness/vm.js';

const id = randomBytes(3).toString('hex');
const NS = `ld${id}`;
const PIN = `/sys/fs/bpf/veil-vm-ld-${id}`;
let v: Vm;

beforeAll(async () => {
  v = await vm();
  // IPv6 off in the namespace: a veth coming up sends router solicitations and MLD reports, which
  // would reach the attached fixture beside the test's own packets and change its counters.
  await v.check(`ip netns add ${NS} && ip netns exec ${NS} sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1 && ip -n ${NS} link add lxc0 type veth peer name eth0 && ip -n ${NS} link set lxc0 up && ip -n ${NS} link set eth0 up`);
});

afterAll(async () => {
  await v?.exec(`ip netns del ${NS}; rm -rf ${PIN}`);
});

describe('eBPF loader on the Debian 6.1 kernel', () => {
  it('chooses clsact, attaches idempotently, replaces, test-runs and detaches', async () => {
    const r = await v.exec(`node tests/vm/scenarios/bpf-loader.mjs ${NS} ${PIN}`, { timeoutMs: 300_000 });
    if (r.code !== 0) throw new Error(`bpf-loader.mjs failed (${r.code})\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`);
    const out = JSON.parse(r.stdout) as Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
    expect(v.kernelRelease).toMatch(/^6\.1\./);
    expect(out.programs).toEqual(['fixture_drop', 'fixture_pass']);
    expect(out.first).toMatchObject({ mode: 'clsact', action: 'created' });
    expect(out.again).toMatchObject({ mode: 'clsact', action: 'unchanged' });
    expect(out.replace).toMatchObject({ mode: 'clsact', action: 'replaced' });
    expect(out.attachment).toEqual({ ifindex: out.first.ifindex, clsact: { progId: out.dropId } });
    // Forcing tcx on a kernel without it is a typed error, not a silent fallback.
    expect(out.tcxForced).toMatchObject({ ok: false, code: 'EINVAL' });
    expect(out.testRun).toEqual({ pass: { retval: 0, mark: 0x00000e00 }, drop: { retval: 2 } });
    expect(out.events).toEqual(['FWD_LOCAL', 'FWD_LOCAL', 'FWD_LOCAL', 'FWD_LOCAL', 'FWD_LOCAL', 'DROP_POLICY_DENY']);
    expect(out.counters).toEqual([
      { hook: 'FROM_POD', reason: 'FWD_LOCAL', drop: false, packets: '5', bytes: '300' },
      { hook: 'FROM_POD', reason: 'DROP_POLICY_DENY', drop: true, packets: '1', bytes: '60' },
    ]);
    expect(out.detach).toEqual(['clsact']);
    expect(await v.check(`tc -n ${NS} filter show dev lxc0 ingress`)).toBe('');
  });

  it('tc shows the cls_bpf filter the loader attached', async () => {
    const r = await v.exec(
      `node --input-type=module -e "
        const dp = await import('${'${PWD}'}/dist/agent/datapath/datapath.js');
        const o = await dp.loadObject('${'${PWD}'}/build/bpf-test/loader-fixture.bpf.o', { pinDir: '${PIN}' });
        const a = await dp.attach(o.program('fixture_drop'), { interface: 'lxc0', direction: 'egress', netns: '${NS}' }, { pinDir: '${PIN}' });
        console.log(JSON.stringify({ a, id: o.program('fixture_drop').id }));
        o.close();"`,
      { timeoutMs: 300_000 },
    );
    if (r.code !== 0) throw new Error(`attach failed (${r.code}): ${r.stderr}`);
    const { a, id: progId } = JSON.parse(r.stdout) as { a: { mode: string }; id: number };
    expect(a.mode).toBe('clsact');
    const tc = await v.check(`tc -n ${NS} filter show dev lxc0 egress`);
    expect(tc).toMatch(/pref 1 bpf .*handle 0x1 veil direct-action/);
    expect(tc).toContain(`id ${progId} `);
  });
});
