import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { NetlinkError } from '../../../agent/errors.js';
import { parseAddresses } from '../../../agent/netlink/address.js';
import { parseLinks } from '../../../agent/netlink/link.js';
import { parseRoutes } from '../../../agent/netlink/route.js';
import { parseRules } from '../../../agent/netlink/rule.js';
import { attr, ipBytes, nlmsg } from '../../support/nl-fixture.js';
import { AF_INET, AF_INET6, FRA, fibRuleHdr, IFA, ifaddrmsg, ifinfomsg, IFLA, IFLA_INFO, RTA, RTAX_MTU, RTM, rtmsg } from './rtnl-fixtures.js';

const linkMsg = nlmsg(RTM.NEWLINK, 2, ifinfomsg({ index: 7, flags: 0x1043 }), [
  attr.str(IFLA.IFNAME, 'veth0'),
  attr.u32(IFLA.MTU, 1420),
  attr.bytes(IFLA.ADDRESS, Buffer.from([2, 0, 0, 0, 0, 0x0a])),
  attr.u8(IFLA.OPERSTATE, 6),
  attr.u32(IFLA.MASTER, 3),
  attr.nest(IFLA.LINKINFO, [attr.str(IFLA_INFO.KIND, 'veth')]),
  attr.u32(999, 1), // unknown attributes are skipped
]);
const addrMsg = nlmsg(RTM.NEWADDR, 2, ifaddrmsg({ family: AF_INET6, prefixlen: 64, scope: 0, index: 4 }), [
  attr.bytes(IFA.ADDRESS, ipBytes('fd00::5')),
  attr.u32(IFA.FLAGS, 0x280),
]);
const routeMsg = nlmsg(RTM.NEWROUTE, 2, rtmsg({ family: AF_INET, dstLen: 24, table: 0, protocol: 4, scope: 0, type: 1 }), [
  attr.u32(RTA.TABLE, 1000),
  attr.bytes(RTA.DST, ipBytes('10.1.2.0')),
  attr.bytes(RTA.GATEWAY, ipBytes('192.0.2.1')),
  attr.u32(RTA.OIF, 2),
  attr.u32(RTA.PRIORITY, 50),
  attr.nest(RTA.METRICS, [attr.u32(RTAX_MTU, 1400)]),
]);
const ruleMsg = nlmsg(RTM.NEWRULE, 2, fibRuleHdr({ family: AF_INET, table: 0, action: 1 }), [
  attr.u32(FRA.TABLE, 1000),
  attr.u32(FRA.PRIORITY, 100),
  attr.u32(FRA.FWMARK, 0xe00),
  attr.u32(FRA.FWMASK, 0xf00),
  attr.bytes(FRA.SRC, ipBytes('10.0.0.0')),
]);
ruleMsg.writeUInt8(8, 16 + 2); // src_len 8

const parsers = { parseLinks, parseAddresses, parseRoutes, parseRules };
const valid = { parseLinks: linkMsg, parseAddresses: addrMsg, parseRoutes: routeMsg, parseRules: ruleMsg };

/** A parser either returns an array or throws the typed EMALFORMED NetlinkError; never anything else. */
function parsesOrThrowsTyped(parse: (b: Buffer) => unknown[], buf: Buffer): void {
  try {
    expect(Array.isArray(parse(buf))).toBe(true);
  } catch (err) {
    expect(err).toBeInstanceOf(NetlinkError);
    expect((err as NetlinkError).code).toBe('EMALFORMED');
  }
}

describe('rtnetlink parsers', () => {
  it('parseLinks() reads name, index, kind, MTU, state, MAC and master', () => {
    expect(parseLinks(linkMsg)).toEqual([
      { name: 'veth0', ifindex: 7, kind: 'veth', mtu: 1420, up: true, operState: 'UP', mac: '02:00:00:00:00:0a', masterIndex: 3, flags: 0x1043 },
    ]);
  });

  it('parseAddresses() reads an IPv6 address with IFA_FLAGS', () => {
    expect(parseAddresses(addrMsg)).toEqual([
      { dev: null, ifindex: 4, family: 6, address: 'fd00::5/64', peer: null, broadcast: null, label: null, scope: 0, flags: 0x280 },
    ]);
  });

  it('parseRoutes() reads RTA_TABLE over rtm_table, gateway, metric and metrics MTU', () => {
    expect(parseRoutes(routeMsg)).toEqual([
      { family: 4, dst: '10.1.2.0/24', table: 1000, dev: null, ifindex: 2, gateway: '192.0.2.1', src: null, metric: 50, type: 'unicast', scope: 0, protocol: 4, mtu: 1400, flags: 0 },
    ]);
  });

  it('parseRules() reads FRA_TABLE, priority, fwmark/mask and source prefix', () => {
    expect(parseRules(ruleMsg)).toEqual([
      { family: 4, priority: 100, table: 1000, fwmark: 0xe00, fwmask: 0xf00, src: '10.0.0.0/8', dst: null, iif: null, oif: null, action: 'table', invert: false, protocol: 0 },
    ]);
  });

  it('parsers skip messages of other types (NLMSG_DONE after a dump)', () => {
    const done = nlmsg(3, 2, Buffer.alloc(4));
    expect(parseRoutes(Buffer.concat([routeMsg, done]))).toHaveLength(1);
    expect(parseLinks(done)).toEqual([]);
  });

  for (const [name, parse] of Object.entries(parsers)) {
    const msg = valid[name as keyof typeof valid];

    it(`${name}() rejects every truncation of a valid message with EMALFORMED or parses a shorter valid prefix`, () => {
      for (let len = 0; len < msg.length; len++) parsesOrThrowsTyped(parse, msg.subarray(0, len));
      // Truncating the message but keeping nlmsg_len consistent cuts attributes: still typed.
      for (let len = 16; len < msg.length; len += 1) {
        const cut = Buffer.from(msg.subarray(0, len));
        cut.writeUInt32LE(len, 0);
        parsesOrThrowsTyped(parse, cut);
      }
    });

    it(`${name}() never crashes on random bytes`, () => {
      fc.assert(
        fc.property(fc.uint8Array({ maxLength: 512 }), (bytes) => parsesOrThrowsTyped(parse, Buffer.from(bytes))),
        { numRuns: 2000 },
      );
    });

    it(`${name}() never crashes on a valid header followed by random attribute bytes`, () => {
      const type = msg.readUInt16LE(4);
      const hdrLen = type === RTM.NEWLINK ? 16 : type === RTM.NEWADDR ? 8 : 12;
      fc.assert(
        fc.property(fc.uint8Array({ maxLength: 256 }), fc.constantFrom(AF_INET, AF_INET6), (body, family) => {
          const hdr = Buffer.from(msg.subarray(16, 16 + hdrLen));
          hdr.writeUInt8(family, 0);
          parsesOrThrowsTyped(parse, nlmsg(type, 2, hdr));
          const raw = Buffer.concat([Buffer.alloc(16), hdr, Buffer.from(body)]);
          raw.writeUInt32LE(raw.length, 0);
          raw.writeUInt16LE(type, 4);
          parsesOrThrowsTyped(parse, raw);
        }),
        { numRuns: 2000 },
      );
    });

    it(`${name}() never crashes on single-byte corruptions of a valid message`, () => {
      fc.assert(
        fc.property(fc.nat(msg.length - 1), fc.integer({ min: 0, max: 255 }), (at, v) => {
          const b = Buffer.from(msg);
          b[at] = v;
          parsesOrThrowsTyped(parse, b);
        }),
        { numRuns: 2000 },
      );
    });
  }
});
