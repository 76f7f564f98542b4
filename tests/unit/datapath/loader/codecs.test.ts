import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { ValidationError } from '../../../../agent/errors.js';
import { perCpu } from '../../../../agent/datapath/bpf-map.js';
import { Ipcache } from '../../../../agent/datapath/ipcache.js';
import {
  configCodec,
  counterCodec,
  decodeEvent,
  endpointCodec,
  hostKeyCodec,
  ipcacheValueCodec,
  lpmKeyCodec,
  policyKeyCodec,
  policyValueCodec,
  type Codec,
} from '../../../../agent/datapath/layout.js';
import { decodeMark, encodeMark, MarkPurpose } from '../../../../agent/datapath/marks.js';
import { counterIndex, Hook, Reason, reasonName } from '../../../../agent/datapath/reasons.js';

function enc<T>(c: Codec<T>, v: T): string {
  const b = Buffer.alloc(c.size, 0xee);
  c.encode(v, b, 0);
  return b.toString('hex');
}

describe('struct codecs (byte-exact, host order little-endian, addresses in network order)', () => {
  it('veil_endpoint: identity, flags with derived address bits, ipv4, ipv6, zero pad', () => {
    const hex = enc(endpointCodec, { identity: 0x01020304, flags: 1 << 2, ipv4: '10.0.0.7', ipv6: 'fd00::7' });
    expect(hex).toBe('04030201' + '07000000' + '0a000007' + 'fd000000000000000000000000000007' + '00000000');
    expect(endpointCodec.decode(Buffer.from(hex, 'hex'), 0)).toEqual({ identity: 0x01020304, flags: 7, ipv4: '10.0.0.7', ipv6: 'fd00::7' });
    // Address bits follow the addresses, whatever the caller passed.
    expect(enc(endpointCodec, { identity: 1, flags: 3 }).slice(8, 16)).toBe('00000000');
  });

  it('veil_endpoint: key_generation is one byte after ipv6, absent when 0, out of range refused', () => {
    const hex = enc(endpointCodec, { identity: 300, flags: 0, ipv4: '10.0.0.7', keyGeneration: 6 });
    expect(hex.slice(56)).toBe('06000000');
    expect(endpointCodec.decode(Buffer.from(hex, 'hex'), 0)).toEqual({ identity: 300, flags: 1, ipv4: '10.0.0.7', keyGeneration: 6 });
    expect(endpointCodec.decode(Buffer.from(enc(endpointCodec, { identity: 300, flags: 0, keyGeneration: 0 }), 'hex'), 0)).toEqual({ identity: 300, flags: 0 });
    expect(() => enc(endpointCodec, { identity: 1, flags: 0, keyGeneration: 256 })).toThrow(expect.objectContaining({ field: 'keyGeneration' }));
  });

  it('veil_ipcache_entry: tunnel endpoint sets or clears TUNNEL_V6', () => {
    expect(enc(ipcacheValueCodec, { identity: 300, nodeIndex: 0x0102, keySlot: 5, flags: 2 | 8, tunnelEndpoint: '192.168.1.2' })).toBe(
      '2c010000' + '0201' + '05' + '02' + 'c0a80102' + '00'.repeat(12),
    );
    const v6 = enc(ipcacheValueCodec, { identity: 1, nodeIndex: 1, keySlot: 0, flags: 0, tunnelEndpoint: '2001:db8::1' });
    expect(v6.slice(14, 16)).toBe('08');
    expect(ipcacheValueCodec.decode(Buffer.from(v6, 'hex'), 0)).toEqual({ identity: 1, nodeIndex: 1, keySlot: 0, flags: 8, tunnelEndpoint: '2001:db8::1' });
    expect(ipcacheValueCodec.decode(Buffer.alloc(24), 0)).toEqual({ identity: 0, nodeIndex: 0, keySlot: 0, flags: 0 });
  });

  it('ipcache keys: host addresses and LPM prefixes with host bits cleared', () => {
    expect(enc(hostKeyCodec(4), '10.1.2.3')).toBe('0a010203');
    expect(enc(hostKeyCodec(6), 'fd00::1')).toBe('fd000000000000000000000000000001');
    expect(enc(lpmKeyCodec(4), '10.1.2.3/16')).toBe('10000000' + '0a010000');
    expect(lpmKeyCodec(4).decode(Buffer.from('100000000a010000', 'hex'), 0)).toBe('10.1.0.0/16');
    expect(enc(lpmKeyCodec(6), 'fd00:1::/32')).toBe('20000000' + 'fd000001' + '00'.repeat(12));
    expect(() => enc(hostKeyCodec(4), 'fd00::1')).toThrow(ValidationError);
    expect(() => enc(lpmKeyCodec(4), '10.0.0.0/33')).toThrow(ValidationError);
  });

  it('Ipcache.place() puts host prefixes in the hash tier and others in the LPM tier', () => {
    expect(Ipcache.place('10.0.0.5')).toEqual({ tier: 'host4', key: '10.0.0.5' });
    expect(Ipcache.place('10.0.0.5/32')).toEqual({ tier: 'host4', key: '10.0.0.5' });
    expect(Ipcache.place('10.0.7.5/16')).toEqual({ tier: 'lpm4', key: '10.0.0.0/16' });
    expect(Ipcache.place('fd00::5/128')).toEqual({ tier: 'host6', key: 'fd00::5' });
    expect(Ipcache.place('fd00::/64')).toEqual({ tier: 'lpm6', key: 'fd00::/64' });
    expect(() => Ipcache.place('nope')).toThrow(ValidationError);
  });

  it('veil_policy_key and veil_policy_value', () => {
    expect(enc(policyKeyCodec, { subject: 256, peer: 0x10203, dport: 443, proto: 6, direction: 'egress' })).toBe('00010000' + '03020100' + 'bb01' + '06' + '01');
    expect(enc(policyValueCodec, { verdict: 'deny', flags: 1 })).toBe('02010000');
    expect(policyValueCodec.decode(Buffer.from('01020000', 'hex'), 0)).toEqual({ verdict: 'allow', flags: 2 });
    expect(() => enc(policyKeyCodec, { subject: 1, peer: 0, dport: 80, proto: 0, direction: 'ingress' })).toThrow(/a port needs a protocol/);
    expect(() => enc(policyKeyCodec, { subject: 1, peer: 0, dport: 0, proto: 0, direction: 'up' as 'ingress' })).toThrow(ValidationError);
    expect(() => enc(policyValueCodec, { verdict: 'maybe' as 'allow', flags: 0 })).toThrow(ValidationError);
  });

  it('veil_config: two WireGuard channels and a zero pad', () => {
    const cfg = { flags: 3, wireguardIfindex: [7, 8] as [number, number], nodeIdentity: 1, wireguardPort: 51871, nodeIndex: 9 };
    const hex = enc(configCodec, cfg);
    expect(hex).toBe('03000000' + '07000000' + '08000000' + '01000000' + '9fca' + '0900' + '00000000');
    expect(configCodec.decode(Buffer.from(hex, 'hex'), 0)).toEqual(cfg);
    expect(() => enc(configCodec, { ...cfg, wireguardIfindex: [7] as unknown as [number, number] })).toThrow(/one ifindex per channel/);
    expect(() => enc(configCodec, { ...cfg, wireguardPort: 65535 })).toThrow(ValidationError);
  });

  it('per-CPU values are padded to 8 bytes per CPU', () => {
    const c = perCpu(counterCodec, 2);
    expect(c.size).toBe(32);
    expect(enc(c, [{ packets: 1n, bytes: 2n }, { packets: 3n, bytes: 4n }])).toBe('0100000000000000' + '0200000000000000' + '0300000000000000' + '0400000000000000');
    const small = perCpu(policyValueCodec, 3);
    expect(small.size).toBe(24);
    expect(() => enc(c, [{ packets: 1n, bytes: 1n }])).toThrow(/one value per possible CPU \(2\)/);
  });

  it('veil_event decodes and a short record is refused', () => {
    const b = Buffer.alloc(64);
    b.writeBigUInt64LE(123n, 0);
    b.writeUInt32LE(300, 8);
    b.writeUInt32LE(301, 12);
    b.writeUInt32LE(5, 16);
    b.set([1, 35, 0, 4, 17], 20);
    b.writeUInt16LE(1000, 28);
    b.writeUInt16LE(53, 30);
    b.set([10, 0, 0, 1], 32);
    b.set([10, 0, 0, 2], 48);
    expect(decodeEvent(b)).toEqual({ timestampNs: 123n, srcIdentity: 300, dstIdentity: 301, ifindex: 5, type: 1, reason: 35, hook: 0, family: 4, proto: 17, sport: 1000, dport: 53, saddr: '10.0.0.1', daddr: '10.0.0.2' });
    expect(decodeEvent(b.subarray(0, 63))).toBeUndefined();
  });

  it('encoders round-trip every valid value (property)', () => {
    fc.assert(
      fc.property(fc.nat(0xffffffff), fc.nat(0xffff), fc.nat(15), fc.nat(0xff), fc.nat(0xffff), fc.nat(0xfffe), (id, idx, slot, flags, port, wgPort) => {
        const ipc = { identity: id, nodeIndex: idx, keySlot: slot, flags: flags & ~8 };
        const b = Buffer.alloc(24);
        ipcacheValueCodec.encode(ipc, b, 0);
        expect(ipcacheValueCodec.decode(b, 0)).toEqual(ipc);
        const key = { subject: id, peer: idx, dport: port, proto: 6, direction: 'ingress' as const };
        const k = Buffer.alloc(12);
        policyKeyCodec.encode(key, k, 0);
        expect(policyKeyCodec.decode(k, 0)).toEqual(key);
        const cfg = { flags: id, wireguardIfindex: [idx, id] as [number, number], nodeIdentity: id, wireguardPort: wgPort, nodeIndex: idx };
        const c = Buffer.alloc(24);
        configCodec.encode(cfg, c, 0);
        expect(configCodec.decode(c, 0)).toEqual(cfg);
      }),
    );
  });

  it('refuses out-of-range integers with a ValidationError naming the field', () => {
    expect(() => enc(endpointCodec, { identity: -1, flags: 0 })).toThrow(expect.objectContaining({ field: 'identity' }));
    expect(() => enc(ipcacheValueCodec, { identity: 1, nodeIndex: 1, keySlot: 16, flags: 0 })).toThrow(expect.objectContaining({ field: 'keySlot' }));
    expect(() => enc(endpointCodec, { identity: 1, flags: 0, ipv4: 'fd00::1' })).toThrow(expect.objectContaining({ field: 'ipv4' }));
  });
});

describe('marks and reasons', () => {
  it('encodeMark()/decodeMark() place identity, purpose and key slot and leave foreign bits alone', () => {
    const m = encodeMark({ purpose: MarkPurpose.ENCRYPT, identity: 0x1234, keySlot: 3 });
    expect(m).toBe(0x12340e30);
    expect(decodeMark(m | 0x0000c00f)).toEqual({ purpose: MarkPurpose.ENCRYPT, identity: 0x1234, keySlot: 3 });
    expect(() => encodeMark({ purpose: MarkPurpose.ENCRYPT, identity: 0x10000, keySlot: 0 })).toThrow(RangeError);
    expect(() => encodeMark({ purpose: 0x1000, identity: 1, keySlot: 0 })).toThrow(RangeError);
  });

  it('counter indexes and names', () => {
    expect(counterIndex(Hook.TO_POD, Reason.DROP_POLICY_DENY)).toBe(64 + 35);
    expect(reasonName(35)).toBe('DROP_POLICY_DENY');
    expect(reasonName(60)).toBe('REASON_60');
  });
});
