/**
 * The pino destination of the audit log. pino serialises each line; this sink appends its exact
 * bytes to the file (O_APPEND, looping over short writes), remembers their SHA-256 as the chain
 * head for the next line, and mirrors the line to a second stream (stdout). Writes are synchronous
 * so the head is known before the next line is built; durability (fdatasync) is the caller's.
 * A failed file write is kept (not thrown into pino) and reported by takeError(): the file may
 * now end in a torn line, so the log must stop and the next process recovers the tail.
 */
import { writeSync } from 'node:fs';
import { lineHash, MAX_LINE_BYTES } from './line-format.js';

export interface Mirror {
  write(chunk: string): unknown;
}

export class ChainSink {
  private head: string;
  private error: Error | undefined;
  private lines = 0;

  constructor(
    private readonly fd: number,
    initialHead: string,
    private readonly mirror: Mirror | null,
  ) {
    this.head = initialHead;
  }

  /** Hash of the last line written (the next line's `prev`). */
  get chainHead(): string {
    return this.head;
  }

  /** Lines written through this sink. */
  get written(): number {
    return this.lines;
  }

  /** Called by pino with one serialised line ending in "\n". */
  write(chunk: string): boolean {
    if (this.error) return false;
    const bytes = Buffer.from(chunk, 'utf8');
    const end = bytes.length - 1;
    if (end < 0 || bytes[end] !== 0x0a || bytes.indexOf(0x0a) !== end || bytes.length > MAX_LINE_BYTES + 1) {
      this.error = new Error(`pino produced ${bytes.length} bytes that are not one audit line`);
      return false;
    }
    try {
      this.writeAll(bytes);
    } catch (err) {
      this.error = err as Error;
      return false;
    }
    this.head = lineHash(bytes.subarray(0, end));
    this.lines++;
    try {
      this.mirror?.write(chunk);
    } catch {
      // The mirror (stdout) is a convenience copy; the file is the record.
    }
    return true;
  }

  /**
   * Terminates a torn fragment found at the end of the file with a newline. `chained`: the
   * fragment is a complete line of the chain that only lacked its newline, so it becomes the head.
   */
  terminateFragment(fragment: Buffer, chained: boolean): void {
    this.writeAll(Buffer.from('\n'));
    if (chained) this.head = lineHash(fragment);
  }

  /** The write error that stopped this sink, if any (it accepts nothing after one). */
  get failure(): Error | undefined {
    return this.error;
  }

  private writeAll(bytes: Buffer): void {
    let off = 0;
    while (off < bytes.length) off += writeSync(this.fd, bytes, off, bytes.length - off);
  }
}
