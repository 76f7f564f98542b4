import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../../agent/errors.js';
import { decodeMark } from '../../../agent/datapath/marks.js';
import * as marks from '../../../agent/reconcile/ipsec-marks.js';

describe('IPsec marks', () => {
  it('encodes identity, purpose and slot and reads them back', () => {
    expect(marks.encryptMark(4242, 5)).toEqual({ value: 0x10920e50, mask: 0xffff0ff0 });
    expect(marks.decryptedMark(65535, 15)).toEqual({ value: 0xffff0df0, mask: 0xffff0ff0 });
    expect(decodeMark(0x10920e50)).toEqual({ purpose: 0xe00, identity: 4242, keySlot: 5 });
    // Never a bit kube-proxy (0x4000, 0x8000) or the low nibble uses.
    expect(marks.encryptMark(65535, 15).value & 0x0000f00f).toBe(0);
  });

  it('refuses identities and slots outside their fields', () => {
    expect(() => marks.encryptMark(65536, 0)).toThrow(ValidationError);
    expect(() => marks.encryptMark(1, 16)).toThrow('Invalid key slot "16": use an integer from 0 to 15');
    expect(() => marks.decryptedMark(-1, 0)).toThrow(ValidationError);
  });

  it('gives the SAs of overlapping sender and receiver rotations four different slots', () => {
    for (let gs = 1; gs < 40; gs++) {
      for (let gr = 1; gr < 40; gr++) {
        const slots = new Set([marks.keySlot(gs, gr), marks.keySlot(gs + 1, gr), marks.keySlot(gs, gr + 1), marks.keySlot(gs + 1, gr + 1)]);
        expect(slots.size).toBe(4);
        expect(marks.keySlot(gs, gr)).toBeLessThan(16);
      }
    }
  });
});
