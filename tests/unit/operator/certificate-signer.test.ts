import { describe, expect, it } from 'vitest';
import { ClusterClient } from '../../../agent/cluster/client.js';
import { putValue } from '../../../agent/node-cert/put-value.js';
import { encodeRequest, encodeResponse } from '../../../agent/node-cert/records.js';
import { createNodeCsr } from '../../../certs/node-csr.js';
import { issuedKey, requestKey } from '../../../agent/node-cert/store-keys.js';
import { CertificateSigner } from '../../../agent/operator/certificate-signer.js';
import { MemoryStore } from '../../../agent/store/memory-store.js';
import { createClusterCa } from '../../../certs/cluster-ca.js';

const ca = await createClusterCa({ trustDomain: 'oc.veil.lab' });

describe('CertificateSigner on hostile records', () => {
  it('deletes a key that names no node, and a malformed request, without answering or signing', async () => {
    const store = new MemoryStore();
    const cluster = new ClusterClient(store);
    await cluster.put('nodes', { name: 'node-a', addresses: ['10.0.0.1'], podCidrs: ['10.1.0.0/24'], labels: {} });
    const refused: string[] = [];
    const issued: string[] = [];
    const signer = new CertificateSigner({ store, cluster, ca, onRefused: (r) => refused.push(r), onIssued: (p) => issued.push(p) });
    const junk = await putValue(store, '/veil/certs/requests/UPPER', Buffer.from('{}'));
    expect(await signer.handle(junk)).toEqual({ node: '/veil/certs/requests/UPPER', status: 'ignored' });
    expect(await store.get(junk.key)).toBeNull();
    const bad = await putValue(store, requestKey('node-a'), Buffer.from(JSON.stringify({ v: 1, node: 'node-b' })));
    expect(await signer.handle(bad)).toEqual({ node: 'node-a', status: 'refused', reason: 'malformed' });
    expect(await store.get(requestKey('node-a'))).toBeNull();
    expect(await store.get(issuedKey('node-a'))).toBeNull(); // no request id to answer
    expect(refused).toEqual(['malformed']);
    expect(issued).toEqual([]);
  });

  it('leaves a request alone that was replaced after it was read', async () => {
    const store = new MemoryStore();
    const signer = new CertificateSigner({ store, cluster: new ClusterClient(store), ca });
    const old = await putValue(store, requestKey('node-a'), Buffer.from('{}'));
    await putValue(store, requestKey('node-a'), Buffer.from('{"v":1}'));
    expect(await signer.handle(old)).toEqual({ node: 'node-a', status: 'ignored' });
    expect(await store.get(requestKey('node-a'))).not.toBeNull();
  });

  it('never overwrites an answer written by another replica while it was refusing', async () => {
    const store = new MemoryStore();
    const otherAnswer = encodeResponse({ node: 'node-a', requestId: 'ab'.repeat(16), answered: [], status: 'issued', certificatePem: ca.certificate.pem });
    // The cluster lookup happens between reading the answer and writing the refusal: another replica answers then.
    const cluster = {
      get: async () => {
        await putValue(store, issuedKey('node-a'), otherAnswer);
        return null;
      },
    } as unknown as ClusterClient;
    const signer = new CertificateSigner({ store, cluster, ca });
    const csr = await createNodeCsr({ nodeName: 'node-a' });
    const req = await putValue(
      store,
      requestKey('node-a'),
      encodeRequest({ node: 'node-a', requestId: 'ab'.repeat(16), createdAt: new Date(), csrPem: csr.csrPem, proof: { kind: 'bootstrap-token', signature: Buffer.from('x') } }),
    );
    expect(await signer.handle(req)).toEqual({ node: 'node-a', status: 'refused', reason: 'unknown-node' });
    expect((await store.get(issuedKey('node-a')))!.value.equals(otherAnswer)).toBe(true);
  });
});
