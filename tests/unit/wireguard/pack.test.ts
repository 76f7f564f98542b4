import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { NetlinkError, ValidationError } from '../../../agent/errors.js';
import { callNativeSync } from '../../../agent/native/addon.js';
import { encodeWgSetDevice, wgAddon } from '../../../agent/wireguard/kernel-netlink.js';
import {
  packWgSetDevice,
  packWgSetDeviceChecked,
  WG_ALLOWED_IP_RECORD,
  WG_DEVICE_RECORD,
  WG_PEER_RECORD,
  type PackedWgSetDevice,
} from '../../../agent/wireguard/pack.js';
import type { AllowedIpRetirement } from '../../../agent/wireguard/allowed-ip-handover.js';
import { key } from './kernel-fixture.js';

/** The outcome of packing: the records, or the error's class, field and message. */
function outcome(pack: () => PackedWgSetDevice): unknown {
  try {
    const p = pack();
    return { name: p.name, device: p.device.toString('hex'), peers: p.peers.toString('hex'), allowedIps: p.allowedIps.toString('hex') };
  } catch (err) {
    if (!(err instanceof ValidationError)) throw err;
    return { error: err.name, field: err.field, message: err.message };
  }
}

describe('packWgSetDevice() fast path', () => {
  const value = fc.oneof(
    { weight: 3, arbitrary: fc.constant(undefined) },
    fc.constant(null),
    fc.constantFrom(-1, 0, 1, 25, 65535, 65536, 0xffffffff, 2 ** 32, 1.5, NaN, -0),
    fc.constantFrom('10.0.0.0/8', '10.0.0.1', 'fd00::/129', '1.2.3.4:0', '[fd00::1]:80', 'x', '', 'true'),
    fc.boolean(),
    fc.constant({}),
    fc.constant([]),
    fc.constantFrom(Buffer.alloc(31), Buffer.alloc(33), new Uint8Array(32).fill(7), Buffer.alloc(32, 9)),
  );
  const mostly = <T,>(good: fc.Arbitrary<T>) => fc.oneof({ weight: 15, arbitrary: good }, { weight: 1, arbitrary: value });
  // Few distinct keys and CIDRs, so duplicate peers and shared CIDRs come up often.
  const pubKey = fc.oneof(
    fc.integer({ min: 1, max: 40 }).map((n) => key(n)),
    fc.integer({ min: 41, max: 44 }).map((n) => new Uint8Array(key(n))),
  );
  const cidr = fc.oneof(
    { weight: 6, arbitrary: fc.tuple(fc.integer({ min: 0, max: 30 }), fc.constantFrom(8, 24, 32)).map(([n, l]) => `10.${n}.0.${n}/${l}`) },
    fc.constantFrom('fd00::/64', 'FD00:0:0:0::1/64', 'fd00::1/128', '::ffff:10.0.0.1/128', '0.0.0.0/0', '::/0', '10.1.2.3/24'),
    fc.constantFrom('10.0.0.0', '10.0.0.0/33', '10.0.0.0/024', '010.0.0.0/8', 'fd00::/', '10.0.0.0/8 ', 'fd00::1%eth0/128'),
  );
  const endpoint = fc.oneof(
    { weight: 4, arbitrary: fc.tuple(fc.integer({ min: 0, max: 255 }), fc.integer({ min: 1, max: 65535 })).map(([a, p]) => `198.18.0.${a}:${p}`) },
    fc.constantFrom('[2001:db8::1]:51820', '[2001:DB8:0::1]:1', '[::ffff:1.2.3.4]:80', '192.0.2.1:0080'),
    fc.constantFrom('192.0.2.1', '192.0.2.1:0', '192.0.2.1:65536', '2001:db8::1:80', '[2001:db8::1]80', ':80', '[10.0.0.1]:80', 'host:80', '1.2.3.4:123456'),
  );
  const peer = mostly(
    fc.record(
      {
        publicKey: mostly(pubKey),
        remove: mostly(fc.boolean()),
        updateOnly: mostly(fc.boolean()),
        presharedKey: mostly(fc.oneof(fc.constant(null), fc.integer({ min: 50, max: 60 }).map((n) => key(n)))),
        endpoint: mostly(endpoint),
        persistentKeepalive: mostly(fc.integer({ min: 0, max: 65535 })),
        allowedIps: mostly(fc.array(cidr, { maxLength: 4 })),
        replaceAllowedIps: mostly(fc.boolean()),
      },
      { requiredKeys: ['publicKey'] },
    ),
  );
  const config = mostly(
    fc.record(
      {
        privateKey: mostly(fc.oneof(fc.constant(null), fc.constant(key(0x11)))),
        listenPort: mostly(fc.integer({ min: 0, max: 65535 })),
        fwmark: mostly(fc.oneof(fc.constantFrom(0, 0xe00, 0xffffffff), fc.nat())),
        replacePeers: mostly(fc.boolean()),
        peers: mostly(fc.array(peer, { maxLength: 6 })),
      },
      { requiredKeys: [] },
    ),
  );
  const retire = fc.option(
    fc.record({ publicKey: fc.oneof(fc.constant(key(0x99)), pubKey), allowedIps: fc.array(cidr, { maxLength: 3 }) }),
    { nil: undefined },
  );

  it('packs the same bytes and throws the same errors as validateWgDeviceConfig() then packing', () => {
    let packed = 0;
    let rejected = 0;
    fc.assert(
      fc.property(config, retire, (c, r) => {
        const fast = outcome(() => packWgSetDevice('wg0', c, r as AllowedIpRetirement | undefined));
        expect(fast).toEqual(outcome(() => packWgSetDeviceChecked('wg0', c, r as AllowedIpRetirement | undefined)));
        if ((fast as { error?: string }).error) rejected++;
        else packed++;
      }),
      { numRuns: 3000 },
    );
    // Both outcomes must be exercised for the comparison to mean something.
    expect(packed).toBeGreaterThan(300);
    expect(rejected).toBeGreaterThan(300);
  });

  it('merges a CIDR repeated in one peer and refuses one given to two peers, as the validator does', () => {
    const one = packWgSetDevice('wg0', { peers: [{ publicKey: key(1), allowedIps: ['10.0.0.7/24', '10.0.0.0/24', 'fd00::/64'] }] });
    expect(one.allowedIps.length).toBe(2 * WG_ALLOWED_IP_RECORD);
    expect(one.peers.readUInt32LE(76)).toBe(2);
    expect(one.allowedIps.subarray(0, 4)).toEqual(Buffer.from([10, 0, 0, 0]));
    const two = { peers: [{ publicKey: key(1), allowedIps: ['10.0.0.0/24'] }, { publicKey: key(2), allowedIps: ['10.0.0.1/24'] }] };
    expect(() => packWgSetDevice('wg0', two)).toThrow('Allowed IP "10.0.0.0/24" is given to two peers, "config.peers[0]" and "config.peers[1]"');
  });

  it('refuses a sparse peers array with a ValidationError naming the hole', () => {
    const peers = [{ publicKey: key(1) }];
    peers[2] = { publicKey: key(2) };
    expect(() => packWgSetDevice('wg0', { peers })).toThrow(/config\.peers\[1\]/);
  });

  it('scrub() zeroes every record, keys included', () => {
    const p = packWgSetDevice('wg0', { privateKey: key(0x11), peers: [{ publicKey: key(1), presharedKey: key(0x22), allowedIps: ['10.0.0.0/8'] }] });
    expect(p.device.subarray(0, 32)).toEqual(key(0x11));
    expect(p.peers.subarray(32, 64)).toEqual(key(0x22));
    p.scrub();
    for (const b of [p.device, p.peers, p.allowedIps]) expect(b.every((x) => x === 0)).toBe(true);
  });

  it('encodeWgSetDevice() leaves no copy of the keys in the caller-visible records', () => {
    // The configuration's own key Buffers are the caller's and stay as they were.
    const privateKey = key(0x11);
    encodeWgSetDevice('wg0', { privateKey, peers: [{ publicKey: key(1), presharedKey: key(0x22) }] }, { familyId: 0x20 });
    expect(privateKey).toEqual(key(0x11));
  });
});

