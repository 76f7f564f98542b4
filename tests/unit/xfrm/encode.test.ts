import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { encodePolicies, encodePoliciesDump, encodePoliciesFlush, encodePolicyIds } from '../../../agent/xfrm/policy.js';
import { encodeStateIds, encodeStates, encodeStatesDump, encodeStatesFlush } from '../../../agent/xfrm/state.js';
import { NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, NLM_F_REQUEST, attr, nlmsg } from '../../support/nl-fixture.js';
import {
  AF_INET,
  AF_INET6,
  INF,
  XFRMA,
  XFRM_MSG,
  algoAead,
  replayEsn,
  userpolicyId,
  userpolicyInfo,
  userTmpl,
  usersaId,
  usersaInfo,
  xmark,
} from './xfrm-fixture.js';

const REQ = NLM_F_REQUEST | NLM_F_ACK;
const key20 = Buffer.from('000102030405060708090a0b0c0d0e0f10111213', 'hex');
const key36 = Buffer.alloc(36, 0xab);

describe('XFRM state encoder', () => {
  it('encodes an ESP tunnel state with AES-GCM, mark, set-mark, ESN and if_id byte for byte', () => {
    const [msg, ...rest] = encodeStates([
      {
        src: '192.0.2.1',
        dst: '192.0.2.2',
        spi: 0x1234,
        reqid: 7,
        aead: { algorithm: 'rfc4106(gcm(aes))', key: key20 },
        mark: { value: 0x10, mask: 0xf0 },
        setMark: { value: 0x2a00, mask: 0xff00 },
        ifId: 9,
        replayWindow: 128,
        esn: true,
      },
    ]);
    expect(rest).toHaveLength(0);
    const expected = nlmsg(
      XFRM_MSG.NEWSA,
      REQ | NLM_F_CREATE | NLM_F_EXCL,
      usersaInfo({
        sel: { family: AF_INET },
        src: '192.0.2.1',
        dst: '192.0.2.2',
        spi: 0x1234,
        reqid: 7,
        mode: 1,
        replayWindow: 0, // carried by XFRMA_REPLAY_ESN_VAL instead
        flags: 128, // XFRM_STATE_ESN
      }),
      [
        attr.bytes(XFRMA.ALG_AEAD, algoAead('rfc4106(gcm(aes))', key20, 128)),
        attr.bytes(XFRMA.REPLAY_ESN_VAL, replayEsn(128)),
        attr.bytes(XFRMA.MARK, xmark(0x10, 0xf0)),
        attr.u32(XFRMA.SET_MARK, 0x2a00),
        attr.u32(XFRMA.SET_MARK_MASK, 0xff00),
        attr.u32(XFRMA.IF_ID, 9),
      ],
    );
    expect(msg!.toString('hex')).toBe(expected.toString('hex'));
  });

  it('encodes an IPv6 transport state with ChaCha20-Poly1305, a legacy replay window, a selector and limits', () => {
    const [msg] = encodeStates(
      [
        {
          src: '2001:db8::1',
          dst: '2001:db8::2',
          spi: 0xdeadbeef,
          mode: 'transport',
          aead: { algorithm: 'rfc7539esp(chacha20,poly1305)', key: key36 },
          replayWindow: 32,
          lifetime: { hardBytes: 1n << 40n, softPackets: 1000, hardAddSeconds: 3600 },
          selector: { src: '2001:db8::1/128', dst: '2001:db8::2', proto: 'udp', dport: 4500 },
        },
      ],
      { update: true },
    );
    const expected = nlmsg(
      XFRM_MSG.UPDSA,
      REQ,
      usersaInfo({
        sel: { src: '2001:db8::1', dst: '2001:db8::2', srcLen: 128, dstLen: 128, proto: 17, dport: 4500 },
        src: '2001:db8::1',
        dst: '2001:db8::2',
        spi: 0xdeadbeef,
        lft: [INF, 1n << 40n, 1000n, INF, 0n, 3600n, 0n, 0n],
        reqid: 0,
        mode: 0,
        replayWindow: 32,
        flags: 0,
      }),
      [attr.bytes(XFRMA.ALG_AEAD, algoAead('rfc7539esp(chacha20,poly1305)', key36, 128))],
    );
    expect(msg!.toString('hex')).toBe(expected.toString('hex'));
  });

  it('moves replay windows above 32 packets into XFRMA_REPLAY_ESN_VAL without the ESN flag', () => {
    const [msg] = encodeStates([
      { src: '10.0.0.1', dst: '10.0.0.2', spi: 300, aead: { algorithm: 'rfc4106(gcm(aes))', key: Buffer.alloc(36, 1) }, replayWindow: 1000 },
    ]);
    const expected = nlmsg(
      XFRM_MSG.NEWSA,
      REQ | NLM_F_CREATE | NLM_F_EXCL,
      usersaInfo({ sel: { family: AF_INET }, src: '10.0.0.1', dst: '10.0.0.2', spi: 300, reqid: 0, mode: 1, replayWindow: 0, flags: 0 }),
      [attr.bytes(XFRMA.ALG_AEAD, algoAead('rfc4106(gcm(aes))', Buffer.alloc(36, 1), 128)), attr.bytes(XFRMA.REPLAY_ESN_VAL, replayEsn(1000))],
    );
    expect(msg!.toString('hex')).toBe(expected.toString('hex'));
  });

  it('encodes state get/delete ids with xfrm_usersa_id and the mark', () => {
    const [get, del] = [
      encodeStateIds([{ dst: '192.0.2.2', spi: 0x1234, mark: { value: 0x10, mask: 0xf0 } }], 'get')[0],
      encodeStateIds([{ dst: 'fd00::2', spi: 5 }], 'delete')[0],
    ];
    expect(get!.toString('hex')).toBe(
      nlmsg(XFRM_MSG.GETSA, REQ, usersaId('192.0.2.2', 0x1234), [attr.bytes(XFRMA.MARK, xmark(0x10, 0xf0))]).toString('hex'),
    );
    expect(del!.toString('hex')).toBe(nlmsg(XFRM_MSG.DELSA, REQ, usersaId('fd00::2', 5)).toString('hex'));
  });

  it('encodes flush by protocol and the dump request', () => {
    expect(encodeStatesFlush('esp')[0]!.toString('hex')).toBe(nlmsg(XFRM_MSG.FLUSHSA, REQ, Buffer.from([50])).toString('hex'));
    expect(encodeStatesFlush()[0]!.toString('hex')).toBe(nlmsg(XFRM_MSG.FLUSHSA, REQ, Buffer.from([255])).toString('hex'));
    expect(encodeStatesDump()[0]!.toString('hex')).toBe(nlmsg(XFRM_MSG.GETSA, NLM_F_REQUEST | NLM_F_DUMP, Buffer.alloc(0)).toString('hex'));
  });
});

