import { describe, expect, it } from 'vitest';
import { X25519PrivateKey } from '../../../agent/keys/x25519.js';
import { identitySendingGeneration, LocalIpsecKeys } from '../../../agent/node-agent/ipsec-local-keys.js';
import { validateLocalNode } from '../../../agent/reconcile/ipsec-desired.js';

const base = { name: 'node-a', bootId: '0f0e0d0c-0b0a-4908-8706-050403020100', addresses: ['10.77.0.11', 'fd77::11'], podCidrs: ['10.78.1.0/24', 'fd78:0:0:1::/64'] };
const NODE = { kind: 'node' as const, identity: 0 };
const id = (identity: number) => ({ kind: 'identity' as const, identity });
const gens = (k: { generations: { generation: number }[] } | undefined) => k?.generations.map((g) => g.generation);

describe('LocalIpsecKeys: the local node the IPsec reconciler plans with', () => {
  it('node() is null until a node key is held, identity keys alone do not make a node', () => {
    const l = new LocalIpsecKeys(base);
    l.install(id(300), 1, X25519PrivateKey.generate());
    expect(l.node()).toBeNull();
    l.install(NODE, 1, X25519PrivateKey.generate());
    const n = l.node()!;
    expect(validateLocalNode(n)).toBe(n);
    expect({ name: n.name, node: gens(n.nodeKey), ids: n.identities.map((i) => [i.identity, gens(i)]) }).toEqual({ name: 'node-a', node: [1], ids: [[300, [1]]] });
  });

  it('install holds a generation without sending with it; activate makes it the sending one', () => {
    const l = new LocalIpsecKeys(base);
    const k1 = X25519PrivateKey.generate();
    l.activate(NODE, 1, k1);
    l.activate(id(300), 4, X25519PrivateKey.generate());
    l.install(id(300), 5, X25519PrivateKey.generate());
    let n = l.node()!;
    expect(n.identities[0]).toMatchObject({ identity: 300, sending: 4 });
    expect(gens(n.identities[0])).toEqual([4, 5]);
    expect(identitySendingGeneration(n, 300)).toBe(4);
    l.activate(id(300), 5, X25519PrivateKey.generate());
    n = l.node()!;
    expect(identitySendingGeneration(n, 300)).toBe(5);
    expect(n.nodeKey).toEqual({ generations: [{ generation: 1, privateKey: k1 }], sending: 1 });
  });

  it('without an activation no generation sends (receivers may not have its inbound SA yet)', () => {
    const l = new LocalIpsecKeys(base);
    l.install(NODE, 1, X25519PrivateKey.generate());
    l.install(id(7), 2, X25519PrivateKey.generate());
    l.install(id(7), 3, X25519PrivateKey.generate());
    const n = l.node()!;
    expect(n.identities[0]!.sending).toBeUndefined();
    expect(identitySendingGeneration(n, 7)).toBeNull();
    expect(identitySendingGeneration(n, 8)).toBeNull();
    expect(identitySendingGeneration(null, 7)).toBeNull();
  });

  it('retire drops a generation; a retired sending generation falls back to the newest; an identity with none left is gone', () => {
    const l = new LocalIpsecKeys(base);
    l.activate(NODE, 1, X25519PrivateKey.generate());
    l.activate(id(300), 1, X25519PrivateKey.generate());
    l.install(id(300), 2, X25519PrivateKey.generate());
    l.activate(id(301), 1, X25519PrivateKey.generate());
    expect(l.retire(id(300), 1)).toBe(true);
    expect(l.node()!.identities.find((i) => i.identity === 300)).toEqual({ identity: 300, generations: [expect.objectContaining({ generation: 2 })] });
    expect(identitySendingGeneration(l.node(), 300)).toBeNull();
    expect(l.retire(id(300), 1)).toBe(false);
    expect(l.retire(id(999), 1)).toBe(false);
    expect(l.retire(id(301), 1)).toBe(true);
    expect(l.identities()).toEqual([300]);
  });

  it('install and activate are idempotent (the key manager repeats them after a restart)', () => {
    const l = new LocalIpsecKeys(base);
    const k = X25519PrivateKey.generate();
    l.activate(NODE, 2, k);
    l.install(NODE, 2, k);
    l.activate(NODE, 2, k);
    expect(l.node()!.nodeKey).toEqual({ generations: [{ generation: 2, privateKey: k }], sending: 2 });
  });

  it('identities are listed ascending whatever the install order', () => {
    const l = new LocalIpsecKeys(base);
    l.install(NODE, 1, X25519PrivateKey.generate());
    for (const i of [900, 300, 512]) l.install(id(i), 1, X25519PrivateKey.generate());
    expect(l.identities()).toEqual([300, 512, 900]);
    expect(l.node()!.identities.map((i) => i.identity)).toEqual([300, 512, 900]);
  });
});
