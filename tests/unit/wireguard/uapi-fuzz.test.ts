/**
 * Property tests: whatever wireguard-go (or anything else on the socket) answers, the parsers
 * return a result or throw a UapiError — never another exception, never a crash.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { UapiError } from '../../../agent/errors.js';
import { encodeUapiSet, parseUapiGet, parseUapiSetResponse } from '../../../agent/wireguard/uapi.js';

const KEY = 'b85996fecc9c7f1fc6d2572a76eda11d59bcd20be8e543b15ce4bd85a8e75a33';
const VALID =
  'private_key=e84b5a6d2717c1003a13b431570353dbaca9146cf150c5f8575680feba52027a\nlisten_port=51820\n' +
  `public_key=${KEY}\npreshared_key=${'0'.repeat(64)}\nendpoint=[fd00::1]:51820\nlast_handshake_time_sec=5\n` +
  'last_handshake_time_nsec=7\ntx_bytes=1\nrx_bytes=2\npersistent_keepalive_interval=25\nallowed_ip=10.0.0.0/24\n' +
  'errno=0\n\n';

function parsesOrUapiError(buf: Buffer): void {
  for (const parse of [parseUapiGet, parseUapiSetResponse] as const) {
    try {
      parse(buf);
    } catch (err) {
      if (!(err instanceof UapiError)) throw err;
    }
  }
}

const line = fc.oneof(
  fc.constantFrom('errno', 'private_key', 'public_key', 'preshared_key', 'endpoint', 'allowed_ip', 'listen_port', 'fwmark', 'tx_bytes', 'rx_bytes', 'last_handshake_time_sec', 'last_handshake_time_nsec', 'persistent_keepalive_interval', 'protocol_version', 'x'),
).chain((k) =>
  fc.oneof(fc.string({ maxLength: 70 }), fc.constantFrom(KEY, '0', '-22', '18446744073709551616', '10.0.0.0/8', '[::1]:1', '1.2.3.4:5'), fc.string({ unit: fc.constantFrom(...'0123456789abcdef'), maxLength: 66 })).map((v) => `${k}=${v}`),
);

describe('UAPI parsers under garbage', () => {
  it('survive random bytes', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 600 }), (bytes) => parsesOrUapiError(Buffer.from(bytes))), { numRuns: 2000 });
  });

  it('survive plausible lines in random order and combinations', () => {
    fc.assert(
      fc.property(fc.array(line, { maxLength: 30 }), fc.boolean(), (lines, terminate) =>
        parsesOrUapiError(Buffer.from(lines.join('\n') + (terminate ? '\n\n' : ''), 'latin1')),
      ),
      { numRuns: 2000 },
    );
  });

  it('survive every truncation of a valid answer, and only the complete one parses', () => {
    const buf = Buffer.from(VALID, 'latin1');
    for (let n = 0; n < buf.length; n++) {
      expect(() => parseUapiGet(buf.subarray(0, n))).toThrow(UapiError);
    }
    expect(parseUapiGet(buf).peers).toHaveLength(1);
  });

  it('survive single-byte corruption of a valid answer', () => {
    const buf = Buffer.from(VALID, 'latin1');
    fc.assert(
      fc.property(fc.nat(buf.length - 1), fc.integer({ min: 0, max: 255 }), (at, b) => {
        const copy = Buffer.from(buf);
        copy[at] = b;
        parsesOrUapiError(copy);
      }),
      { numRuns: 2000 },
    );
  });

  it('round-trip: what the encoder writes for peers, a get answer with the same lines reads back', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 32 })), { minLength: 1, maxLength: 8 }),
        (peers) => {
          const req = encodeUapiSet({ peers: peers.map(([k, o, bits]) => ({ publicKey: Buffer.from(k), allowedIps: [`10.${o}.0.0/${bits}`] })) });
          const answer = Buffer.concat([req.subarray('set=1\n'.length, req.length - 1), Buffer.from('errno=0\n\n')]);
          const dev = parseUapiGet(answer);
          expect(dev.peers.map((p) => p.publicKey.toString('hex'))).toEqual(peers.map(([k]) => Buffer.from(k).toString('hex')));
        },
      ),
      { numRuns: 300 },
    );
  });
});