describe('XFRM policy encoder', () => {
  it('encodes an outbound policy with ports, priority, mark and a tunnel template byte for byte', () => {
    const [msg] = encodePolicies([
      {
        dir: 'out',
        selector: { src: '10.1.0.0/16', dst: '10.2.0.0/16', proto: 'tcp', sport: 80, dport: 443 },
        priority: 100,
        mark: { value: 0xe00, mask: 0xf00 },
        templates: [{ src: '192.0.2.1', dst: '192.0.2.2', reqid: 5, spi: 0x99 }],
      },
    ]);
    const sel = { src: '10.1.0.0', dst: '10.2.0.0', srcLen: 16, dstLen: 16, proto: 6, sport: 80, dport: 443 };
    const expected = nlmsg(XFRM_MSG.NEWPOLICY, REQ | NLM_F_CREATE | NLM_F_EXCL, userpolicyInfo({ sel, priority: 100, dir: 1, action: 0 }), [
      attr.bytes(XFRMA.TMPL, userTmpl({ src: '192.0.2.1', dst: '192.0.2.2', family: AF_INET, spi: 0x99, reqid: 5, mode: 1 })),
      attr.bytes(XFRMA.MARK, xmark(0xe00, 0xf00)),
    ]);
    expect(msg!.toString('hex')).toBe(expected.toString('hex'));
  });

  it('encodes a block policy with if_id and an update with two templates (transport after tunnel)', () => {
    const [block] = encodePolicies([{ dir: 'in', selector: { src: 'fd00::/64', dst: 'fd01::/64' }, action: 'block', ifId: 7 }]);
    expect(block!.toString('hex')).toBe(
      nlmsg(
        XFRM_MSG.NEWPOLICY,
        REQ | NLM_F_CREATE | NLM_F_EXCL,
        userpolicyInfo({ sel: { src: 'fd00::', dst: 'fd01::', srcLen: 64, dstLen: 64 }, priority: 0, dir: 0, action: 1 }),
        [attr.u32(XFRMA.IF_ID, 7)],
      ).toString('hex'),
    );
    const [upd] = encodePolicies(
      [
        {
          dir: 'fwd',
          selector: { src: '10.0.0.0/8', dst: '10.0.0.0/8' },
          templates: [
            { src: 'fd00::1', dst: 'fd00::2', reqid: 1 },
            { mode: 'transport', reqid: 2, optional: true },
          ],
        },
      ],
      { update: true },
    );
    expect(upd!.toString('hex')).toBe(
      nlmsg(XFRM_MSG.UPDPOLICY, REQ, userpolicyInfo({ sel: { src: '10.0.0.0', dst: '10.0.0.0', srcLen: 8, dstLen: 8 }, priority: 0, dir: 2, action: 0 }), [
        attr.bytes(
          XFRMA.TMPL,
          Buffer.concat([
            userTmpl({ src: 'fd00::1', dst: 'fd00::2', family: AF_INET6, reqid: 1, mode: 1 }),
            userTmpl({ family: AF_INET, reqid: 2, mode: 0, optional: true }),
          ]),
        ),
      ]).toString('hex'),
    );
  });

  it('encodes policy ids by selector and by index, flush and dump', () => {
    const [bySel] = encodePolicyIds([{ dir: 'out', selector: { src: '10.1.0.0/16', dst: '10.2.0.0/16' }, mark: { value: 1 } }], 'delete');
    expect(bySel!.toString('hex')).toBe(
      nlmsg(XFRM_MSG.DELPOLICY, REQ, userpolicyId({ src: '10.1.0.0', dst: '10.2.0.0', srcLen: 16, dstLen: 16 }, 1), [
        attr.bytes(XFRMA.MARK, xmark(1, 0xffffffff)),
      ]).toString('hex'),
    );
    const [byIndex] = encodePolicyIds([{ dir: 'fwd', index: 8 * 5 + 2 }], 'get');
    expect(byIndex!.toString('hex')).toBe(nlmsg(XFRM_MSG.GETPOLICY, REQ, userpolicyId(null, 2, 42)).toString('hex'));
    expect(encodePoliciesFlush()[0]!.toString('hex')).toBe(nlmsg(XFRM_MSG.FLUSHPOLICY, REQ, Buffer.alloc(0)).toString('hex'));
    expect(encodePoliciesDump()[0]!.toString('hex')).toBe(
      nlmsg(XFRM_MSG.GETPOLICY, NLM_F_REQUEST | NLM_F_DUMP, Buffer.alloc(0)).toString('hex'),
    );
  });

  it('encodes one message per object for a batch of 1,000 policies', () => {
    const policies = Array.from({ length: 1000 }, (_, i) => ({
      dir: 'out' as const,
      selector: { src: '10.0.0.0/24', dst: `10.${(i >> 8) + 1}.${i & 255}.0/24` },
    }));
    const msgs = encodePolicies(policies);
    expect(msgs).toHaveLength(1000);
    expect(new Set(msgs.map((m) => m.toString('hex'))).size).toBe(1000);
  });
});

