/**
 * One request/answer exchange on a wireguard-go UAPI socket. A new connection per exchange:
 * wireguard-go serves each connection on its own goroutine and serialises configuration
 * changes itself.
 */
import { createConnection } from 'node:net';
import { constants as osConstants } from 'node:os';
import { UapiError } from '../errors.js';
import { isUapiResponseComplete } from './uapi.js';

/**
 * Connection-level failure: `code` is the socket errno name (ENOENT: no socket file,
 * ECONNREFUSED: stale socket with no daemon behind it, ETIMEDOUT, EPIPE, ...).
 */
export class UapiSocketError extends UapiError {}

/**
 * Sends `request` and resolves with the complete answer (ending with an empty line). The request
 * Buffer is zeroed as soon as the kernel has taken it (or the exchange failed), because it may
 * hold keys. The caller zeroes the answer after parsing it.
 */
export function uapiExchange(socketPath: string, request: Buffer, timeoutMs: number): Promise<Buffer> {
  return new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let total = 0;
    let tail = Buffer.alloc(0);
    let settled = false;
    const sock = createConnection({ path: socketPath });
    const timer = setTimeout(() => {
      fail(new UapiSocketError('ETIMEDOUT', osConstants.errno.ETIMEDOUT, `No answer from wireguard-go on "${socketPath}" within ${timeoutMs} ms`));
    }, timeoutMs);
    const collected = (): Buffer => {
      const all = Buffer.concat(chunks, total);
      for (const c of chunks) c.fill(0);
      chunks.length = 0;
      return all;
    };
    const done = (): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      request.fill(0);
      sock.destroy();
      resolve(collected());
    };
    function fail(err: UapiError): void {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      request.fill(0);
      sock.destroy();
      collected().fill(0);
      reject(err);
    }
    sock.on('connect', () => {
      sock.write(request, () => request.fill(0));
    });
    sock.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      total += chunk.length;
      tail = Buffer.concat([tail, chunk.subarray(Math.max(0, chunk.length - 2))]).subarray(-2);
      if (isUapiResponseComplete(tail)) done();
    });
    sock.on('error', (err: NodeJS.ErrnoException) => {
      // wireguard-go closes the connection right after answering an invalid request; an answer
      // that is already complete wins over the write error that follows.
      if (isUapiResponseComplete(tail)) return done();
      const code = err.code ?? 'EIO';
      const errno = (osConstants.errno as Record<string, number>)[code] ?? 0;
      fail(new UapiSocketError(code, errno, `Cannot talk to wireguard-go on "${socketPath}": ${code}`, { cause: err }));
    });
    sock.on('close', () => {
      if (isUapiResponseComplete(tail)) return done();
      fail(new UapiSocketError('EPIPE', osConstants.errno.EPIPE, `wireguard-go on "${socketPath}" closed the connection before answering completely`));
    });
  });
}
