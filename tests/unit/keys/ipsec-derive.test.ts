import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../../agent/errors.js';
import { KeyMaterialError } from '../../../agent/keys/errors.js';
import { deriveIpsecKey, ipsecKeyInfo, IPSEC_HKDF_SALT, type IpsecKeyParams, type SaParty } from '../../../agent/keys/ipsec-derive.js';
import { X25519PrivateKey, X25519PublicKey } from '../../../agent/keys/x25519.js';

const hex = (s: string) => Buffer.from(s.replace(/[\s:]/g, ''), 'hex');

// RFC 7748 §6.1 keys: Alice is the sender's identity key, Bob the receiver's node key.
const alice = X25519PrivateKey.fromRaw(hex('77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a'));
const bob = X25519PrivateKey.fromRaw(hex('5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb'));

function katParams(aead: IpsecKeyParams['aead']): IpsecKeyParams {
  return {
    aead,
    generation: 7,
    sender: { node: 'node-a', identity: 4242, keyGeneration: 3, bootId: '0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0', publicKey: alice.publicKey },
    receiver: { node: 'node-b', identity: 0, keyGeneration: 1, bootId: '11111111-2222-4333-8444-555555555555', publicKey: bob.publicKey },
  };
}

// The info for katParams('rfc4106(gcm(aes))'), written out field by field (u16 length before
// text and keys, u32 big-endian numbers).
const KAT_INFO_GCM = hex(`
  0010 ${Buffer.from('veil/ipsec-sa/v1').toString('hex')}
  0011 ${Buffer.from('rfc4106(gcm(aes))').toString('hex')}
  0006 ${Buffer.from('sender').toString('hex')}
    0006 ${Buffer.from('node-a').toString('hex')}  00001092  00000003
    0024 ${Buffer.from('0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0').toString('hex')}
    0020 8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a
  0008 ${Buffer.from('receiver').toString('hex')}
    0006 ${Buffer.from('node-b').toString('hex')}  00000000  00000001
    0024 ${Buffer.from('11111111-2222-4333-8444-555555555555').toString('hex')}
    0020 de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f
  00000007`);

/*
 * Known answers computed once with OpenSSL 3.0 (independent of this code but for the info bytes
 * above), on the RFC 7748 keys wrapped as PKCS#8 (prefix 302e020100300506032b656e04220420):
 *   openssl pkeyutl -derive -inkey alice.pem -peerkey bob.pub      → 4a5d9d5b…161742 (RFC 7748)
 *   openssl kdf -keylen 36 -kdfopt digest:SHA256 -kdfopt hexkey:<secret>
 *     -kdfopt hexsalt:7665696c2f69707365632d73612f73616c742f7631 -kdfopt hexinfo:<info> HKDF
 */
const KAT_GCM = hex('B5:AA:57:C0:69:60:11:AA:00:B4:0A:EF:B2:EC:90:4F:54:96:56:68:D5:B4:32:6C:BD:36:05:95:EC:F4:28:BD:2B:A8:AA:1E');
const KAT_CHACHA = hex('4D:9A:F0:B0:5C:EE:61:66:4E:D8:75:B4:52:CE:3D:BE:42:10:F3:88:E3:FB:32:7C:A4:A8:BB:B9:C1:BF:AE:A8:B4:41:39:49');

