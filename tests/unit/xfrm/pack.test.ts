import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { ValidationError } from '../../../agent/errors.js';
import { packPolicies, packPoliciesChecked, POLICY_RECORD, TEMPLATE_RECORD } from '../../../agent/xfrm/pack.js';

/** The outcome of packing: the bytes, or the error's class, field and message. */
function outcome(pack: () => { buffer: Buffer; count: number }): unknown {
  try {
    const p = pack();
    return { hex: p.buffer.toString('hex'), count: p.count };
  } catch (err) {
    if (!(err instanceof ValidationError)) throw err;
    return { error: err.name, field: err.field, message: err.message };
  }
}

describe('packPolicies() fast path', () => {
  // Values that are mostly valid, so random policies often pass and both paths write bytes.
  const value = fc.oneof(
    { weight: 3, arbitrary: fc.constant(undefined) },
    fc.constant(null),
    fc.integer({ min: -2, max: 70000 }),
    fc.constantFrom(0, 1, 6, 17, 50, 132, 136, 255, 256, 0xffffffff, 2 ** 32, 1.5, NaN, -0),
    fc.constantFrom(
      '10.0.0.0/8', '10.0.0.1', '10.0.0.1/32', '10.0.0.0/33', '010.0.0.1', '0.0.0.0/0', 'fd00::/64', 'FD00::1/128',
      'fd00::1', '::ffff:10.0.0.1', '::/0', 'fd00::/129', 'fd00::/064', '10.0.0.0/', 'x', '', ' 10.0.0.1',
    ),
    fc.constantFrom('tcp', 'udp', 'sctp', 'icmp', 'ipv6-icmp', 'toString', '__proto__', 'constructor'),
    fc.constantFrom('in', 'out', 'fwd', 'tunnel', 'transport', 'beet', 'allow', 'block', 'esp', 'ah'),
    fc.boolean(),
    fc.constant({}),
    fc.constant([]),
  );
  // Each field is usually valid and sometimes anything, so most policies reach the end of the
  // fast check and a single bad field decides the outcome.
  const mostly = <T,>(good: fc.Arbitrary<T>) => fc.oneof({ weight: 15, arbitrary: good }, { weight: 1, arbitrary: value });
  const u32 = fc.oneof(fc.constantFrom(0, 1, 100, 0xffffffff), fc.nat());
  const v4 = fc.constantFrom('10.0.0.0/8', '10.0.0.1', '172.16.0.1/32', '0.0.0.0/0');
  const v6 = fc.constantFrom('fd00::/64', 'FD00::1/128', '::ffff:10.0.0.1', '::/0', '2001:db8::1');
  const addr = fc.oneof({ weight: 4, arbitrary: fc.constantFrom('192.0.2.1', '198.18.0.7') }, fc.constantFrom('2001:db8::1', '2001:DB8::7', '::ffff:192.0.2.1'));
  const mark = mostly(fc.record({ value: mostly(u32), mask: mostly(u32) }, { requiredKeys: ['value'] }));
  const template = mostly(
    fc.record(
      {
        src: mostly(addr),
        dst: mostly(addr),
        proto: mostly(fc.constant('esp')),
        spi: mostly(u32),
        reqid: mostly(u32),
        mode: mostly(fc.constantFrom('tunnel', 'transport')),
        optional: mostly(fc.boolean()),
      },
      { requiredKeys: [] },
    ),
  );
  const selector = mostly(
    fc.record(
      {
        src: mostly(fc.oneof({ weight: 4, arbitrary: v4 }, v6)),
        dst: mostly(fc.oneof({ weight: 4, arbitrary: v4 }, v6)),
        proto: mostly(fc.constantFrom('tcp', 'udp', 'sctp', 6, 17, 33, 136, 'icmp', 0, 255)),
        sport: mostly(fc.integer({ min: 0, max: 65535 })),
        dport: mostly(fc.integer({ min: 0, max: 65535 })),
      },
      { requiredKeys: ['src', 'dst'] },
    ),
  );
  const policy = mostly(
    fc.record(
      {
        dir: mostly(fc.constantFrom('in', 'out', 'fwd')),
        selector,
        priority: mostly(u32),
        action: mostly(fc.constantFrom('allow', 'block')),
        mark,
        ifId: mostly(u32),
        templates: mostly(fc.oneof({ weight: 9, arbitrary: fc.array(template, { maxLength: 2 }) }, fc.array(template, { minLength: 6, maxLength: 7 }))),
      },
      { requiredKeys: ['dir', 'selector'] },
    ),
  );

  it('accepts, rejects and packs exactly as policyConfig() followed by packing does (same bytes, same error)', () => {
    let packed = 0;
    fc.assert(
      fc.property(fc.array(policy, { minLength: 1, maxLength: 2 }), (ps) => {
        const fast = outcome(() => packPolicies(ps));
        expect(fast).toEqual(outcome(() => packPoliciesChecked(ps)));
        if (ps.length > 0 && 'hex' in (fast as object)) packed++;
      }),
      { numRuns: 20000 },
    );
    // The comparison means something only if many random batches are valid.
    expect(packed).toBeGreaterThan(500);
  });

  it('packs valid policies of both families with ports, marks and several templates identically on both paths', () => {
    const ok = [
      {
        dir: 'out',
        selector: { src: '10.255.0.0/16', dst: '172.16.0.1/32' },
        priority: 100,
        mark: { value: 0xe00, mask: 0xf00 },
        templates: [{ src: '192.0.2.1', dst: '198.18.0.1', proto: 'esp', reqid: 1, mode: 'tunnel' }],
      },
      {
        dir: 'fwd',
        action: 'block',
        selector: { src: 'fd00::/64', dst: 'FD01::1', proto: 'tcp', sport: 0, dport: 443 },
        mark: { value: 7 },
        ifId: 9,
        templates: [
          { mode: 'transport', optional: true, spi: 0xffffffff },
          { src: '2001:db8::1', dst: '2001:db8::2', reqid: 3 },
          { mode: 'transport', dst: 'fd00::9' },
        ],
      },
      { dir: 'in', selector: { src: '0.0.0.0/0', dst: '0.0.0.0/0', proto: 17, dport: 4500 }, templates: null },
    ];
    const fast = packPolicies(ok);
    expect(fast.buffer.length).toBe(3 * POLICY_RECORD + 4 * TEMPLATE_RECORD);
    expect(fast.buffer.toString('hex')).toBe(packPoliciesChecked(ok).buffer.toString('hex'));
  });
});
