/** Assertion for kernel failures: the promise must reject with a NetlinkError, returned for inspection. */
import { expect } from 'vitest';
import { NetlinkError } from '../../agent/errors.js';

/** Awaits `p`, asserts it rejected with a NetlinkError and returns it (for its code, extack, index). */
export async function rejection(p: Promise<unknown>): Promise<NetlinkError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(NetlinkError);
  return err as NetlinkError;
}
