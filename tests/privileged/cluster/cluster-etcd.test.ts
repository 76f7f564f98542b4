import { afterAll, beforeAll, describe } from 'vitest';
import { EtcdStore } from '../../../agent/store/etcd-store.js';
import type { Store } from '../../../agent/store/store.js';
import { clusterClientBehaviour } from '../../support/cluster-client.js';
import { EtcdServer } from '../../support/etcd.js';

let etcd: EtcdServer;
const stores: Store[] = [];
beforeAll(async () => {
  etcd = await EtcdServer.start();
});
afterAll(async () => {
  for (const s of stores) await s.close();
  await etcd.cleanup();
});

describe('cluster client over a real etcd', () => {
  clusterClientBehaviour(async () => {
    // A fresh etcd per test would be slow: give each test its own empty keyspace instead.
    await etcd.withClient((c) => c.delete().all());
    const s = new EtcdStore({ endpoints: [etcd.clientUrl] });
    stores.push(s);
    return s;
  });
});
