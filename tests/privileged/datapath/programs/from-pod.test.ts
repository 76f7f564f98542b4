/**
 * from-pod through BPF_PROG_TEST_RUN on the host kernel: every branch, IPv4 and IPv6, TCP, UDP,
 * ICMP, truncated and malformed frames; verdict, the one counter bumped, the mark, and the event
 * with reason, identities and tuple. Cases: tests/support/program-worlds.ts.
 */
import { beforeAll, describe, it } from 'vitest';
import { checkResult, CFG_F, type CaseResult, type ProgramCase, type WorldSpec } from '../../../support/program-cases.js';
import { runOnHost } from '../../../support/program-host.js';
import { fromPodCases, ipsecCases, noTunnelCases, world } from '../../../support/program-worlds.js';

function suite(title: string, w: WorldSpec, cases: ProgramCase[]): void {
  describe(title, () => {
    let results: Map<string, CaseResult>;
    beforeAll(async () => {
      results = await runOnHost(w, cases);
    });
    for (const c of cases) it(c.name, () => checkResult(c, results.get(c.name)));
  });
}

suite('from-pod, WireGuard mode', world(CFG_F.MODE_WIREGUARD), [...fromPodCases(4), ...fromPodCases(6)]);
suite('from-pod, IPsec mode', world(CFG_F.MODE_IPSEC), [...ipsecCases(4), ...ipsecCases(6)]);
suite('from-pod, WireGuard mode without devices', world(CFG_F.MODE_WIREGUARD, []), [...noTunnelCases(4), ...noTunnelCases(6)]);
suite('from-pod, no encryption mode', world(0), [...noTunnelCases(4), ...noTunnelCases(6)]);