describe('packed policy records', () => {
  it('carry every IPv4/IPv6 spelling to the same selector bytes as inet_pton (fast-check)', () => {
    const prefixOf = (a: string) => `${a}/${a.includes(':') ? 128 : 32}`;
    fc.assert(
      fc.property(fc.oneof(fc.tuple(fc.ipV4(), fc.ipV4()), fc.tuple(fc.ipV6(), fc.ipV6())), ([src, dst]) => {
        const selector = { src: prefixOf(src), dst: prefixOf(dst) };
        const [packed] = encodePolicies([{ dir: 'out', selector, templates: [{ src: dst, dst: src, reqid: 1 }] }]);
        // The id path converts addresses in C++ with inet_pton: the selectors must agree.
        const [byId] = encodePolicyIds([{ dir: 'out', selector }], 'get');
        expect(packed!.subarray(16, 16 + 56).toString('hex')).toBe(byId!.subarray(16, 16 + 56).toString('hex'));
        // Template addresses: daddr at tmpl+0, saddr at tmpl+28 (after 168-byte header + 4-byte attr header).
        const tmpl = packed!.subarray(16 + 168 + 4);
        expect(tmpl.subarray(0, 16).toString('hex')).toBe(byId!.subarray(16 + 16, 16 + 32).toString('hex'));
        expect(tmpl.subarray(28, 44).toString('hex')).toBe(byId!.subarray(16, 32).toString('hex'));
      }),
      { numRuns: 2000 },
    );
  });
});
