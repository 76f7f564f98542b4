import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createRootLogger, moduleLogger } from '../../../agent/log/logger.js';

function capture() {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk, _enc, cb) {
      lines.push(String(chunk));
      cb();
    },
  });
  return { lines, stream };
}

describe('logger', () => {
  it('redacts key material at any depth and keeps everything else', () => {
    const { lines, stream } = capture();
    const log = moduleLogger(createRootLogger({ destination: stream }), 'wireguard');
    const secret = 'c2VjcmV0LXByaXZhdGUta2V5LW5ldmVyLWxvZ2dlZA==';
    log.info(
      {
        privateKey: secret,
        device: { name: 'veil_wg0', privateKey: secret, peers: [{ presharedKey: secret, publicKey: 'pub' }] },
        sa: { spi: 0x100, aeadKey: secret },
      },
      'Configured device',
    );
    expect(lines).toHaveLength(1);
    const text = lines[0]!;
    expect(text).not.toContain(secret);
    const obj = JSON.parse(text);
    expect(obj.module).toBe('wireguard');
    expect(obj.device.name).toBe('veil_wg0');
    expect(obj.device.privateKey).toBe('[redacted]');
    expect(obj.device.peers[0].presharedKey).toBe('[redacted]');
    expect(obj.device.peers[0].publicKey).toBe('pub');
    expect(obj.sa.aeadKey).toBe('[redacted]');
    expect(obj.sa.spi).toBe(0x100);
  });

  it('serialises errors under err with their code', () => {
    const { lines, stream } = capture();
    const log = createRootLogger({ destination: stream });
    const err = Object.assign(new Error('Cannot add route'), { code: 'EEXIST' });
    log.error({ err }, 'Reconcile failed');
    const obj = JSON.parse(lines[0]!);
    expect(obj.err.message).toBe('Cannot add route');
    expect(obj.err.code).toBe('EEXIST');
  });
});
