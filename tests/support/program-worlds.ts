/**
 * The worlds and case lists of the datapath program tests (format: program-cases.ts). Shared by
 * the privileged tests on the host kernel and the VM test on the Debian kernel.
 *
 * Node 1 (this node) hosts pod A (identity 300, isolated both ways) and pod B (301, not
 * isolated). Node 2 hosts pod R (400) with key slot 1; node 3's pod CIDR (identity 401, key slot
 * 0) is only an LPM prefix. Z has identity 0 in the ipcache (a broken entry); W is outside.
 */
import { MarkPurpose } from '../../agent/datapath/marks.js';
import { keySlot } from '../../agent/reconcile/ipsec-marks.js';
import {
  arp,
  ethernet,
  ETH_HLEN,
  icmpEcho,
  icmpError,
  icmpv6,
  rawIp,
  tcp,
  tcpSegment,
  TCP_FLAGS,
  truncate,
  udp,
  withByte,
  withU16,
} from './packets.js';
import {
  CFG_F,
  EP_F,
  EVENT,
  IPC_F,
  Reason,
  TC_ACT_OK,
  TC_ACT_REDIRECT,
  TC_ACT_SHOT,
  type ProgramCase,
  type WorldSpec,
} from './program-cases.js';

export type Family = 4 | 6;

export interface Addrs {
  A: string;
  B: string;
  R: string;
  C: string;
  N1: string;
  N2: string;
  Z: string;
  W: string;
  spoof: string;
  icmp: 'icmp' | 'icmpv6';
  unreachable: number;
}

export const ADDRS: Record<Family, Addrs> = {
  4: {
    A: '10.0.1.10', B: '10.0.1.11', R: '10.0.2.20', C: '10.0.3.5', N1: '192.168.0.1', N2: '192.168.0.2',
    Z: '10.0.9.9', W: '203.0.113.7', spoof: '10.0.1.99', icmp: 'icmp', unreachable: 3,
  },
  6: {
    A: 'fd00:1::10', B: 'fd00:1::11', R: 'fd00:2::20', C: 'fd00:3::5', N1: 'fd00:ff::1', N2: 'fd00:ff::2',
    Z: 'fd00:9::9', W: '2001:db8::7', spoof: 'fd00:1::99', icmp: 'icmpv6', unreachable: 1,
  },
};

export const ID = { A: 300, B: 301, R: 400, C: 401, HOST: 1, WORLD: 2, REMOTE_NODE: 6 } as const;
export const WG_PORT = 51820;
export const DEVICES = ['pod-a', 'pod-b', 'wg0', 'wg1', 'uplink'];

export function world(flags: number, wireguard: string[] = ['wg0', 'wg1']): WorldSpec {
  const a4 = ADDRS[4];
  const a6 = ADDRS[6];
  const both = (f: (a: Addrs) => WorldSpec['ipcache']) => [...f(a4)!, ...f(a6)!];
  return {
    devices: DEVICES,
    config: { flags, wireguard, nodeIdentity: ID.HOST, wireguardPort: WG_PORT, nodeIndex: 1 },
    endpoints: [
      // keyGeneration 6: IPsec mode writes 6 mod 4 = 2 as the high half of the key slot; WireGuard mode ignores it.
      { dev: 'pod-a', identity: ID.A, flags: EP_F.HAS_IPV4 | EP_F.HAS_IPV6 | EP_F.ENFORCE_EGRESS | EP_F.ENFORCE_INGRESS, ipv4: a4.A, ipv6: a6.A, keyGeneration: 6 },
      { dev: 'pod-b', identity: ID.B, flags: EP_F.HAS_IPV4 | EP_F.HAS_IPV6, ipv4: a4.B, ipv6: a6.B },
    ],
    ipcache: both((a) => {
      const host = a === a4 ? 32 : 128;
      const tunnelV6 = a === a6 ? IPC_F.TUNNEL_V6 : 0;
      return [
        { prefix: `${a.A}/${host}`, identity: ID.A, flags: IPC_F.POD | IPC_F.LOCAL },
        { prefix: `${a.B}/${host}`, identity: ID.B, flags: IPC_F.POD | IPC_F.LOCAL },
        { prefix: `${a.R}/${host}`, identity: ID.R, nodeIndex: 2, keySlot: 1, flags: IPC_F.POD | tunnelV6, tunnel: a.N2 },
        { prefix: a === a4 ? '10.0.3.0/24' : 'fd00:3::/64', identity: ID.C, nodeIndex: 3, keySlot: 0, flags: IPC_F.POD | tunnelV6, tunnel: a.N2 },
        { prefix: `${a.N1}/${host}`, identity: ID.HOST, flags: IPC_F.NODE | IPC_F.LOCAL },
        { prefix: `${a.N2}/${host}`, identity: ID.REMOTE_NODE, nodeIndex: 2, flags: IPC_F.NODE | tunnelV6, tunnel: a.N2 },
        { prefix: `${a.Z}/${host}`, identity: 0, flags: IPC_F.POD },
      ];
    }),
    rules: [
      { subject: ID.A, peer: ID.R, direction: 'egress', protocol: 'tcp', port: 80, verdict: 'allow' },
      { subject: ID.A, peer: 0, direction: 'egress', protocol: 'udp', port: 53, verdict: 'allow' },
      { subject: ID.A, peer: ID.R, direction: 'egress', protocol: 'icmp', verdict: 'allow' },
      { subject: ID.A, peer: ID.R, direction: 'egress', protocol: 'icmpv6', verdict: 'allow' },
      { subject: ID.A, peer: 0, direction: 'egress', protocol: 'tcp', port: 22, verdict: 'deny' },
      { subject: ID.A, peer: ID.B, direction: 'egress', protocol: 'tcp', port: 5432, verdict: 'allow', requireEncryption: true },
      { subject: ID.A, peer: ID.C, direction: 'egress', protocol: 'tcp', port: 8000, endPort: 8002, verdict: 'allow' },
      { subject: ID.A, peer: ID.B, direction: 'ingress', protocol: 'tcp', port: 8080, verdict: 'allow' },
      { subject: ID.A, peer: ID.R, direction: 'ingress', protocol: 'tcp', port: 443, verdict: 'allow', requireEncryption: true },
      { subject: ID.A, peer: ID.R, direction: 'ingress', protocol: 'tcp', port: 9000, verdict: 'allow', requireAuthenticatedIdentity: true },
      { subject: ID.B, peer: ID.C, direction: 'egress', protocol: 'tcp', verdict: 'deny' },
      { subject: ID.A, peer: 0, direction: 'ingress', protocol: 'tcp', port: 9999, verdict: 'deny' },
    ],
    enforcement: [{ identity: ID.A, ingress: true, egress: true }],
  };
}

