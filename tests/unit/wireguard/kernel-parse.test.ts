import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { NetlinkError } from '../../../agent/errors.js';
import { parseWgDevice } from '../../../agent/wireguard/kernel-netlink.js';
import { formatIp } from '../../../agent/net/ip.js';
import { attr } from '../../support/nl-fixture.js';
import {
  AF_INET,
  AF_INET6,
  allowedIp,
  done,
  getReply,
  key,
  sockaddrIn,
  sockaddrIn6,
  timespec,
  WGALLOWEDIP_A,
  WGDEVICE_A,
  WGPEER_A,
} from './kernel-fixture.js';

const PRIVATE = key(0x5a);
const PSK = key(0x6b);

/** A device whose second peer's allowed IPs span all three messages of the dump. */
function threeMessageReply(): Buffer[] {
  const devAttrs = [
    attr.u32(WGDEVICE_A.IFINDEX, 7),
    attr.str(WGDEVICE_A.IFNAME, 'veil_wg0'),
    attr.bytes(WGDEVICE_A.PRIVATE_KEY, PRIVATE),
    attr.bytes(WGDEVICE_A.PUBLIC_KEY, key(0x01)),
    attr.u16(WGDEVICE_A.LISTEN_PORT, 51820),
    attr.u32(WGDEVICE_A.FWMARK, 0xe00),
  ];
  const p1 = attr.nest(0, [
    attr.bytes(WGPEER_A.PUBLIC_KEY, key(0xa1)),
    attr.bytes(WGPEER_A.PRESHARED_KEY, PSK),
    attr.bytes(WGPEER_A.ENDPOINT, sockaddrIn('192.0.2.1', 51820)),
    attr.u16(WGPEER_A.PERSISTENT_KEEPALIVE_INTERVAL, 25),
    attr.bytes(WGPEER_A.LAST_HANDSHAKE_TIME, timespec(1_700_000_000n, 500_000_000n)),
    attr.u64(WGPEER_A.RX_BYTES, 123n),
    attr.u64(WGPEER_A.TX_BYTES, 2n ** 40n),
    attr.nest(WGPEER_A.ALLOWEDIPS, [allowedIp('10.0.1.0/24'), allowedIp('fd00:1::/64')]),
    attr.u32(WGPEER_A.PROTOCOL_VERSION, 1),
  ]);
  const p2head = attr.nest(0, [
    attr.bytes(WGPEER_A.PUBLIC_KEY, key(0xb2)),
    attr.bytes(WGPEER_A.PRESHARED_KEY, Buffer.alloc(32)),
    attr.bytes(WGPEER_A.ENDPOINT, sockaddrIn6('2001:db8::7', 443)),
    attr.u16(WGPEER_A.PERSISTENT_KEEPALIVE_INTERVAL, 0),
    attr.bytes(WGPEER_A.LAST_HANDSHAKE_TIME, timespec(0n, 0n)),
    attr.u64(WGPEER_A.RX_BYTES, 0n),
    attr.u64(WGPEER_A.TX_BYTES, 0n),
    attr.nest(WGPEER_A.ALLOWEDIPS, [allowedIp('10.0.2.0/24')]),
    attr.u32(WGPEER_A.PROTOCOL_VERSION, 1),
  ]);
  const p2more = (cidrs: string[]) =>
    attr.nest(0, [attr.bytes(WGPEER_A.PUBLIC_KEY, key(0xb2)), attr.nest(WGPEER_A.ALLOWEDIPS, cidrs.map(allowedIp))]);
  const p3 = attr.nest(0, [
    attr.bytes(WGPEER_A.PUBLIC_KEY, key(0xc3)),
    attr.bytes(WGPEER_A.PRESHARED_KEY, Buffer.alloc(32)),
    attr.u16(WGPEER_A.PERSISTENT_KEEPALIVE_INTERVAL, 0),
    attr.u32(WGPEER_A.PROTOCOL_VERSION, 1),
  ]);
  return [
    getReply([...devAttrs, attr.nest(WGDEVICE_A.PEERS, [p1, p2head])]),
    getReply([attr.str(WGDEVICE_A.IFNAME, 'veil_wg0'), attr.nest(WGDEVICE_A.PEERS, [p2more(['10.0.3.0/24', '10.0.4.0/24'])])]),
    Buffer.concat([
      getReply([attr.str(WGDEVICE_A.IFNAME, 'veil_wg0'), attr.nest(WGDEVICE_A.PEERS, [p2more(['fd00:2::/64']), p3])]),
      done(),
    ]),
  ];
}

