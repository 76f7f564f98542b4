/** A well-formed node record for tests (unit and privileged). */
import type { NodeRecord } from '../../../agent/keys/node-record.js';
import { X25519PrivateKey } from '../../../agent/keys/x25519.js';

export const SAMPLE_PUBLIC_KEY = X25519PrivateKey.generate().publicKey.toBase64();

export function sampleRecord(over: Partial<NodeRecord> = {}): NodeRecord {
  return {
    version: 1,
    name: 'node-a',
    addresses: ['192.0.2.10', '2001:db8::a'],
    podCidrs: ['10.244.1.0/24', 'fd00:244:1::/64'],
    bootId: '0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0',
    keys: [
      { kind: 'node', identity: 0, generation: 1, publicKey: SAMPLE_PUBLIC_KEY, state: 'active' as const },
      { kind: 'identity', identity: 4242, generation: 3, publicKey: SAMPLE_PUBLIC_KEY, state: 'active' as const },
    ],
    issuedAt: 1_700_000_000_000,
    sequence: 1,
    ...over,
  };
}
