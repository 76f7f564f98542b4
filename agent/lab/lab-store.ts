/**
 * A Store for the host side of the lab (CLI, tests). The store client speaks gRPC over TCP
 * (http://host:port endpoints), and the lab etcd is reachable from the host only through its
 * unix socket, so this opens a relay inside the calling process: a TCP listener on a free
 * loopback port whose connections are piped to the socket. It lives exactly as long as the
 * store; close() closes both.
 */
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { ClusterClient } from '../cluster/client.js';
import type { Logger } from '../log/logger.js';
import { EtcdStore } from '../store/etcd-store.js';
import type { Store } from '../store/store.js';
import { untilStoreAnswers } from '../store/until-store-answers.js';

/** How long opening the lab store waits for the lab etcd to answer. */
const LAB_STORE_CONNECT_TIMEOUT_MS = 30_000;

export interface LabStore {
  store: Store;
  cluster: ClusterClient;
  close(): Promise<void>;
}

/** A loopback TCP listener that pipes every connection to the unix socket `socket`. */
export async function unixRelay(socket: string): Promise<{ port: number; close(): Promise<void> }> {
  const open = new Set<Socket>();
  const server: Server = createServer((client) => {
    const upstream = createConnection({ path: socket });
    open.add(client);
    open.add(upstream);
    const done = (): void => {
      client.destroy();
      upstream.destroy();
      open.delete(client);
      open.delete(upstream);
    };
    client.on('error', done).on('close', done);
    upstream.on('error', done).on('close', done);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : 0;
  return {
    port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of open) s.destroy();
        server.close(() => resolve());
      }),
  };
}

export async function openLabStore(socket: string, opts: { logger?: Logger; onInvalid?: (err: Error) => void } = {}): Promise<LabStore> {
  const relay = await unixRelay(socket);
  const store = new EtcdStore({ endpoints: [`http://127.0.0.1:${relay.port}`], ...(opts.logger ? { logger: opts.logger } : {}) });
  try {
    // The first gRPC connection can outlast one request deadline on a slow machine (the VM).
    await untilStoreAnswers(() => store.ping(), { timeoutMs: LAB_STORE_CONNECT_TIMEOUT_MS, signal: new AbortController().signal });
  } catch (err) {
    await store.close();
    await relay.close();
    throw err;
  }
  return {
    store,
    cluster: new ClusterClient(store, { onInvalid: opts.onInvalid ?? (() => undefined) }),
    async close() {
      await store.close();
      await relay.close();
    },
  };
}
