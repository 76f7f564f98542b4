/** The etcd store validates endpoints and timeouts when it is constructed, before any I/O. */
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../../agent/errors.js';
import { EtcdStore } from '../../../agent/store/etcd-store.js';
import { resolveEtcdOptions } from '../../../agent/store/etcd-options.js';

describe('etcd store options', () => {
  it('normalises valid endpoints and fills in default timeouts', () => {
    expect(resolveEtcdOptions({ endpoints: ['http://127.0.0.1:2379/', 'http://[::1]:2379'] })).toMatchObject({
      endpoints: ['http://127.0.0.1:2379', 'http://[::1]:2379'],
      requestTimeoutMs: 5_000,
      maxBackoffMs: 2_000,
    });
  });

  const bad: Array<[string, unknown]> = [
    ['no endpoints', { endpoints: [] }],
    ['endpoints that are not a list', { endpoints: 'http://127.0.0.1:2379' }],
    ['17 endpoints', { endpoints: Array.from({ length: 17 }, (_, i) => `http://127.0.0.1:${2000 + i}`) }],
    ['an endpoint that is not a URL', { endpoints: ['127.0.0.1:2379'] }],
    ['an endpoint without a port', { endpoints: ['http://127.0.0.1'] }],
    ['an endpoint with another scheme', { endpoints: ['unix://127.0.0.1:2379'] }],
    ['an endpoint with a path', { endpoints: ['http://127.0.0.1:2379/v3'] }],
    ['an endpoint with credentials', { endpoints: ['http://u:p@127.0.0.1:2379'] }],
    ['mixed http and https', { endpoints: ['http://127.0.0.1:2379', 'https://127.0.0.2:2379'] }],
    ['a request timeout of 0', { endpoints: ['http://127.0.0.1:2379'], requestTimeoutMs: 0 }],
    ['a request timeout over a minute', { endpoints: ['http://127.0.0.1:2379'], requestTimeoutMs: 60_001 }],
    ['a fractional backoff cap', { endpoints: ['http://127.0.0.1:2379'], maxBackoffMs: 150.5 }],
    ['no options at all', undefined],
  ];
  for (const [what, opts] of bad) {
    it(`new EtcdStore() rejects ${what} with a ConfigError that says how to fix it`, () => {
      let err: unknown;
      try {
        new EtcdStore(opts as never);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as Error).message).toMatch(/^[A-Z].*(pass|use) /);
      expect((err as Error).message).not.toMatch(/\.$/);
    });
  }
});
