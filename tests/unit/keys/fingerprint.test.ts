import { createHash, generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { KeyMaterialError } from '../../../agent/keys/errors.js';
import { isFingerprint, publicKeyFingerprint } from '../../../agent/keys/fingerprint.js';

describe('publicKeyFingerprint()', () => {
  it('gives one fingerprint per X25519 key whether raw bytes or a KeyObject', () => {
    const { publicKey } = generateKeyPairSync('x25519');
    const raw = Buffer.from(publicKey.export({ format: 'jwk' }).x!, 'base64url');
    const fp = publicKeyFingerprint(publicKey);
    expect(isFingerprint(fp)).toBe(true);
    expect(publicKeyFingerprint(raw)).toBe(fp);
    expect(fp).toBe(`sha256:${createHash('sha256').update(raw).digest('hex')}`);
  });

  it('refuses private keys and wrong lengths', () => {
    const { privateKey } = generateKeyPairSync('x25519');
    expect(() => publicKeyFingerprint(privateKey)).toThrow(KeyMaterialError);
    expect(() => publicKeyFingerprint(Buffer.alloc(31))).toThrow(/expected 32 raw bytes/);
    expect(() => publicKeyFingerprint(generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey)).toThrow(/only X25519 and Ed25519/);
  });
});
