import { describe, expect, it } from 'vitest';
import { encodeRouteDump, encodeRoutes } from '../../../agent/netlink/route.js';
import { attr, ipBytes, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE, nlmsg } from '../../support/nl-fixture.js';
import { AF_INET, AF_INET6, RTA, RTAX_MTU, RTM, rtmsg } from './rtnl-fixtures.js';

const RTPROT_BOOT = 3;
const RTN_UNICAST = 1;
const RTN_BLACKHOLE = 6;
const RT_SCOPE_UNIVERSE = 0;
const RT_SCOPE_LINK = 253;
const RT_SCOPE_NOWHERE = 255;
const MAIN = 254;

describe('route encoders', () => {
  it('encodeRoutes("add") builds an IPv4 device route in the main table with ip route add defaults', () => {
    const [msg] = encodeRoutes('add', [{ dst: '10.20.0.0/16', dev: 'eth0' }], { eth0: 2 });
    const expected = nlmsg(
      RTM.NEWROUTE,
      NLM_F_CREATE | NLM_F_EXCL,
      rtmsg({ family: AF_INET, dstLen: 16, table: MAIN, protocol: RTPROT_BOOT, scope: RT_SCOPE_LINK, type: RTN_UNICAST }),
      [attr.bytes(RTA.DST, ipBytes('10.20.0.0')), attr.u32(RTA.OIF, 2)],
    );
    expect(msg!.toString('hex')).toBe(expected.toString('hex'));
  });

  it('encodeRoutes("add") puts a table above 255 in RTA_TABLE with rtm_table unspec, and the MTU in RTA_METRICS', () => {
    const [msg] = encodeRoutes('add', [{ dst: '10.0.0.0/8', gateway: '192.0.2.1', dev: 'eth0', src: '192.0.2.9', metric: 100, table: 2000, mtu: 1420 }], { eth0: 5 });
    const expected = nlmsg(
      RTM.NEWROUTE,
      NLM_F_CREATE | NLM_F_EXCL,
      rtmsg({ family: AF_INET, dstLen: 8, table: 0, protocol: RTPROT_BOOT, scope: RT_SCOPE_UNIVERSE, type: RTN_UNICAST }),
      [
        attr.u32(RTA.TABLE, 2000),
        attr.bytes(RTA.DST, ipBytes('10.0.0.0')),
        attr.bytes(RTA.PREFSRC, ipBytes('192.0.2.9')),
        attr.bytes(RTA.GATEWAY, ipBytes('192.0.2.1')),
        attr.u32(RTA.OIF, 5),
        attr.u32(RTA.PRIORITY, 100),
        attr.nest(RTA.METRICS, [attr.u32(RTAX_MTU, 1420)]),
      ],
    );
    expect(msg!.toString('hex')).toBe(expected.toString('hex'));
  });

  it('encodeRoutes("replace") builds an IPv6 route with NLM_F_REPLACE and table > 255', () => {
    const [msg] = encodeRoutes('replace', [{ dst: 'fd00:10::/64', gateway: 'fe80::1', dev: 'wg0', table: 1000, protocol: 'static' }], { wg0: 7 });
    const expected = nlmsg(
      RTM.NEWROUTE,
      NLM_F_CREATE | NLM_F_REPLACE,
      rtmsg({ family: AF_INET6, dstLen: 64, table: 0, protocol: 4, scope: RT_SCOPE_UNIVERSE, type: RTN_UNICAST }),
      [attr.u32(RTA.TABLE, 1000), attr.bytes(RTA.DST, ipBytes('fd00:10::')), attr.bytes(RTA.GATEWAY, ipBytes('fe80::1')), attr.u32(RTA.OIF, 7)],
    );
    expect(msg!.toString('hex')).toBe(expected.toString('hex'));
  });

  it('encodeRoutes("replace") builds an IPv6 blackhole default route without RTA_DST', () => {
    const [msg] = encodeRoutes('replace', [{ dst: 'default', family: 6, type: 'blackhole', table: 300 }]);
    const expected = nlmsg(
      RTM.NEWROUTE,
      NLM_F_CREATE | NLM_F_REPLACE,
      rtmsg({ family: AF_INET6, dstLen: 0, table: 0, protocol: RTPROT_BOOT, scope: RT_SCOPE_UNIVERSE, type: RTN_BLACKHOLE }),
      [attr.u32(RTA.TABLE, 300)],
    );
    expect(msg!.toString('hex')).toBe(expected.toString('hex'));
  });

  it('encodeRoutes("delete") leaves protocol and type as wildcards and uses scope nowhere, v4 and v6', () => {
    const msgs = encodeRoutes('delete', [{ dst: '10.20.0.0/16', table: 100 }, { dst: 'fd00::/8', table: 4096, metric: 1024 }]);
    expect(msgs[0]!.toString('hex')).toBe(
      nlmsg(RTM.DELROUTE, 0, rtmsg({ family: AF_INET, dstLen: 16, table: 100, protocol: 0, scope: RT_SCOPE_NOWHERE, type: 0 }), [
        attr.bytes(RTA.DST, ipBytes('10.20.0.0')),
      ]).toString('hex'),
    );
    expect(msgs[1]!.toString('hex')).toBe(
      nlmsg(RTM.DELROUTE, 0, rtmsg({ family: AF_INET6, dstLen: 8, table: 0, protocol: 0, scope: RT_SCOPE_NOWHERE, type: 0 }), [
        attr.u32(RTA.TABLE, 4096),
        attr.bytes(RTA.DST, ipBytes('fd00::')),
        attr.u32(RTA.PRIORITY, 1024),
      ]).toString('hex'),
    );
  });

  it('encodeRoutes() keeps batch order and size for thousands of routes', () => {
    const routes = Array.from({ length: 5000 }, (_, i) => ({ dst: `10.${i >> 8}.${i & 255}.0/24`, dev: 'eth0' }));
    const msgs = encodeRoutes('add', routes, { eth0: 2 });
    expect(msgs).toHaveLength(5000);
    expect(msgs[4999]!.subarray(32, 36)).toEqual(ipBytes('10.19.135.0'));
  });

  it('encodeRouteDump() asks the kernel to filter by table (RTA_TABLE) and device (RTA_OIF)', () => {
    const [msg] = encodeRouteDump({ family: 4, table: 1000, ifindex: 3 });
    const expected = nlmsg(RTM.GETROUTE, 0, rtmsg({ family: AF_INET, dstLen: 0, table: 0, protocol: 0, scope: 0, type: 0 }), [
      attr.u32(RTA.TABLE, 1000),
      attr.u32(RTA.OIF, 3),
    ]);
    expect(msg!.toString('hex')).toBe(expected.toString('hex'));
    const [main] = encodeRouteDump({});
    expect(main!.readUInt8(16 + 4)).toBe(MAIN);
  });
});
