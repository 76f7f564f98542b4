import { describe, expect, it } from 'vitest';
import { loadOperatorConfig } from '../../../agent/config/operator-config.js';
import { ConfigError } from '../../../agent/errors.js';

const store = ['--store', 'http://127.0.0.1:2379'];

function thrown(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error('expected a ConfigError');
}

describe('loadOperatorConfig', () => {
  it('fills defaults, takes the host name as id and freezes the result', () => {
    const c = loadOperatorConfig(store, {}, 'Op-Host');
    expect(c).toEqual({
      id: 'op-host',
      store: { endpoints: ['http://127.0.0.1:2379'] },
      leaseTtlSeconds: 15,
      identityGraceMs: 600_000,
      gcIntervalMs: 60_000,
      resyncIntervalMs: 30_000,
      caDir: null,
      nodeCertTtlMs: 7 * 86_400_000,
      certGraceMs: 600_000,
      status: { host: '127.0.0.1', port: 9877 },
      logLevel: 'info',
    });
    expect(Object.isFrozen(c) && Object.isFrozen(c.store) && Object.isFrozen(c.status)).toBe(true);
  });

  it('flags win over the environment', () => {
    const env = { VEIL_STORE_ENDPOINTS: 'http://10.0.0.1:2379', VEIL_IDENTITY_GRACE: '5m', VEIL_OPERATOR_ID: 'from-env' };
    const c = loadOperatorConfig(['--identity-grace=1s', '--status-listen', '[::1]:0'], env);
    expect(c.store.endpoints).toEqual(['http://10.0.0.1:2379']);
    expect(c.identityGraceMs).toBe(1000);
    expect(c.id).toBe('from-env');
    expect(c.status).toEqual({ host: '::1', port: 0 });
  });

  it('refuses a missing store, unknown flags and bad values with the setting named', () => {
    expect(thrown(() => loadOperatorConfig([], {})).message).toBe('Setting "--store" is required: pass --store or set VEIL_STORE_ENDPOINTS');
    expect(thrown(() => loadOperatorConfig([...store, '--nodes', '3'], {})).message).toMatch(/^Unknown option "--nodes" for "veil operator": the options are /);
    expect(thrown(() => loadOperatorConfig([...store, '--lease-ttl', '1s'], {})).message).toMatch(/--lease-ttl/);
    expect(thrown(() => loadOperatorConfig([...store, '--id', 'Bad_Name'], {})).message).toMatch(/Invalid value for "--id": "Bad_Name"/);
    expect(thrown(() => loadOperatorConfig([...store, '--log-level', 'loud'], {})).message).toMatch(/use one of "trace"/);
    expect(thrown(() => loadOperatorConfig([...store, '--gc-interval'], {})).message).toBe('Option "--gc-interval" needs a value');
    expect(thrown(() => loadOperatorConfig(['--store', 'ftp://x:1'], {})).message).toMatch(/Invalid etcd URL/);
    expect(thrown(() => loadOperatorConfig([...store, '--ca-dir', 'pki'], {})).message).toBe('Invalid value for "--ca-dir": "pki"; use an absolute path');
    expect(thrown(() => loadOperatorConfig([...store, '--node-cert-ttl', '10s'], {})).message).toMatch(/Duration for "--node-cert-ttl" is out of range/);
  });

  it('takes the CA directory and node certificate settings from flags or environment', () => {
    const c = loadOperatorConfig([...store, '--ca-dir', '/etc/veil/ca', '--node-cert-ttl', '2h'], { VEIL_CERT_GRACE: '30s' });
    expect(c.caDir).toBe('/etc/veil/ca');
    expect(c.nodeCertTtlMs).toBe(7_200_000);
    expect(c.certGraceMs).toBe(30_000);
  });
});
