import { createPublicKey, sign, verify } from 'node:crypto';
import { chmod, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  createBootstrapToken,
  encodeRegistration,
  parseRegistration,
  readBootstrapTokenFile,
  tokenPublicKeyDer,
  tokenSigningKey,
  writeBootstrapTokenFile,
} from '../../../agent/node-cert/bootstrap-token.js';
import { BootstrapTokenError, CertificateRecordError } from '../../../agent/node-cert/errors.js';

const dir = await mkdtemp(join(tmpdir(), 'veil-oc-token-'));
afterAll(() => rm(dir, { recursive: true, force: true }));

const kv = (value: Buffer | string, key = '/veil/certs/bootstrap/node-a') => ({ key, value: Buffer.from(value), createRevision: '1', modRevision: '1' });

describe('bootstrap token', () => {
  it('derives one Ed25519 key per token, and the registered public key verifies its signatures', () => {
    const token = createBootstrapToken();
    expect(token).toMatch(/^veil-bootstrap-v1:[A-Za-z0-9_-]{43}$/);
    const key = tokenSigningKey(token);
    expect(key.asymmetricKeyType).toBe('ed25519');
    const pub = createPublicKey({ key: tokenPublicKeyDer(token), format: 'der', type: 'spki' });
    const sig = sign(null, Buffer.from('data'), key);
    expect(verify(null, Buffer.from('data'), pub, sig)).toBe(true);
    const other = createPublicKey({ key: tokenPublicKeyDer(createBootstrapToken()), format: 'der', type: 'spki' });
    expect(verify(null, Buffer.from('data'), other, sig)).toBe(false);
    // Deterministic: the same token is the same key.
    expect(tokenPublicKeyDer(token).equals(tokenPublicKeyDer(`${token}\n`))).toBe(true);
  });

  it('refuses malformed tokens without quoting them', () => {
    for (const bad of ['', 'veil-bootstrap-v1:', 'veil-bootstrap-v1:abc', 'other:' + 'A'.repeat(43), `veil-bootstrap-v1:${'A'.repeat(44)}`]) {
      let err: unknown;
      try {
        tokenSigningKey(bad);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(BootstrapTokenError);
      if (bad.length > 20) expect((err as Error).message).not.toContain(bad.slice(18));
    }
  });

  it('writes the token file 0600 and refuses to read a file others can read', async () => {
    const token = createBootstrapToken();
    const path = join(dir, 'token');
    await writeBootstrapTokenFile(path, token);
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    expect(await readBootstrapTokenFile(path)).toBe(token);
    await chmod(path, 0o644);
    await expect(readBootstrapTokenFile(path)).rejects.toThrow(/mode 0644: it is a secret, run "chmod 600/);
    await expect(readBootstrapTokenFile(join(dir, 'missing'))).rejects.toThrow(/no bootstrap token at ".*missing": provision a token/);
    const junk = join(dir, 'junk');
    await writeFile(junk, 'x'.repeat(300), { mode: 0o600 });
    await expect(readBootstrapTokenFile(junk)).rejects.toBeInstanceOf(BootstrapTokenError);
  });

  it('round-trips a registration and refuses damaged ones', () => {
    const token = createBootstrapToken();
    const reg = { node: 'node-a', publicKey: tokenPublicKeyDer(token), expiresAt: new Date('2030-01-01T00:00:00.000Z') };
    const back = parseRegistration(kv(encodeRegistration(reg)), 'node-a');
    expect(back.publicKey.equals(reg.publicKey)).toBe(true);
    expect(back.expiresAt.toISOString()).toBe('2030-01-01T00:00:00.000Z');
    expect(() => parseRegistration(kv(encodeRegistration(reg)), 'node-b')).toThrow(/names node "node-a"/);
    expect(() => parseRegistration(kv('nope'), 'node-a')).toThrow(CertificateRecordError);
    const ecKey = JSON.stringify({ v: 1, node: 'node-a', publicKey: Buffer.from('abc').toString('base64'), expiresAt: '2030-01-01T00:00:00.000Z' });
    expect(() => parseRegistration(kv(ecKey), 'node-a')).toThrow(/not an Ed25519 public key/);
    const badTime = JSON.stringify({ v: 1, node: 'node-a', publicKey: reg.publicKey.toString('base64'), expiresAt: 'soon' });
    expect(() => parseRegistration(kv(badTime), 'node-a')).toThrow(/"expiresAt" is not a time/);
  });
});
