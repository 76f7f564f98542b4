import { inspect } from 'node:util';
import nacl from 'tweetnacl';
import { describe, expect, it } from 'vitest';
import { KeyMaterialError } from '../../../agent/keys/errors.js';
import { publicKeyFingerprint } from '../../../agent/keys/fingerprint.js';
import { X25519PrivateKey, X25519PublicKey, x25519SharedSecret } from '../../../agent/keys/x25519.js';

const hex = (s: string) => Buffer.from(s, 'hex');

// RFC 7748 §6.1.
const RFC = {
  alicePriv: hex('77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a'),
  alicePub: hex('8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a'),
  bobPriv: hex('5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb'),
  bobPub: hex('de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f'),
  shared: hex('4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742'),
};

// Points of small order (RFC 7748 §6.1 note; the list libsodium and WireGuard reject).
const LOW_ORDER = [
  '0000000000000000000000000000000000000000000000000000000000000000',
  '0100000000000000000000000000000000000000000000000000000000000000',
  'e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800',
  '5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157',
  'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
];

function secretForms(raw: Buffer): string[] {
  return [raw.toString('base64'), raw.toString('hex'), raw.toString('base64url')];
}

describe('X25519 keys', () => {
  it('imports the RFC 7748 keys and computes their public keys and shared secret', () => {
    const alice = X25519PrivateKey.fromRaw(RFC.alicePriv);
    const bob = X25519PrivateKey.fromRaw(RFC.bobPriv);
    expect(alice.publicKey.raw).toEqual(RFC.alicePub);
    expect(bob.publicKey.raw).toEqual(RFC.bobPub);
    expect(x25519SharedSecret(alice, X25519PublicKey.fromRaw(RFC.bobPub))).toEqual(RFC.shared);
    expect(x25519SharedSecret(bob, X25519PublicKey.fromRaw(RFC.alicePub))).toEqual(RFC.shared);
  });

  it('agrees with tweetnacl (an independent implementation) on generated keys', () => {
    for (let i = 0; i < 20; i++) {
      const a = X25519PrivateKey.generate();
      const b = X25519PrivateKey.generate();
      const aRaw = a.exportRaw();
      expect(Buffer.from(nacl.scalarMult.base(aRaw))).toEqual(a.publicKey.raw);
      const s = x25519SharedSecret(a, b.publicKey);
      expect(Buffer.from(nacl.scalarMult(aRaw, b.publicKey.raw))).toEqual(s);
      expect(x25519SharedSecret(b, a.publicKey)).toEqual(s);
    }
  });

  it('round-trips a private key through exportRaw() and fromRaw()', () => {
    const a = X25519PrivateKey.generate();
    const again = X25519PrivateKey.fromRaw(a.exportRaw());
    expect(again.publicKey.equals(a.publicKey)).toBe(true);
    expect(X25519PublicKey.fromBase64(a.publicKey.toBase64()).equals(a.publicKey)).toBe(true);
  });

  it.each(LOW_ORDER)('refuses the low-order public key %s (all-zero shared secret)', (point) => {
    const a = X25519PrivateKey.generate();
    const run = () => x25519SharedSecret(a, X25519PublicKey.fromRaw(hex(point)), 'peer.publicKey');
    expect(run).toThrow(KeyMaterialError);
    expect(run).toThrow(/low-order point/);
    try {
      run();
    } catch (err) {
      expect((err as KeyMaterialError).field).toBe('peer.publicKey');
      expect((err as KeyMaterialError).code).toBe('VEIL_KEY_MATERIAL');
    }
  });

  it('refuses keys of the wrong length or type without echoing them', () => {
    const long = Buffer.alloc(33, 0x5a);
    for (const bad of [long, Buffer.alloc(31), 'abc', 42, null, [1, 2]]) {
      expect(() => X25519PrivateKey.fromRaw(bad)).toThrow(KeyMaterialError);
      expect(() => X25519PublicKey.fromRaw(bad)).toThrow(KeyMaterialError);
    }
    try {
      X25519PrivateKey.fromRaw(long, 'node.privateKey');
    } catch (err) {
      expect((err as Error).message).toBe(
        'Invalid X25519 private key at "node.privateKey": expected 32 raw bytes, got 33 bytes; pass the raw X25519 key (base64 decodes to 32 bytes)',
      );
      for (const s of secretForms(long)) expect((err as Error).message).not.toContain(s);
    }
    expect(() => X25519PublicKey.fromBase64('not a key')).toThrow(/44 characters of base64/);
  });

  it('never shows private key material in JSON, strings or inspect output', () => {
    const a = X25519PrivateKey.generate();
    const raw = a.exportRaw();
    const shown = [JSON.stringify(a), JSON.stringify({ nested: { key: a } }), String(a), `${a}`, inspect(a), inspect({ a }, { depth: 5 })];
    for (const text of shown) {
      for (const s of secretForms(raw)) expect(text).not.toContain(s);
      expect(text).toContain(a.fingerprint);
    }
    expect(JSON.parse(JSON.stringify(a))).toEqual({ type: 'X25519PrivateKey', publicKeyFingerprint: a.fingerprint });
  });

  it('fingerprints a public key as "sha256:" and the 64 hex digits of its SHA-256', () => {
    expect(publicKeyFingerprint(RFC.alicePub)).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(X25519PublicKey.fromRaw(RFC.alicePub).fingerprint).toBe(publicKeyFingerprint(RFC.alicePub));
    expect(publicKeyFingerprint(RFC.alicePub)).not.toBe(publicKeyFingerprint(RFC.bobPub));
  });
});