const drop = (reason: number, src: number, dst: number, extra: Record<string, unknown> = {}) => ({
  retval: TC_ACT_SHOT,
  reason,
  event: { type: EVENT.DROP, src, dst, ...extra },
});
const flowNew = (retval: number, reason: number, src: number, dst: number, extra: Record<string, unknown> = {}) => ({
  retval,
  reason,
  event: { type: EVENT.FLOW_NEW, src, dst, ...extra },
});

const ipOff = ETH_HLEN;

/** from-pod, WireGuard mode. Opens the connections the to-pod cases reply to. */
export function fromPodCases(f: Family): ProgramCase[] {
  const a = ADDRS[f];
  const icmpType = f === 4 ? 8 : 128;
  const cases: ProgramCase[] = [
    {
      name: `IPv${f} TCP SYN to a remote pod is redirected into its channel's WireGuard device and opens a connection`,
      prog: 'from-pod', ctx: { dev: 'pod-a' },
      frame: tcp({ src: a.A, dst: a.R, sport: 40000, dport: 80 }),
      expect: flowNew(TC_ACT_REDIRECT, Reason.FWD_WIREGUARD, ID.A, ID.R, { sport: 40000, dport: 80, saddr: a.A, daddr: a.R }),
    },
    {
      name: `IPv${f} an established connection is steered without a new-flow event`,
      prog: 'from-pod', ctx: { dev: 'pod-a' },
      frame: tcp({ src: a.A, dst: a.R, sport: 40000, dport: 80, flags: TCP_FLAGS.ack }),
      expect: { retval: TC_ACT_REDIRECT, reason: Reason.FWD_WIREGUARD },
    },
    {
      name: `IPv${f} a port no rule allows is dropped by default deny with identities and tuple`,
      prog: 'from-pod', ctx: { dev: 'pod-a' },
      frame: tcp({ src: a.A, dst: a.R, sport: 40001, dport: 81 }),
      expect: drop(Reason.DROP_POLICY_DEFAULT_DENY, ID.A, ID.R, { sport: 40001, dport: 81, saddr: a.A, daddr: a.R }),
    },
    {
      name: `IPv${f} an explicit deny wins over nothing else`,
      prog: 'from-pod', ctx: { dev: 'pod-a' },
      frame: tcp({ src: a.A, dst: a.R, sport: 40002, dport: 22 }),
      expect: drop(Reason.DROP_POLICY_DENY, ID.A, ID.R, { dport: 22 }),
    },
    {
      name: `IPv${f} a port inside an allowed range to a pod known only by its node's CIDR (LPM) goes to channel 0`,
      prog: 'from-pod', ctx: { dev: 'pod-a' },
      frame: tcp({ src: a.A, dst: a.C, sport: 40003, dport: 8001 }),
      expect: flowNew(TC_ACT_REDIRECT, Reason.FWD_WIREGUARD, ID.A, ID.C, { dport: 8001 }),
    },
    {
      name: `IPv${f} UDP to a world address allowed by a peer-wildcard rule is left to the kernel`,
      prog: 'from-pod', ctx: { dev: 'pod-a' },
      frame: udp({ src: a.A, dst: a.W, sport: 5353, dport: 53 }),
      expect: flowNew(TC_ACT_OK, Reason.FWD_HOST, ID.A, ID.WORLD, { sport: 5353, dport: 53 }),
    },
    {
      name: `IPv${f} ICMP echo to an allowed remote pod is redirected; the event carries echo id and type`,
      prog: 'from-pod', ctx: { dev: 'pod-a' },
      frame: icmpEcho({ src: a.A, dst: a.R, id: 4242 }),
      expect: flowNew(TC_ACT_REDIRECT, Reason.FWD_WIREGUARD, ID.A, ID.R, { sport: 4242, dport: icmpType << 8 }),
    },
    {
      name: `IPv${f} a source address that is not the pod's own is dropped as spoofed`,
      prog: 'from-pod', ctx: { dev: 'pod-a' },
      frame: tcp({ src: a.spoof, dst: a.R, sport: 40004, dport: 80 }),
      expect: drop(Reason.DROP_SPOOFED_SOURCE, ID.A, 0, { saddr: a.spoof }),
    },
    {
      name: `IPv${f} pod B's address sent from pod A's interface is spoofed too`,
      prog: 'from-pod', ctx: { dev: 'pod-a' },
      frame: tcp({ src: a.B, dst: a.R, sport: 40005, dport: 80 }),
      expect: drop(Reason.DROP_SPOOFED_SOURCE, ID.A, 0),
    },
    {
      name: `IPv${f} a rule requiring encryption denies traffic to a pod on the same node (never encrypted)`,
      prog: 'from-pod', ctx: { dev: 'pod-a' },
      frame: tcp({ src: a.A, dst: a.B, sport: 40006, dport: 5432 }),
      expect: drop(Reason.DROP_REQUIRES_ENCRYPTION, ID.A, ID.B),
    },
    {
      name: `IPv${f} an interface that is not an endpoint drops`,
      prog: 'from-pod', ctx: { dev: 'uplink' },
      frame: tcp({ src: a.A, dst: a.R, sport: 40000, dport: 80 }),
      expect: drop(Reason.DROP_UNKNOWN_ENDPOINT, 0, 0),
    },
    {
      name: `IPv${f} a pod that is not isolated reaches a local pod (the kernel delivers it)`,
      prog: 'from-pod', ctx: { dev: 'pod-b' },
      frame: tcp({ src: a.B, dst: a.A, sport: 41000, dport: 8080 }),
      expect: flowNew(TC_ACT_OK, Reason.FWD_LOCAL, ID.B, ID.A, { dport: 8080 }),
    },
    {
      name: `IPv${f} an explicit deny applies to a pod that is not isolated`,
      prog: 'from-pod', ctx: { dev: 'pod-b' },
      frame: tcp({ src: a.B, dst: a.C, sport: 41001, dport: 80 }),
      expect: drop(Reason.DROP_POLICY_DENY, ID.B, ID.C),
    },
    {
      name: `IPv${f} a later fragment (no L4 header) whose first fragment was never seen is dropped`,
      prog: 'from-pod', ctx: { dev: 'pod-a' },
      frame: rawIp({ src: a.A, dst: a.R, proto: 17, fragmentOffset: 185, payload: new Uint8Array(64) }),
      expect: drop(Reason.DROP_FRAGMENT, ID.A, 0),
    },
    {
      name: `IPv${f} a first fragment is judged on its ports like any packet`,
      prog: 'from-pod', ctx: { dev: 'pod-a' },
      frame: udp({ src: a.A, dst: a.R, sport: 5000, dport: 53, moreFragments: true, fragmentOffset: 0, payload: new Uint8Array(32) }),
      expect: flowNew(TC_ACT_REDIRECT, Reason.FWD_WIREGUARD, ID.A, ID.R, { dport: 53 }),
    },
    {
      name: `IPv${f} a later fragment of that datagram follows its first fragment's connection`,
      prog: 'from-pod', ctx: { dev: 'pod-a' },
      frame: rawIp({ src: a.A, dst: a.R, proto: 17, fragmentOffset: 5, payload: new Uint8Array(64) }),
      expect: { retval: TC_ACT_REDIRECT, reason: Reason.FWD_WIREGUARD },
    },
    {
      name: `IPv${f} a first fragment the policy denies is dropped`,
      prog: 'from-pod', ctx: { dev: 'pod-a' },
      frame: udp({ src: a.A, dst: a.R, sport: 5001, dport: 54, moreFragments: true, fragmentOffset: 0, ipId: 0x777, payload: new Uint8Array(32) }),
      expect: drop(Reason.DROP_POLICY_DEFAULT_DENY, ID.A, ID.R, { dport: 54 }),
    },
    {
      name: `IPv${f} and the rest of its datagram with it`,
      prog: 'from-pod', ctx: { dev: 'pod-a' },
      frame: rawIp({ src: a.A, dst: a.R, proto: 17, fragmentOffset: 5, ipId: 0x777, payload: new Uint8Array(64) }),
      expect: drop(Reason.DROP_FRAGMENT, ID.A, 0),
    },
    {
      name: `IPv${f} a TCP header cut short is an invalid packet`,
      prog: 'from-pod', ctx: { dev: 'pod-a' },
      frame: fixLength(truncate(tcp({ src: a.A, dst: a.R, sport: 40000, dport: 80 }), ipOff + (f === 4 ? 20 : 40) + 10), f),
      expect: drop(Reason.DROP_INVALID_PACKET, 0, 0),
    },
    {
      name: `IPv${f} a wrong IP version is an invalid packet`,
      prog: 'from-pod', ctx: { dev: 'pod-a' },
      frame: withByte(tcp({ src: a.A, dst: a.R, sport: 40000, dport: 80 }), ipOff, f === 4 ? 0x65 : 0x45),
      expect: drop(Reason.DROP_INVALID_PACKET, 0, 0),
    },
    {
      name: `IPv${f} an IP length beyond the frame is an invalid packet`,
      prog: 'from-pod', ctx: { dev: 'pod-a' },
      frame: withU16(tcp({ src: a.A, dst: a.R, sport: 40000, dport: 80 }), ipOff + (f === 4 ? 2 : 4), 1400),
      expect: drop(Reason.DROP_INVALID_PACKET, 0, 0),
    },
  ];
  if (f === 4) {
    cases.push(
      // Frames cut inside the IP header cannot be test-run: the kernel refuses them (EINVAL) before
      // the program runs. Lengths that claim more than the frame holds stand in for them.
      {
        name: 'IPv4 a header length beyond the packet is an invalid packet',
        prog: 'from-pod', ctx: { dev: 'pod-a' },
        frame: withByte(udp({ src: a.A, dst: a.R, sport: 1, dport: 53 }), ipOff, 0x4f),
        expect: drop(Reason.DROP_INVALID_PACKET, 0, 0),
      },
      {
        name: 'IPv4 a header length below 20 bytes is an invalid packet',
        prog: 'from-pod', ctx: { dev: 'pod-a' },
        frame: withByte(tcp({ src: a.A, dst: a.R, sport: 40000, dport: 80 }), ipOff, 0x44),
        expect: drop(Reason.DROP_INVALID_PACKET, 0, 0),
      },
      {
        name: 'ARP passes untouched',
        prog: 'from-pod', ctx: { dev: 'pod-a' },
        frame: arp(a.A, '10.0.1.1'),
        expect: { retval: TC_ACT_OK, reason: Reason.FWD_NOT_IP },
      },
      {
        name: 'another L3 protocol (LLDP) is dropped',
        prog: 'from-pod', ctx: { dev: 'pod-a' },
        frame: ethernet(0x88cc, new Uint8Array(46)),
        expect: drop(Reason.DROP_UNSUPPORTED_L3, 0, 0),
      },
    );
  } else {
    cases.push(
      {
        name: 'IPv6 neighbour solicitation from the link-local address goes to the node',
        prog: 'from-pod', ctx: { dev: 'pod-a' },
        frame: icmpv6({ src: 'fe80::1', dst: 'ff02::1:ff00:1', type: 135, ttl: 255 }),
        expect: { retval: TC_ACT_OK, reason: Reason.FWD_HOST },
      },
      {
        name: 'IPv6 an MLD report from the link-local address goes to the node',
        prog: 'from-pod', ctx: { dev: 'pod-a' },
        frame: icmpv6({ src: 'fe80::1', dst: 'ff02::16', type: 143, ttl: 1 }),
        expect: { retval: TC_ACT_OK, reason: Reason.FWD_HOST },
      },
      {
        name: 'IPv6 neighbour discovery with a hop limit below 255 (so possibly forwarded) is not exempt: spoofed',
        prog: 'from-pod', ctx: { dev: 'pod-a' },
        frame: icmpv6({ src: 'fe80::1', dst: a.R, type: 135, ttl: 64 }),
        expect: drop(Reason.DROP_SPOOFED_SOURCE, ID.A, 0),
      },
      {
        name: 'IPv6 other traffic from a link-local address is spoofed',
        prog: 'from-pod', ctx: { dev: 'pod-a' },
        frame: udp({ src: 'fe80::1', dst: a.R, sport: 1, dport: 53 }),
        expect: drop(Reason.DROP_SPOOFED_SOURCE, ID.A, 0),
      },
      {
        name: 'IPv6 extension headers (hop-by-hop) are walked to the TCP header',
        prog: 'from-pod', ctx: { dev: 'pod-a' },
        frame: withHopByHop(tcp({ src: a.A, dst: a.R, sport: 40010, dport: 81 })),
        expect: drop(Reason.DROP_POLICY_DEFAULT_DENY, ID.A, ID.R, { sport: 40010, dport: 81 }),
      },
      {
        name: 'IPv6 more extension headers than the walk allows is an invalid packet',
        prog: 'from-pod', ctx: { dev: 'pod-a' },
        frame: withHopByHop(withHopByHop(withHopByHop(withHopByHop(withHopByHop(tcp({ src: a.A, dst: a.R, sport: 40011, dport: 80 })))))),
        expect: drop(Reason.DROP_INVALID_PACKET, 0, 0),
      },
    );
  }
  return cases;
}

