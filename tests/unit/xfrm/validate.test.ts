import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { NetlinkError, ValidationError } from '../../../agent/errors.js';
import { addPolicies, encodePolicies, encodePolicyIds } from '../../../agent/xfrm/policy.js';
import { addStates, encodeStates, stateBatchMessage } from '../../../agent/xfrm/state.js';
import type { XfrmStateConfig } from '../../../agent/xfrm/types.js';
import { canonicalAddress, stateConfig } from '../../../agent/xfrm/validate.js';
import { validationError } from '../../support/validation-error.js';

const good = (over: Partial<XfrmStateConfig> = {}): XfrmStateConfig => ({
  src: '10.0.0.1',
  dst: '10.0.0.2',
  spi: 0x100,
  aead: { algorithm: 'rfc4106(gcm(aes))', key: Buffer.alloc(20, 0x5a) },
  ...over,
});

describe('XFRM argument validation', () => {
  it('accepts exactly the AES-GCM key lengths 16/24/32 + 4-byte salt and 32 + 4 for ChaCha20-Poly1305', () => {
    for (const n of [20, 28, 36]) expect(() => encodeStates([good({ aead: { algorithm: 'rfc4106(gcm(aes))', key: Buffer.alloc(n) } })])).not.toThrow();
    expect(() => encodeStates([good({ aead: { algorithm: 'rfc7539esp(chacha20,poly1305)', key: Buffer.alloc(36) } })])).not.toThrow();
    for (const n of [0, 16, 19, 21, 32, 40]) {
      const e = validationError(() => encodeStates([good({ aead: { algorithm: 'rfc4106(gcm(aes))', key: Buffer.alloc(n, 0x5a) } })]));
      expect(e.field).toBe('states[0].aead.key');
      expect(e.message).toBe(
        `Invalid states[0].aead.key of ${n} bytes for "rfc4106(gcm(aes))": use 20, 28, 36 bytes (key followed by the 4-byte salt)`,
      );
    }
    expect(validationError(() => encodeStates([good({ aead: { algorithm: 'rfc7539esp(chacha20,poly1305)', key: Buffer.alloc(20) } })])).field).toBe(
      'states[0].aead.key',
    );
  });

  it('never puts key bytes into an error message, even for a key of the wrong type', () => {
    const hexKey = '5a'.repeat(20);
    const e = validationError(() =>
      encodeStates([good({ aead: { algorithm: 'rfc4106(gcm(aes))', key: hexKey as unknown as Buffer } })]),
    );
    expect(e.message).not.toContain(hexKey);
    const e2 = validationError(() => encodeStates([good({ aead: { algorithm: 'cbc(aes)' as never, key: Buffer.alloc(20, 0x5a) } })]));
    expect(e2.message).toContain('"cbc(aes)"');
    expect(e2.message).not.toContain(hexKey);
  });

  it('names the field, the value and the fix for bad states', () => {
    expect(validationError(() => encodeStates([good({ spi: 0 })])).message).toBe('Invalid states[0].spi "0": use an integer from 1 to 4294967295');
    expect(validationError(() => encodeStates([good({ dst: 'fd00::2' })])).message).toBe(
      'Invalid states[0].dst "fd00::2": use an IPv4 address like the source "10.0.0.1"',
    );
    expect(validationError(() => encodeStates([good({ src: '10.0.0.300' })])).field).toBe('states[0].src');
    expect(validationError(() => encodeStates([good({ esn: true })])).message).toMatch(/ESN needs a replay window/);
    expect(validationError(() => encodeStates([good({ replayWindow: 5000 })])).field).toBe('states[0].replayWindow');
    expect(validationError(() => encodeStates([good({ mark: { value: -1 } })])).field).toBe('states[0].mark.value');
    expect(validationError(() => encodeStates([good({ mode: 'beet' as never })])).field).toBe('states[0].mode');
    expect(validationError(() => encodeStates([good({ lifetime: { hardBytes: -1 } })])).field).toBe('states[0].lifetime.hardBytes');
  });

  it('names the field for bad policies', () => {
    const sel = { src: '10.0.0.0/8', dst: '10.1.0.0/16' };
    expect(validationError(() => encodePolicies([{ dir: 'sideways' as never, selector: sel }])).field).toBe('policies[0].dir');
    expect(validationError(() => encodePolicies([{ dir: 'out', selector: { src: '10.0.0.0/33', dst: '10.0.0.0/8' } }])).message).toBe(
      'Invalid policies[0].selector.src "10.0.0.0/33": use a prefix length from 0 to 32',
    );
    expect(validationError(() => encodePolicies([{ dir: 'out', selector: { ...sel, dport: 80 } }])).message).toMatch(/ports need proto/);
    expect(validationError(() => encodePolicies([{ dir: 'out', selector: sel, templates: [{ reqid: 1 }] }])).message).toMatch(
      /tunnel-mode template needs both "src" and "dst"/,
    );
    const seven = Array.from({ length: 7 }, () => ({ mode: 'transport' as const }));
    expect(validationError(() => encodePolicies([{ dir: 'out', selector: sel, templates: seven }])).field).toBe('policies[0].templates');
    expect(validationError(() => encodePolicyIds([{ dir: 'in', index: 9 }], 'get')).message).toMatch(/another direction/);
  });

  it('rejects bad input before anything reaches the kernel (async API rejects, nothing sent)', async () => {
    await expect(addStates([good({ spi: -5 })], { netns: 'does-not-matter' })).rejects.toBeInstanceOf(ValidationError);
    await expect(addPolicies('nope' as never)).rejects.toBeInstanceOf(ValidationError);
    await expect(addPolicies([], { netns: '' })).resolves.toBeUndefined();
  });

  it('words a duplicate SPI as the kernel EEXIST naming the SPI in hex and the destination', () => {
    const wire = [stateConfig(good({ spi: 0xab, dst: '10.0.0.9', mark: { value: 0x10, mask: 0xff } }), 's')];
    const e = new NetlinkError({ code: 'EEXIST', errno: 17, op: 'xfrm.state.add', index: 0 }, 'x');
    expect(stateBatchMessage('add', e, wire)).toBe(
      'Cannot add XFRM state 0 of 1, SPI 0x000000ab to "10.0.0.9" (mark 0x10/0xff): a state with this SPI, destination and mark already exists (the kernel looks up inbound states by mark, destination, SPI and protocol); choose an unused SPI or update the existing state; no state of this batch was left installed',
    );
  });
});

