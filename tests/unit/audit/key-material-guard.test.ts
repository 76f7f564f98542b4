import { createPrivateKey, generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { AuditKeyMaterialError } from '../../../agent/audit/errors.js';
import { assertNoKeyMaterial } from '../../../agent/audit/key-material-guard.js';
import { sampleEvents } from './sample-events.js';
import { thrown } from '../../support/validation-error.js';

const { privateKey, publicKey } = generateKeyPairSync('x25519');
const raw = Buffer.from(privateKey.export({ format: 'jwk' }).d!, 'base64url');
const pem = privateKey.export({ format: 'pem', type: 'pkcs8' }) as string;

/** Every textual form of the private key a careless caller might pass. */
export function keyForms(key: Buffer): string[] {
  return [key.toString('hex'), key.toString('hex').toUpperCase(), key.toString('base64'), key.toString('base64url')];
}

const refused = (value: unknown): AuditKeyMaterialError => thrown(() => assertNoKeyMaterial(value), AuditKeyMaterialError);

describe('assertNoKeyMaterial()', () => {
  it('lets every well-formed event through', () => {
    for (const e of sampleEvents) expect(() => assertNoKeyMaterial(e)).not.toThrow();
  });

  it('refuses binary values and key objects wherever they are', () => {
    expect(refused({ event: 'x', detail: raw }).field).toBe('detail');
    expect(refused({ event: 'x', detail: new Uint8Array(32) }).field).toBe('detail');
    expect(refused({ event: 'x', nested: { list: [1, raw.buffer] } }).field).toBe('nested.list[1]');
    expect(refused({ event: 'x', detail: privateKey }).field).toBe('detail');
    expect(refused({ event: 'x', detail: publicKey }).field).toBe('detail');
    expect(refused({ event: 'x', n: 10n }).field).toBe('n');
  });

  it('refuses the key in hex, HEX, base64, base64url and PEM, and never quotes it', () => {
    for (const form of [...keyForms(raw), pem]) {
      for (const text of [form, `Rejected key ${form} from node-b`]) {
        const err = refused({ event: 'record.rejected', detail: text });
        expect(err.field).toBe('detail');
        for (const f of keyForms(raw)) expect(err.message).not.toContain(f);
        expect(err.message).not.toContain(pem.split('\n')[1]);
      }
    }
  });

  it('refuses field names that say key or secret, but allows keyKind', () => {
    for (const name of ['key', 'privateKey', 'publicKey', 'encKey', 'key_id', 'psk', 'presharedKey', 'secret', 'clientSecret', 'password', 'token']) {
      expect(refused({ event: 'x', [name]: 'short' }).field).toBe(name);
    }
    expect(() => assertNoKeyMaterial({ event: 'x', keyKind: 'node', monkey: 'ok' })).not.toThrow();
  });

  it('allows fingerprints only in fingerprint fields and serials only in "serial"', () => {
    const fp = `sha256:${'ab'.repeat(32)}`;
    expect(() => assertNoKeyMaterial({ fingerprint: fp, issuerFingerprint: fp, serial: 'ab'.repeat(20) })).not.toThrow();
    expect(refused({ detail: fp }).field).toBe('detail');
    expect(refused({ fingerprint: 'ab'.repeat(32) }).field).toBe('fingerprint');
  });

  it('allows Kubernetes names, SPIFFE IDs, subjects and ordinary sentences', () => {
    expect(() =>
      assertNoKeyMaterial({
        spiffeId: 'spiffe://cluster.local/ns/kube-system/sa/very-long-service-account-name-for-tests',
        subject: 'CN=node-a.example.internal, O=veil',
        detail: 'Record generation 41 is older than the installed generation 42 (node "ip-10-0-0-1.ec2.internal")',
      }),
    ).not.toThrow();
  });

  it('refuses a private key handed over as a PEM string even in a harmless-looking field', () => {
    const rsa = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'pem', type: 'sec1' }) as string;
    expect(refused({ subject: rsa }).field).toBe('subject');
    expect(createPrivateKey(rsa).type).toBe('private');
  });
});
