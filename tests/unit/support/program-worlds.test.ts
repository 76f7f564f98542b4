/**
 * The program cases cover every outcome: each reason a hook can produce is expected by at least
 * one case, in both families where the reason applies to both.
 */
import { describe, expect, it } from 'vitest';
import { Reason } from '../../../agent/datapath/reasons.js';
import { allRuns } from '../../support/program-worlds.js';

describe('program cases', () => {
  const cases = allRuns().flatMap((r) => r.cases);
  const seen = (prog: string) => new Set(cases.filter((c) => c.prog === prog).map((c) => c.expect.reason));

  it('names are unique within each run', () => {
    for (const r of allRuns()) expect(new Set(r.cases.map((c) => c.name)).size).toBe(r.cases.length);
  });

  it('from-pod cases reach every reason from-pod can give, except a refused conntrack insert', () => {
    const want = [
      Reason.FWD_LOCAL, Reason.FWD_WIREGUARD, Reason.FWD_IPSEC, Reason.FWD_HOST, Reason.FWD_NOT_IP,
      Reason.DROP_INVALID_PACKET, Reason.DROP_UNKNOWN_ENDPOINT, Reason.DROP_SPOOFED_SOURCE, Reason.DROP_POLICY_DENY,
      Reason.DROP_POLICY_DEFAULT_DENY, Reason.DROP_REQUIRES_ENCRYPTION, Reason.DROP_NO_TUNNEL, Reason.DROP_UNSUPPORTED_L3,
      Reason.DROP_FRAGMENT,
    ];
    expect([...seen('from-pod')].sort((a, b) => a - b)).toEqual(want.sort((a, b) => a - b));
  });

  it('to-pod cases reach every reason to-pod can give, except a refused conntrack insert', () => {
    const want = [
      Reason.FWD_TO_POD, Reason.FWD_NOT_IP, Reason.DROP_INVALID_PACKET, Reason.DROP_UNKNOWN_ENDPOINT,
      Reason.DROP_POLICY_DENY, Reason.DROP_POLICY_DEFAULT_DENY, Reason.DROP_UNSUPPORTED_L3, Reason.DROP_FRAGMENT,
      Reason.DROP_REQUIRES_ENCRYPTION, Reason.DROP_REQUIRES_AUTH_IDENTITY, Reason.DROP_UNKNOWN_IDENTITY,
    ];
    expect([...seen('to-pod')].sort((a, b) => a - b)).toEqual(want.sort((a, b) => a - b));
  });

  it('uplink cases reach pass, non-IP, invalid and both strict drops', () => {
    expect([...seen('uplink-egress')].sort((a, b) => a - b)).toEqual([Reason.FWD_UPLINK, Reason.FWD_NOT_IP, Reason.DROP_INVALID_PACKET, Reason.DROP_STRICT_EGRESS]);
    expect([...seen('uplink-ingress')].sort((a, b) => a - b)).toEqual([Reason.FWD_UPLINK, Reason.DROP_STRICT_INGRESS]);
  });

  it('every case name says its family, or the case is family-free (ARP, LLDP)', () => {
    for (const c of cases) expect(c.name).toMatch(/^(IPv4|IPv6|ARP|another L3|an IPv4)/);
  });
});
