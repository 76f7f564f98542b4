import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CertificateRecordError } from '../../../agent/node-cert/errors.js';
import { encodeRequest, encodeResponse, parseRequest, parseResponse, requestSigningData, type CertificateRequest } from '../../../agent/node-cert/records.js';

const CSR = '-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n-----END CERTIFICATE REQUEST-----\n';
const kv = (value: Buffer | string, key = '/veil/certs/requests/node-a') => ({ key, value: Buffer.from(value), createRevision: '1', modRevision: '1' });
const req: CertificateRequest = {
  node: 'node-a',
  requestId: 'ab'.repeat(16),
  createdAt: new Date('2026-12-07T21:00:00.000Z'),
  csrPem: CSR,
  proof: { kind: 'bootstrap-token', signature: Buffer.from('sig') },
};

describe('certificate request records', () => {
  it('round-trip both proof kinds', () => {
    expect(parseRequest(kv(encodeRequest(req)), 'node-a')).toEqual(req);
    const renewal: CertificateRequest = { ...req, proof: { kind: 'node-certificate', certificatePem: '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n', signature: Buffer.from('s2') } };
    expect(parseRequest(kv(encodeRequest(renewal)), 'node-a')).toEqual(renewal);
  });

  it('binds the proof to node, request, time, kind and CSR', () => {
    const base = requestSigningData(req, 'bootstrap-token');
    expect(requestSigningData({ ...req, node: 'node-b' }, 'bootstrap-token').equals(base)).toBe(false);
    expect(requestSigningData({ ...req, requestId: 'cd'.repeat(16) }, 'bootstrap-token').equals(base)).toBe(false);
    expect(requestSigningData({ ...req, createdAt: new Date(req.createdAt.getTime() + 1) }, 'bootstrap-token').equals(base)).toBe(false);
    expect(requestSigningData(req, 'node-certificate').equals(base)).toBe(false);
    expect(requestSigningData({ ...req, csrPem: CSR.replace('MIIB', 'MIIC') }, 'bootstrap-token').equals(base)).toBe(false);
  });

  it('refuses a request stored under another node\'s key', () => {
    expect(() => parseRequest(kv(encodeRequest(req)), 'node-b')).toThrow(/names node "node-a", not the node of its key/);
  });

  it('refuses unknown fields, bad ids, times, proofs and oversized records', () => {
    const o = JSON.parse(encodeRequest(req).toString()) as Record<string, unknown>;
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ ...o, extra: 1 }, /unknown field "extra"/],
      [{ ...o, requestId: 'XYZ' }, /"requestId"/],
      [{ ...o, createdAt: '2026-12-07' }, /"createdAt"/],
      [{ ...o, csr: 'not pem' }, /"csr" is not a PEM block/],
      [{ ...o, proof: { kind: 'password', signature: 'AA==' } }, /"proof.kind"/],
      [{ ...o, proof: { kind: 'bootstrap-token', signature: 'AA==', token: 'x' } }, /unknown field "proof.token"/],
      [{ ...o, proof: { kind: 'bootstrap-token', signature: '***' } }, /not base64/],
      [{ ...o, v: 2 }, /version 1/],
    ];
    for (const [value, re] of cases) expect(() => parseRequest(kv(JSON.stringify(value)), 'node-a')).toThrow(re);
    expect(() => parseRequest(kv(Buffer.alloc(70_000, 32)), 'node-a')).toThrow(/more than 65536/);
  });

  it('never throws anything but CertificateRecordError on garbage', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.json(), fc.uint8Array({ maxLength: 200 })), (v) => {
        try {
          parseRequest(kv(typeof v === 'string' ? v : Buffer.from(v)), 'node-a');
        } catch (err) {
          expect(err).toBeInstanceOf(CertificateRecordError);
        }
        try {
          parseResponse(kv(typeof v === 'string' ? v : Buffer.from(v), '/veil/certs/issued/node-a'), 'node-a');
        } catch (err) {
          expect(err).toBeInstanceOf(CertificateRecordError);
        }
      }),
    );
  });

  it('round-trips responses and refuses unknown reasons', () => {
    const issued = { node: 'node-a', requestId: req.requestId, answered: ['cd'.repeat(16)], status: 'issued' as const, certificatePem: '-----BEGIN CERTIFICATE-----\nA\n-----END CERTIFICATE-----\n' };
    expect(parseResponse(kv(encodeResponse(issued)), 'node-a')).toEqual(issued);
    const refused = { node: 'node-a', requestId: req.requestId, answered: [], status: 'refused' as const, reason: 'no-token' as const, message: 'No token' };
    expect(parseResponse(kv(encodeResponse(refused)), 'node-a')).toEqual(refused);
    expect(() => parseResponse(kv(JSON.stringify({ ...JSON.parse(encodeResponse(refused).toString()), reason: 'because' })), 'node-a')).toThrow(/"reason" "because" is unknown/);
  });
});
