import { sign, createPrivateKey } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NodeRecordError, type NodeRecordRejectReason } from '../../../agent/keys/errors.js';
import type { NodeRecord } from '../../../agent/keys/node-record.js';
import { nodeRecordSigningBytes, serializeSignedNodeRecord, signNodeRecord, type SignedNodeRecord } from '../../../agent/keys/node-record-sign.js';
import { NodeRecordVerifier, verifyNodeRecord, type VerifyNodeRecordOptions } from '../../../agent/keys/node-record-verify.js';
import { sampleRecord } from '../../unit/keys/sample-record.js';
import { openssl, OpensslPki, type Issued, type TestCa } from '../../support/openssl-pki.js';

let pki: OpensslPki;
let ca: TestCa;
let ca2: TestCa;
let rogueCa: TestCa;
let nodeA: Issued;
let nodeAEd: Issued;
let nodeB: Issued;
let nodeAUnderCa2: Issued;
let nodeAByRogue: Issued;


beforeAll(() => {
  pki = new OpensslPki();
  ca = pki.createCa('veil-ca', 'p256');
  ca2 = pki.createCa('veil-ca-next', 'ed25519');
  rogueCa = pki.createCa('veil-ca', 'p256'); // same name, different key
  nodeA = pki.issueNode(ca, 'node-a', 'p256');
  nodeAEd = pki.issueNode(ca, 'node-a', 'ed25519');
  nodeB = pki.issueNode(ca, 'node-b', 'p256');
  nodeAUnderCa2 = pki.issueNode(ca2, 'node-a', 'p256');
  nodeAByRogue = pki.issueNode(rogueCa, 'node-a', 'p256');
});
afterAll(() => pki?.cleanup());

/** The verifier's clock: inside the test certificates' validity (issued now, valid 2 days). */
const now = () => Date.now();

function signed(record: NodeRecord, who: Issued = nodeA): SignedNodeRecord {
  return signNodeRecord(record, { privateKey: who.keyPem, certificate: who.certPem });
}

function rejected(wire: string | Buffer, opts: Partial<VerifyNodeRecordOptions> = {}): NodeRecordError {
  try {
    verifyNodeRecord(wire, { trustAnchors: [ca.certPem], now: now(), ...opts });
  } catch (err) {
    expect(err).toBeInstanceOf(NodeRecordError);
    return err as NodeRecordError;
  }
  throw new Error('Expected the record to be rejected');
}

function expectReason(wire: string | Buffer, reason: NodeRecordRejectReason, opts: Partial<VerifyNodeRecordOptions> = {}): NodeRecordError {
  const err = rejected(wire, opts);
  expect({ reason: err.reason, message: err.message }).toMatchObject({ reason });
  expect(err.code).toBe('VEIL_NODE_RECORD');
  return err;
}

const rec = (over: Partial<NodeRecord> = {}) => sampleRecord({ issuedAt: Date.now(), ...over });

