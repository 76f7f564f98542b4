import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { linesOfBuffer, linesOfFile } from '../../../agent/audit/line-reader.js';

const dir = mkdtempSync(join(tmpdir(), 'veil-audit-lines-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('line readers', () => {
  it('split exact bytes, mark a missing final newline, and stop at an oversized line', () => {
    const lines = [...linesOfBuffer(Buffer.from('a\n\nbc\nd'), 10)];
    expect(lines).toEqual([
      { number: 1, bytes: Buffer.from('a'), terminated: true },
      { number: 2, bytes: Buffer.from(''), terminated: true },
      { number: 3, bytes: Buffer.from('bc'), terminated: true },
      { number: 4, bytes: Buffer.from('d'), terminated: false },
    ]);
    expect([...linesOfBuffer(Buffer.from('ok\n0123456789X\nno\n'), 10)]).toEqual([
      { number: 1, bytes: Buffer.from('ok'), terminated: true },
      { number: 2, tooLong: true },
    ]);
  });

  it('linesOfFile() agrees with linesOfBuffer() for any content and chunk size', () => {
    let i = 0;
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.integer({ min: 1, max: 64 }), fc.integer({ min: 1, max: 40 }), (bytes, chunk, max) => {
        const data = Buffer.from(bytes.map((b) => (b % 7 === 0 ? 0x0a : b)));
        const path = join(dir, `f${i++}`);
        writeFileSync(path, data);
        expect([...linesOfFile(path, max, chunk)]).toEqual([...linesOfBuffer(data, max)]);
      }),
      { numRuns: 300 },
    );
  });
});
