import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { deriveIpsecKey, type IpsecKeyParams } from '../../../agent/keys/ipsec-derive.js';
import { X25519PrivateKey, X25519PublicKey, x25519SharedSecret } from '../../../agent/keys/x25519.js';
import { createRootLogger } from '../../../agent/log/logger.js';

function capture(): { log: ReturnType<typeof createRootLogger>; text: () => string } {
  const chunks: string[] = [];
  const destination = new Writable({
    write(chunk, _enc, cb) {
      chunks.push(String(chunk));
      cb();
    },
  });
  return { log: createRootLogger({ destination, level: 'debug' }), text: () => chunks.join('') };
}

const forms = (b: Buffer) => [b.toString('base64'), b.toString('hex'), b.toString('base64url')];

describe('key material in logs', () => {
  it('logs a private key, a derived SA key and a low-order error with no secret bytes', () => {
    const { log, text } = capture();
    const a = X25519PrivateKey.generate();
    const b = X25519PrivateKey.generate();
    const p: IpsecKeyParams = {
      aead: 'rfc4106(gcm(aes))',
      generation: 1,
      sender: { node: 'node-a', identity: 300, keyGeneration: 1, bootId: 'b0', publicKey: a.publicKey },
      receiver: { node: 'node-b', identity: 0, keyGeneration: 1, bootId: 'b1', publicKey: b.publicKey },
    };
    const sa = deriveIpsecKey(a, 'sender', p);
    log.info({ nodeKey: a }, 'Node key ready');
    log.info({ privateKey: a, sa, params: p }, 'Derived SA key');
    try {
      x25519SharedSecret(a, X25519PublicKey.fromRaw(Buffer.alloc(32)));
    } catch (err) {
      log.error({ err, key: a }, 'Refused peer key');
    }
    const out = text();
    expect(out).toContain('Derived SA key');
    expect(out).toContain(`"nodeKey":{"type":"X25519PrivateKey","publicKeyFingerprint":"${a.fingerprint}"}`);
    const secrets = [a.exportRaw(), b.exportRaw(), sa.key, x25519SharedSecret(a, b.publicKey)];
    for (const s of secrets) for (const f of forms(s)) expect(out).not.toContain(f);
  });
});
