/**
 * The lab inside the VM (a Debian 6.1 kernel: kernel WireGuard, ESP, clsact instead of tcx), as
 * `bash scripts/lab.sh --mode ipsec` runs it on a host without ESP: `veil lab up` with 3 nodes and
 * 2 pods each, `veil connectivity-test --lab --json FILE` passing every scenario, `veil audit
 * verify` on every audit log, and `veil lab down` leaving no namespace, process, pin or directory.
 *
 * Mode: IPsec, the point of running the lab here (the host kernel has no ESP; WireGuard mode runs
 * on the host in tests/privileged/lab-e2e). The lab state's `mode` drives the connectivity
 * scenarios (ESP on the wire, broken SAs, the identity scenario).
 * Every step is one `veil` command in the guest: a node start there costs seconds under TCG.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Vm } from './harness/client.js';
import { vm } from './harness/vm.js';

const MODE: 'wireguard' | 'ipsec' = 'ipsec';
const LAB = `lv${randomBytes(3).toString('hex')}`;
const VEIL = 'node dist/agent/cli/main.js';

interface Status {
  mode: string;
  nodes: { name: string; netns: string }[];
  pods: { name: string; node: string; identity: number | null }[];
  processes: { name: string; pid: number; running: boolean }[];
  auditLogs: string[];
  caCert: string;
}

interface Report {
  passed: boolean;
  results: { name: string; ok: boolean; notApplicable?: boolean; detail: string; data?: Record<string, unknown> }[];
}

let v: Vm;
let up = false;

beforeAll(async () => {
  v = await vm();
});

afterAll(async () => {
  if (up) await v.exec(`${VEIL} lab down --name ${LAB}`, { timeoutMs: 300_000 });
});

/** The tail of every lab log in the guest, for failure messages. */
async function labLogs(): Promise<string> {
  const r = await v.exec(`for f in /run/veil/lab/${LAB}/logs/*.log; do echo "== $f"; tail -n 15 "$f" | cut -c1-600; done`, { timeoutMs: 60_000 });
  return r.stdout;
}

async function status(): Promise<Status> {
  return JSON.parse(await v.check(`${VEIL} lab status --name ${LAB} --json`, { timeoutMs: 300_000 })) as Status;
}

describe(`the lab in the VM (${MODE} mode)`, () => {
  let report: Report;
  let st: Status;

  it('veil lab up builds 3 nodes with 2 pods each and starts etcd, the operator and 3 agents', async () => {
    const r = await v.exec(`VEIL_LOG_LEVEL=warn ${VEIL} lab up --name ${LAB} --nodes 3 --pods-per-node 2 --mode ${MODE}`, { timeoutMs: 480_000 });
    up = r.code === 0;
    expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0);
    expect(r.stdout).toContain(`(${MODE} mode): 3 nodes, 6 pods`);
  }, 600_000);

  it('veil connectivity-test --lab passes every scenario in the guest', async () => {
    const json = `/tmp/${LAB}-connectivity.json`;
    const r = await v.exec(`${VEIL} connectivity-test --lab --name ${LAB} --json ${json} --wait 420s`, { timeoutMs: 1_200_000 });
    report = JSON.parse(await v.check(`cat ${json}`)) as Report;
    const failed = report.results.filter((x) => !x.ok).map((x) => `${x.name}: ${x.detail}`);
    if (failed.length > 0) expect(failed, `${r.stdout}\n${await labLogs()}`).toEqual([]);
    expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0);
    expect(report.passed).toBe(true);
    expect(report.results.map((x) => x.name)).toEqual(expect.arrayContaining(['pod-to-pod-same-node', 'pod-to-pod-cross-node', 'node-to-pod', 'encryption-on-the-wire', 'strict-broken-peer-key', 'agent-restart-under-load', 'policy-allow-deny', 'identity']));
    const wire = report.results.find((x) => x.name === 'encryption-on-the-wire')!;
    expect(wire.data).toMatchObject({ plaintext: 0 });
    expect(wire.data!.encrypted as number).toBeGreaterThan(0);
    expect(wire.detail).toContain(MODE === 'ipsec' ? 'ESP packets' : 'WireGuard packets');
    expect(report.results.find((x) => x.name === 'agent-restart-under-load')!.data).toMatchObject({ lost: 0, plaintext: 0 });
    const identity = report.results.find((x) => x.name === 'identity')!;
    if (MODE === 'ipsec') expect(identity.notApplicable).toBeUndefined();
    else expect(identity).toMatchObject({ ok: true, notApplicable: true });
  }, 1_300_000);

  it('the agents use the guest kernel: kernel WireGuard devices (or ESP SAs) and clsact on the 6.1 kernel', async () => {
    st = await status();
    expect(st.mode).toBe(MODE);
    if (!st.processes.every((p) => p.running)) expect(st.processes, await labLogs()).toEqual(st.processes.map((p) => ({ ...p, running: true })));
    const netns = st.nodes[0]!.netns;
    if (MODE === 'wireguard') {
      expect(await v.check(`ip -n ${netns} -d link show veil_wg0`)).toMatch(/\bwireguard\b/);
      // Kernel WireGuard: no wireguard-go daemon in the node namespace.
      expect(await v.check(`ps -eo args | grep -c '[w]ireguard-go' || true`)).toBe('0\n');
    } else {
      expect(await v.check(`ip -n ${netns} xfrm state`)).toMatch(/proto esp/);
    }
    // tcx came with 6.6: here the programs are cls_bpf filters under clsact.
    expect(await v.check(`tc -n ${netns} filter show dev eth0 egress`)).toMatch(/bpf/);
  }, 400_000);

  it('veil audit verify passes on every audit log of the lab', async () => {
    expect(st.auditLogs).toHaveLength(3);
    const r = await v.exec(st.auditLogs.map((log) => `${VEIL} audit verify ${log} --ca ${st.caCert} || echo "FAILED ${log}"`).join('; '), { timeoutMs: 300_000 });
    expect(r.stdout, r.stderr).not.toContain('FAILED');
  }, 400_000);

  it('veil lab down leaves no namespace, process, pin or directory behind', async () => {
    const r = await v.exec(`${VEIL} lab down --name ${LAB}`, { timeoutMs: 300_000 });
    expect(r.code, r.stderr).toBe(0);
    up = false;
    expect(await v.check('ip netns list')).not.toContain(`veil-${LAB}-`);
    expect(await v.check(`ls /sys/fs/bpf/ /run/veil/lab/ 2>/dev/null || true`)).not.toContain(LAB);
    expect(await v.check('ps -eo args')).not.toContain(`/run/veil/lab/${LAB}/`);
    if (MODE === 'wireguard') expect(await v.check('ip -br link')).not.toContain('veil_wg');
  }, 400_000);
});
