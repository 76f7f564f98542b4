import { describe, expect, it } from 'vitest';
import { encodeLinkAdd, encodeLinkDelete, encodeLinkSet } from '../../../agent/netlink/link.js';
import { attr, encodeAttrs as encode, NLM_F_CREATE, NLM_F_EXCL, nlmsg } from '../../support/nl-fixture.js';
import { IFF_UP, IFLA, IFLA_INFO, ifinfomsg, RTM, VETH_INFO_PEER } from './rtnl-fixtures.js';

describe('link encoders', () => {
  it('encodeLinkAdd() builds a veth pair whose peer is created in another namespace, up, with MTU and master', () => {
    const [msg] = encodeLinkAdd(
      [{ name: 'veth-a', kind: 'veth', mtu: 1420, up: true, master: 'br0', peer: { name: 'veth-b', netns: 'ns2' } }],
      { masterIndex: { br0: 7 }, netnsFd: { ns2: 42 } },
    );
    // VETH_INFO_PEER carries the peer's own struct ifinfomsg followed by its attributes.
    const peerBody = Buffer.concat([
      ifinfomsg(),
      encode([attr.str(IFLA.IFNAME, 'veth-b'), attr.u32(IFLA.MTU, 1420), attr.u32(IFLA.NET_NS_FD, 42)]),
    ]);
    const manual = nlmsg(RTM.NEWLINK, NLM_F_CREATE | NLM_F_EXCL, ifinfomsg({ flags: IFF_UP, change: IFF_UP }), [
      attr.str(IFLA.IFNAME, 'veth-a'),
      attr.u32(IFLA.MTU, 1420),
      attr.u32(IFLA.MASTER, 7),
      attr.nest(IFLA.LINKINFO, [
        attr.str(IFLA_INFO.KIND, 'veth'),
        attr.nest(IFLA_INFO.DATA, [{ type: VETH_INFO_PEER, value: peerBody, nested: true }]),
      ]),
    ]);
    expect(msg!.toString('hex')).toBe(manual.toString('hex'));
  });

  it('encodeLinkAdd() builds a wireguard link with only its name and kind', () => {
    const msgs = encodeLinkAdd([{ name: 'veil_wg0', kind: 'wireguard' }]);
    const expected = nlmsg(RTM.NEWLINK, NLM_F_CREATE | NLM_F_EXCL, ifinfomsg(), [
      attr.str(IFLA.IFNAME, 'veil_wg0'),
      attr.nest(IFLA.LINKINFO, [attr.str(IFLA_INFO.KIND, 'wireguard')]),
    ]);
    expect(msgs).toHaveLength(1);
    expect(msgs[0]!.toString('hex')).toBe(expected.toString('hex'));
  });

  it('encodeLinkAdd() emits one message per link in batch order', () => {
    const msgs = encodeLinkAdd([
      { name: 'br0', kind: 'bridge' },
      { name: 'd0', kind: 'dummy', mtu: 9000 },
    ]);
    expect(msgs.map((m) => m.readUInt16LE(4))).toEqual([RTM.NEWLINK, RTM.NEWLINK]);
    expect(msgs[1]!.toString('hex')).toBe(
      nlmsg(RTM.NEWLINK, NLM_F_CREATE | NLM_F_EXCL, ifinfomsg(), [
        attr.str(IFLA.IFNAME, 'd0'),
        attr.u32(IFLA.MTU, 9000),
        attr.nest(IFLA.LINKINFO, [attr.str(IFLA_INFO.KIND, 'dummy')]),
      ]).toString('hex'),
    );
  });

  it('encodeLinkSet() sets up and MTU by ifindex', () => {
    const [msg] = encodeLinkSet(5, { up: true, mtu: 1380 });
    const expected = nlmsg(RTM.NEWLINK, 0, ifinfomsg({ index: 5, flags: IFF_UP, change: IFF_UP }), [attr.u32(IFLA.MTU, 1380)]);
    expect(msg!.toString('hex')).toBe(expected.toString('hex'));
  });

  it('encodeLinkSet() sets down with the IFF_UP bit in ifi_change only', () => {
    const [msg] = encodeLinkSet(3, { up: false });
    expect(msg!.toString('hex')).toBe(nlmsg(RTM.NEWLINK, 0, ifinfomsg({ index: 3, change: IFF_UP })).toString('hex'));
  });

  it('encodeLinkSet() moves a link to a namespace by fd and renames it in the same request', () => {
    const [msg] = encodeLinkSet(9, { netns: '/proc/1/ns/net', name: 'eth1' }, { netnsFd: { '/proc/1/ns/net': 17 } });
    const expected = nlmsg(RTM.NEWLINK, 0, ifinfomsg({ index: 9 }), [attr.str(IFLA.IFNAME, 'eth1'), attr.u32(IFLA.NET_NS_FD, 17)]);
    expect(msg!.toString('hex')).toBe(expected.toString('hex'));
  });

  it('encodeLinkSet() releases a link from its master with IFLA_MASTER 0', () => {
    const [msg] = encodeLinkSet(4, { master: null });
    expect(msg!.toString('hex')).toBe(nlmsg(RTM.NEWLINK, 0, ifinfomsg({ index: 4 }), [attr.u32(IFLA.MASTER, 0)]).toString('hex'));
  });

  it('encodeLinkDelete() deletes by name', () => {
    const msgs = encodeLinkDelete(['a', 'b']);
    expect(msgs[1]!.toString('hex')).toBe(nlmsg(RTM.DELLINK, 0, ifinfomsg(), [attr.str(IFLA.IFNAME, 'b')]).toString('hex'));
  });
});
