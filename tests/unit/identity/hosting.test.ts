import { describe, expect, it } from 'vitest';
import { IdentityNotHostedError, SpiffeIdError } from '../../../certs/errors.js';
import { verifySvid } from '../../../certs/verify.js';
import { IdentityAllocator } from '../../../agent/identity/allocator.js';
import { IdentityCorruptError } from '../../../agent/identity/errors.js';
import { hostedIdentities, storeHostingCheck } from '../../../agent/identity/hosting.js';
import { canonicalLabelSet } from '../../../agent/identity/labels.js';
import { IdentityReferences } from '../../../agent/identity/references.js';
import { MemoryStore } from '../../../agent/store/memory-store.js';
import { makePki, TD } from '../certs/pki-fixture.js';

const web = (app: string) => canonicalLabelSet({ namespace: 'default', serviceAccount: 'web', podLabels: { app } });
const db = canonicalLabelSet({ namespace: 'default', serviceAccount: 'db' });

async function setup() {
  const store = new MemoryStore();
  const alloc = new IdentityAllocator({ store });
  const refs = new IdentityReferences(store);
  const lease = await store.grantLease(60);
  return { store, alloc, refs, lease, hosts: storeHostingCheck(store, { trustDomain: TD }) };
}

describe('storeHostingCheck()', () => {
  it('says a node hosts a service account only while it references an identity of it', async () => {
    const { alloc, refs, lease, hosts } = await setup();
    const id = 'spiffe://cluster.local/ns/default/sa/web';
    expect(await hosts('node-1', id)).toBe(false);
    const d = await alloc.allocate(db);
    await refs.addReference(d.id, db, 'node-1', lease);
    expect(await hosts('node-1', id)).toBe(false); // another service account on the node
    const w = await alloc.allocate(web('v2'));
    await refs.addReference(w.id, web('v2'), 'node-2', lease);
    expect(await hosts('node-1', id)).toBe(false); // hosted, but by another node
    expect(await hosts('node-2', id)).toBe(true);
    await refs.addReference(w.id, web('v2'), 'node-1', lease);
    expect(await hosts('node-1', id)).toBe(true);
    await refs.removeReference(w.id, 'node-1');
    expect(await hosts('node-1', id)).toBe(false);
    // Only the exact node name counts ("node-2" references it, "de-2" does not).
    expect(await hosts('de-2', id)).toBe(false);
  });

  it('makes verifySvid() refuse an SVID minted by a node that does not host the identity', async () => {
    const pki = await makePki({ nodeName: 'node-1' });
    const { alloc, refs, lease, hosts } = await setup();
    const opts = { bundle: pki.bundle, trustDomain: TD, intermediates: pki.svid.chain, issuingNodeHostsIdentity: hosts };
    await expect(verifySvid(pki.svid.certificate, opts)).rejects.toBeInstanceOf(IdentityNotHostedError);
    const w = await alloc.allocate(web('v1'));
    await refs.addReference(w.id, web('v1'), 'node-1', lease);
    await expect(verifySvid(pki.svid.certificate, opts)).resolves.toMatchObject({ nodeName: 'node-1', serviceAccount: 'web' });
  });

  it('refuses another trust domain and fails closed on a corrupt store entry', async () => {
    const { store, hosts } = await setup();
    await expect(hosts('node-1', 'spiffe://other.example/ns/default/sa/web')).rejects.toBeInstanceOf(SpiffeIdError);
    await store.create('/veil/identities/refs/banana/node-1', Buffer.from('{}'));
    await expect(hosts('node-1', 'spiffe://cluster.local/ns/default/sa/web')).rejects.toBeInstanceOf(IdentityCorruptError);
  });
});

describe('hostedIdentities()', () => {
  it('lists the active identities a node references, with their service accounts, sorted by id', async () => {
    const { store, alloc, refs, lease } = await setup();
    expect(await hostedIdentities(store, 'node-1')).toEqual([]);
    const w = await alloc.allocate(web('v1'));
    const d = await alloc.allocate(db);
    await refs.addReference(d.id, db, 'node-1', lease);
    await refs.addReference(w.id, web('v1'), 'node-1', lease);
    await refs.addReference(w.id, web('v1'), 'node-2', lease);
    expect(await hostedIdentities(store, 'node-1')).toEqual(
      [
        { id: w.id, namespace: 'default', serviceAccount: 'web' },
        { id: d.id, namespace: 'default', serviceAccount: 'db' },
      ].sort((a, b) => a.id - b.id),
    );
    expect(await hostedIdentities(store, 'node-2')).toEqual([{ id: w.id, namespace: 'default', serviceAccount: 'web' }]);
    await refs.removeReference(d.id, 'node-1');
    expect(await hostedIdentities(store, 'node-1')).toEqual([{ id: w.id, namespace: 'default', serviceAccount: 'web' }]);
    expect(await hostedIdentities(store, 'de-1')).toEqual([]);
  });

  it('rejects a bad node name and fails closed on a corrupt record', async () => {
    const { store, alloc, refs, lease } = await setup();
    await expect(hostedIdentities(store, 'Bad Node')).rejects.toThrow(/Node name "Bad Node" is invalid/);
    const w = await alloc.allocate(web('v1'));
    await refs.addReference(w.id, web('v1'), 'node-1', lease);
    const kv = (await store.get(`/veil/identities/by-id/${w.id}`))!;
    await store.update(kv.key, Buffer.from('{"v":1,"hash":"x"'), kv.modRevision);
    await expect(hostedIdentities(store, 'node-1')).rejects.toBeInstanceOf(IdentityCorruptError);
  });
});