/** Sets the IP length fields to what the (cut) frame holds, so only the L4 header is short. */
function fixLength(frame: Uint8Array, f: Family): Uint8Array {
  const ipLen = frame.length - ETH_HLEN;
  if (f === 4) {
    const out = withU16(frame, ETH_HLEN + 2, ipLen);
    // header checksum is not checked by the programs (the kernel did), keep the rest intact
    return out;
  }
  return withU16(frame, ETH_HLEN + 4, ipLen - 40);
}

/** Inserts an empty 8-byte hop-by-hop options header after the IPv6 header. */
export function withHopByHop(frame: Uint8Array): Uint8Array {
  const ip = ETH_HLEN;
  const out = new Uint8Array(frame.length + 8);
  out.set(frame.subarray(0, ip + 40), 0);
  out[ip + 40] = frame[ip + 6]!; // next header moves into the option header
  out[ip + 41] = 0; // length: (0 + 1) * 8 bytes
  out[ip + 42] = 1; // PadN option filling the rest
  out[ip + 43] = 4;
  out.set(frame.subarray(ip + 40), ip + 48);
  out[ip + 6] = 0; // hop-by-hop
  new DataView(out.buffer).setUint16(ip + 4, new DataView(frame.buffer, frame.byteOffset).getUint16(ip + 4) + 8);
  return out;
}

