import { describe, expect, it } from 'vitest';
import { ConfigError, hasCode, NetlinkError, ValidationError, VeilError } from '../../../agent/errors.js';
import { toNetlinkError } from '../../../agent/native/addon.js';

describe('errors', () => {
  it('every subclass is a VeilError with a stable code and its own name', () => {
    const v = new ValidationError('mtu', 'Invalid MTU "70000": use 68..65535');
    expect(v).toBeInstanceOf(VeilError);
    expect(v.code).toBe('EINVAL');
    expect(v.name).toBe('ValidationError');
    expect(v.field).toBe('mtu');
    expect(new ConfigError('x').code).toBe('VEIL_CONFIG');
    expect(hasCode(v, 'EINVAL')).toBe(true);
    expect(hasCode(new Error('x'), 'EINVAL')).toBe(false);
  });

  it('toNetlinkError() keeps errno name, op, extack and batch index from the addon', () => {
    const raw = Object.assign(new Error('route.add: File exists'), {
      code: 'EEXIST',
      errno: 17,
      op: 'route.add',
      detail: 'File exists',
      extack: 'Route already exists',
      index: 3,
    });
    const e = toNetlinkError(raw, 'Cannot add routes');
    expect(e).toBeInstanceOf(NetlinkError);
    const n = e as NetlinkError;
    expect(n.code).toBe('EEXIST');
    expect(n.errno).toBe(17);
    expect(n.op).toBe('route.add');
    expect(n.extack).toBe('Route already exists');
    expect(n.index).toBe(3);
    expect(n.message).toBe('Cannot add routes: File exists (kernel: Route already exists) [object 3]');
    expect(n.cause).toBe(raw);
  });

  it('toNetlinkError() wraps foreign errors without losing them', () => {
    const e = toNetlinkError(new TypeError('boom'), 'Cannot do it');
    expect(e.code).toBe('EIO');
    expect(e.message).toContain('boom');
  });
});
