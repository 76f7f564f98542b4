import { connect, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { readJsonLines, writeJsonLine } from './json-lines.js';
import type { Request, Response } from './protocol.js';

interface Waiter {
  resolve(response: Response): void;
  reject(err: Error): void;
  timer: NodeJS.Timeout | undefined;
}

/**
 * A request/response connection over the JSON-lines protocol: `call` sends a request with a fresh
 * id and resolves with the response that carries it. Responses with unknown ids (replies the
 * guest queued for an earlier client) are ignored.
 */
export class RpcConnection {
  readonly #socket: Socket;
  readonly #waiters = new Map<number, Waiter>();
  readonly #label: string;
  #nextId = 1;
  #closed: Error | undefined;

  private constructor(socket: Socket, label: string) {
    this.#socket = socket;
    this.#label = label;
    readJsonLines(socket, (value) => this.#onValue(value));
    socket.on('error', (err) => this.#fail(err));
    socket.on('close', () => this.#fail(new Error(`Connection to ${label} closed`)));
  }

  /**
   * Connects to a unix socket, retrying while it does not exist yet or refuses (qemu creates it
   * a moment after starting) until `deadline` (ms since the epoch).
   */
  static async connect(path: string, label: string, deadline = Date.now() + 10_000): Promise<RpcConnection> {
    for (;;) {
      try {
        const socket = await new Promise<Socket>((resolve, reject) => {
          const s = connect(path);
          s.once('connect', () => {
            s.off('error', reject);
            resolve(s);
          });
          s.once('error', reject);
        });
        return new RpcConnection(socket, label);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if ((code !== 'ENOENT' && code !== 'ECONNREFUSED') || Date.now() > deadline) {
          throw new Error(`Cannot connect to ${label} at "${path}": ${(err as Error).message}`, { cause: err });
        }
        await sleep(50);
      }
    }
  }

  get closed(): boolean {
    return this.#closed !== undefined;
  }

  /** Sends `request`; rejects when the connection closes first or after `timeoutMs` (if given). */
  call(request: Request, timeoutMs?: number): Promise<Response> {
    if (this.#closed) return Promise.reject(this.#closed);
    const id = this.#nextId++;
    return new Promise<Response>((resolve, reject) => {
      const timer =
        timeoutMs === undefined
          ? undefined
          : setTimeout(() => {
              this.#waiters.delete(id);
              reject(new Error(`No reply from ${this.#label} to "${request.op}" within ${timeoutMs} ms`));
            }, timeoutMs);
      this.#waiters.set(id, { resolve, reject, timer });
      writeJsonLine(this.#socket, { ...request, id });
    });
  }

  close(): void {
    this.#socket.destroy();
  }

  /** Keeps the process from waiting on this connection (for long-lived clients in test workers). */
  unref(): void {
    this.#socket.unref();
  }

  #onValue(value: unknown): void {
    if (typeof value !== 'object' || value === null) return;
    const id = (value as { id?: unknown }).id;
    if (typeof id !== 'number') return;
    const waiter = this.#waiters.get(id);
    if (!waiter) return;
    this.#waiters.delete(id);
    clearTimeout(waiter.timer);
    waiter.resolve(value as Response);
  }

  #fail(err: Error): void {
    this.#closed ??= err;
    for (const waiter of this.#waiters.values()) {
      clearTimeout(waiter.timer);
      waiter.reject(this.#closed);
    }
    this.#waiters.clear();
  }
}
