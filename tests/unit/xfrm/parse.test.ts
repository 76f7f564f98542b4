import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { NetlinkError } from '../../../agent/errors.js';
import { parsePolicies } from '../../../agent/xfrm/policy.js';
import { parseStates } from '../../../agent/xfrm/state.js';
import { attr, nlmsg } from '../../support/nl-fixture.js';
import {
  AF_INET,
  AF_INET6,
  XFRMA,
  XFRM_MSG,
  algoAead,
  replayEsn,
  userpolicyInfo,
  userTmpl,
  usersaInfo,
  xmark,
} from './xfrm-fixture.js';

const secret = Buffer.from('5ec2e75ec2e75ec2e75ec2e75ec2e75ec2e75ec2', 'hex');

/** A NEWSA message as the kernel sends it in a dump: with the key, counters and ESN state. */
function kernelState(): Buffer {
  return nlmsg(
    XFRM_MSG.NEWSA,
    0x2, // NLM_F_MULTI
    usersaInfo({
      sel: { family: AF_INET },
      src: '192.0.2.1',
      dst: '192.0.2.2',
      spi: 0xc0ffee,
      cur: { bytes: 123456n, packets: 789n, addTime: 1_700_000_000n, useTime: 1_700_000_100n },
      stats: { replayWindow: 1, replay: 2, integrityFailed: 3 },
      reqid: 42,
      mode: 1,
      replayWindow: 0,
      flags: 128,
    }),
    [
      attr.bytes(XFRMA.ALG_AEAD, algoAead('rfc4106(gcm(aes))', secret, 128)),
      attr.bytes(XFRMA.REPLAY_ESN_VAL, replayEsn(256, { oseq: 5, seq: 6, oseqHi: 1, seqHi: 2 })),
      attr.bytes(XFRMA.MARK, xmark(0x10, 0xf0)),
      attr.u32(XFRMA.SET_MARK, 0x2a00),
      attr.u32(XFRMA.SET_MARK_MASK, 0xff00),
      attr.u32(XFRMA.IF_ID, 3),
      attr.u64(XFRMA.LASTUSED, 1_700_000_100n),
      attr.u32(99, 0xdead), // an attribute from a newer kernel: skipped
    ],
  );
}

function kernelPolicy(): Buffer {
  return nlmsg(
    XFRM_MSG.NEWPOLICY,
    0x2,
    userpolicyInfo({
      sel: { src: 'fd00::', dst: 'fd01::', srcLen: 64, dstLen: 64, proto: 6, dport: 443 },
      priority: 7,
      index: 8 * 3 + 1,
      dir: 1,
      action: 0,
    }),
    [
      attr.bytes(
        XFRMA.TMPL,
        Buffer.concat([
          userTmpl({ src: 'fd00::1', dst: 'fd00::2', family: AF_INET6, reqid: 9, mode: 1, spi: 0x100 }),
          userTmpl({ family: AF_INET6, reqid: 10, mode: 0, optional: true }),
        ]),
      ),
      attr.bytes(XFRMA.MARK, xmark(0xe00, 0xf00)),
      attr.u32(XFRMA.IF_ID, 4),
      attr.bytes(XFRMA.POLICY_TYPE, Buffer.from([0, 0, 0, 0, 0, 0, 0, 0])),
    ],
  );
}

