/**
 * Reads a file as raw lines (exact bytes, without the newline) with bounded memory: at most
 * `maxLineBytes` per line are held. A line longer than that is reported (tooLong) and reading
 * stops. The last line is marked unterminated when the file does not end in "\n".
 */
import { closeSync, openSync, readSync } from 'node:fs';

export type RawLine =
  | { number: number; bytes: Buffer; terminated: boolean; tooLong?: false }
  | { number: number; tooLong: true };

export function* linesOfBuffer(data: Buffer, maxLineBytes: number): Generator<RawLine> {
  let start = 0;
  let n = 0;
  while (start < data.length) {
    n++;
    const nl = data.indexOf(0x0a, start);
    const end = nl < 0 ? data.length : nl;
    if (end - start > maxLineBytes) {
      yield { number: n, tooLong: true };
      return;
    }
    yield { number: n, bytes: data.subarray(start, end), terminated: nl >= 0 };
    start = end + 1;
  }
}

export function* linesOfFile(path: string, maxLineBytes: number, chunkBytes = 64 * 1024): Generator<RawLine> {
  const fd = openSync(path, 'r');
  try {
    let pending = Buffer.alloc(0);
    let n = 0;
    const chunk = Buffer.alloc(chunkBytes);
    for (;;) {
      const got = readSync(fd, chunk, 0, chunk.length, null);
      if (got === 0) break;
      let data = Buffer.concat([pending, chunk.subarray(0, got)]);
      let start = 0;
      for (;;) {
        const nl = data.indexOf(0x0a, start);
        if (nl < 0) break;
        n++;
        if (nl - start > maxLineBytes) {
          yield { number: n, tooLong: true };
          return;
        }
        yield { number: n, bytes: Buffer.from(data.subarray(start, nl)), terminated: true };
        start = nl + 1;
      }
      data = data.subarray(start);
      if (data.length > maxLineBytes) {
        yield { number: n + 1, tooLong: true };
        return;
      }
      pending = Buffer.from(data);
    }
    if (pending.length > 0) yield { number: n + 1, bytes: pending, terminated: false };
  } finally {
    closeSync(fd);
  }
}
