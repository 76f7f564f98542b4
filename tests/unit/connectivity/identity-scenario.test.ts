import { describe, expect, it } from 'vitest';
import { packetsByIdentity } from '../../../agent/connectivity/identity-scenario.js';
import { withRandomKey } from '../../../agent/connectivity/strict-esp.js';
import { decryptedMark, encryptMark } from '../../../agent/reconcile/ipsec-marks.js';
import type { XfrmState } from '../../../agent/xfrm/types.js';

function sa(spi: number, setMark: { value: number; mask: number } | null, packets: bigint, extra: Partial<XfrmState> = {}): XfrmState {
  return {
    family: 4,
    src: '10.77.0.11',
    dst: '10.77.0.12',
    spi,
    proto: 'esp',
    mode: 'tunnel',
    reqid: 0x7e11,
    mark: null,
    setMark,
    ifId: null,
    replayWindow: 128,
    esn: true,
    flags: 0,
    aead: { algorithm: 'rfc4106(gcm(aes))', keyBits: 288, icvBits: 128 },
    crypt: null,
    auth: null,
    selector: { family: 0, src: null, srcLen: 0, dst: null, dstLen: 0, proto: 0, sport: 0, sportMask: 0, dport: 0, dportMask: 0, ifindex: 0 },
    lifetime: { softBytes: 0n, hardBytes: 0n, softPackets: 0n, hardPackets: 0n, softAddSeconds: 0n, hardAddSeconds: 0n, softUseSeconds: 0n, hardUseSeconds: 0n },
    stats: { bytes: 0n, packets, addTime: 0n, useTime: 0n, replayWindowDrops: 0, replayDrops: 0, integrityFailures: 0, outboundSeq: 0n, inboundSeq: 0n, replayWindow: 128, esn: true },
    ...extra,
  };
}

describe('packetsByIdentity (the identity scenario)', () => {
  it('sums the packets each sender identity\'s inbound SAs decrypted between two reads', () => {
    const before = [sa(0x101, decryptedMark(300, 5), 10n), sa(0x102, decryptedMark(300, 6), 0n), sa(0x103, decryptedMark(400, 5), 7n)];
    const after = [sa(0x101, decryptedMark(300, 5), 18n), sa(0x102, decryptedMark(300, 6), 2n), sa(0x103, decryptedMark(400, 5), 7n), sa(0x104, decryptedMark(500, 5), 3n)];
    expect(packetsByIdentity(before, after)).toEqual(new Map([[300, 10n], [400, 0n], [500, 3n]]));
  });

  it('ignores SAs without a decrypted set-mark (outbound SAs, other tools\' SAs)', () => {
    const after = [sa(0x201, encryptMark(300, 5), 9n), sa(0x202, null, 9n)];
    expect(packetsByIdentity([], after)).toEqual(new Map());
  });

  it('never counts a negative delta (an SA replaced in between starts again from zero)', () => {
    expect(packetsByIdentity([sa(0x101, decryptedMark(300, 5), 50n)], [sa(0x101, decryptedMark(300, 5), 4n)])).toEqual(new Map([[300, 0n]]));
  });
});

describe('withRandomKey (the IPsec strict-mode scenario)', () => {
  it('keeps the SA\'s identity, marks, algorithm and replay settings and draws a key of the same length', () => {
    const st = sa(0x101, decryptedMark(300, 5), 0n, { mark: { value: 0x12c0e50, mask: 0xffff0ff0 } });
    const a = withRandomKey(st);
    const b = withRandomKey(st);
    expect(a).toMatchObject({ src: st.src, dst: st.dst, spi: 0x101, proto: 'esp', mode: 'tunnel', reqid: 0x7e11, mark: st.mark, setMark: st.setMark, replayWindow: 128, esn: true });
    expect(a.aead.algorithm).toBe('rfc4106(gcm(aes))');
    expect(a.aead.key).toHaveLength(36);
    expect(a.aead.key.equals(b.aead.key)).toBe(false);
  });

  it('refuses an SA without AEAD', () => {
    expect(() => withRandomKey(sa(0x101, null, 0n, { aead: null }))).toThrow(/no AEAD algorithm/);
  });
});