describe('XFRM state parser', () => {
  it('reads every field of a kernel state and reports the key only as algorithm and length', () => {
    const [s, ...rest] = parseStates(kernelState());
    expect(rest).toHaveLength(0);
    expect(s).toMatchObject({
      family: 4,
      src: '192.0.2.1',
      dst: '192.0.2.2',
      spi: 0xc0ffee,
      proto: 'esp',
      mode: 'tunnel',
      reqid: 42,
      esn: true,
      replayWindow: 256,
      mark: { value: 0x10, mask: 0xf0 },
      setMark: { value: 0x2a00, mask: 0xff00 },
      ifId: 3,
      aead: { algorithm: 'rfc4106(gcm(aes))', keyBits: 160, icvBits: 128 },
      crypt: null,
      auth: null,
    });
    expect(s!.stats).toEqual({
      bytes: 123456n,
      packets: 789n,
      addTime: 1_700_000_000n,
      useTime: 1_700_000_100n,
      replayWindowDrops: 1,
      replayDrops: 2,
      integrityFailures: 3,
      outboundSeq: (1n << 32n) | 5n,
      inboundSeq: (2n << 32n) | 6n,
      replayWindow: 256,
      esn: true,
    });
    const text = JSON.stringify(s, (_k, v) => (typeof v === 'bigint' ? v.toString() : v));
    expect(text).not.toContain(secret.toString('hex'));
    expect(text).not.toMatch(/"key"/);
  });

  it('defaults the set-mark mask to all ones when the kernel sends no XFRMA_SET_MARK_MASK', () => {
    const msg = nlmsg(
      XFRM_MSG.NEWSA,
      0,
      usersaInfo({ sel: { family: AF_INET }, src: '10.0.0.1', dst: '10.0.0.2', spi: 1, reqid: 0, mode: 0, replayWindow: 32, flags: 0 }),
      [attr.u32(XFRMA.SET_MARK, 5)],
    );
    const [s] = parseStates(msg);
    expect(s!.setMark).toEqual({ value: 5, mask: 0xffffffff });
    expect(s!.mode).toBe('transport');
    expect(s!.replayWindow).toBe(32);
    expect(s!.esn).toBe(false);
  });

  it('skips messages of other types in a dump', () => {
    const noop = nlmsg(1, 0, Buffer.alloc(0));
    expect(parseStates(Buffer.concat([noop, kernelState(), noop]))).toHaveLength(1);
  });

  it('throws a typed error for every truncation of a valid message', () => {
    const full = kernelState();
    for (let n = 1; n < full.length; n++) {
      const cut = Buffer.from(full.subarray(0, n));
      // Also the harder case: a message whose own length field agrees with the cut.
      const relabelled = Buffer.from(cut);
      if (n >= 4) relabelled.writeUInt32LE(n, 0);
      for (const buf of [cut, relabelled]) {
        try {
          parseStates(buf);
        } catch (err) {
          expect(err).toBeInstanceOf(NetlinkError);
          expect(['EMALFORMED']).toContain((err as NetlinkError).code);
        }
      }
    }
  });

  it('never crashes on random bytes or random mutations of a valid message (fast-check)', () => {
    const base = kernelState();
    fc.assert(
      fc.property(
        fc.oneof(
          fc.uint8Array({ maxLength: 600 }),
          fc.array(fc.tuple(fc.nat(base.length - 1), fc.integer({ min: 0, max: 255 })), { maxLength: 12 }).map((muts) => {
            const b = Buffer.from(base);
            for (const [i, v] of muts) b[i] = v;
            return new Uint8Array(b);
          }),
        ),
        (bytes) => {
          try {
            const out = parseStates(Buffer.from(bytes));
            expect(Array.isArray(out)).toBe(true);
          } catch (err) {
            expect(err).toBeInstanceOf(NetlinkError);
            expect((err as NetlinkError).code).toBe('EMALFORMED');
          }
        },
      ),
      { numRuns: 3000 },
    );
  });
});

describe('XFRM policy parser', () => {
  it('reads selector, direction, priority, index, mark, if_id and every template', () => {
    const [p] = parsePolicies(kernelPolicy());
    expect(p).toMatchObject({
      dir: 'out',
      priority: 7,
      index: 25,
      action: 'allow',
      mark: { value: 0xe00, mask: 0xf00 },
      ifId: 4,
      selector: { family: 6, src: 'fd00::', srcLen: 64, dst: 'fd01::', dstLen: 64, proto: 6, dport: 443, dportMask: 0xffff, sport: 0, sportMask: 0 },
    });
    expect(p!.templates).toEqual([
      { family: 6, src: 'fd00::1', dst: 'fd00::2', proto: 'esp', spi: 0x100, reqid: 9, mode: 'tunnel', optional: false },
      { family: 6, src: '::', dst: '::', proto: 'esp', spi: 0, reqid: 10, mode: 'transport', optional: true },
    ]);
  });

  it('rejects a template array whose length is not a multiple of xfrm_user_tmpl', () => {
    const msg = nlmsg(XFRM_MSG.NEWPOLICY, 0, userpolicyInfo({ sel: { family: AF_INET }, priority: 0, dir: 0, action: 0 }), [
      attr.bytes(XFRMA.TMPL, Buffer.alloc(63)),
    ]);
    expect(() => parsePolicies(msg)).toThrow(/multiple of xfrm_user_tmpl/);
  });

  it('never crashes on truncated, mutated or random input (fast-check)', () => {
    const base = kernelPolicy();
    fc.assert(
      fc.property(
        fc.oneof(
          fc.uint8Array({ maxLength: 600 }),
          fc.nat(base.length).map((n) => {
            const b = Buffer.from(base.subarray(0, n));
            if (n >= 4) b.writeUInt32LE(n, 0);
            return new Uint8Array(b);
          }),
          fc.array(fc.tuple(fc.nat(base.length - 1), fc.integer({ min: 0, max: 255 })), { maxLength: 12 }).map((muts) => {
            const b = Buffer.from(base);
            for (const [i, v] of muts) b[i] = v;
            return new Uint8Array(b);
          }),
        ),
        (bytes) => {
          try {
            expect(Array.isArray(parsePolicies(Buffer.from(bytes)))).toBe(true);
          } catch (err) {
            expect(err).toBeInstanceOf(NetlinkError);
            expect((err as NetlinkError).code).toBe('EMALFORMED');
          }
        },
      ),
      { numRuns: 3000 },
    );
  });
});
