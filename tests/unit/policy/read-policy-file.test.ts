import { mkdtempSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { POLICY_FILE, PolicyFileError, PolicyInputError } from '../../../agent/policy/errors.js';
import { MAX_POLICY_FILE_BYTES, readPolicyFile } from '../../../agent/policy/policy-file.js';
import { np } from './policy-fixture.js';

const dir = mkdtempSync(join(tmpdir(), 'veil-po-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('readPolicyFile()', () => {
  it('reads a file and names it in locations', async () => {
    const f = join(dir, 'ok.yaml');
    writeFileSync(f, np('a', 'shop', 'podSelector: {}'));
    const [p] = await readPolicyFile(f);
    expect(p!.location).toEqual({ source: f, document: 1, policy: 'shop/a' });
  });

  it('refuses a missing path and a directory with PolicyFileError', async () => {
    const missing = await readPolicyFile(join(dir, 'nope.yaml')).catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(PolicyFileError);
    expect((missing as PolicyFileError).code).toBe(POLICY_FILE);
    expect((missing as Error).message).toMatch(/Cannot open NetworkPolicy file ".*nope.yaml" \(ENOENT\): check the path/);
    await expect(readPolicyFile(dir)).rejects.toThrow(/is not a regular file/);
  });

  it('refuses an oversized file before reading it', async () => {
    const f = join(dir, 'big.yaml');
    writeFileSync(f, '');
    truncateSync(f, MAX_POLICY_FILE_BYTES * 64); // sparse: nothing is written or read
    const e = await readPolicyFile(f).catch((err: unknown) => err);
    expect(e).toBeInstanceOf(PolicyInputError);
    expect((e as Error).message).toMatch(/the file is 67108864 bytes: keep a policy file under/);
  });
});