/** to-pod, WireGuard mode; run after fromPodCases(f) (replies to its connections). */
export function toPodCases(f: Family): ProgramCase[] {
  const a = ADDRS[f];
  const decrypted = (identity: number) => ((identity << 16) | MarkPurpose.DECRYPTED) >>> 0;
  return [
    {
      name: `IPv${f} the SYN-ACK of an allowed connection passes though ingress policy would deny it`,
      prog: 'to-pod', ctx: { dev: 'pod-a', ingressDev: 'wg1' },
      frame: tcp({ src: a.R, dst: a.A, sport: 80, dport: 40000, flags: TCP_FLAGS.syn | TCP_FLAGS.ack }),
      expect: { retval: TC_ACT_OK, reason: Reason.FWD_TO_POD },
    },
    {
      name: `IPv${f} the ICMP echo reply of an allowed ping passes`,
      prog: 'to-pod', ctx: { dev: 'pod-a', ingressDev: 'wg1' },
      frame: icmpEcho({ src: a.R, dst: a.A, id: 4242, reply: true }),
      expect: { retval: TC_ACT_OK, reason: Reason.FWD_TO_POD },
    },
    {
      name: `IPv${f} an ICMP error about a tracked connection passes as related`,
      prog: 'to-pod', ctx: { dev: 'pod-a' },
      frame: icmpError({ src: a.N2, dst: a.A, type: a.unreachable, quoted: tcpSegment({ src: a.A, dst: a.R, sport: 40000, dport: 80 }) }),
      expect: { retval: TC_ACT_OK, reason: Reason.FWD_TO_POD },
    },
    {
      name: `IPv${f} an ICMP error about an untracked connection meets ingress policy`,
      prog: 'to-pod', ctx: { dev: 'pod-a' },
      frame: icmpError({ src: a.N2, dst: a.A, type: a.unreachable, quoted: tcpSegment({ src: a.A, dst: a.R, sport: 40099, dport: 80 }) }),
      expect: drop(Reason.DROP_POLICY_DEFAULT_DENY, ID.REMOTE_NODE, ID.A),
    },
    {
      name: `IPv${f} a connection from a remote pod through WireGuard meets require-encryption`,
      prog: 'to-pod', ctx: { dev: 'pod-a', ingressDev: 'wg0' },
      frame: tcp({ src: a.R, dst: a.A, sport: 50000, dport: 443 }),
      expect: flowNew(TC_ACT_OK, Reason.FWD_TO_POD, ID.R, ID.A, { sport: 50000, dport: 443 }),
    },
    {
      name: `IPv${f} the same connection not through the tunnel is dropped for lack of encryption`,
      prog: 'to-pod', ctx: { dev: 'pod-a', ingressDev: 'uplink' },
      frame: tcp({ src: a.R, dst: a.A, sport: 50001, dport: 443 }),
      expect: drop(Reason.DROP_REQUIRES_ENCRYPTION, ID.R, ID.A),
    },
    {
      name: `IPv${f} WireGuard does not authenticate the pod identity: require-auth-identity drops`,
      prog: 'to-pod', ctx: { dev: 'pod-a', ingressDev: 'wg0' },
      frame: tcp({ src: a.R, dst: a.A, sport: 50002, dport: 9000 }),
      expect: drop(Reason.DROP_REQUIRES_AUTH_IDENTITY, ID.R, ID.A),
    },
    {
      name: `IPv${f} the decrypted-packet mark of an IPsec SA authenticates the identity`,
      prog: 'to-pod', ctx: { dev: 'pod-a', mark: decrypted(ID.R) },
      frame: tcp({ src: a.R, dst: a.A, sport: 50003, dport: 9000 }),
      expect: flowNew(TC_ACT_OK, Reason.FWD_TO_POD, ID.R, ID.A, { dport: 9000 }),
    },
    {
      name: `IPv${f} a decrypted mark without identity (per-node-pair SA) counts as encrypted, identity from the ipcache`,
      prog: 'to-pod', ctx: { dev: 'pod-a', mark: decrypted(0) },
      frame: tcp({ src: a.R, dst: a.A, sport: 50004, dport: 443 }),
      expect: flowNew(TC_ACT_OK, Reason.FWD_TO_POD, ID.R, ID.A, { dport: 443 }),
    },
    {
      name: `IPv${f} the mark's identity wins over the address's`,
      prog: 'to-pod', ctx: { dev: 'pod-a', mark: decrypted(ID.C) },
      frame: tcp({ src: a.R, dst: a.A, sport: 50005, dport: 443 }),
      expect: drop(Reason.DROP_POLICY_DEFAULT_DENY, ID.C, ID.A),
    },
    {
      // from-pod of B opened this connection (one conntrack entry, one new-flow event there);
      // to-pod still judges A's ingress policy and records its consent in the same entry
      name: `IPv${f} a local pod's connection opened by its from-pod meets the receiver's ingress policy`,
      prog: 'to-pod', ctx: { dev: 'pod-a' },
      frame: tcp({ src: a.B, dst: a.A, sport: 41000, dport: 8080 }),
      expect: { retval: TC_ACT_OK, reason: Reason.FWD_TO_POD },
    },
    {
      name: `IPv${f} a local pod reaches an allowed port on a connection to-pod opens`,
      prog: 'to-pod', ctx: { dev: 'pod-a' },
      frame: tcp({ src: a.B, dst: a.A, sport: 41003, dport: 8080 }),
      expect: flowNew(TC_ACT_OK, Reason.FWD_TO_POD, ID.B, ID.A, { sport: 41003, dport: 8080 }),
    },
    {
      name: `IPv${f} a local pod is denied another port`,
      prog: 'to-pod', ctx: { dev: 'pod-a' },
      frame: tcp({ src: a.B, dst: a.A, sport: 41002, dport: 8081 }),
      expect: drop(Reason.DROP_POLICY_DEFAULT_DENY, ID.B, ID.A, { dport: 8081 }),
    },
    {
      name: `IPv${f} pod B opens a connection to A's port 8081 (B is not isolated)`,
      prog: 'from-pod', ctx: { dev: 'pod-b' },
      frame: tcp({ src: a.B, dst: a.A, sport: 41004, dport: 8081 }),
      expect: flowNew(TC_ACT_OK, Reason.FWD_LOCAL, ID.B, ID.A, { dport: 8081 }),
    },
    {
      name: `IPv${f} A's ingress policy refuses that connection`,
      prog: 'to-pod', ctx: { dev: 'pod-a' },
      frame: tcp({ src: a.B, dst: a.A, sport: 41004, dport: 8081 }),
      expect: drop(Reason.DROP_POLICY_DEFAULT_DENY, ID.B, ID.A, { dport: 8081 }),
    },
    {
      name: `IPv${f} a "reply" to a connection A's ingress refused is not a reply: A's egress policy drops it`,
      prog: 'from-pod', ctx: { dev: 'pod-a' },
      frame: tcp({ src: a.A, dst: a.B, sport: 8081, dport: 41004, flags: TCP_FLAGS.syn | TCP_FLAGS.ack }),
      expect: drop(Reason.DROP_POLICY_DEFAULT_DENY, ID.A, ID.B, { sport: 8081, dport: 41004 }),
    },
    {
      name: `IPv${f} to-pod treats the reverse of a connection only A's ingress admitted as new, not as a reply`,
      prog: 'to-pod', ctx: { dev: 'pod-a', ingressDev: 'wg0' },
      frame: tcp({ src: a.A, dst: a.R, sport: 443, dport: 50000, flags: TCP_FLAGS.ack }),
      expect: drop(Reason.DROP_POLICY_DEFAULT_DENY, ID.A, ID.A),
    },
    {
      name: `IPv${f} an ipcache entry with identity 0 is refused`,
      prog: 'to-pod', ctx: { dev: 'pod-a' },
      frame: tcp({ src: a.Z, dst: a.A, sport: 1, dport: 8080 }),
      expect: drop(Reason.DROP_UNKNOWN_IDENTITY, 0, ID.A),
    },
    {
      name: `IPv${f} an address outside the ipcache is world`,
      prog: 'to-pod', ctx: { dev: 'pod-a' },
      frame: tcp({ src: a.W, dst: a.A, sport: 1, dport: 8080 }),
      expect: drop(Reason.DROP_POLICY_DEFAULT_DENY, ID.WORLD, ID.A),
    },
    {
      name: `IPv${f} the reply of a connection the pod accepted passes from-pod though egress policy would deny it`,
      prog: 'from-pod', ctx: { dev: 'pod-a' },
      frame: tcp({ src: a.A, dst: a.R, sport: 443, dport: 50000, flags: TCP_FLAGS.syn | TCP_FLAGS.ack }),
      expect: { retval: TC_ACT_REDIRECT, reason: Reason.FWD_WIREGUARD },
    },
    {
      name: `IPv${f} a pod that is not isolated accepts a new connection`,
      prog: 'to-pod', ctx: { dev: 'pod-b', ingressDev: 'wg0' },
      frame: tcp({ src: a.R, dst: a.B, sport: 50010, dport: 25 }),
      expect: flowNew(TC_ACT_OK, Reason.FWD_TO_POD, ID.R, ID.B),
    },
    ...(f === 6
      ? [
          {
            name: 'IPv6 the node\'s neighbour solicitation to the pod\'s own address passes to-pod without policy',
            prog: 'to-pod' as const, ctx: { dev: 'pod-a' },
            frame: icmpv6({ src: 'fe80::1', dst: a.A, type: 135, ttl: 255 }),
            expect: { retval: TC_ACT_OK, reason: Reason.FWD_TO_POD },
          },
          {
            name: 'IPv6 the node\'s MLD query to the pod passes to-pod without policy',
            prog: 'to-pod' as const, ctx: { dev: 'pod-a' },
            frame: icmpv6({ src: 'fe80::2', dst: 'ff02::1', type: 130, ttl: 1 }),
            expect: { retval: TC_ACT_OK, reason: Reason.FWD_TO_POD },
          },
        ]
      : []),
    {
      name: `IPv${f} to-pod admits a first fragment on its ports`,
      prog: 'to-pod', ctx: { dev: 'pod-b', ingressDev: 'wg0' },
      frame: udp({ src: a.R, dst: a.B, sport: 6000, dport: 53, moreFragments: true, fragmentOffset: 0, ipId: 0x4321, payload: new Uint8Array(32) }),
      expect: flowNew(TC_ACT_OK, Reason.FWD_TO_POD, ID.R, ID.B, { sport: 6000, dport: 53 }),
    },
    {
      name: `IPv${f} to-pod lets the rest of that datagram follow`,
      prog: 'to-pod', ctx: { dev: 'pod-b', ingressDev: 'wg0' },
      frame: rawIp({ src: a.R, dst: a.B, proto: 17, fragmentOffset: 5, ipId: 0x4321, payload: new Uint8Array(64) }),
      expect: { retval: TC_ACT_OK, reason: Reason.FWD_TO_POD },
    },
    {
      name: `IPv${f} to-pod drops a later fragment of a datagram it never admitted`,
      prog: 'to-pod', ctx: { dev: 'pod-b', ingressDev: 'wg0' },
      frame: rawIp({ src: a.R, dst: a.B, proto: 17, fragmentOffset: 5, ipId: 0x9999, payload: new Uint8Array(64) }),
      expect: drop(Reason.DROP_FRAGMENT, 0, ID.B),
    },
    {
      name: `IPv${f} an explicit ingress deny drops even through the tunnel`,
      prog: 'to-pod', ctx: { dev: 'pod-a', ingressDev: 'wg0' },
      frame: tcp({ src: a.R, dst: a.A, sport: 50020, dport: 9999 }),
      expect: drop(Reason.DROP_POLICY_DENY, ID.R, ID.A, { dport: 9999 }),
    },
    ...(f === 4
      ? [
          {
            name: 'IPv4 ARP to the pod passes to-pod untouched',
            prog: 'to-pod' as const, ctx: { dev: 'pod-a' },
            frame: arp('10.0.1.1', a.A),
            expect: { retval: TC_ACT_OK, reason: Reason.FWD_NOT_IP },
          },
          {
            name: 'IPv4 (family-free) another L3 protocol to the pod is dropped',
            prog: 'to-pod' as const, ctx: { dev: 'pod-a' },
            frame: ethernet(0x88cc, new Uint8Array(46)),
            expect: drop(Reason.DROP_UNSUPPORTED_L3, 0, 0),
          },
        ]
      : []),
    {
      name: `IPv${f} to-pod on an interface that is not an endpoint drops`,
      prog: 'to-pod', ctx: { dev: 'uplink' },
      frame: tcp({ src: a.R, dst: a.A, sport: 80, dport: 40000 }),
      expect: drop(Reason.DROP_UNKNOWN_ENDPOINT, 0, 0),
    },
    {
      name: `IPv${f} to-pod drops a UDP header cut short`,
      prog: 'to-pod', ctx: { dev: 'pod-a' },
      frame: fixLength(truncate(udp({ src: a.R, dst: a.A, sport: 53, dport: 5353 }), ipOff + (f === 4 ? 20 : 40) + 4), f),
      expect: drop(Reason.DROP_INVALID_PACKET, 0, 0),
    },
  ];
}

