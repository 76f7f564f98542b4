/**
 * The Store conformance suite against a real etcd (Debian's etcd-server) that the test starts:
 * an outage is etcd killed (SIGKILL) and restarted on the same data directory and ports, a pause
 * is etcd stopped with SIGSTOP.
 */
import { EtcdStore, openEtcdStore } from '../../../agent/store/etcd-store.js';
import { EtcdServer } from '../../support/etcd.js';
import { storeConformance } from '../../support/store-conformance.js';

storeConformance('etcd', async () => {
  const etcd = await EtcdServer.start();
  const store = await openEtcdStore({ endpoints: [etcd.clientUrl], requestTimeoutMs: 2_000 });
  return {
    store,
    openClient: async () => new EtcdStore({ endpoints: [etcd.clientUrl], requestTimeoutMs: 2_000 }),
    outage: async () => {
      await etcd.kill();
      await new Promise((r) => setTimeout(r, 500));
      await etcd.restart();
    },
    pause: async () => etcd.pause(),
    resume: async () => etcd.resume(),
    revokeLease: (id) => etcd.withClient(async (c) => void (await c.leaseClient.leaseRevoke({ ID: id }))),
    compact: (revision) => etcd.compact(revision),
    revision: () => etcd.revision(),
    cleanup: async () => {
      await store.close();
      await etcd.cleanup();
    },
  };
});