describe('the addon with packed WireGuard records (TypeScript checks bypassed)', () => {
  const encode = (device: Buffer, peers: Buffer, ips: Buffer) =>
    callNativeSync('test', () => wgAddon().encodeWgSetDevice('wg0', device, peers, ips, { familyId: 0x20 }));
  const good = () => packWgSetDevice('wg0', { peers: [{ publicKey: key(1), allowedIps: ['10.0.0.0/8', 'fd00::/64'] }] });
  const refused = (fn: () => unknown, detail: RegExp) => {
    try {
      fn();
    } catch (err) {
      expect(err).toBeInstanceOf(NetlinkError);
      expect((err as NetlinkError).code).toBe('EINVAL');
      expect((err as Error).message).toMatch(detail);
      return;
    }
    throw new Error('expected the addon to refuse the records');
  };

  it('accepts what packWgSetDevice() wrote', () => {
    const p = good();
    expect(encode(p.device, p.peers, p.allowedIps)).toHaveLength(1);
  });

  it('refuses records of the wrong size, counts that do not add up, unknown flags and bad prefixes', () => {
    const p = good();
    refused(() => encode(p.device.subarray(0, WG_DEVICE_RECORD - 4), p.peers, p.allowedIps), /not a whole number/);
    refused(() => encode(Buffer.alloc(2 * WG_DEVICE_RECORD), p.peers, p.allowedIps), /exactly one packed device record/);
    refused(() => encode(p.device, p.peers.subarray(0, WG_PEER_RECORD - 1), p.allowedIps), /not a whole number/);
    refused(() => encode(p.device, p.peers, p.allowedIps.subarray(0, WG_ALLOWED_IP_RECORD)), /more allowed IPs than were packed/);
    refused(() => encode(p.device, p.peers, Buffer.concat([p.allowedIps, p.allowedIps])), /that no peer names/);
    const countHuge = Buffer.from(p.peers);
    countHuge.writeUInt32LE(0xffffffff, 76);
    refused(() => encode(p.device, countHuge, p.allowedIps), /more allowed IPs than were packed/);
    const flags = Buffer.from(p.peers);
    flags.writeUInt32LE(0x80, 64);
    refused(() => encode(p.device, flags, p.allowedIps), /unknown flags/);
    const prefix = Buffer.from(p.allowedIps);
    prefix[17] = 33;
    refused(() => encode(p.device, p.peers, prefix), /prefix length 33/);
    const keepalive = Buffer.from(p.peers);
    keepalive.writeUInt32LE(64, 64);
    keepalive.writeUInt32LE(70000, 68);
    refused(() => encode(p.device, keepalive, p.allowedIps), /keepalive 70000 exceeds 65535/);
    refused(() => callNativeSync('test', () => (wgAddon().encodeWgSetDevice as (...a: unknown[]) => Buffer[])('wg0', {}, [], [])), /Buffer of packed records/);
  });
});
