/**
 * Reads the end of an existing audit log so a new process can continue its chain. The last
 * complete line gives the next `seq` and `prev`. A file that does not end in "\n" has a torn
 * tail (a crash in the middle of a write): its fragment is returned so the writer can handle it
 * deliberately (see audit-log.ts and docs/audit.md) — it is never silently dropped or rewritten.
 */
import { fstatSync, readSync } from 'node:fs';
import { AuditLogError } from './errors.js';
import { AUDIT_LEVEL, GENESIS_PREV, isLineHash, lineHash, MAX_LINE_BYTES } from './line-format.js';

export interface ChainTail {
  /** seq for the next line. */
  nextSeq: number;
  /** prev for the next line. */
  head: string;
  /** Bytes after the last newline, when the file does not end in one. */
  torn?: Buffer;
  /** File size when read. */
  size: number;
}

/** Parses a line's envelope enough to continue after it; undefined when it is not one. */
export function parseChainPosition(line: Buffer): { seq: number; prev: string } | undefined {
  try {
    const obj = JSON.parse(line.toString('utf8')) as Record<string, unknown>;
    if (obj?.level !== AUDIT_LEVEL || !Number.isSafeInteger(obj.seq) || (obj.seq as number) < 1 || !isLineHash(obj.prev)) return undefined;
    return { seq: obj.seq as number, prev: obj.prev as string };
  } catch {
    return undefined;
  }
}

export function readChainTail(fd: number, path: string): ChainTail {
  const size = fstatSync(fd).size;
  if (size === 0) return { nextSeq: 1, head: GENESIS_PREV, size };
  const window = Math.min(size, 2 * (MAX_LINE_BYTES + 1) + 1);
  const buf = Buffer.alloc(window);
  let got = 0;
  while (got < window) {
    const n = readSync(fd, buf, got, window - got, size - window + got);
    if (n === 0) break;
    got += n;
  }
  const tail = buf.subarray(0, got);
  const lastNl = tail.lastIndexOf(0x0a);
  const torn = lastNl === tail.length - 1 ? undefined : Buffer.from(tail.subarray(lastNl + 1));
  if (lastNl < 0) {
    if (size > window) {
      throw new AuditLogError(`Cannot continue audit log "${path}": its last ${window} bytes hold no line break; move the file aside and verify it with "veil audit verify"`);
    }
    // The whole file is one fragment: the first line itself was torn.
    return { nextSeq: 1, head: GENESIS_PREV, torn, size };
  }
  const prevNl = tail.lastIndexOf(0x0a, lastNl - 1);
  if (prevNl < 0 && size > window) {
    throw new AuditLogError(`Cannot continue audit log "${path}": its last line is longer than ${MAX_LINE_BYTES} bytes; move the file aside and verify it with "veil audit verify"`);
  }
  const last = tail.subarray(prevNl + 1, lastNl);
  const pos = parseChainPosition(last);
  if (!pos) {
    throw new AuditLogError(
      `Cannot continue audit log "${path}": its last complete line is not an audit line; move the file aside and verify it with "veil audit verify"`,
    );
  }
  return { nextSeq: pos.seq + 1, head: lineHash(last), size, ...(torn ? { torn } : {}) };
}
