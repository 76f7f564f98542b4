import { describe, expect, it } from 'vitest';
import { CONNTRACK_LAYOUTS, ctEntryCodec, CtFlags, CtLifetimeSeconds, ctKeyCodec } from '../../../../agent/datapath/conntrack.js';
import { btfStructLayout } from '../../../../agent/datapath/datapath.js';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { projectRoot } from '../../../../agent/project-root.js';
import { programObject } from '../../../support/bpf.js';

describe('conntrack layouts', () => {
  it('match the BTF clang emitted for from-pod', () => {
    const obj = programObject('from-pod');
    for (const [name, l] of Object.entries(CONNTRACK_LAYOUTS)) {
      const btf = btfStructLayout(obj, name);
      expect({ name, size: btf.size }).toEqual({ name, size: l.size });
      expect(Object.fromEntries(btf.members.map((m) => [m.name, { offset: m.offset, size: m.size }]))).toEqual(l.fields);
    }
  });

  it('flags and lifetimes match the #defines of conntrack.h', () => {
    const h = readFileSync(join(projectRoot(), 'bpf/include/veil/conntrack.h'), 'utf8');
    const defs = Object.fromEntries([...h.matchAll(/#define VEIL_CT_(\w+) \(?(\d+)u? ?(?:<< (\d+))?\)?/g)].map((m) => [m[1], m[3] ? Number(m[2]) << Number(m[3]) : Number(m[2])]));
    expect(defs).toEqual({
      F_EGRESS_OK: CtFlags.EGRESS_OK,
      F_INGRESS_OK: CtFlags.INGRESS_OK,
      F_SEEN_REPLY: CtFlags.SEEN_REPLY,
      F_CLOSING: CtFlags.CLOSING,
      LIFETIME_TCP_SYN: CtLifetimeSeconds.TCP_SYN,
      LIFETIME_TCP: CtLifetimeSeconds.TCP,
      LIFETIME_TCP_CLOSING: CtLifetimeSeconds.TCP_CLOSING,
      LIFETIME_NONTCP: CtLifetimeSeconds.NON_TCP,
    });
  });
});

describe('conntrack codecs', () => {
  it('encode an IPv4 key byte for byte', () => {
    const b = Buffer.alloc(16, 0xff);
    ctKeyCodec(4).encode({ saddr: '10.0.1.10', daddr: '10.0.2.20', sport: 40000, dport: 80, proto: 6 }, b, 0);
    expect(b.toString('hex')).toBe('0a00010a0a000214409c500006000000');
  });

  it('round-trip IPv6 keys and entries', () => {
    const k = { saddr: 'fd00:1::10', daddr: 'fd00:2::20', sport: 4242, dport: 0, proto: 58 };
    const kb = Buffer.alloc(40);
    ctKeyCodec(6).encode(k, kb, 0);
    expect(ctKeyCodec(6).decode(kb, 0)).toEqual(k);
    const e = { expiresNs: 123456789012345n, srcIdentity: 300, dstIdentity: 400, flags: CtFlags.EGRESS_OK | CtFlags.SEEN_REPLY };
    const eb = Buffer.alloc(24, 0xff);
    ctEntryCodec.encode(e, eb, 0);
    expect(eb.subarray(17).every((x) => x === 0)).toBe(true);
    expect(ctEntryCodec.decode(eb, 0)).toEqual(e);
  });

  it('refuse bad fields with typed errors', () => {
    const b = Buffer.alloc(40);
    expect(() => ctKeyCodec(4).encode({ saddr: 'fd00::1', daddr: '10.0.0.1', sport: 1, dport: 1, proto: 6 }, b, 0)).toThrow(/saddr/);
    expect(() => ctKeyCodec(4).encode({ saddr: '10.0.0.1', daddr: '10.0.0.2', sport: 70000, dport: 1, proto: 6 }, b, 0)).toThrow(/sport/);
    expect(() => ctEntryCodec.encode({ expiresNs: -1n, srcIdentity: 1, dstIdentity: 1, flags: 0 }, b, 0)).toThrow(/expiresNs/);
  });
});
