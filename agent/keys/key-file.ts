/**
 * Private keys in the state directory: written atomically with mode 0600, read only when the
 * file is still private.
 *
 * Writing: a temporary file created exclusively with mode 0600 in the same directory, written
 * and fsynced, then renamed over the target (readers see the old key or the new one, never half
 * of one); the directory is created 0700 when missing and fsynced after the rename.
 *
 * Reading: opened with O_NOFOLLOW (a symlink is refused) and checked on the open descriptor
 * (no race between check and read): a regular file, owned by us, with no permission bit for
 * group or others, at most `maxBytes` long. Anything else is a KeyFileError saying how to fix
 * it. Errors name the path, never the content.
 *
 * An X25519 private key is stored as WireGuard stores one: 44 characters of base64 and a
 * newline (`wg genkey` output), so operators can use `wg pubkey < FILE`.
 */
import { constants } from 'node:fs';
import { mkdir, open, rename, unlink } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { basename, dirname, join } from 'node:path';
import { KeyFileError } from './errors.js';
import { X25519PrivateKey } from './x25519.js';

export const SECRET_FILE_MODE = 0o600;
export const SECRET_DIR_MODE = 0o700;
/** Largest secret file read (a PEM private key is ~250 bytes; this leaves room for RSA). */
export const MAX_SECRET_FILE_BYTES = 64 * 1024;

function errnoOf(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | undefined)?.code;
}

/** Writes `data` to `path` atomically with mode 0600. */
export async function writeSecretFile(path: string, data: Uint8Array): Promise<void> {
  const dir = dirname(path);
  try {
    await mkdir(dir, { recursive: true, mode: SECRET_DIR_MODE });
  } catch (err) {
    throw new KeyFileError(path, `Cannot create directory "${dir}" for secret file "${path}": ${errnoOf(err) ?? 'error'}; check the state directory`, { cause: err });
  }
  const tmp = join(dir, `.${basename(path)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  let renamed = false;
  try {
    const fh = await open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, SECRET_FILE_MODE);
    try {
      await fh.chmod(SECRET_FILE_MODE); // the umask can only have removed bits; make it exact
      await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
    renamed = true;
    const dh = await open(dir, constants.O_RDONLY | constants.O_DIRECTORY);
    try {
      await dh.sync();
    } finally {
      await dh.close();
    }
  } catch (err) {
    if (!renamed) await unlink(tmp).catch(() => undefined);
    if (err instanceof KeyFileError) throw err;
    throw new KeyFileError(path, `Cannot write secret file "${path}": ${errnoOf(err) ?? 'error'}; check that "${dir}" is writable`, { cause: err });
  }
}

/**
 * Reads a secret file after checking on the open descriptor that it is a regular file owned by
 * this user with mode bits for nobody else (group/world-readable files are refused).
 */
export async function readSecretFile(path: string, maxBytes = MAX_SECRET_FILE_BYTES): Promise<Buffer> {
  let fh;
  try {
    fh = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (err) {
    const code = errnoOf(err);
    if (code === 'ENOENT') throw new KeyFileError(path, `Secret file "${path}" does not exist: create it (e.g. "veil keys rotate") or fix the path`, { cause: err });
    if (code === 'ELOOP') throw new KeyFileError(path, `Refusing secret file "${path}": it is a symbolic link; put the key file itself there`, { cause: err });
    throw new KeyFileError(path, `Cannot open secret file "${path}": ${code ?? 'error'}`, { cause: err });
  }
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw new KeyFileError(path, `Refusing secret file "${path}": it is not a regular file`);
    const uid = process.getuid?.();
    if (uid !== undefined && st.uid !== uid) {
      throw new KeyFileError(path, `Refusing secret file "${path}": it is owned by uid ${st.uid}, not by this process (uid ${uid}); run "chown ${uid} ${path}"`);
    }
    const mode = st.mode & 0o777;
    if (mode & 0o077) {
      throw new KeyFileError(
        path,
        `Refusing secret file "${path}": mode ${mode.toString(8).padStart(4, '0')} lets group or others access it; run "chmod 600 ${path}" (and consider the key exposed)`,
      );
    }
    if (st.size > maxBytes) throw new KeyFileError(path, `Refusing secret file "${path}": ${st.size} bytes is more than the ${maxBytes} expected; is it the right file?`);
    const buf = Buffer.alloc(Math.min(st.size, maxBytes) + 1);
    let n = 0;
    for (;;) {
      const { bytesRead } = await fh.read(buf, n, buf.length - n, n);
      if (bytesRead === 0) break;
      n += bytesRead;
      if (n > maxBytes) {
        buf.fill(0);
        throw new KeyFileError(path, `Refusing secret file "${path}": it grew past ${maxBytes} bytes while being read`);
      }
      if (n === buf.length) break;
    }
    return buf.subarray(0, n);
  } finally {
    await fh.close();
  }
}

/** Writes an X25519 private key as `wg genkey` does (base64 + newline), mode 0600. */
export async function writePrivateKeyFile(path: string, key: X25519PrivateKey): Promise<void> {
  const raw = key.exportRaw();
  const text = Buffer.from(`${raw.toString('base64')}\n`);
  try {
    await writeSecretFile(path, text);
  } finally {
    raw.fill(0);
    text.fill(0);
  }
}

/** Reads an X25519 private key written by writePrivateKeyFile() or `wg genkey` (mode 0600 checked). */
export async function readPrivateKeyFile(path: string): Promise<X25519PrivateKey> {
  const buf = await readSecretFile(path, 1024);
  try {
    const text = buf.toString('latin1').trim();
    if (!/^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$/.test(text)) {
      throw new KeyFileError(path, `Invalid private key file "${path}": expected one line of 44 base64 characters (as "wg genkey" writes)`);
    }
    return X25519PrivateKey.fromRaw(Buffer.from(text, 'base64'), path);
  } finally {
    buf.fill(0);
  }
}

/**
 * Destroys a secret file: overwrites its bytes with zeros on the same inode, fsyncs, then removes
 * it and fsyncs the directory. A missing file is already destroyed (returns false). On copy-on-write
 * or journaling file systems the old blocks may survive on disk; the state directory belongs on a
 * plain file system or tmpfs (SECURITY.md).
 */
export async function destroySecretFile(path: string): Promise<boolean> {
  let fh;
  try {
    fh = await open(path, constants.O_WRONLY | constants.O_NOFOLLOW);
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return false;
    throw new KeyFileError(path, `Cannot open secret file "${path}" to destroy it: ${errnoOf(err) ?? 'error'}; remove it by hand and check the state directory`, { cause: err });
  }
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw new KeyFileError(path, `Refusing to destroy "${path}": it is not a regular file`);
    await fh.write(Buffer.alloc(st.size), 0, st.size, 0);
    await fh.sync();
  } finally {
    await fh.close();
  }
  try {
    await unlink(path);
    const dh = await open(dirname(path), constants.O_RDONLY | constants.O_DIRECTORY);
    try {
      await dh.sync();
    } finally {
      await dh.close();
    }
  } catch (err) {
    throw new KeyFileError(path, `Cannot remove secret file "${path}" after wiping it: ${errnoOf(err) ?? 'error'}; remove it by hand`, { cause: err });
  }
  return true;
}
