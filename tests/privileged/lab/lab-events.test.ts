/**
 * Events and ipBlock through the running product: `veil lab up --nodes 2`, a NetworkPolicy with
 * an ipBlock applied with `veil lab policy apply`, pings that the agents' programs drop, and
 * `veil lab events` showing those drops with reason, identities and labels (the ipBlock's except
 * as its node-local CIDR identity) from both agents' GET /events.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { EventRecord } from '../../../agent/datapath/event-record.js';
import { isLocalIdentity } from '../../../agent/node-agent/local-cidr-identities.js';
import { eventually, run } from '../../support/netns.js';
import { runVeil, type VeilRun } from '../../support/veil-cli.js';

const LAB = 'evlt';
const BRIDGE = '10.77.0.1';

function veil(args: string[], timeoutMs = 120_000): Promise<VeilRun> {
  return runVeil(args, { timeoutMs });
}

interface Status {
  pods: { name: string; netns: string; ip: string; node: string; identity: number | null }[];
}

const POLICY = `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: egress-underlay-only, namespace: frontend }
spec:
  podSelector: {}
  policyTypes: [Egress]
  egress:
    - to:
        - ipBlock: { cidr: 10.77.0.0/24, except: [${BRIDGE}/32] }
`;

let up = false;
const work = mkdtempSync('/tmp/ev-lab-');
afterAll(async () => {
  if (up) await veil(['lab', 'down', '--name', LAB]);
  rmSync(work, { recursive: true, force: true });
});

const ping = (netns: string, dst: string) => run('ip', ['netns', 'exec', netns, 'ping', '-c', '1', '-W', '1', dst]).then(() => true, () => false);

describe('veil lab events', () => {
  it('shows the drops of an ipBlock policy with reasons, identities and labels from every agent', async () => {
    const r = await veil(['lab', 'up', '--nodes', '2', '--pods-per-node', '1', '--name', LAB]);
    up = r.code === 0;
    expect(r.code, r.stderr).toBe(0);
    const s = await eventually(async () => {
      const st = JSON.parse((await veil(['lab', 'status', '--name', LAB, '--json'])).stdout) as Status;
      return st.pods.length === 2 && st.pods.every((p) => p.identity !== null) ? st : undefined;
    }, { timeoutMs: 30_000, what: 'identities for every pod' });
    const [a, b] = [s.pods.find((p) => p.node === 'node-1')!, s.pods.find((p) => p.node === 'node-2')!];
    const [aIp, bIp] = [a.ip, b.ip];
    // before the policy: pods reach each other through the tunnel
    await eventually(() => ping(a.netns, bIp), { timeoutMs: 30_000, what: 'ping between the pods' });

    const file = join(work, 'policy.yaml');
    writeFileSync(file, POLICY);
    expect((await veil(['lab', 'policy', 'apply', file, '--name', LAB])).code).toBe(0);
    // egress is now limited to the underlay block: the other pod and the except are dropped
    await eventually(async () => !(await ping(a.netns, bIp)), { timeoutMs: 20_000, what: 'the policy to take effect' });
    expect(await ping(a.netns, BRIDGE)).toBe(false);

    const ev = await eventually(async () => {
      // Pings sent while the tunnel was still coming up were dropped as NO_TUNNEL (also events):
      // ask for the policy drops only.
      const out = await veil(['lab', 'events', '--name', LAB, '--json', '--type', 'drop', '--reason', 'DROP_POLICY_DEFAULT_DENY']);
      expect(out.code, out.stderr).toBe(0);
      const recs = out.stdout.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as EventRecord & { node: string });
      const toPod = recs.find((e) => e.daddr === bIp && e.saddr === aIp);
      const toExcept = recs.find((e) => e.daddr === BRIDGE && e.saddr === aIp);
      return toPod && toExcept ? { toPod, toExcept, recs } : undefined;
    }, { timeoutMs: 20_000, what: 'both drops in veil lab events' });
    expect(ev.toPod).toMatchObject({ node: 'node-1', hook: 'FROM_POD', reason: 'DROP_POLICY_DEFAULT_DENY', srcIdentity: a.identity, dstIdentity: b.identity, proto: 'icmp' });
    expect(ev.toPod.srcLabels).toMatch(/^frontend:/);
    expect(isLocalIdentity(ev.toExcept.dstIdentity)).toBe(true);
    expect(ev.toExcept).toMatchObject({ node: 'node-1', reason: 'DROP_POLICY_DEFAULT_DENY', dstLabels: `cidr:${BRIDGE}/32` });
    // sorted by time across nodes
    const times = ev.recs.map((e) => e.time);
    expect([...times].sort()).toEqual(times);

    const text = await veil(['lab', 'events', '--name', LAB, '--node', 'node-1', '--reason', 'policy-default-deny', '--address', BRIDGE]);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toMatch(new RegExp(`^node-1 +\\S+ FROM_POD +DROP POLICY_DEFAULT_DENY .* -> ${BRIDGE.replace(/\./g, '\\.')} \\d+\\(cidr:${BRIDGE.replace(/\./g, '\\.')}/32\\)`, 'm'));

    // A restarted agent adopts the CIDR identities it finds in the pinned ipcache. First a new
    // prefix that sorts before the except (a fresh numbering would then move the except's number).
    writeFileSync(file, POLICY.replace(`except: [${BRIDGE}/32] }`, `except: [${BRIDGE}/32] }\n        - ipBlock: { cidr: 10.77.0.0/25, except: [${BRIDGE}/32] }`));
    expect((await veil(['lab', 'policy', 'apply', file, '--name', LAB])).code).toBe(0);
    const node1 = JSON.parse((await veil(['lab', 'status', '--name', LAB, '--json'])).stdout).nodes.find((n: { name: string }) => n.name === 'node-1').netns as string;
    await eventually(async () => {
      const r = await run('ip', ['netns', 'exec', node1, process.execPath, '-e', 'fetch("http://127.0.0.1:9876/status").then(r=>r.text()).then(t=>process.stdout.write(t))']);
      return (JSON.parse(r.stdout) as { datapath: { cidrPrefixes: number } | null }).datapath?.cidrPrefixes === 3;
    }, { timeoutMs: 20_000, what: 'node-1 to install the third prefix' });
    const restarted = await veil(['lab', 'restart-agent', '--name', LAB, '--node', 'node-1']);
    expect(restarted.code, restarted.stderr).toBe(0);
    const again = await eventually(async () => {
      await ping(a.netns, BRIDGE);
      const out = await veil(['lab', 'events', '--name', LAB, '--node', 'node-1', '--json', '--address', BRIDGE]);
      return out.stdout.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as EventRecord)[0];
    }, { timeoutMs: 60_000, what: 'a drop event from the restarted agent' });
    expect(again.dstIdentity).toBe(ev.toExcept.dstIdentity);
    expect(again.dstLabels).toBe(`cidr:${BRIDGE}/32`);

    const bad = await veil(['lab', 'events', '--name', LAB, '--node', 'node-9']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/Lab "evlt" has no node "node-9": use one of node-1, node-2/);
  });
});
