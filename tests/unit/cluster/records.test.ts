import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { ClusterClient } from '../../../agent/cluster/client.js';
import { objectKey, parseObjectKey } from '../../../agent/cluster/keys.js';
import { checkRecord, decodeRecord, encodeRecord } from '../../../agent/cluster/records.js';
import { ValidationError } from '../../../agent/errors.js';
import { MemoryStore } from '../../../agent/store/memory-store.js';
import { clusterClientBehaviour, pod } from '../../support/cluster-client.js';

const fail = (m: string) => new Error(m);

describe('cluster records', () => {
  it('encode and decode round-trip every kind', () => {
    const node = { name: 'node-1', addresses: ['10.77.0.10', 'fd77::a'], podCidrs: ['10.78.1.0/24', 'fd78:0:0:1::/64'], labels: { zone: 'a' } };
    expect(decodeRecord('nodes', encodeRecord('nodes', node), fail)).toEqual(node);
    expect(decodeRecord('pods', encodeRecord('pods', pod('p')), fail)).toEqual(pod('p'));
    const ns = { name: 'team-a', labels: {} };
    expect(decodeRecord('namespaces', encodeRecord('namespaces', ns), fail)).toEqual(ns);
  });

  it('refuses invalid records on write with a ValidationError naming the problem', () => {
    expect(() => checkRecord('pods', pod('Bad_Name'))).toThrow(/Invalid pod name "Bad_Name"/);
    expect(() => checkRecord('pods', pod('p', { namespace: 'a/b' }))).toThrow(ValidationError);
    expect(() => checkRecord('pods', pod('p', { addresses: ['10.0.0.300'] }))).toThrow(/addresses\[0\]/);
    expect(() => checkRecord('pods', pod('p', { addresses: ['10.0.0.1', '10.0.0.1'] }))).toThrow(/twice/);
    expect(() => checkRecord('pods', pod('p', { labels: { 'bad key!': 'x' } }))).toThrow(/Label key/);
    expect(() => checkRecord('pods', { ...pod('p'), extra: 1 } as never)).toThrow(/unknown field "extra"/);
    expect(() => checkRecord('nodes', { name: 'n', addresses: [], podCidrs: ['10.78.1.5/24'], labels: {} })).toThrow(ValidationError);
    expect(() => checkRecord('policies', { name: 'p', namespace: 'a', manifest: '' })).toThrow(/manifest/);
  });

  it('decodeRecord() never throws anything but the caller’s error on garbage', () => {
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.from(b)), fc.json().map((j) => Buffer.from(j))), (buf) => {
        try {
          decodeRecord('pods', buf, (m) => new RangeError(m));
        } catch (err) {
          expect(err).toBeInstanceOf(RangeError);
        }
      }),
    );
  });

  it('keys split back into kind, namespace and name; stray shapes are null', () => {
    expect(parseObjectKey(objectKey('pods', 'p1', 'ns'))).toEqual({ kind: 'pods', namespace: 'ns', name: 'p1' });
    expect(parseObjectKey(objectKey('nodes', 'n1'))).toEqual({ kind: 'nodes', name: 'n1' });
    expect(parseObjectKey('/veil/cluster/pods/ns')).toBeNull();
    expect(parseObjectKey('/veil/cluster/nodes/a/b')).toBeNull();
    expect(parseObjectKey('/veil/cluster/secrets/a')).toBeNull();
  });

  it('the client refuses a namespace for cluster-scoped kinds and a bad name before the store', async () => {
    const c = new ClusterClient(new MemoryStore());
    await expect(c.get('nodes', 'n1', 'ns')).rejects.toThrow(/cluster-scoped/);
    await expect(c.get('pods', 'p1')).rejects.toThrow(ValidationError);
    await expect(c.get('pods', '../x', 'ns')).rejects.toThrow(ValidationError);
  });
});

describe('cluster client over the in-memory store', () => {
  clusterClientBehaviour(async () => new MemoryStore());
});
