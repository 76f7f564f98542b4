/**
 * to-pod through BPF_PROG_TEST_RUN on the host kernel, after the from-pod cases that open the
 * connections its replies belong to: conntrack replies and related ICMP errors, identity from the
 * decrypted mark or the ipcache, require-encryption and require-auth-identity, truncated frames.
 */
import { beforeAll, describe, it } from 'vitest';
import { checkResult, CFG_F, type CaseResult } from '../../../support/program-cases.js';
import { runOnHost } from '../../../support/program-host.js';
import { fromPodCases, toPodCases, world, type Family } from '../../../support/program-worlds.js';

for (const f of [4, 6] as Family[]) {
  describe(`to-pod, IPv${f}, WireGuard mode`, () => {
    const openers = fromPodCases(f);
    const cases = toPodCases(f);
    let results: Map<string, CaseResult>;
    beforeAll(async () => {
      results = await runOnHost(world(CFG_F.MODE_WIREGUARD), [...openers, ...cases]);
    });
    it('the from-pod cases that open the connections behave as in their own test', () => {
      for (const c of openers) checkResult(c, results.get(c.name));
    });
    for (const c of cases) it(c.name, () => checkResult(c, results.get(c.name)));
  });
}