/** IPsec mode: from-pod marks instead of redirecting. */
export function ipsecCases(f: Family): ProgramCase[] {
  const a = ADDRS[f];
  const encrypt = (identity: number, slot: number, other = 0) =>
    ((identity << 16) | MarkPurpose.ENCRYPT | (slot << 4) | other) >>> 0;
  return [
    {
      // slot = (sender identity key generation 6 mod 4) << 2 | receiver node key generation 1 = 9
      name: `IPv${f} IPsec mode sets the encrypt mark with the sender's identity and the slot of its key generation and the destination's`,
      prog: 'from-pod', ctx: { dev: 'pod-a' },
      frame: tcp({ src: a.A, dst: a.R, sport: 40000, dport: 80 }),
      expect: { ...flowNew(TC_ACT_OK, Reason.FWD_IPSEC, ID.A, ID.R), mark: encrypt(ID.A, keySlot(6, 1)) },
    },
    {
      name: `IPv${f} the encrypt mark keeps the bits Veil does not own (kube-proxy's 0x4000)`,
      prog: 'from-pod', ctx: { dev: 'pod-a', mark: 0x4000 },
      frame: tcp({ src: a.A, dst: a.R, sport: 40000, dport: 80, flags: TCP_FLAGS.ack }),
      expect: { retval: TC_ACT_OK, reason: Reason.FWD_IPSEC, mark: encrypt(ID.A, keySlot(6, 1), 0x4000) },
    },
    {
      name: `IPv${f} receiver generation 0 of an LPM-only destination keeps the sender's half of the slot`,
      prog: 'from-pod', ctx: { dev: 'pod-a' },
      frame: tcp({ src: a.A, dst: a.C, sport: 40001, dport: 8000 }),
      expect: { ...flowNew(TC_ACT_OK, Reason.FWD_IPSEC, ID.A, ID.C), mark: encrypt(ID.A, keySlot(6, 0)) },
    },
    {
      name: `IPv${f} an endpoint without a key generation sends in slot 0 of its half`,
      prog: 'from-pod', ctx: { dev: 'pod-b' },
      frame: tcp({ src: a.B, dst: a.R, sport: 40002, dport: 80 }),
      expect: { ...flowNew(TC_ACT_OK, Reason.FWD_IPSEC, ID.B, ID.R), mark: encrypt(ID.B, keySlot(0, 1)) },
    },
    {
      name: `IPv${f} local traffic gets no encrypt mark`,
      prog: 'from-pod', ctx: { dev: 'pod-b', mark: 0 },
      frame: tcp({ src: a.B, dst: a.A, sport: 41000, dport: 8080 }),
      expect: { ...flowNew(TC_ACT_OK, Reason.FWD_LOCAL, ID.B, ID.A), mark: 0 },
    },
  ];
}

