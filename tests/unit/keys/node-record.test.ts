import { describe, expect, it } from 'vitest';
import { NodeRecordError } from '../../../agent/keys/errors.js';
import { MAX_RECORD_KEYS, validateNodeRecord } from '../../../agent/keys/node-record.js';
import { nodeRecordSigningBytes } from '../../../agent/keys/node-record-sign.js';
import { sampleRecord, SAMPLE_PUBLIC_KEY } from './sample-record.js';

const PUB = SAMPLE_PUBLIC_KEY;

function malformed(raw: unknown): NodeRecordError {
  try {
    validateNodeRecord(raw);
  } catch (err) {
    expect(err).toBeInstanceOf(NodeRecordError);
    expect((err as NodeRecordError).reason).toBe('malformed');
    return err as NodeRecordError;
  }
  throw new Error('Expected a NodeRecordError');
}

describe('node records', () => {
  it('accepts a well-formed record and signs it as context + canonical JSON', () => {
    const r = sampleRecord();
    expect(validateNodeRecord(r)).toBe(r);
    const bytes = nodeRecordSigningBytes(r).toString('utf8');
    expect(bytes).toBe(
      'veil/node-record/v1\n' +
        '{"addresses":["192.0.2.10","2001:db8::a"],"bootId":"0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0","issuedAt":1700000000000,' +
        `"keys":[{"generation":1,"identity":0,"kind":"node","publicKey":"${PUB}","state":"active"},{"generation":3,"identity":4242,"kind":"identity","publicKey":"${PUB}","state":"active"}],` +
        '"name":"node-a","podCidrs":["10.244.1.0/24","fd00:244:1::/64"],"sequence":1,"version":1}',
    );
  });

  it('refuses each malformed member, naming it and the fix', () => {
    const cases: [unknown, string][] = [
      [null, 'Malformed node record at "record": expected an object'],
      [{ ...sampleRecord(), extra: 1 }, 'Malformed node record of "node-a" at "extra": unknown member "extra"; records of version 1 have version, name, addresses, podCidrs, bootId, keys, issuedAt, sequence'],
      [sampleRecord({ version: 2 as 1 }), 'Malformed node record of "node-a" at "version": got "2", this agent reads version 1'],
      [sampleRecord({ name: 'Node_A' }), 'Malformed node record at "name": got "Node_A"; use a Kubernetes node name (lowercase DNS-1123 subdomain, at most 253 characters)'],
      [sampleRecord({ addresses: [] }), 'Malformed node record of "node-a" at "addresses": has 0 entries; use 1 to 16'],
      [sampleRecord({ addresses: ['2001:DB8::A'] }), 'Malformed node record of "node-a" at "addresses[0]": "2001:DB8::A" is not in canonical form; write "2001:db8::a"'],
      [sampleRecord({ addresses: ['192.0.2.1', '192.0.2.1'] }), 'Malformed node record of "node-a" at "addresses[1]": "192.0.2.1" is listed twice'],
      [sampleRecord({ podCidrs: ['10.244.1.7/24'] }), 'Malformed node record of "node-a" at "podCidrs[0]": "10.244.1.7/24" is not in canonical form; write "10.244.1.0/24"'],
      [sampleRecord({ podCidrs: ['banana'] }), 'Malformed node record of "node-a" at "podCidrs[0]": got "banana"; use a CIDR such as "10.244.1.0/24"'],
      [sampleRecord({ bootId: 'not-a-uuid' }), 'Malformed node record of "node-a" at "bootId": got "not-a-uuid"; use the lowercase UUID from /proc/sys/kernel/random/boot_id'],
      [sampleRecord({ keys: [{ kind: 'identity', identity: 9, generation: 1, publicKey: PUB, state: 'active' as const }] }), 'Malformed node record of "node-a" at "keys": has no node key; publish at least one key of kind "node"'],
      [sampleRecord({ keys: [{ kind: 'node', identity: 3, generation: 1, publicKey: PUB, state: 'active' as const }] }), 'Malformed node record of "node-a" at "keys[0].identity": got "3"; a node key has identity 0'],
      [sampleRecord({ keys: [{ kind: 'node', identity: 0, generation: 0, publicKey: PUB, state: 'active' as const }] }), 'Malformed node record of "node-a" at "keys[0].generation": got "0"; use an integer from 1 to 4294967295'],
      [sampleRecord({ keys: [{ kind: 'node', identity: 0, generation: 1, publicKey: 'short', state: 'active' as const }] }), 'Malformed node record of "node-a" at "keys[0].publicKey": expected 44 characters of base64 encoding a 32-byte X25519 public key'],
      [
        sampleRecord({ keys: [{ kind: 'node', identity: 0, generation: 1, publicKey: PUB, state: 'active' as const }, { kind: 'node', identity: 0, generation: 1, publicKey: PUB, state: 'active' as const }] }),
        'Malformed node record of "node-a" at "keys[1]": a second node key with identity 0 and generation 1',
      ],
      [sampleRecord({ keys: [{ kind: 'node', identity: 0, generation: 1, publicKey: PUB, state: 'retired' as never }] }), 'Malformed node record of "node-a" at "keys[0].state": got "retired"; use "pending", "active", "superseded"'],
      [
        sampleRecord({ keys: [{ kind: 'node', identity: 0, generation: 1, publicKey: PUB, state: 'active' as const }, { kind: 'node', identity: 0, generation: 2, publicKey: PUB, state: 'active' as const }] }),
        'Malformed node record of "node-a" at "keys[1].state": a second active generation of the node key with identity 0; a key slot has at most one pending, one active and one superseded generation',
      ],
      [sampleRecord({ issuedAt: 1.5 }), 'Malformed node record of "node-a" at "issuedAt": got "1.5"; use milliseconds since the Unix epoch'],
      [sampleRecord({ sequence: 0 }), 'Malformed node record of "node-a" at "sequence": got "0"; use an integer >= 1, increased with every record'],
    ];
    for (const [raw, message] of cases) expect(malformed(raw).message).toBe(message);
  });

  it('bounds the number of keys', () => {
    const keys = Array.from({ length: MAX_RECORD_KEYS + 1 }, (_, i) => ({ kind: 'node' as const, identity: 0, generation: i + 1, publicKey: PUB, state: 'active' as const }));
    expect(malformed(sampleRecord({ keys })).message).toMatch(/at "keys": has 2049 entries; use 1 to 2048/);
  });
});
