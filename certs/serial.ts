import { randomBytes } from 'node:crypto';

/**
 * A random certificate serial number as hex: 16 bytes (128 bits, above the 64 bits of entropy
 * CA/B guidance asks for), first byte in 0x01..0x7f so the DER INTEGER is positive and minimal.
 */
export function randomSerialHex(): string {
  const b = randomBytes(16);
  b[0] = ((b[0] as number) % 0x7f) + 1;
  return b.toString('hex');
}
