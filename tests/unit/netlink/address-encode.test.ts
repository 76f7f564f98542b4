import { describe, expect, it } from 'vitest';
import { encodeAddressAdd, encodeAddressDelete, IFA_F_NODAD, IFA_F_NOPREFIXROUTE } from '../../../agent/netlink/address.js';
import { attr, ipBytes, NLM_F_CREATE, NLM_F_EXCL, nlmsg } from '../../support/nl-fixture.js';
import { AF_INET, AF_INET6, IFA, ifaddrmsg, RTM } from './rtnl-fixtures.js';

describe('address encoders', () => {
  it('encodeAddressAdd() builds an IPv4 address with IFA_LOCAL and IFA_ADDRESS like ip addr add', () => {
    const [msg] = encodeAddressAdd([{ dev: 'eth0', address: '10.1.2.3/24' }], { eth0: 4 });
    const expected = nlmsg(RTM.NEWADDR, NLM_F_CREATE | NLM_F_EXCL, ifaddrmsg({ family: AF_INET, prefixlen: 24, index: 4 }), [
      attr.bytes(IFA.LOCAL, ipBytes('10.1.2.3')),
      attr.bytes(IFA.ADDRESS, ipBytes('10.1.2.3')),
    ]);
    expect(msg!.toString('hex')).toBe(expected.toString('hex'));
  });

  it('encodeAddressAdd() builds an IPv4 address with peer, broadcast, label and scope', () => {
    const [msg] = encodeAddressAdd(
      [{ dev: 'eth0', address: '10.1.2.3/32', peer: '10.9.9.9', broadcast: '10.1.2.255', label: 'eth0:veil', scope: 'link' }],
      { eth0: 2 },
    );
    const expected = nlmsg(RTM.NEWADDR, NLM_F_CREATE | NLM_F_EXCL, ifaddrmsg({ family: AF_INET, prefixlen: 32, scope: 253, index: 2 }), [
      attr.bytes(IFA.LOCAL, ipBytes('10.1.2.3')),
      attr.bytes(IFA.ADDRESS, ipBytes('10.9.9.9')),
      attr.bytes(IFA.BROADCAST, ipBytes('10.1.2.255')),
      attr.str(IFA.LABEL, 'eth0:veil'),
    ]);
    expect(msg!.toString('hex')).toBe(expected.toString('hex'));
  });

  it('encodeAddressAdd() builds an IPv6 address with nodad in ifa_flags and IFA_FLAGS carrying noprefixroute', () => {
    const [msg] = encodeAddressAdd([{ dev: 'wg0', address: 'fd00:1::5/64', noDad: true, noPrefixRoute: true }], { wg0: 11 });
    const flags = IFA_F_NODAD | IFA_F_NOPREFIXROUTE;
    const expected = nlmsg(RTM.NEWADDR, NLM_F_CREATE | NLM_F_EXCL, ifaddrmsg({ family: AF_INET6, prefixlen: 64, flags: flags & 0xff, index: 11 }), [
      attr.bytes(IFA.LOCAL, ipBytes('fd00:1::5')),
      attr.bytes(IFA.ADDRESS, ipBytes('fd00:1::5')),
      attr.u32(IFA.FLAGS, flags),
    ]);
    expect(msg!.toString('hex')).toBe(expected.toString('hex'));
  });

  it('encodeAddressDelete() builds RTM_DELADDR without create flags, v4 and v6', () => {
    const msgs = encodeAddressDelete(
      [
        { dev: 'eth0', address: '192.0.2.1/24' },
        { dev: 'eth0', address: '2001:db8::1/128' },
      ],
      { eth0: 3 },
    );
    expect(msgs[0]!.toString('hex')).toBe(
      nlmsg(RTM.DELADDR, 0, ifaddrmsg({ family: AF_INET, prefixlen: 24, index: 3 }), [
        attr.bytes(IFA.LOCAL, ipBytes('192.0.2.1')),
        attr.bytes(IFA.ADDRESS, ipBytes('192.0.2.1')),
      ]).toString('hex'),
    );
    expect(msgs[1]!.toString('hex')).toBe(
      nlmsg(RTM.DELADDR, 0, ifaddrmsg({ family: AF_INET6, prefixlen: 128, index: 3 }), [
        attr.bytes(IFA.LOCAL, ipBytes('2001:db8::1')),
        attr.bytes(IFA.ADDRESS, ipBytes('2001:db8::1')),
      ]).toString('hex'),
    );
  });
});
