/**
 * Packed batches: validated objects written as fixed-size records into one Buffer, with the
 * strings they name (device names) interned into a small table passed beside it. Crossing into
 * C++ then costs one Buffer and a handful of strings instead of a property read per field per
 * object, which dominated large batches. Records are in host byte order (the addon runs in this
 * process); native/src/pack.h reads them and checks every length and range again.
 */

export class PackedBatch {
  /** The records, `count * recordSize` bytes, zero-filled before writing. */
  readonly bytes: Uint8Array;
  /** The same memory as 32-bit words (records are multiples of 4 bytes). */
  readonly words: Uint32Array;
  /** Interned strings; a record refers to strings[k] as k + 1 (0 = none). */
  readonly strings: string[] = [];
  /** For each interned string, the index of the first record that named it (for error reports). */
  readonly firstUse: number[] = [];
  private readonly index = new Map<string, number>();

  constructor(
    readonly count: number,
    readonly recordSize: number,
  ) {
    if (recordSize % 4 !== 0) throw new RangeError(`Record size ${recordSize} is not a multiple of 4`);
    this.bytes = new Uint8Array(count * recordSize);
    this.words = new Uint32Array(this.bytes.buffer, this.bytes.byteOffset, this.bytes.length / 4);
  }

  /**
   * The reference (k + 1) of `s`, interning it on first use; `check` validates a string the
   * first time it is seen (it throws on a bad one), so repeated names cost one map lookup.
   */
  intern(s: string, record: number, check: (s: string) => void): number {
    const ref = this.index.get(s);
    if (ref !== undefined) return ref;
    check(s);
    this.strings.push(s);
    this.firstUse.push(record);
    this.index.set(s, this.strings.length);
    return this.strings.length;
  }

  /** The first `records` records (default all) as a Buffer sharing the same memory. */
  buffer(records = this.count): Buffer {
    return Buffer.from(this.bytes.buffer, this.bytes.byteOffset, Math.min(records, this.count) * this.recordSize);
  }

  /** Zeroes every record (for batches that carried key material, once the addon copied it). */
  scrub(): void {
    this.bytes.fill(0);
  }
}
