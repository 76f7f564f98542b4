import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { writePrivateKeyFile, writePublicFile } from '../../../certs/files.js';

const dir = mkdtempSync(join(tmpdir(), 'veil-certs-files-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('certificate files', () => {
  it('writes private keys with mode 0600 even under a permissive umask, and replaces a wider file', async () => {
    const old = process.umask(0);
    try {
      const p = join(dir, 'sub', 'key.pem');
      writeFileSync(join(dir, 'wide.pem'), 'old', { mode: 0o666 });
      await writePrivateKeyFile(p, 'KEY');
      await writePrivateKeyFile(join(dir, 'wide.pem'), 'KEY2');
      expect(statSync(p).mode & 0o777).toBe(0o600);
      expect(statSync(join(dir, 'wide.pem')).mode & 0o777).toBe(0o600);
      expect(readFileSync(join(dir, 'wide.pem'), 'utf8')).toBe('KEY2');
    } finally {
      process.umask(old);
    }
  });

  it('writes certificates with mode 0644 and leaves no temporary files behind', async () => {
    await writePublicFile(join(dir, 'cert.pem'), 'CERT');
    expect(statSync(join(dir, 'cert.pem')).mode & 0o777).toBe(0o644);
    expect(readdirSync(dir).filter((f) => f.includes('.tmp-'))).toEqual([]);
  });
});