describe('XFRM validation under random input (fast-check)', () => {
  const anyValue = fc.oneof(
    fc.constant(undefined),
    fc.constant(null),
    fc.integer({ min: -5, max: 70000 }),
    fc.constantFrom(0xffffffff, 2 ** 32, 1.5, NaN, -0),
    fc.constantFrom('10.0.0.0/8', 'fd00::/64', '10.0.0.1', 'fd00::1', '10.0.0.0/40', 'x', '', 'tcp', 'udp', 'in', 'out', 'fwd', 'tunnel', 'transport', 'block', 'esp'),
    fc.boolean(),
    fc.constant({}),
    fc.constant([]),
  );
  const selectorArb = fc.record(
    { src: anyValue, dst: anyValue, proto: anyValue, sport: anyValue, dport: anyValue },
    { requiredKeys: [] },
  );
  const policyArb = fc.record(
    {
      dir: anyValue,
      selector: fc.oneof(selectorArb, anyValue),
      priority: anyValue,
      action: anyValue,
      mark: fc.oneof(fc.record({ value: anyValue, mask: anyValue }, { requiredKeys: [] }), anyValue),
      ifId: anyValue,
      templates: fc.oneof(
        fc.array(fc.record({ src: anyValue, dst: anyValue, reqid: anyValue, mode: anyValue, spi: anyValue, optional: anyValue }, { requiredKeys: [] }), { maxLength: 7 }),
        anyValue,
      ),
    },
    { requiredKeys: [] },
  );

  it('encodePolicies() either encodes or throws a ValidationError, never anything from C++', () => {
    fc.assert(
      fc.property(policyArb, (p) => {
        try {
          expect(encodePolicies([p as never])).toHaveLength(1);
        } catch (err) {
          expect(err).toBeInstanceOf(ValidationError);
        }
      }),
      { numRuns: 5000 },
    );
  });

  it('encodeStates() either encodes or throws a ValidationError, never anything from C++', () => {
    const stateArb = fc.record(
      {
        src: anyValue,
        dst: anyValue,
        spi: anyValue,
        mode: anyValue,
        reqid: anyValue,
        replayWindow: anyValue,
        esn: anyValue,
        ifId: anyValue,
        mark: fc.oneof(fc.record({ value: anyValue, mask: anyValue }, { requiredKeys: [] }), anyValue),
        setMark: fc.oneof(fc.record({ value: anyValue, mask: anyValue }, { requiredKeys: [] }), anyValue),
        selector: fc.oneof(selectorArb, anyValue),
        lifetime: fc.oneof(fc.record({ hardBytes: anyValue, softAddSeconds: anyValue }, { requiredKeys: [] }), anyValue),
        aead: fc.oneof(
          fc.record({
            algorithm: fc.constantFrom('rfc4106(gcm(aes))', 'rfc7539esp(chacha20,poly1305)', 'cbc(aes)'),
            key: fc.oneof(fc.constantFrom(20, 28, 36, 0, 3).map((n) => Buffer.alloc(n, 1)), anyValue),
          }),
          anyValue,
        ),
      },
      { requiredKeys: [] },
    );
    fc.assert(
      fc.property(stateArb, (s) => {
        try {
          expect(encodeStates([s as never])).toHaveLength(1);
        } catch (err) {
          expect(err).toBeInstanceOf(ValidationError);
        }
      }),
      { numRuns: 5000 },
    );
  });
});

describe('canonicalAddress()', () => {
  it('spells IPv6 addresses as the kernel read-backs do, so filters match however they were written', () => {
    expect(canonicalAddress('FD00::0001', 'f')).toBe('fd00::1');
    expect(canonicalAddress('2001:db8:0:0:1:0:0:1', 'f')).toBe('2001:db8::1:0:0:1');
    expect(canonicalAddress('192.0.2.1', 'f')).toBe('192.0.2.1');
    expect(() => canonicalAddress('fd00::g', 'filter.dst')).toThrow(ValidationError);
  });
});