describe('signed node records', () => {
  it('signs with an ECDSA P-256 node key and verifies against the CA', () => {
    const s = signed(rec());
    expect(s.algorithm).toBe('ecdsa-p256-sha256');
    const out = verifyNodeRecord(serializeSignedNodeRecord(s), { trustAnchors: [ca.certPem], now: now() });
    expect(out.record).toEqual(s.record);
    expect(out.certificateFingerprint).toMatch(/^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
  });

  it('signs with an Ed25519 node key and verifies', () => {
    const s = signed(rec(), nodeAEd);
    expect(s.algorithm).toBe('ed25519');
    expect(verifyNodeRecord(serializeSignedNodeRecord(s), { trustAnchors: [ca.certPem], now: now() }).algorithm).toBe('ed25519');
  });

  it('produces signatures that openssl verifies over the documented bytes', () => {
    for (const who of [nodeA, nodeAEd]) {
      const s = signed(rec(), who);
      const dir = pki.root;
      const data = join(dir, 'record.bin');
      const sig = join(dir, 'record.sig');
      const pub = join(dir, 'node.pub');
      writeFileSync(data, nodeRecordSigningBytes(s.record));
      writeFileSync(sig, Buffer.from(s.signature, 'base64'));
      writeFileSync(pub, openssl(['x509', '-in', who.certPath, '-pubkey', '-noout']));
      const out =
        s.algorithm === 'ed25519'
          ? openssl(['pkeyutl', '-verify', '-rawin', '-pubin', '-inkey', pub, '-in', data, '-sigfile', sig])
          : openssl(['dgst', '-sha256', '-verify', pub, '-signature', sig, data]);
      expect(out.toString()).toMatch(/Verified OK|Signature Verified Successfully/);
    }
  });

  it('accepts certificates of either CA in a two-CA trust bundle (CA rotation)', () => {
    const wire = serializeSignedNodeRecord(signed(rec(), nodeAUnderCa2));
    expectReason(wire, 'certificate_untrusted');
    expect(verifyNodeRecord(wire, { trustAnchors: [ca.certPem, ca2.certPem], now: now() }).record.name).toBe('node-a');
  });

  it('rejects an unsigned record', () => {
    const s = signed(rec());
    const err = expectReason(JSON.stringify({ ...s, signature: '' }), 'unsigned');
    expect(err.node).toBe('node-a');
    const { signature: _drop, ...noSig } = s;
    expectReason(JSON.stringify(noSig), 'unsigned');
  });

  it('rejects a tampered record (any member changed after signing)', () => {
    const s = signed(rec());
    const tamperings: Partial<NodeRecord>[] = [
      { addresses: ['192.0.2.66'] },
      { podCidrs: ['10.244.9.0/24'] },
      { bootId: '99999999-2222-4333-8444-555555555555' },
      { sequence: 2 },
      { keys: [{ kind: 'node', identity: 0, generation: 2, publicKey: s.record.keys[0]!.publicKey, state: 'active' as const }] },
    ];
    for (const t of tamperings) {
      const err = expectReason(serializeSignedNodeRecord({ ...s, record: { ...s.record, ...t } }), 'signature_invalid');
      expect(err.message).toBe('Rejected node record of node "node-a": the signature does not match the record and its node certificate (the record was altered or signed with another key)');
    }
  });

  it("rejects a record signed with a key that is not its certificate's", () => {
    const s = signed(rec());
    const otherSig = sign('sha256', nodeRecordSigningBytes(s.record), createPrivateKey(nodeB.keyPem)).toString('base64');
    expectReason(serializeSignedNodeRecord({ ...s, signature: otherSig }), 'signature_invalid');
    // And a signature whose algorithm field disagrees with the certificate's key.
    expectReason(serializeSignedNodeRecord({ ...s, algorithm: 'ed25519' }), 'signature_invalid');
  });

  it('rejects a certificate that does not chain to the CA, even with the same CA name', () => {
    const err = expectReason(serializeSignedNodeRecord(signed(rec(), nodeAByRogue)), 'certificate_untrusted');
    expect(err.message).toBe('Rejected node record of node "node-a": its certificate (issuer "CN=veil-ca") is not issued by a trusted cluster CA');
  });

  it("rejects a record whose certificate is another node's", () => {
    // node-b signs a record claiming to be node-a (signNodeRecord itself refuses to).
    expect(() => signed(rec(), nodeB)).toThrow(NodeRecordError);
    const r = rec();
    const forged: SignedNodeRecord = {
      record: r,
      certificate: nodeB.certPem,
      algorithm: 'ecdsa-p256-sha256',
      signature: sign('sha256', nodeRecordSigningBytes(r), createPrivateKey(nodeB.keyPem)).toString('base64'),
    };
    const err = expectReason(serializeSignedNodeRecord(forged), 'certificate_name_mismatch');
    expect(err.message).toBe('Rejected node record of node "node-a": its certificate is for node "node-b"');
    // A genuine node-a record published under node-b's name.
    expectReason(serializeSignedNodeRecord(signed(rec())), 'certificate_name_mismatch', { expectedNode: 'node-b' });
  });

  it('rejects an expired certificate and an invalid one', () => {
    const wire = serializeSignedNodeRecord(signed(rec()));
    expectReason(wire, 'certificate_expired', { now: Date.now() + 3 * 86_400_000, maxFutureSkewMs: 10 * 86_400_000 });
    const s = signed(rec());
    expectReason(JSON.stringify({ ...s, certificate: '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n' }), 'certificate_invalid');
    expectReason(JSON.stringify({ ...s, certificate: ca.certPem }), 'certificate_invalid'); // a CA cannot sign records
  });

  it('rejects stale records: an older or equal sequence, or an older issued-at', () => {
    const t = Date.now();
    const wire = serializeSignedNodeRecord(signed(rec({ sequence: 5, issuedAt: t })));
    expectReason(wire, 'stale_sequence', { last: { sequence: 5, issuedAt: t } });
    expectReason(wire, 'stale_sequence', { last: { sequence: 9, issuedAt: t - 1 } });
    expectReason(wire, 'stale_issued_at', { last: { sequence: 4, issuedAt: t + 1 } });
    expect(verifyNodeRecord(wire, { trustAnchors: [ca.certPem], now: now(), last: { sequence: 4, issuedAt: t } }).record.sequence).toBe(5);
  });

  it('rejects a record issued further in the future than the allowed skew', () => {
    const wire = serializeSignedNodeRecord(signed(rec({ issuedAt: Date.now() + 120_000 })));
    expectReason(wire, 'future_issued_at');
    expect(verifyNodeRecord(wire, { trustAnchors: [ca.certPem], now: now(), maxFutureSkewMs: 300_000 }).record.name).toBe('node-a');
  });

  it('rejects oversized and malformed wire input before trusting any of it', () => {
    const wire = serializeSignedNodeRecord(signed(rec()));
    expectReason(wire, 'oversized', { maxBytes: 100 });
    expectReason('x'.repeat(300 * 1024), 'oversized');
    expectReason('{not json', 'malformed');
    expectReason('[]', 'malformed');
    expectReason(JSON.stringify({ ...JSON.parse(wire), extra: 1 }), 'malformed');
    expectReason(JSON.stringify({ ...JSON.parse(wire), record: { ...JSON.parse(wire).record, name: 'UPPER' } }), 'malformed');
    expectReason(JSON.stringify({ ...JSON.parse(wire), signature: 'not base64!' }), 'malformed');
    expectReason(JSON.stringify({ ...JSON.parse(wire), algorithm: 'rsa' }), 'malformed');
  });

  it('remembers the last accepted record per node and refuses a replay', () => {
    const v = new NodeRecordVerifier({ trustAnchors: [ca.certPem] });
    const t = Date.now();
    const first = serializeSignedNodeRecord(signed(rec({ sequence: 1, issuedAt: t })));
    const second = serializeSignedNodeRecord(signed(rec({ sequence: 2, issuedAt: t + 1 })));
    expect(v.verify(first).record.sequence).toBe(1);
    expect(v.verify(second).record.sequence).toBe(2);
    let err: unknown;
    try {
      v.verify(first);
    } catch (e) {
      err = e;
    }
    expect((err as NodeRecordError).reason).toBe('stale_sequence');
    v.forget('node-a');
    expect(v.verify(first).record.sequence).toBe(1);
  });

  it('refuses to sign with a key that is not the certificate\'s, without echoing the key', () => {
    let err: unknown;
    try {
      signNodeRecord(rec(), { privateKey: nodeB.keyPem, certificate: nodeA.certPem });
    } catch (e) {
      err = e;
    }
    expect((err as Error).message).toBe('The private key does not belong to node certificate "CN=node-a": pass that certificate\'s key');
    const body = nodeB.keyPem.split('\n').slice(1, 3).join('');
    expect(JSON.stringify({ m: (err as Error).message, s: (err as Error).stack })).not.toContain(body.slice(0, 20));
    expect(() => signNodeRecord(rec(), { privateKey: 'not a pem', certificate: nodeA.certPem })).toThrow(/Invalid node private key/);
  });
});