describe('IPsec key derivation', () => {
  it('builds the documented HKDF info and salt', () => {
    expect(ipsecKeyInfo(katParams('rfc4106(gcm(aes))'))).toEqual(KAT_INFO_GCM);
    expect(IPSEC_HKDF_SALT.toString('hex')).toBe('7665696c2f69707365632d73612f73616c742f7631');
  });

  it('matches the OpenSSL known answers from both ends (AES-GCM-256 and ChaCha20-Poly1305)', () => {
    const gcm = katParams('rfc4106(gcm(aes))');
    expect(deriveIpsecKey(alice, 'sender', gcm)).toEqual({ aead: 'rfc4106(gcm(aes))', key: KAT_GCM, icvBits: 128 });
    expect(deriveIpsecKey(bob, 'receiver', gcm).key).toEqual(KAT_GCM);
    const cc = katParams('rfc7539esp(chacha20,poly1305)');
    expect(deriveIpsecKey(alice, 'sender', cc).key).toEqual(KAT_CHACHA);
    expect(deriveIpsecKey(bob, 'receiver', cc).key).toEqual(KAT_CHACHA);
    expect(KAT_GCM).toHaveLength(36);
  });

  it("gives A's outbound key to B's inbound SA for random keys and parties", () => {
    const party = fc.record({
      node: fc.stringMatching(/^[a-z0-9][a-z0-9.-]{0,30}$/),
      identity: fc.integer({ min: 0, max: 65535 }),
      keyGeneration: fc.integer({ min: 1, max: 0xffffffff }),
      bootId: fc.uuid(),
    });
    fc.assert(
      fc.property(party, party, fc.integer({ min: 0, max: 0xffffffff }), fc.constantFrom('rfc4106(gcm(aes))' as const, 'rfc7539esp(chacha20,poly1305)' as const), (s, r, generation, aead) => {
        const sk = X25519PrivateKey.generate();
        const rk = X25519PrivateKey.generate();
        const p: IpsecKeyParams = { aead, generation, sender: { ...s, publicKey: sk.publicKey }, receiver: { ...r, publicKey: rk.publicKey } };
        const out = deriveIpsecKey(sk, 'sender', p);
        const inb = deriveIpsecKey(rk, 'receiver', p);
        expect(out.key).toEqual(inb.key);
        expect(out.key).toHaveLength(36);
      }),
      { numRuns: 50 },
    );
  });

  it('derives a different key when any bound field changes', () => {
    // Per-node-pair mode: both ends contribute node keys, so the X25519 secret is symmetric and
    // only the info separates A→B from B→A.
    const a = X25519PrivateKey.generate();
    const b = X25519PrivateKey.generate();
    const A: SaParty = { node: 'node-a', identity: 0, keyGeneration: 1, bootId: '0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0', publicKey: a.publicKey };
    const B: SaParty = { node: 'node-b', identity: 0, keyGeneration: 1, bootId: '11111111-2222-4333-8444-555555555555', publicKey: b.publicKey };
    const base: IpsecKeyParams = { aead: 'rfc4106(gcm(aes))', generation: 1, sender: A, receiver: B };
    const k = (p: IpsecKeyParams) => deriveIpsecKey(a, p.sender === A || p.sender.publicKey === a.publicKey ? 'sender' : 'receiver', p).key.toString('hex');
    const variants: Record<string, IpsecKeyParams> = {
      direction: { ...base, sender: B, receiver: A },
      generation: { ...base, generation: 2 },
      senderBootId: { ...base, sender: { ...A, bootId: 'aaaaaaaa-2222-4333-8444-555555555555' } },
      receiverBootId: { ...base, receiver: { ...B, bootId: 'aaaaaaaa-2222-4333-8444-555555555555' } },
      senderIdentity: { ...base, sender: { ...A, identity: 300 } },
      receiverIdentity: { ...base, receiver: { ...B, identity: 300 } },
      senderKeyGeneration: { ...base, sender: { ...A, keyGeneration: 2 } },
      receiverNode: { ...base, receiver: { ...B, node: 'node-c' } },
      aead: { ...base, aead: 'rfc7539esp(chacha20,poly1305)' },
    };
    const keys = new Map<string, string>([['base', k(base)]]);
    for (const [name, p] of Object.entries(variants)) keys.set(name, k(p));
    expect(new Set(keys.values()).size).toBe(keys.size);
    // And the direction swap still agrees between its two ends.
    expect(deriveIpsecKey(b, 'sender', variants.direction!).key).toEqual(deriveIpsecKey(a, 'receiver', variants.direction!).key);
  });

  it('refuses a low-order peer key and a private key that is not the local party', () => {
    const p = katParams('rfc4106(gcm(aes))');
    const zero = X25519PublicKey.fromRaw(Buffer.alloc(32));
    expect(() => deriveIpsecKey(alice, 'sender', { ...p, receiver: { ...p.receiver, publicKey: zero } })).toThrow(KeyMaterialError);
    expect(() => deriveIpsecKey(alice, 'sender', { ...p, receiver: { ...p.receiver, publicKey: zero } })).toThrow(/at "receiver.publicKey"/);
    expect(() => deriveIpsecKey(bob, 'sender', p)).toThrow(ValidationError);
    expect(() => deriveIpsecKey(bob, 'sender', p)).toThrow(/is not the sender's key/);
  });

  it('validates every field before deriving', () => {
    const p = katParams('rfc4106(gcm(aes))');
    const cases: [IpsecKeyParams, RegExp][] = [
      [{ ...p, aead: 'cbc(aes)' as never }, /Invalid aead "cbc\(aes\)"/],
      [{ ...p, generation: -1 }, /Invalid generation "-1"/],
      [{ ...p, generation: 2 ** 32 }, /Invalid generation/],
      [{ ...p, sender: { ...p.sender, node: '' } }, /Invalid sender.node ""/],
      [{ ...p, receiver: { ...p.receiver, bootId: 'x'.repeat(300) } }, /Invalid receiver.bootId/],
      [{ ...p, sender: { ...p.sender, identity: 1.5 } }, /Invalid sender.identity "1.5"/],
    ];
    for (const [bad, re] of cases) {
      expect(() => deriveIpsecKey(alice, 'sender', bad)).toThrow(ValidationError);
      expect(() => deriveIpsecKey(alice, 'sender', bad)).toThrow(re);
    }
  });
});