function expectTypedParseError(run: () => unknown): void {
  try {
    run();
  } catch (err) {
    expect(err).toBeInstanceOf(NetlinkError);
    expect(['EMALFORMED', 'EINVAL']).toContain((err as NetlinkError).code);
  }
}

describe('parseWgDevice()', () => {
  it('merges a device whose peers and allowed IPs span three messages', () => {
    const dev = parseWgDevice(threeMessageReply());
    expect(dev).toEqual({
      name: 'veil_wg0',
      ifindex: 7,
      publicKey: key(0x01),
      hasPrivateKey: true,
      listenPort: 51820,
      fwmark: 0xe00,
      peers: [
        {
          publicKey: key(0xa1),
          hasPresharedKey: true,
          endpoint: '192.0.2.1:51820',
          persistentKeepalive: 25,
          allowedIps: ['10.0.1.0/24', 'fd00:1::/64'],
          lastHandshakeMs: 1_700_000_000_500,
          rxBytes: 123n,
          txBytes: 2n ** 40n,
          protocolVersion: 1,
        },
        {
          publicKey: key(0xb2),
          hasPresharedKey: false,
          endpoint: '[2001:db8::7]:443',
          persistentKeepalive: 0,
          allowedIps: ['10.0.2.0/24', '10.0.3.0/24', '10.0.4.0/24', 'fd00:2::/64'],
          lastHandshakeMs: null,
          rxBytes: 0n,
          txBytes: 0n,
          protocolVersion: 1,
        },
        {
          publicKey: key(0xc3),
          hasPresharedKey: false,
          endpoint: null,
          persistentKeepalive: 0,
          allowedIps: [],
          lastHandshakeMs: null,
          rxBytes: 0n,
          txBytes: 0n,
          protocolVersion: 1,
        },
      ],
    });
  });

  it('never returns private or preshared key bytes', () => {
    const dev = parseWgDevice(threeMessageReply());
    const seen: Buffer[] = [];
    const walk = (v: unknown): void => {
      if (Buffer.isBuffer(v)) seen.push(v);
      else if (Array.isArray(v)) v.forEach(walk);
      else if (v && typeof v === 'object') Object.values(v).forEach(walk);
    };
    walk(dev);
    expect(seen.length).toBe(4); // the device's and three peers' public keys
    for (const b of seen) {
      expect(b.equals(PRIVATE)).toBe(false);
      expect(b.equals(PSK)).toBe(false);
    }
    expect(Object.keys(dev)).not.toContain('privateKey');
    expect(Object.keys(dev.peers[0]!)).not.toContain('presharedKey');
  });

  it('reports a device without keys or peers', () => {
    const dev = parseWgDevice([getReply([attr.u32(WGDEVICE_A.IFINDEX, 3), attr.str(WGDEVICE_A.IFNAME, 'wg1'), attr.u16(WGDEVICE_A.LISTEN_PORT, 0)])]);
    expect(dev).toMatchObject({ name: 'wg1', ifindex: 3, publicKey: null, hasPrivateKey: false, listenPort: 0, fwmark: 0, peers: [] });
  });

  it('skips attributes it does not know', () => {
    const dev = parseWgDevice([getReply([attr.str(WGDEVICE_A.IFNAME, 'wg1'), attr.u32(99, 1), attr.nest(WGDEVICE_A.PEERS, [attr.nest(0, [attr.bytes(WGPEER_A.PUBLIC_KEY, key(2)), attr.u8(77, 1)])])])]);
    expect(dev.peers).toHaveLength(1);
  });

  it('refuses malformed replies with a typed error', () => {
    const bad = (attrs: Parameters<typeof getReply>[0]) => () => parseWgDevice([getReply([attr.str(WGDEVICE_A.IFNAME, 'wg1'), ...attrs])]);
    const peer = (attrs: Parameters<typeof attr.nest>[1]) => [attr.nest(WGDEVICE_A.PEERS, [attr.nest(0, attrs)])];
    const cases = [
      bad([attr.bytes(WGDEVICE_A.PUBLIC_KEY, Buffer.alloc(31))]),
      bad(peer([attr.u16(WGPEER_A.PERSISTENT_KEEPALIVE_INTERVAL, 1)])), // peer without public key
      bad(peer([attr.bytes(WGPEER_A.PUBLIC_KEY, key(1)), attr.bytes(WGPEER_A.ENDPOINT, Buffer.alloc(8))])),
      bad(peer([attr.bytes(WGPEER_A.PUBLIC_KEY, key(1)), attr.bytes(WGPEER_A.ENDPOINT, sockaddrIn6('::1', 1).subarray(0, 20))])),
      bad(
        peer([
          attr.bytes(WGPEER_A.PUBLIC_KEY, key(1)),
          attr.nest(WGPEER_A.ALLOWEDIPS, [
            attr.nest(0, [attr.u16(WGALLOWEDIP_A.FAMILY, AF_INET), attr.bytes(WGALLOWEDIP_A.IPADDR, Buffer.alloc(4)), attr.u8(WGALLOWEDIP_A.CIDR_MASK, 33)]),
          ]),
        ]),
      ),
      bad(
        peer([
          attr.bytes(WGPEER_A.PUBLIC_KEY, key(1)),
          attr.nest(WGPEER_A.ALLOWEDIPS, [
            attr.nest(0, [attr.u16(WGALLOWEDIP_A.FAMILY, AF_INET6), attr.bytes(WGALLOWEDIP_A.IPADDR, Buffer.alloc(4)), attr.u8(WGALLOWEDIP_A.CIDR_MASK, 8)]),
          ]),
        ]),
      ),
      () => parseWgDevice([]),
      () => parseWgDevice([threeMessageReply()[0]!.subarray(0, 40)]),
    ];
    for (const run of cases) {
      expect(run).toThrow(NetlinkError);
      expectTypedParseError(run);
    }
  });

  it('formats allowed IPs exactly as keys.ts normalises them (inet_ntop agrees with net/ip formatIp)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 16, maxLength: 16 }), fc.boolean(), fc.integer({ min: 0, max: 128 }), (bytes, v6, p) => {
        const addr = v6 ? Buffer.from(bytes) : Buffer.from(bytes.subarray(0, 4));
        const prefix = v6 ? p : p % 33;
        const entry = attr.nest(0, [
          attr.u16(WGALLOWEDIP_A.FAMILY, v6 ? AF_INET6 : AF_INET),
          attr.bytes(WGALLOWEDIP_A.IPADDR, addr),
          attr.u8(WGALLOWEDIP_A.CIDR_MASK, prefix),
        ]);
        const dev = parseWgDevice([
          getReply([attr.str(WGDEVICE_A.IFNAME, 'wg1'), attr.nest(WGDEVICE_A.PEERS, [attr.nest(0, [attr.bytes(WGPEER_A.PUBLIC_KEY, key(1)), attr.nest(WGPEER_A.ALLOWEDIPS, [entry])])])]),
        ]);
        expect(dev.peers[0]!.allowedIps).toEqual([`${formatIp(addr)}/${prefix}`]);
      }),
      { numRuns: 500 },
    );
  });

  it('survives every truncation of a valid reply with a result or a typed error', () => {
    const whole = Buffer.concat(threeMessageReply());
    for (let len = 0; len <= whole.length; len++) expectTypedParseError(() => parseWgDevice([whole.subarray(0, len)]));
  });

  it('survives random bytes and random corruption of a valid reply (fast-check)', () => {
    const whole = Buffer.concat(threeMessageReply());
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), (bytes) => expectTypedParseError(() => parseWgDevice([Buffer.from(bytes)]))),
      { numRuns: 2000 },
    );
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat(whole.length - 1), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 8 }),
        (edits) => {
          const b = Buffer.from(whole);
          for (const [at, v] of edits) b[at] = v;
          expectTypedParseError(() => parseWgDevice([b]));
        },
      ),
      { numRuns: 3000 },
    );
  });
});
