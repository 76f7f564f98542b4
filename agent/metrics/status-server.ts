/**
 * The agent's local HTTP endpoint: /healthz (200 unless something failed), /readyz (200 once
 * started and nothing is failed or starting), /metrics (Prometheus text) and /status (JSON for
 * `veil status`), plus streaming routes the program adds (GET /events, metrics/events-endpoint.ts).
 * Listens on loopback by default; it serves no secret and accepts no input but the path (and a
 * route's query). Every response is bounded and every error is a plain status code.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import type { Health } from '../lifecycle/health.js';

export interface StatusServerOptions {
  host: string;
  port: number;
  health: Health;
  registry: Registry;
  /** Whether the program has finished starting. */
  ready: () => boolean;
  /** Extra JSON for /status (peers, keys, datapath summary). */
  status?: () => Promise<unknown> | unknown;
  /** Called before /metrics renders (e.g. to read eBPF counters). */
  beforeScrape?: () => Promise<void> | void;
  /** GET routes that write the response themselves (streams), by path. */
  routes?: Record<string, (req: IncomingMessage, res: ServerResponse, url: URL) => void>;
}

export class StatusServer {
  #server: Server | undefined;

  constructor(private readonly opts: StatusServerOptions) {}

  async start(): Promise<AddressInfo> {
    const server = createServer((req, res) => {
      const routes = this.opts.routes;
      if (routes) {
        const url = new URL(req.url ?? '/', 'http://status.invalid');
        if (Object.hasOwn(routes, url.pathname)) {
          if (req.method !== 'GET') {
            res.writeHead(405, { 'content-type': 'text/plain' });
            res.end('method not allowed\n');
            return;
          }
          try {
            routes[url.pathname]!(req, res, url);
          } catch {
            if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
            res.end('internal error\n');
          }
          return;
        }
      }
      void this.#handle(req.method ?? 'GET', req.url ?? '/')
        .then(({ code, type, body }) => {
          res.writeHead(code, { 'content-type': type, 'cache-control': 'no-store' });
          res.end(body);
        })
        .catch(() => {
          res.writeHead(500, { 'content-type': 'text/plain' });
          res.end('internal error\n');
        });
    });
    server.requestTimeout = 10_000;
    server.headersTimeout = 5_000;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.opts.port, this.opts.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.#server = server;
    return server.address() as AddressInfo;
  }

  async #handle(method: string, url: string): Promise<{ code: number; type: string; body: string }> {
    if (method !== 'GET' && method !== 'HEAD') return { code: 405, type: 'text/plain', body: 'method not allowed\n' };
    const path = url.split('?')[0];
    const snapshot = this.opts.health.snapshot();
    switch (path) {
      case '/healthz':
        return { code: snapshot.status === 'failed' ? 503 : 200, type: 'application/json', body: `${JSON.stringify(snapshot)}\n` };
      case '/readyz': {
        const ready = this.opts.ready() && (snapshot.status === 'ok' || snapshot.status === 'degraded');
        return { code: ready ? 200 : 503, type: 'text/plain', body: ready ? 'ready\n' : 'not ready\n' };
      }
      case '/metrics':
        await this.opts.beforeScrape?.();
        return { code: 200, type: this.opts.registry.contentType, body: await this.opts.registry.metrics() };
      case '/status':
        return { code: 200, type: 'application/json', body: `${JSON.stringify({ health: snapshot, ...((await this.opts.status?.()) ?? {}) })}\n` };
      default:
        return { code: 404, type: 'text/plain', body: 'not found\n' };
    }
  }

  async stop(): Promise<void> {
    const server = this.#server;
    this.#server = undefined;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
