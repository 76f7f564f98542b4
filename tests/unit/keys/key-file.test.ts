import { chmodSync, linkSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { KeyFileError } from '../../../agent/keys/errors.js';
import { destroySecretFile, readPrivateKeyFile, readSecretFile, writePrivateKeyFile, writeSecretFile } from '../../../agent/keys/key-file.js';
import { KeyStateDir } from '../../../agent/keys/key-state-dir.js';
import { initialRotationState } from '../../../agent/keys/rotation.js';
import { X25519PrivateKey } from '../../../agent/keys/x25519.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'veil-keyfile-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

async function keyFileError(run: () => Promise<unknown>): Promise<KeyFileError> {
  try {
    await run();
  } catch (err) {
    expect(err).toBeInstanceOf(KeyFileError);
    return err as KeyFileError;
  }
  throw new Error('Expected a KeyFileError, nothing was thrown');
}

describe('private key files', () => {
  it('writes a key with mode 0600 in "wg genkey" form, in a new 0700 directory, and reads it back', async () => {
    const key = X25519PrivateKey.generate();
    const path = join(dir, 'state', 'keys', 'node.key');
    await writePrivateKeyFile(path, key);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(statSync(join(dir, 'state', 'keys')).mode & 0o777).toBe(0o700);
    expect(readFileSync(path, 'utf8')).toBe(`${key.exportRaw().toString('base64')}\n`);
    const back = await readPrivateKeyFile(path);
    expect(back.publicKey.equals(key.publicKey)).toBe(true);
  });

  it('writes mode 0600 even with a permissive umask', async () => {
    const old = process.umask(0);
    try {
      await writeSecretFile(join(dir, 's'), Buffer.from('x'));
    } finally {
      process.umask(old);
    }
    expect(statSync(join(dir, 's')).mode & 0o777).toBe(0o600);
  });

  it('replaces an existing key atomically, leaving no temporary files', async () => {
    const path = join(dir, 'node.key');
    await writePrivateKeyFile(path, X25519PrivateKey.generate());
    const second = X25519PrivateKey.generate();
    await writePrivateKeyFile(path, second);
    expect((await readPrivateKeyFile(path)).publicKey.equals(second.publicKey)).toBe(true);
    expect(readFileSync(path, 'utf8').trim()).toHaveLength(44);
    const { readdirSync } = await import('node:fs');
    expect(readdirSync(dir)).toEqual(['node.key']);
  });

  it.each(['0644', '0640', '0604', '0660', '0601', '0610', '0666'])('refuses to read a key file with mode %s, saying how to fix it', async (text) => {
    const mode = parseInt(text, 8);
    const key = X25519PrivateKey.generate();
    const path = join(dir, 'node.key');
    await writePrivateKeyFile(path, key);
    chmodSync(path, mode);
    const err = await keyFileError(() => readPrivateKeyFile(path));
    expect(err.message).toBe(
      `Refusing secret file "${path}": mode ${text} lets group or others access it; run "chmod 600 ${path}" (and consider the key exposed)`,
    );
    expect(err.code).toBe('VEIL_KEY_FILE');
    expect(err.path).toBe(path);
    const raw = key.exportRaw();
    expect(JSON.stringify({ m: err.message, s: err.stack })).not.toContain(raw.toString('base64'));
  });

  it('reads a key file with mode 0400 (owner read-only)', async () => {
    const path = join(dir, 'ro.key');
    await writePrivateKeyFile(path, X25519PrivateKey.generate());
    chmodSync(path, 0o400);
    await expect(readPrivateKeyFile(path)).resolves.toBeInstanceOf(X25519PrivateKey);
  });

  it('refuses a symbolic link, a directory, a missing file and an oversized file', async () => {
    const real = join(dir, 'real.key');
    await writePrivateKeyFile(real, X25519PrivateKey.generate());
    const link = join(dir, 'link.key');
    symlinkSync(real, link);
    expect(lstatSync(link).isSymbolicLink()).toBe(true);
    expect((await keyFileError(() => readPrivateKeyFile(link))).message).toMatch(/is a symbolic link/);
    const sub = join(dir, 'sub');
    mkdirSync(sub, { mode: 0o700 });
    expect((await keyFileError(() => readSecretFile(sub))).message).toMatch(/not a regular file/);
    expect((await keyFileError(() => readPrivateKeyFile(join(dir, 'none.key')))).message).toMatch(/does not exist/);
    const big = join(dir, 'big');
    writeFileSync(big, Buffer.alloc(2000, 0x41), { mode: 0o600 });
    expect((await keyFileError(() => readPrivateKeyFile(big))).message).toMatch(/2000 bytes is more than the 1024 expected/);
  });

  it('refuses a key file with the wrong content without echoing it', async () => {
    const path = join(dir, 'bad.key');
    const content = 'c2VjcmV0LWJ1dC13cm9uZy1sZW5ndGgtbm90LWEta2V5\n';
    writeFileSync(path, content, { mode: 0o600 });
    const err = await keyFileError(() => readPrivateKeyFile(path));
    expect(err.message).toBe(`Invalid private key file "${path}": expected one line of 44 base64 characters (as "wg genkey" writes)`);
    expect(err.message).not.toContain(content.trim());
  });

  it('refuses a file owned by another user', async () => {
    const path = join(dir, 'other.key');
    await writePrivateKeyFile(path, X25519PrivateKey.generate());
    const { chownSync } = await import('node:fs');
    chownSync(path, 65534, 65534);
    if (process.getuid?.() === 65534) throw new Error('Run this test as a user other than nobody');
    expect((await keyFileError(() => readPrivateKeyFile(path))).message).toMatch(/owned by uid 65534, not by this process/);
  });
});

describe('destroying key files', () => {
  it('overwrites the file in place before removing it, and treats a missing file as destroyed', async () => {
    const path = join(dir, 'node.1.key');
    await writePrivateKeyFile(path, X25519PrivateKey.generate());
    // A second name for the same inode shows what the bytes were when the name was removed.
    const witness = join(dir, 'witness');
    linkSync(path, witness);
    expect(await destroySecretFile(path)).toBe(true);
    expect(() => statSync(path)).toThrow(/ENOENT/);
    const left = readFileSync(witness);
    expect(left.length).toBe(45);
    expect(left.every((b) => b === 0)).toBe(true);
    expect(await destroySecretFile(path)).toBe(false);
  });

  it('refuses to destroy through a symbolic link or a directory', async () => {
    const target = join(dir, 'target');
    writeFileSync(target, 'keep');
    symlinkSync(target, join(dir, 'link'));
    await expect(destroySecretFile(join(dir, 'link'))).rejects.toThrow(KeyFileError);
    expect(readFileSync(target, 'utf8')).toBe('keep');
    mkdirSync(join(dir, 'sub'));
    await expect(destroySecretFile(join(dir, 'sub'))).rejects.toThrow(KeyFileError);
  });
});

describe('the key state directory', () => {
  it('is created 0700 (an existing one tightened) and round-trips the state with mode 0600', async () => {
    const stateDir = join(dir, 'state');
    mkdirSync(join(stateDir, 'keys'), { recursive: true, mode: 0o755 });
    const d = new KeyStateDir(stateDir);
    await d.prepare();
    expect(statSync(d.dir).mode & 0o777).toBe(0o700);
    expect(await d.load()).toBeNull();
    const state = {
      v: 1 as const,
      node: 'node-a',
      sequence: 3,
      slots: [{ rotation: initialRotationState({ kind: 'node', node: 'node-a', identity: 0 }, { intervalMs: 60_000 }), dueAt: null, publishedAt: null, retireReason: 'rotation' as const }],
    };
    await d.save(state);
    expect(statSync(d.statePath).mode & 0o777).toBe(0o600);
    expect(await d.load()).toEqual(state);
    expect(d.keyPath({ kind: 'identity', identity: 300 }, 2)).toBe(join(d.dir, 'identity-300.2.key'));
  });

  it('refuses a state file that is not its own shape, saying how to recover', async () => {
    const d = new KeyStateDir(join(dir, 'bad'));
    await d.prepare();
    await writeSecretFile(d.statePath, Buffer.from('{"v":1,"node":"node-a","sequence":0,"slots":[{"rotation":{}}]}'));
    await expect(d.load()).rejects.toThrow(/Invalid key state file ".*state.json": slot 0 is malformed; restore it from a backup or move the key directory aside/);
    await writeSecretFile(d.statePath, Buffer.from('nope'));
    await expect(d.load()).rejects.toThrow(/not JSON/);
    chmodSync(d.statePath, 0o644);
    await expect(d.load()).rejects.toThrow(/mode 0644 lets group or others access it/);
  });
});
