/**
 * The behaviour every Store implementation must give the cluster client, run against the
 * in-memory store (unit tier) and a real etcd (privileged tier).
 */
import { expect, it } from 'vitest';
import { ClusterClient, type ClusterEvent } from '../../agent/cluster/client.js';
import type { ClusterRecordError } from '../../agent/cluster/errors.js';
import type { ClusterPod } from '../../agent/cluster/records.js';
import type { Store } from '../../agent/store/store.js';
import { eventually } from './netns.js';

export const pod = (name: string, over: Partial<ClusterPod> = {}): ClusterPod => ({
  name,
  namespace: 'team-a',
  labels: { app: 'client' },
  serviceAccount: 'default',
  node: 'node-1',
  addresses: ['10.78.1.2', 'fd78:0:0:1::2'],
  ...over,
});

export function clusterClientBehaviour(makeStore: () => Promise<Store>): void {
  it('put() then get() and list() return the canonical record', async () => {
    const store = await makeStore();
    const c = new ClusterClient(store);
    await c.put('pods', pod('p1', { addresses: ['fd78:0000:0:1::2'], labels: { z: '1', app: 'a' } }));
    await c.put('pods', pod('p2', { namespace: 'team-b' }));
    const got = await c.get('pods', 'p1', 'team-a');
    expect(got?.record).toEqual(pod('p1', { addresses: ['fd78:0:0:1::2'], labels: { app: 'a', z: '1' } }));
    expect(got?.key).toBe('/veil/cluster/pods/team-a/p1');
    expect((await c.list('pods')).items.map((o) => o.record.name).sort()).toEqual(['p1', 'p2']);
    expect((await c.list('pods', 'team-b')).items.map((o) => o.record.name)).toEqual(['p2']);
    await c.put('nodes', { name: 'node-1', addresses: ['10.77.0.10'], podCidrs: ['10.78.1.0/24'], labels: {} });
    expect((await c.get('nodes', 'node-1'))?.record.podCidrs).toEqual(['10.78.1.0/24']);
    await c.put('namespaces', { name: 'team-a', labels: { team: 'a' } });
    expect((await c.get('namespaces', 'team-a'))?.record.labels).toEqual({ team: 'a' });
    await c.put('policies', { name: 'deny', namespace: 'team-a', manifest: 'kind: NetworkPolicy\n' });
    expect((await c.get('policies', 'deny', 'team-a'))?.record.manifest).toBe('kind: NetworkPolicy\n');
  });

  it('put() replaces an existing object and delete() removes it once', async () => {
    const c = new ClusterClient(await makeStore());
    await c.put('pods', pod('p1'));
    await c.put('pods', pod('p1', { labels: { app: 'server' } }));
    expect((await c.get('pods', 'p1', 'team-a'))?.record.labels).toEqual({ app: 'server' });
    expect(await c.delete('pods', 'p1', 'team-a')).toBe(true);
    expect(await c.delete('pods', 'p1', 'team-a')).toBe(false);
    expect(await c.get('pods', 'p1', 'team-a')).toBeNull();
  });

  it('list() skips hostile records and reports each through onInvalid', async () => {
    const store = await makeStore();
    const invalid: ClusterRecordError[] = [];
    const c = new ClusterClient(store, { onInvalid: (e) => invalid.push(e) });
    await c.put('pods', pod('good'));
    await store.create('/veil/cluster/pods/team-a/notjson', Buffer.from('{'));
    await store.create('/veil/cluster/pods/team-a/renamed', Buffer.from(JSON.stringify({ v: 1, ...pod('other') })));
    await store.create('/veil/cluster/pods/team-a/extra', Buffer.from(JSON.stringify({ v: 1, ...pod('extra'), evil: 1 })));
    await store.create('/veil/cluster/pods/team-a/newer', Buffer.from(JSON.stringify({ ...pod('newer'), v: 2 })));
    await store.create('/veil/cluster/pods/team-a/x/y', Buffer.from('{}'));
    const items = (await c.list('pods')).items;
    expect(items.map((o) => o.record.name)).toEqual(['good']);
    expect(invalid).toHaveLength(5);
    expect(invalid.map((e) => e.code)).toEqual(Array(5).fill('VEIL_CLUSTER_CORRUPT'));
    expect(invalid.map((e) => e.message).join('\n')).toMatch(/not the object of its key/);
    await expect(c.get('pods', 'notjson', 'team-a')).rejects.toMatchObject({ code: 'VEIL_CLUSTER_CORRUPT', key: '/veil/cluster/pods/team-a/notjson' });
  });

  it('watch() delivers validated puts and deletes of its kind in order', async () => {
    const store = await makeStore();
    const c = new ClusterClient(store, { onInvalid: () => undefined });
    const { revision } = await c.list('pods');
    const events: ClusterEvent<'pods'>[] = [];
    const w = await c.watch('pods', { onEvent: (e) => void events.push(e), onError: (e) => { throw e; } }, { afterRevision: revision });
    try {
      await c.put('pods', pod('p1'));
      await store.create('/veil/cluster/pods/team-a/bad', Buffer.from('nope'));
      await c.put('nodes', { name: 'node-1', addresses: [], podCidrs: [], labels: {} });
      await c.delete('pods', 'p1', 'team-a');
      await eventually(() => events.length >= 2, { what: 'two pod events' });
      expect(events[0]).toMatchObject({ type: 'put', object: { record: { name: 'p1' } } });
      expect(events[1]).toMatchObject({ type: 'delete', name: 'p1', namespace: 'team-a' });
      expect(events).toHaveLength(2);
    } finally {
      await w.close();
    }
  });
}
