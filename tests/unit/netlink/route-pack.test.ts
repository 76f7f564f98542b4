import { endianness } from 'node:os';
import { describe, expect, it } from 'vitest';
import { rtnl } from '../../../agent/netlink/call.js';
import { encodeRoutes } from '../../../agent/netlink/route.js';

/** Records are in host byte order. */
function u32(b: Buffer, off: number, v: number): void {
  if (endianness() === 'LE') b.writeUInt32LE(v, off);
  else b.writeUInt32BE(v, off);
}

/** A valid packed record (layout in agent/netlink/route.ts): 10.0.0.0/8 via device 1, table 254. */
function record(): Buffer {
  const b = Buffer.alloc(72);
  b[0] = 4;
  b[1] = 8;
  u32(b, 8, 254);
  u32(b, 12, 1);
  b[24] = 10;
  return b;
}

function encodeRaw(buf: unknown, ifindexes: unknown): unknown {
  try {
    return rtnl().encodeRouteAdd(buf, ifindexes);
  } catch (err) {
    return err;
  }
}

describe('packed route batches (C++ side never trusts the buffer)', () => {
  it('decodes a well-formed record into the same message encodeRoutes() builds', () => {
    const [msg] = rtnl().encodeRouteAdd(record(), [2]) as Buffer[];
    expect(msg!.toString('hex')).toBe(encodeRoutes('add', [{ dst: '10.0.0.0/8', dev: 'eth0' }], { eth0: 2 })[0]!.toString('hex'));
  });

  it('rejects a buffer that is not a whole number of records, or not a buffer', () => {
    for (const bad of [record().subarray(0, 71), Buffer.concat([record(), Buffer.alloc(1)]), 'x', [1, 2], new Uint32Array(18)]) {
      expect((encodeRaw(bad, [2]) as { code?: string }).code).toBe('EINVAL');
    }
  });

  it('rejects out-of-range fields with the index of the bad record', () => {
    const mutations: Array<(b: Buffer) => void> = [
      (b) => (b[0] = 5), // family
      (b) => (b[1] = 33), // prefix longer than IPv4
      (b) => (b[2] = 0x40), // unknown flag
      (b) => (b[6] = 1), // padding
      (b) => u32(b, 8, 0), // table 0
      (b) => u32(b, 12, 2), // device name 2 of 1
      (b) => u32(b, 20, 70000), // MTU
    ];
    for (const mutate of mutations) {
      const bad = record();
      mutate(bad);
      const err = encodeRaw(Buffer.concat([record(), bad]), [2]) as { code?: string; index?: number };
      expect(err.code).toBe('EINVAL');
      expect(err.index).toBe(1);
    }
  });

  it('rejects ifindex lists that are not unsigned 32-bit integers', () => {
    for (const bad of [[-1], [1.5], ['2'], 'x']) expect((encodeRaw(record(), bad) as { code?: string }).code).toBe('EINVAL');
  });
});
