import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../../agent/errors.js';
import { encodeWgGetDevice, encodeWgSetDevice, WG_MAX_MESSAGE_BYTES } from '../../../agent/wireguard/kernel-netlink.js';
import { attr, nlmsg, NLM_F_DUMP, NLM_F_REQUEST } from '../../support/nl-fixture.js';
import {
  allowedIp,
  FAMILY,
  genl,
  key,
  setMsg,
  sockaddrIn,
  sockaddrIn6,
  walkAttrs,
  WG_CMD_GET_DEVICE,
  WGDEVICE_A,
  WGDEVICE_F_REPLACE_PEERS,
  WGPEER_A,
  WGPEER_F,
} from './kernel-fixture.js';

const opts = { familyId: FAMILY };
const hex = (bufs: Buffer[]) => bufs.map((b) => b.toString('hex'));

describe('encodeWgSetDevice()', () => {
  it('sends the listen port alone first, then the other device attributes: replace-peers flag, private key, fwmark', () => {
    const got = encodeWgSetDevice('veil_wg0', { privateKey: key(0x11), listenPort: 51820, fwmark: 0xe00, replacePeers: true }, opts);
    const port = setMsg([attr.str(WGDEVICE_A.IFNAME, 'veil_wg0'), attr.u16(WGDEVICE_A.LISTEN_PORT, 51820)]);
    const rest = setMsg([
      attr.str(WGDEVICE_A.IFNAME, 'veil_wg0'),
      attr.u32(WGDEVICE_A.FLAGS, WGDEVICE_F_REPLACE_PEERS),
      attr.bytes(WGDEVICE_A.PRIVATE_KEY, key(0x11)),
      attr.u32(WGDEVICE_A.FWMARK, 0xe00),
    ]);
    expect(hex(got)).toEqual(hex([port, rest]));
  });

  it('encodes a listen port with nothing else as that one message', () => {
    const got = encodeWgSetDevice('wg0', { listenPort: 0 }, opts);
    expect(hex(got)).toEqual(hex([setMsg([attr.str(WGDEVICE_A.IFNAME, 'wg0'), attr.u16(WGDEVICE_A.LISTEN_PORT, 0)])]));
  });

  it('encodes an empty configuration as one message naming the device', () => {
    expect(hex(encodeWgSetDevice('wg0', {}, opts))).toEqual(hex([setMsg([attr.str(WGDEVICE_A.IFNAME, 'wg0')])]));
  });

  it('appends a retirement after every peer: the throwaway peer with the departing CIDRs, then its removal', () => {
    const got = encodeWgSetDevice(
      'wg0',
      { peers: [{ publicKey: key(0x22), allowedIps: ['10.0.2.0/24'] }] },
      opts,
      { publicKey: key(0x99), allowedIps: ['10.0.1.7/24', 'fd00::/64'] },
    );
    const want = setMsg([
      attr.str(WGDEVICE_A.IFNAME, 'wg0'),
      attr.nest(WGDEVICE_A.PEERS, [
        attr.nest(0, [attr.bytes(WGPEER_A.PUBLIC_KEY, key(0x22)), attr.nest(WGPEER_A.ALLOWEDIPS, [allowedIp('10.0.2.0/24')])]),
        attr.nest(0, [attr.bytes(WGPEER_A.PUBLIC_KEY, key(0x99)), attr.nest(WGPEER_A.ALLOWEDIPS, [allowedIp('10.0.1.0/24'), allowedIp('fd00::/64')])]),
        attr.nest(0, [attr.bytes(WGPEER_A.PUBLIC_KEY, key(0x99)), attr.u32(WGPEER_A.FLAGS, WGPEER_F.REMOVE_ME)]),
      ]),
    ]);
    expect(hex(got)).toEqual(hex([want]));
  });

  it('refuses a retirement that would take a CIDR from a configured peer or reuse a configured key', () => {
    const config = { peers: [{ publicKey: key(0x22), allowedIps: ['10.0.2.0/24'] }] };
    expect(() => encodeWgSetDevice('wg0', config, opts, { publicKey: key(0x99), allowedIps: ['10.0.2.0/24'] })).toThrow(
      /"10.0.2.0\/24" is also given to a configured peer/,
    );
    expect(() => encodeWgSetDevice('wg0', config, opts, { publicKey: key(0x22), allowedIps: ['10.0.1.0/24'] })).toThrow(ValidationError);
  });

  it('sends 32 zero bytes to remove the private key and a preshared key given as null', () => {
    const got = encodeWgSetDevice('wg0', { privateKey: null, peers: [{ publicKey: key(0x22), presharedKey: null }] }, opts);
    const want = setMsg([
      attr.str(WGDEVICE_A.IFNAME, 'wg0'),
      attr.bytes(WGDEVICE_A.PRIVATE_KEY, Buffer.alloc(32)),
      attr.nest(WGDEVICE_A.PEERS, [
        attr.nest(0, [attr.bytes(WGPEER_A.PUBLIC_KEY, key(0x22)), attr.bytes(WGPEER_A.PRESHARED_KEY, Buffer.alloc(32))]),
      ]),
    ]);
    expect(hex(got)).toEqual(hex([want]));
  });

  it('encodes a peer with preshared key, IPv4 endpoint, keepalive, v4 and v6 allowed IPs and its flags', () => {
    const got = encodeWgSetDevice(
      'wg0',
      {
        peers: [
          {
            publicKey: key(0x22),
            presharedKey: key(0x33),
            endpoint: '192.0.2.1:51820',
            persistentKeepalive: 25,
            allowedIps: ['10.0.1.0/24', 'fd00:1::/64'],
            replaceAllowedIps: true,
            updateOnly: true,
          },
        ],
      },
      opts,
    );
    const want = setMsg([
      attr.str(WGDEVICE_A.IFNAME, 'wg0'),
      attr.nest(WGDEVICE_A.PEERS, [
        attr.nest(0, [
          attr.bytes(WGPEER_A.PUBLIC_KEY, key(0x22)),
          attr.u32(WGPEER_A.FLAGS, WGPEER_F.REPLACE_ALLOWEDIPS | WGPEER_F.UPDATE_ONLY),
          attr.bytes(WGPEER_A.PRESHARED_KEY, key(0x33)),
          attr.bytes(WGPEER_A.ENDPOINT, sockaddrIn('192.0.2.1', 51820)),
          attr.u16(WGPEER_A.PERSISTENT_KEEPALIVE_INTERVAL, 25),
          attr.nest(WGPEER_A.ALLOWEDIPS, [allowedIp('10.0.1.0/24'), allowedIp('fd00:1::/64')]),
        ]),
      ]),
    ]);
    expect(hex(got)).toEqual(hex([want]));
  });

  it('encodes an IPv6 endpoint as struct sockaddr_in6 and normalises allowed IPs first', () => {
    const got = encodeWgSetDevice(
      'wg0',
      { peers: [{ publicKey: key(0x22), endpoint: '[2001:DB8:0::7]:443', allowedIps: ['10.0.1.9/24', '10.0.1.0/24'] }] },
      opts,
    );
    const want = setMsg([
      attr.str(WGDEVICE_A.IFNAME, 'wg0'),
      attr.nest(WGDEVICE_A.PEERS, [
        attr.nest(0, [
          attr.bytes(WGPEER_A.PUBLIC_KEY, key(0x22)),
          attr.bytes(WGPEER_A.ENDPOINT, sockaddrIn6('2001:db8::7', 443)),
          attr.nest(WGPEER_A.ALLOWEDIPS, [allowedIp('10.0.1.0/24')]),
        ]),
      ]),
    ]);
    expect(hex(got)).toEqual(hex([want]));
  });

  it('encodes a removed peer as its public key and WGPEER_F_REMOVE_ME only', () => {
    const got = encodeWgSetDevice(
      'wg0',
      { peers: [{ publicKey: key(0x44), remove: true, endpoint: '192.0.2.1:1', allowedIps: ['10.0.0.0/8'], presharedKey: key(9) }] },
      opts,
    );
    const want = setMsg([
      attr.str(WGDEVICE_A.IFNAME, 'wg0'),
      attr.nest(WGDEVICE_A.PEERS, [attr.nest(0, [attr.bytes(WGPEER_A.PUBLIC_KEY, key(0x44)), attr.u32(WGPEER_A.FLAGS, WGPEER_F.REMOVE_ME)])]),
    ]);
    expect(hex(got)).toEqual(hex([want]));
  });

  it('splits across messages with device flags only in the first and a peer\'s replace flag only in its first fragment', () => {
    const v4 = (i: number) => `10.${i >> 8}.${i & 0xff}.0/24`;
    const ipsB = Array.from({ length: 30 }, (_, i) => v4(100 + i));
    const config = {
      privateKey: key(0x11),
      replacePeers: true,
      peers: [
        { publicKey: key(0xa1), allowedIps: [v4(1), v4(2), v4(3)] },
        { publicKey: key(0xb2), allowedIps: ipsB, replaceAllowedIps: true, updateOnly: true },
        { publicKey: key(0xc3), allowedIps: ['fd00::/64'], replaceAllowedIps: true },
      ],
    };
    // Message 1: device attributes, peer A, and the first 10 allowed IPs of peer B.
    const k = 10;
    const first = setMsg([
      attr.str(WGDEVICE_A.IFNAME, 'wg0'),
      attr.u32(WGDEVICE_A.FLAGS, WGDEVICE_F_REPLACE_PEERS),
      attr.bytes(WGDEVICE_A.PRIVATE_KEY, key(0x11)),
      attr.nest(WGDEVICE_A.PEERS, [
        attr.nest(0, [attr.bytes(WGPEER_A.PUBLIC_KEY, key(0xa1)), attr.nest(WGPEER_A.ALLOWEDIPS, [v4(1), v4(2), v4(3)].map(allowedIp))]),
        attr.nest(0, [
          attr.bytes(WGPEER_A.PUBLIC_KEY, key(0xb2)),
          attr.u32(WGPEER_A.FLAGS, WGPEER_F.REPLACE_ALLOWEDIPS | WGPEER_F.UPDATE_ONLY),
          attr.nest(WGPEER_A.ALLOWEDIPS, ipsB.slice(0, k).map(allowedIp)),
        ]),
      ]),
    ]);
    const max = first.length;
    // Message 2: peer B continued (public key, UPDATE_ONLY so a fragment never creates it, no
    // REPLACE_ALLOWEDIPS), as many allowed IPs as fit in `max` (each is 28 bytes).
    const fragment = (ips: string[]) =>
      attr.nest(0, [
        attr.bytes(WGPEER_A.PUBLIC_KEY, key(0xb2)),
        attr.u32(WGPEER_A.FLAGS, WGPEER_F.UPDATE_ONLY),
        attr.nest(WGPEER_A.ALLOWEDIPS, ips.map(allowedIp)),
      ]);
    const n = Math.floor((max - setMsg([attr.str(WGDEVICE_A.IFNAME, 'wg0'), attr.nest(WGDEVICE_A.PEERS, [fragment([])])]).length) / 28);
    const second = setMsg([attr.str(WGDEVICE_A.IFNAME, 'wg0'), attr.nest(WGDEVICE_A.PEERS, [fragment(ipsB.slice(k, k + n))])]);
    // Message 3: the rest of peer B, then peer C with its own replace flag.
    const third = setMsg([
      attr.str(WGDEVICE_A.IFNAME, 'wg0'),
      attr.nest(WGDEVICE_A.PEERS, [
        fragment(ipsB.slice(k + n)),
        attr.nest(0, [
          attr.bytes(WGPEER_A.PUBLIC_KEY, key(0xc3)),
          attr.u32(WGPEER_A.FLAGS, WGPEER_F.REPLACE_ALLOWEDIPS),
          attr.nest(WGPEER_A.ALLOWEDIPS, [allowedIp('fd00::/64')]),
        ]),
      ]),
    ]);
    expect(max).toBeGreaterThanOrEqual(512);
    expect(second.length).toBeLessThanOrEqual(max);
    expect(k + n).toBeLessThan(ipsB.length);

    const got = encodeWgSetDevice('wg0', config, { familyId: FAMILY, maxMessageBytes: max });
    expect(hex(got)).toEqual(hex([first, second, third]));
  });

  it('keeps every message of 5,000 peers within the default bound, in order, with the replace flag once', () => {
    const peers = Array.from({ length: 5000 }, (_, i) => {
      const pk = Buffer.alloc(32);
      pk.writeUInt32BE(i + 1);
      return { publicKey: pk, endpoint: `192.0.2.${(i % 250) + 1}:51820`, allowedIps: [`10.${i >> 8}.${i & 0xff}.0/24`], persistentKeepalive: 25 };
    });
    const got = encodeWgSetDevice('wg0', { replacePeers: true, privateKey: key(1), peers }, opts);
    expect(got.length).toBeGreaterThan(1);
    const seen: number[] = [];
    got.forEach((m, i) => {
      expect(m.length).toBeLessThanOrEqual(WG_MAX_MESSAGE_BYTES);
      expect(m.readUInt32LE(0)).toBe(m.length);
      const attrs = walkAttrs(m.subarray(20));
      expect(attrs.some((a) => a.type === WGDEVICE_A.FLAGS)).toBe(i === 0);
      expect(attrs.some((a) => a.type === WGDEVICE_A.PRIVATE_KEY)).toBe(i === 0);
      const peersNest = attrs.find((a) => a.type === WGDEVICE_A.PEERS)!;
      for (const p of walkAttrs(peersNest.value)) {
        const pk = walkAttrs(p.value).find((a) => a.type === WGPEER_A.PUBLIC_KEY)!;
        seen.push(pk.value.readUInt32BE(0));
      }
    });
    expect(seen).toEqual(peers.map((_, i) => i + 1));
  });

  it('refuses invalid configuration before encoding anything', () => {
    expect(() => encodeWgSetDevice('wg0', { peers: [{ publicKey: key(1), persistentKeepalive: 65536 }] }, opts)).toThrow(ValidationError);
    expect(() => encodeWgSetDevice('wg0', { privateKey: Buffer.alloc(31) }, opts)).toThrow(/expected 32 bytes, got 31/);
    expect(() => encodeWgSetDevice('this-name-is-too-long', {}, opts)).toThrow(ValidationError);
  });

  it('refuses a message bound too small to hold one peer', () => {
    expect(() => encodeWgSetDevice('wg0', {}, { familyId: FAMILY, maxMessageBytes: 100 })).toThrow(/maxMessageBytes/);
  });
});

describe('encodeWgGetDevice()', () => {
  it('is a WG_CMD_GET_DEVICE dump request naming the device', () => {
    const want = nlmsg(FAMILY, NLM_F_REQUEST | NLM_F_DUMP, genl(WG_CMD_GET_DEVICE), [attr.str(WGDEVICE_A.IFNAME, 'veil_wg0')]);
    expect(hex(encodeWgGetDevice('veil_wg0', opts))).toEqual(hex([want]));
  });
});
