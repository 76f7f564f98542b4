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
      [{ ...sampleRecord(), extra: 1 }, 'Malformed node record of "node-a" at "extra": unknown member "extra"; records of version 1 have version, name, addresses, podCidrs, bootId, keys, issuedAt, sequence, wireguard'],
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

  describe('the WireGuard channel state member', () => {
    const rotating = (wireguard: unknown) =>
      sampleRecord({
        keys: [
          { kind: 'node', identity: 0, generation: 4, publicKey: PUB, state: 'active' as const },
          { kind: 'node', identity: 0, generation: 5, publicKey: PUB, state: 'pending' as const },
        ],
        wireguard: wireguard as never,
      });

    it('is signed with the record as canonical JSON', () => {
      const r = rotating({ generations: [5, 4], draining: 0 });
      expect(validateNodeRecord(r)).toBe(r);
      expect(nodeRecordSigningBytes(r).toString('utf8')).toMatch(/"version":1,"wireguard":\{"draining":0,"generations":\[5,4\]\}\}$/);
      expect(nodeRecordSigningBytes(rotating({ generations: [5, 4], draining: null })).toString('utf8')).toMatch(/"wireguard":\{"draining":null,"generations":\[5,4\]\}\}$/);
    });

    it('refuses a hostile or inconsistent state whole, naming the member and the fix', () => {
      const cases: [unknown, string][] = [
        ['steady', 'at "wireguard": expected an object { generations: [g0, g1], draining: 0 | 1 | null }'],
        [[4, 5], 'at "wireguard": expected an object'],
        [{ generations: [5, 4], draining: 0, extra: true }, 'at "wireguard.extra": unknown member; the WireGuard channel state has generations, draining'],
        [{ generations: [5, 4] }, 'at "wireguard.draining": missing; use 0, 1 or null'],
        [{ generations: [5, 4], draining: 2 }, 'at "wireguard": "draining" is "2"; use 0, 1 or null'],
        [{ generations: [5], draining: null }, 'at "wireguard": "generations" is'],
        [{ generations: [5, 4, 4], draining: null }, 'use two generations, one per channel'],
        [{ generations: [5, 0], draining: null }, 'generation "0" is not an integer from 1 to 4294967295'],
        [{ generations: [5, 4.5], draining: null }, 'is not an integer'],
        [{ generations: '54', draining: null }, 'at "wireguard": "generations" is "54"'],
        [{ generations: [6, 4], draining: 0 }, 'at "wireguard.generations[0]": channel 0 names node key generation 6, which the record does not publish (it has 4, 5); publish the key with the channel state'],
        [{ generations: [5, 3], draining: 0 }, 'at "wireguard.generations[1]": channel 1 names node key generation 3'],
      ];
      for (const [wg, message] of cases) expect(malformed(rotating(wg)).message, JSON.stringify(wg)).toContain(message);
      // An identity key of that generation does not count: the channels carry node keys.
      const idOnly = sampleRecord({ wireguard: { generations: [3, 3], draining: null } });
      expect(malformed(idOnly).message).toContain('channel 0 names node key generation 3, which the record does not publish (it has 1)');
    });
  });
});
