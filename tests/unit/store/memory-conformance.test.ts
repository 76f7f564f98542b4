/** The Store conformance suite against the in-memory store (outages simulated by its backend). */
import { MemoryStore } from '../../../agent/store/memory-store.js';
import { storeConformance } from '../../support/store-conformance.js';

storeConformance('memory', async () => {
  const store = new MemoryStore();
  const { backend } = store;
  return {
    store,
    openClient: async () => new MemoryStore(backend),
    outage: async () => {
      backend.disconnect();
      await new Promise((r) => setTimeout(r, 300));
      backend.reconnect();
    },
    pause: async () => backend.disconnect(),
    resume: async () => backend.reconnect(),
    revokeLease: async (id) => backend.revokeLease(id),
    compact: async (revision) => backend.compact(revision),
    revision: async () => backend.currentRevision(),
    cleanup: () => store.close(),
  };
});
