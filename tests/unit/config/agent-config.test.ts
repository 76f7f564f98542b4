import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadAgentConfig } from '../../../agent/config/agent-config.js';
import { formatDuration, parseDuration } from '../../../agent/config/duration.js';
import { ConfigError } from '../../../agent/errors.js';

const dir = mkdtempSync(join(tmpdir(), 'veil-config-'));
function file(name: string, text: string): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}
const base = ['--node', 'node-a', '--store', 'http://127.0.0.1:2379'];

describe('loadAgentConfig', () => {
  it('fills defaults derived from the node name and freezes the result', () => {
    const c = loadAgentConfig(base, {});
    expect(c).toMatchObject({
      nodeName: 'node-a',
      stateDir: '/var/lib/veil/node-a',
      store: { endpoints: ['http://127.0.0.1:2379'] },
      encryption: { type: 'wireguard', strictMode: true },
      wireguard: { device: 'veil_wg0', port: 51871, backend: 'auto', mtu: 1420 },
      keys: { rotationIntervalMs: 86_400_000, svidTtlMs: 3_600_000 },
      datapath: { pinDir: '/sys/fs/bpf/veil/node-a', uplink: 'eth0' },
      status: { host: '127.0.0.1', port: 9876 },
      logLevel: 'info',
    });
    expect(Object.isFrozen(c.encryption)).toBe(true);
  });

  it('flags beat environment, environment beats the file, the file beats defaults', () => {
    const cfg = file('prec.yaml', 'encryption:\n  type: ipsec\n  strictMode: false\nwireguard:\n  port: 5000\nkeys:\n  rotationInterval: 1h30m\n');
    const c = loadAgentConfig([...base, '--config', cfg, '--mode', 'wireguard'], { VEIL_ENCRYPTION_TYPE: 'ipsec', VEIL_WIREGUARD_PORT: '6000' });
    expect(c.encryption).toEqual({ type: 'wireguard', strictMode: false });
    expect(c.wireguard.port).toBe(6000);
    expect(c.keys.rotationIntervalMs).toBe(5_400_000);
  });

  it('has node certificate settings: token path, renewal window and request timeout', () => {
    expect(loadAgentConfig(base, {}).pki).toEqual({
      caBundle: '/var/lib/veil/node-a/pki/ca.pem',
      nodeCert: '/var/lib/veil/node-a/pki/node.pem',
      nodeKey: '/var/lib/veil/node-a/pki/node-key.pem',
      bootstrapToken: '/var/lib/veil/node-a/pki/bootstrap-token',
      renewBeforeMs: 2 * 86_400_000,
      requestTimeoutMs: 300_000,
    });
    const cfg = file('pki.yaml', 'pki:\n  bootstrapToken: /etc/veil/token\n  renewBefore: 12h\n  requestTimeout: 30s\n');
    const c = loadAgentConfig([...base, '--config', cfg], { VEIL_NODE_CERT_RENEW_BEFORE: '6h' });
    expect(c.pki).toMatchObject({ bootstrapToken: '/etc/veil/token', renewBeforeMs: 21_600_000, requestTimeoutMs: 30_000 });
    expect(() => loadAgentConfig([...base, '--config', file('pki2.yaml', 'pki:\n  bootstrapToken: token\n')], {})).toThrow(/Invalid path for "pki.bootstrapToken": "token"; use an absolute path/);
  });

  it('accepts JSON config files and the config path from VEIL_CONFIG', () => {
    const cfg = file('c.json', JSON.stringify({ nodeName: 'node-b', store: { endpoints: ['https://etcd:2379'] }, status: { listen: '[::1]:0' } }));
    const c = loadAgentConfig([], { VEIL_CONFIG: cfg });
    expect(c.nodeName).toBe('node-b');
    expect(c.status).toEqual({ host: '::1', port: 0 });
  });

  it.each([
    [['--store', 'http://x:1'], {}, 'The node name is not set: pass --node NAME'],
    [['--node', 'node-a'], {}, 'Setting "store.endpoints" is required: pass --store or VEIL_STORE_ENDPOINTS=...'],
    [[...base, '--mode', 'gre'], {}, 'Invalid value for "--mode": "gre"; use one of "wireguard", "ipsec"'],
    [[...base, '--bogus', '1'], {}, 'Unknown option "--bogus"'],
    [[...base, '--node'], {}, 'Option "--node" needs a value'],
    [['--node', 'Node_A', '--store', 'http://x:1'], {}, 'Invalid value for "--node": "Node_A"'],
    [[...base], { VEIL_STORE_ENDPOINTS: 'ftp://x' }, ''],
    [[...base.slice(0, 2)], { VEIL_STORE_ENDPOINTS: 'ftp://x' }, 'Invalid etcd URL for "VEIL_STORE_ENDPOINTS[0]": "ftp://x"'],
    [[...base, '--strict-mode', 'yes'], {}, 'Invalid value for "--strict-mode": "yes"; use true or false'],
    [[...base], { VEIL_WIREGUARD_PORT: '70000' }, 'Invalid value for "VEIL_WIREGUARD_PORT": "70000"; use an integer from 1 to 65535'],
    [[...base, '--key-rotation-interval', '5s'], {}, 'Duration for "--key-rotation-interval" is out of range: "5s"; use between 1m and 365d'],
    [[...base, '--state-dir', 'relative/dir'], {}, 'Invalid path for "--state-dir": "relative/dir"; use an absolute path'],
    [[...base, '--status-listen', 'localhost'], {}, 'Invalid value for "--status-listen": "localhost"; use HOST:PORT'],
  ] as [string[], Record<string, string>, string][])('refuses %j %j with a message that names the fix', (args, env, message) => {
    if (message === '') {
      // flags win over a bad environment value: the bad value is never parsed
      expect(() => loadAgentConfig(args, env)).not.toThrow();
      return;
    }
    let err: unknown;
    try {
      loadAgentConfig(args, env);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toContain(message);
  });

  it('refuses unknown keys, non-mappings, aliases and unreadable files in the config file', () => {
    expect(() => loadAgentConfig([...base, '--config', file('typo.yaml', 'encryption:\n  strictmode: true\n')], {})).toThrow(
      'Unknown setting "encryption.strictmode" in config file',
    );
    expect(() => loadAgentConfig([...base, '--config', file('list.yaml', '- a\n')], {})).toThrow('must be a mapping of settings');
    expect(() => loadAgentConfig([...base, '--config', file('bad.yaml', 'a: [\n')], {})).toThrow('is not valid YAML or JSON');
    expect(() => loadAgentConfig([...base, '--config', file('alias.yaml', 'x: &a 1\nlogLevel: *a\n')], {})).toThrow(ConfigError);
    expect(() => loadAgentConfig([...base, '--config', join(dir, 'missing.yaml')], {})).toThrow('Cannot read config file');
  });
});

describe('parseDuration', () => {
  it('reads Go-style durations and milliseconds, bounded', () => {
    const b = { minMs: 0, maxMs: 1e12 };
    expect(parseDuration('x', '1h30m', b)).toBe(5_400_000);
    expect(parseDuration('x', '500ms', b)).toBe(500);
    expect(parseDuration('x', '1.5s', b)).toBe(1_500);
    expect(parseDuration('x', 250, b)).toBe(250);
    for (const bad of ['', '10', 'h', '1x', '1h ', -1 / 0, 'a'.repeat(40), null]) expect(() => parseDuration('x', bad, b)).toThrow(ConfigError);
    expect(formatDuration(5_400_000)).toBe('90m');
    expect(formatDuration(1_500)).toBe('1500ms');
  });
});