/** WireGuard mode with no device up, and no mode at all: remote pods are unreachable, never plaintext. */
export function noTunnelCases(f: Family): ProgramCase[] {
  const a = ADDRS[f];
  return [
    {
      name: `IPv${f} a remote pod without a tunnel device is dropped, not sent in plaintext`,
      prog: 'from-pod', ctx: { dev: 'pod-a' },
      frame: tcp({ src: a.A, dst: a.R, sport: 40000, dport: 80 }),
      expect: drop(Reason.DROP_NO_TUNNEL, ID.A, ID.R),
    },
    {
      name: `IPv${f} local traffic still flows without a tunnel`,
      prog: 'from-pod', ctx: { dev: 'pod-b' },
      frame: tcp({ src: a.B, dst: a.A, sport: 41000, dport: 8080 }),
      expect: flowNew(TC_ACT_OK, Reason.FWD_LOCAL, ID.B, ID.A),
    },
  ];
}

/** Strict mode on the uplink. */
export function strictCases(f: Family): ProgramCase[] {
  const a = ADDRS[f];
  const pass = { retval: TC_ACT_OK, reason: Reason.FWD_UPLINK };
  const cases: ProgramCase[] = [
    {
      name: `IPv${f} a plaintext pod packet leaving the uplink is dropped`,
      prog: 'uplink-egress', ctx: { dev: 'uplink' },
      frame: tcp({ src: a.A, dst: a.R, sport: 40000, dport: 80 }),
      expect: drop(Reason.DROP_STRICT_EGRESS, ID.A, ID.R, { saddr: a.A, daddr: a.R }),
    },
    {
      name: `IPv${f} a plaintext pod packet with a cut-short header is still dropped by its addresses`,
      prog: 'uplink-egress', ctx: { dev: 'uplink' },
      frame: fixLength(truncate(tcp({ src: a.A, dst: a.R, sport: 40000, dport: 80 }), ipOff + (f === 4 ? 20 : 40) + 6), f),
      expect: drop(Reason.DROP_STRICT_EGRESS, ID.A, ID.R),
    },
    {
      name: `IPv${f} WireGuard's UDP between nodes leaves (channel 0)`,
      prog: 'uplink-egress', ctx: { dev: 'uplink' },
      frame: udp({ src: a.N1, dst: a.N2, sport: WG_PORT, dport: WG_PORT, payload: new Uint8Array(48) }),
      expect: pass,
    },
    {
      name: `IPv${f} WireGuard's UDP between nodes leaves (channel 1)`,
      prog: 'uplink-egress', ctx: { dev: 'uplink' },
      frame: udp({ src: a.N1, dst: a.N2, sport: WG_PORT + 1, dport: WG_PORT + 1, payload: new Uint8Array(48) }),
      expect: pass,
    },
    {
      name: `IPv${f} ESP leaves`,
      prog: 'uplink-egress', ctx: { dev: 'uplink' },
      frame: rawIp({ src: a.N1, dst: a.N2, proto: 50, payload: new Uint8Array(64) }),
      expect: pass,
    },
    {
      name: `IPv${f} the node's own traffic leaves`,
      prog: 'uplink-egress', ctx: { dev: 'uplink' },
      frame: tcp({ src: a.N1, dst: a.W, sport: 33000, dport: 443 }),
      expect: pass,
    },
    {
      name: `IPv${f} a plaintext packet to a local pod arriving on the uplink is dropped`,
      prog: 'uplink-ingress', ctx: { dev: 'uplink' },
      frame: tcp({ src: a.R, dst: a.A, sport: 50000, dport: 443 }),
      expect: drop(Reason.DROP_STRICT_INGRESS, ID.R, ID.A, { saddr: a.R, daddr: a.A }),
    },
    {
      name: `IPv${f} WireGuard's UDP to this node arrives`,
      prog: 'uplink-ingress', ctx: { dev: 'uplink' },
      frame: udp({ src: a.N2, dst: a.N1, sport: WG_PORT, dport: WG_PORT, payload: new Uint8Array(48) }),
      expect: pass,
    },
    {
      name: `IPv${f} ESP arrives`,
      prog: 'uplink-ingress', ctx: { dev: 'uplink' },
      frame: rawIp({ src: a.N2, dst: a.N1, proto: 50, payload: new Uint8Array(64) }),
      expect: pass,
    },
    {
      name: `IPv${f} a pod packet XFRM decrypted and re-injected on the uplink arrives`,
      prog: 'uplink-ingress', ctx: { dev: 'uplink', mark: ((ID.R << 16) | MarkPurpose.DECRYPTED) >>> 0 },
      frame: tcp({ src: a.R, dst: a.A, sport: 50000, dport: 443 }),
      expect: pass,
    },
    {
      name: `IPv${f} traffic to the node itself arrives`,
      prog: 'uplink-ingress', ctx: { dev: 'uplink' },
      frame: tcp({ src: a.W, dst: a.N1, sport: 33000, dport: 22 }),
      expect: pass,
    },
  ];
  if (f === 4) {
    cases.push(
      {
        name: 'ARP passes the uplink',
        prog: 'uplink-egress', ctx: { dev: 'uplink' },
        frame: arp(a.N1, a.N2),
        expect: { retval: TC_ACT_OK, reason: Reason.FWD_NOT_IP },
      },
      {
        name: 'an IPv4 header that cannot be read is dropped in strict mode',
        prog: 'uplink-egress', ctx: { dev: 'uplink' },
        frame: withByte(tcp({ src: a.A, dst: a.R, sport: 40000, dport: 80 }), ipOff, 0x65),
        expect: drop(Reason.DROP_INVALID_PACKET, 0, 0),
      },
    );
  }
  return cases;
}

