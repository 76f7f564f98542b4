/**
 * uplink-egress and uplink-ingress through BPF_PROG_TEST_RUN on the host kernel: strict mode drops
 * plaintext pod traffic both ways and lets WireGuard, ESP, XFRM-decrypted and node traffic pass;
 * without strict mode both pass everything.
 */
import { beforeAll, describe, it } from 'vitest';
import { checkResult, CFG_F, type CaseResult, type ProgramCase, type WorldSpec } from '../../../support/program-cases.js';
import { runOnHost } from '../../../support/program-host.js';
import { nonStrictCases, strictCases, world } from '../../../support/program-worlds.js';

function suite(title: string, w: WorldSpec, cases: ProgramCase[]): void {
  describe(title, () => {
    let results: Map<string, CaseResult>;
    beforeAll(async () => {
      results = await runOnHost(w, cases);
    });
    for (const c of cases) it(c.name, () => checkResult(c, results.get(c.name)));
  });
}

suite('uplink, strict mode', world(CFG_F.STRICT | CFG_F.MODE_WIREGUARD), [...strictCases(4), ...strictCases(6)]);
suite('uplink, strict mode off', world(CFG_F.MODE_WIREGUARD), [...nonStrictCases(4), ...nonStrictCases(6)]);
