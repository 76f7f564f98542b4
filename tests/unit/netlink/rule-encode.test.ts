import { describe, expect, it } from 'vitest';
import { encodeRules } from '../../../agent/netlink/rule.js';
import { attr, ipBytes, NLM_F_CREATE, NLM_F_EXCL, nlmsg } from '../../support/nl-fixture.js';
import { AF_INET, AF_INET6, FRA, fibRuleHdr, RTM } from './rtnl-fixtures.js';

const FR_ACT_TO_TBL = 1;
const FR_ACT_BLACKHOLE = 6;
const FIB_RULE_INVERT = 2;

describe('rule encoders', () => {
  it('encodeRules("add") builds an fwmark/mask rule with priority and a table below 256 in the header', () => {
    const [msg] = encodeRules('add', [{ family: 4, priority: 100, table: 200, fwmark: 0xe00, fwmask: 0xf00 }]);
    const expected = nlmsg(RTM.NEWRULE, NLM_F_CREATE | NLM_F_EXCL, fibRuleHdr({ family: AF_INET, table: 200, action: FR_ACT_TO_TBL }), [
      attr.u32(FRA.PRIORITY, 100),
      attr.u32(FRA.FWMARK, 0xe00),
      attr.u32(FRA.FWMASK, 0xf00),
    ]);
    expect(msg!.toString('hex')).toBe(expected.toString('hex'));
  });

  it('encodeRules("add") puts a table above 255 in FRA_TABLE and encodes selectors, devices and invert (IPv6)', () => {
    const [msg] = encodeRules('add', [
      { family: 6, priority: 5, table: 4242, src: 'fd00:1::/48', dst: 'fd00:2::/64', iif: 'eth0', oif: 'wg0', invert: true, protocol: 99 },
    ]);
    const expected = nlmsg(
      RTM.NEWRULE,
      NLM_F_CREATE | NLM_F_EXCL,
      fibRuleHdr({ family: AF_INET6, srcLen: 48, dstLen: 64, table: 0, action: FR_ACT_TO_TBL, flags: FIB_RULE_INVERT }),
      [
        attr.u32(FRA.TABLE, 4242),
        attr.u32(FRA.PRIORITY, 5),
        attr.bytes(FRA.SRC, ipBytes('fd00:1::')),
        attr.bytes(FRA.DST, ipBytes('fd00:2::')),
        attr.str(FRA.IIFNAME, 'eth0'),
        attr.str(FRA.OIFNAME, 'wg0'),
        attr.u8(FRA.PROTOCOL, 99),
      ],
    );
    expect(msg!.toString('hex')).toBe(expected.toString('hex'));
  });

  it('encodeRules("delete") builds a blackhole rule deletion without a table', () => {
    const [msg] = encodeRules('delete', [{ family: 4, priority: 10, table: 0, action: 'blackhole', fwmark: 1 }]);
    const expected = nlmsg(RTM.DELRULE, 0, fibRuleHdr({ family: AF_INET, table: 0, action: FR_ACT_BLACKHOLE }), [
      attr.u32(FRA.PRIORITY, 10),
      attr.u32(FRA.FWMARK, 1),
    ]);
    expect(msg!.toString('hex')).toBe(expected.toString('hex'));
  });
});
