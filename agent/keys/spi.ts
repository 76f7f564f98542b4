/**
 * SPI allocation, unique per receiver. The kernel finds an inbound SA by (mark, destination,
 * SPI, protocol) (LESSONS.md §IPsec), so a receiver must never hand out one SPI twice.
 *
 * Each inbound SA gets a deterministic candidate: SHA-256 over ("veil/spi/v1", sender identity,
 * sender node, generation, direction) mapped into [min, max] — which excludes 0..255, reserved by
 * RFC 4303 — so in the common case both ends compute the same SPI without talking. When the
 * candidate is taken in this receiver's table, linear probing (wrapping within the range) finds
 * the next free one; the receiver publishes the SPI it chose. A new generation gives a new
 * candidate, so a rekey also changes the SPI (changing a key without the SPI caused
 * XfrmInStateProtoError, LESSONS.md).
 */
import { createHash } from 'node:crypto';
import { ValidationError } from '../errors.js';
import { quote } from '../net/ip.js';
import { SpiExhaustedError } from './errors.js';

/** SPIs 1..255 are reserved by IANA (RFC 4303 §2.1) and 0 means "no SA". */
export const SPI_MIN = 256;
export const SPI_MAX = 0xffffffff;

export interface SpiRequest {
  /** Identity id of the sending workload (0 for the node key in per-node-pair mode). */
  senderIdentity: number;
  senderNode: string;
  /** SA generation. */
  generation: number;
  direction: 'in' | 'out';
}

function checkRequest(r: SpiRequest): void {
  if (typeof r !== 'object' || r === null) throw new ValidationError('request', 'Invalid SPI request: expected an object');
  const u32 = (v: unknown, f: string) => {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 0xffffffff) {
      throw new ValidationError(f, `Invalid ${f} ${quote(v)}: use an integer from 0 to 4294967295`);
    }
  };
  u32(r.senderIdentity, 'senderIdentity');
  u32(r.generation, 'generation');
  if (typeof r.senderNode !== 'string' || r.senderNode.length === 0 || Buffer.byteLength(r.senderNode) > 253) {
    throw new ValidationError('senderNode', `Invalid senderNode ${quote(r.senderNode)}: use the node's name (1 to 253 bytes)`);
  }
  if (r.direction !== 'in' && r.direction !== 'out') throw new ValidationError('direction', `Invalid direction ${quote(r.direction)}: use "in" or "out"`);
}

/** The request's identity in the table (also the hash input, length-prefixed). */
function requestKey(r: SpiRequest): string {
  return `${r.senderIdentity}|${r.generation}|${r.direction}|${r.senderNode.length}:${r.senderNode}`;
}

/** The deterministic first candidate for a request, in [min, max]. */
export function spiCandidate(r: SpiRequest, min = SPI_MIN, max = SPI_MAX): number {
  checkRequest(r);
  const h = createHash('sha256').update('veil/spi/v1\0').update(requestKey(r)).digest();
  // 48 bits of hash modulo a range of at most 2^32: bias below 2^-16, harmless here.
  return min + (h.readUIntBE(0, 6) % (max - min + 1));
}

export interface SpiAllocatorOptions {
  /** Lowest SPI handed out (>= 256). */
  min?: number;
  /** Highest SPI handed out (<= 0xffffffff). */
  max?: number;
}

/** One receiver's table of SPIs in use. */
export class SpiAllocator {
  readonly min: number;
  readonly max: number;
  private readonly bySpi = new Map<number, string>();
  private readonly byRequest = new Map<string, number>();

  constructor(opts: SpiAllocatorOptions = {}) {
    const min = opts.min ?? SPI_MIN;
    const max = opts.max ?? SPI_MAX;
    if (!Number.isInteger(min) || min < SPI_MIN || min > SPI_MAX) {
      throw new ValidationError('min', `Invalid min ${quote(min)}: SPIs 0..255 are reserved; use an integer from ${SPI_MIN} to ${SPI_MAX}`);
    }
    if (!Number.isInteger(max) || max < min || max > SPI_MAX) {
      throw new ValidationError('max', `Invalid max ${quote(max)}: use an integer from min (${min}) to ${SPI_MAX}`);
    }
    this.min = min;
    this.max = max;
  }

  get size(): number {
    return this.bySpi.size;
  }

  has(spi: number): boolean {
    return this.bySpi.has(spi);
  }

  /**
   * The SPI for `request`: the one it already holds, else its candidate, else the next free SPI
   * after it (wrapping). Throws SpiExhaustedError when every SPI in the range is in use.
   */
  allocate(request: SpiRequest): number {
    checkRequest(request);
    const key = requestKey(request);
    const held = this.byRequest.get(key);
    if (held !== undefined) return held;
    const span = this.max - this.min + 1;
    if (this.bySpi.size >= span) {
      throw new SpiExhaustedError(`Cannot allocate an SPI: all ${span} SPIs in ${this.min}..${this.max} are in use on this receiver; release retired SAs first`);
    }
    let spi = spiCandidate(request, this.min, this.max);
    while (this.bySpi.has(spi)) spi = spi === this.max ? this.min : spi + 1;
    this.bySpi.set(spi, key);
    this.byRequest.set(key, spi);
    return spi;
  }

  /**
   * Marks an SPI as in use without a request (an inbound SA adopted from the kernel on
   * restart), so allocate() never hands it out. Refuses an SPI outside the range or already
   * held.
   */
  reserve(spi: number, owner = `reserved:${spi}`): void {
    if (!Number.isInteger(spi) || spi < this.min || spi > this.max) {
      throw new ValidationError('spi', `Invalid spi ${quote(spi)}: use an integer from ${this.min} to ${this.max}`);
    }
    if (this.bySpi.has(spi)) throw new ValidationError('spi', `SPI ${spi} is already in use on this receiver; release it first`);
    this.bySpi.set(spi, owner);
    this.byRequest.set(owner, spi);
  }

  /** Frees an SPI (its SA was deleted). Returns false when it was not in use. */
  release(spi: number): boolean {
    const key = this.bySpi.get(spi);
    if (key === undefined) return false;
    this.bySpi.delete(spi);
    this.byRequest.delete(key);
    return true;
  }
}