/** Without strict mode the uplink programs pass everything. */
export function nonStrictCases(f: Family): ProgramCase[] {
  const a = ADDRS[f];
  const pass = { retval: TC_ACT_OK, reason: Reason.FWD_UPLINK };
  return [
    {
      name: `IPv${f} without strict mode a pod packet leaves the uplink`,
      prog: 'uplink-egress', ctx: { dev: 'uplink' },
      frame: tcp({ src: a.A, dst: a.R, sport: 40000, dport: 80 }),
      expect: pass,
    },
    {
      name: `IPv${f} without strict mode a pod packet arrives on the uplink`,
      prog: 'uplink-ingress', ctx: { dev: 'uplink' },
      frame: tcp({ src: a.R, dst: a.A, sport: 50000, dport: 443 }),
      expect: pass,
    },
  ];
}

/** Every world with its cases: what the VM test runs in one go. */
export function allRuns(): Array<{ name: string; world: WorldSpec; cases: ProgramCase[] }> {
  const fams: Family[] = [4, 6];
  return [
    { name: 'wireguard', world: world(CFG_F.MODE_WIREGUARD), cases: fams.flatMap((f) => [...fromPodCases(f), ...toPodCases(f)]) },
    { name: 'ipsec', world: world(CFG_F.MODE_IPSEC), cases: fams.flatMap(ipsecCases) },
    { name: 'no-tunnel', world: world(CFG_F.MODE_WIREGUARD, []), cases: fams.flatMap(noTunnelCases) },
    { name: 'no-mode', world: world(0), cases: fams.flatMap((f) => noTunnelCases(f).slice(0, 1)) },
    { name: 'strict', world: world(CFG_F.STRICT | CFG_F.MODE_WIREGUARD), cases: fams.flatMap(strictCases) },
    { name: 'non-strict', world: world(CFG_F.MODE_WIREGUARD), cases: fams.flatMap(nonStrictCases) },
  ];
}
