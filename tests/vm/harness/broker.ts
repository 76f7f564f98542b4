import { createServer, type Server, type Socket } from 'node:net';
import { readJsonLines, writeJsonLine } from './json-lines.js';
import type { Request } from './protocol.js';
import type { RpcConnection } from './rpc-connection.js';

/**
 * Shares the one guest connection among test workers. qemu's virtio-serial socket takes a single
 * client, so the vitest main process holds it and serves any number of workers on a unix socket
 * of its own, with the same JSON-lines protocol: each request is forwarded under the broker's own
 * id and the reply goes back to the worker under the worker's id. `poweroff` is refused: the VM's
 * lifetime belongs to global-setup.
 */
export class Broker {
  readonly #server: Server;
  readonly #clients = new Set<Socket>();
  readonly #guest: RpcConnection;

  private constructor(guest: RpcConnection) {
    this.#guest = guest;
    this.#server = createServer((socket) => this.#serve(socket));
  }

  static async listen(path: string, guest: RpcConnection): Promise<Broker> {
    const broker = new Broker(guest);
    await new Promise<void>((resolve, reject) => {
      broker.#server.once('error', reject);
      broker.#server.listen(path, () => {
        broker.#server.off('error', reject);
        resolve();
      });
    });
    return broker;
  }

  async close(): Promise<void> {
    for (const c of this.#clients) c.destroy();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  #serve(socket: Socket): void {
    this.#clients.add(socket);
    socket.on('close', () => this.#clients.delete(socket));
    socket.on('error', () => socket.destroy());
    readJsonLines(socket, (value) => {
      if (typeof value !== 'object' || value === null) return;
      const { id, ...request } = value as { id?: unknown } & Request;
      if (typeof id !== 'number') return;
      const reply = (body: object): void => {
        if (!socket.destroyed) writeJsonLine(socket, { ...body, id });
      };
      if (request.op === 'poweroff') {
        reply({ ok: false, error: 'Refused "poweroff": the shared VM is powered off by global-setup after all VM tests' });
        return;
      }
      this.#guest.call(request).then(
        (response) => reply(response),
        (err: Error) => reply({ ok: false, error: err.message }),
      );
    });
  }
}
