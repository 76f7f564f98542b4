/**
 * Writing certificate material to disk: each file is written to a temporary sibling created
 * with its final mode (0600 for private keys, 0644 for certificates), fsynced and renamed over
 * the target, so a reader never sees a half-written key or a key with a wider mode.
 */
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, open, readFile, rename, rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import { ConfigError } from '../agent/errors.js';

export const PRIVATE_KEY_MODE = 0o600;
export const PUBLIC_FILE_MODE = 0o644;

async function writeAtomic(path: string, content: string, mode: number): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o755 });
  const tmp = `${path}.tmp-${randomBytes(6).toString('hex')}`;
  const fh = await open(tmp, 'wx', mode);
  try {
    await fh.chmod(mode); // the umask may have narrowed it; never widened
    await fh.writeFile(content);
    await fh.sync();
  } catch (err) {
    await fh.close();
    await rm(tmp, { force: true });
    throw err;
  }
  await fh.close();
  await rename(tmp, path);
  await chmod(path, mode);
}

/** Writes a private key PEM with mode 0600. */
export function writePrivateKeyFile(path: string, pem: string): Promise<void> {
  return writeAtomic(path, pem, PRIVATE_KEY_MODE);
}

/** Writes a certificate, CSR or bundle PEM with mode 0644. */
export function writePublicFile(path: string, content: string): Promise<void> {
  return writeAtomic(path, content, PUBLIC_FILE_MODE);
}

/** Reads a file a command needs, or a ConfigError naming it and what makes it. */
export async function readInputFile(path: string, what: string, hint: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new ConfigError(`Cannot read ${what} "${path}": no such file; ${hint}`);
    throw new ConfigError(`Cannot read ${what} "${path}": ${code ?? 'error'}`, { cause: err });
  }
}
