/** Two nodes' IPsec views for plan and diff tests: each node's local description and its record. */
import { X25519PrivateKey } from '../../agent/keys/x25519.js';
import type { LocalIpsecNode, RemoteIpsecNode } from '../../agent/reconcile/ipsec-desired.js';

export const BOOT_A = '0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f0';
export const BOOT_B = '1a2b3c4d-5e6f-4a0b-9c1d-2e3f4a5b6c7d';

export function localNode(
  name: string,
  bootId: string,
  addresses: string[],
  podCidrs: string[],
  identities: Record<number, number[]>,
  nodeGenerations: number[] = [1],
): LocalIpsecNode {
  return {
    name,
    bootId,
    addresses,
    podCidrs,
    nodeKey: { generations: nodeGenerations.map((generation) => ({ generation, privateKey: X25519PrivateKey.generate() })) },
    identities: Object.entries(identities).map(([id, gens]) => ({
      identity: Number(id),
      generations: gens.map((generation) => ({ generation, privateKey: X25519PrivateKey.generate() })),
    })),
  };
}

/** The record a node publishes for its local description (what verification hands peers). */
export function recordOf(l: LocalIpsecNode): RemoteIpsecNode {
  return {
    name: l.name,
    addresses: l.addresses,
    podCidrs: l.podCidrs,
    bootId: l.bootId,
    keys: [
      ...l.nodeKey.generations.map((g) => ({ kind: 'node' as const, identity: 0, generation: g.generation, publicKey: g.privateKey.publicKey.base64 })),
      ...l.identities.flatMap((k) =>
        k.generations.map((g) => ({ kind: 'identity' as const, identity: k.identity, generation: g.generation, publicKey: g.privateKey.publicKey.base64 })),
      ),
    ],
  };
}

export const twoNodes = () => ({
  a: localNode('node-a', BOOT_A, ['192.0.2.1'], ['10.244.1.0/24'], { 300: [1], 301: [1] }),
  b: localNode('node-b', BOOT_B, ['192.0.2.2'], ['10.244.2.0/24'], { 400: [1] }),
});
