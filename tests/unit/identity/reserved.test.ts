import { describe, expect, it } from 'vitest';
import {
  checkClusterId,
  isClusterId,
  isReservedId,
  MAX_CLUSTER_ID,
  MIN_CLUSTER_ID,
  RESERVED_IDENTITIES,
  reservedName,
} from '../../../agent/identity/reserved.js';
import { validationError } from '../../support/validation-error.js';

describe('reserved identities', () => {
  it('use Cilium\'s numbers for the well-known identities', () => {
    expect(RESERVED_IDENTITIES).toEqual({ host: 1, world: 2, unmanaged: 3, health: 4, init: 5, 'remote-node': 6, 'kube-apiserver': 7 });
    expect(reservedName(6)).toBe('remote-node');
    expect(reservedName(8)).toBeUndefined();
  });

  it('reserve 1..255 and allocate 256..65535 with no overlap', () => {
    expect(isReservedId(0)).toBe(false);
    expect(isReservedId(1)).toBe(true);
    expect(isReservedId(255)).toBe(true);
    expect(isReservedId(256)).toBe(false);
    expect([MIN_CLUSTER_ID, MAX_CLUSTER_ID]).toEqual([256, 65535]);
    expect(isClusterId(255)).toBe(false);
    expect(isClusterId(256)).toBe(true);
    expect(isClusterId(65535)).toBe(true);
    expect(isClusterId(65536)).toBe(false);
    expect(isClusterId(300.5)).toBe(false);
  });

  it('checkClusterId() rejects reserved and out-of-range ids with the fix', () => {
    expect(checkClusterId('id', 256)).toBe(256);
    for (const bad of [0, 7, 255, 65536, -1, NaN, '300']) {
      expect(validationError(() => checkClusterId('id', bad)).message).toContain('256 to 65535');
    }
  });
});
