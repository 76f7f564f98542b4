import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../../agent/errors.js';
import { addAddresses, encodeAddressAdd } from '../../../agent/netlink/address.js';
import { addLinks, encodeLinkAdd, getLink, setLink } from '../../../agent/netlink/link.js';
import { addRoutes, encodeRoutes, listRoutes } from '../../../agent/netlink/route.js';
import { encodeRules } from '../../../agent/netlink/rule.js';
import { validationError } from '../../support/validation-error.js';

async function rejectsValidation(p: Promise<unknown>): Promise<ValidationError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ValidationError);
  return err as ValidationError;
}

describe('rtnetlink argument validation', () => {
  it('rejects a device name longer than 15 bytes, naming the field, quoting the value and the limit', () => {
    const e = validationError(() => encodeLinkAdd([{ name: 'a-very-long-name0', kind: 'veth' }]));
    expect(e.field).toBe('links[0].name');
    expect(e.message).toContain('"a-very-long-name0"');
    expect(e.message).toContain('15');
    expect(e.code).toBe('EINVAL');
  });

  it('rejects device names with "/", whitespace or that are empty', () => {
    for (const name of ['a/b', 'a b', '', '..']) {
      expect(validationError(() => encodeLinkAdd([{ name, kind: 'bridge' }])).field).toBe('links[0].name');
    }
  });

  it('rejects an MTU outside 68..65535 for links and routes', () => {
    expect(validationError(() => encodeLinkAdd([{ name: 'x', kind: 'bridge', mtu: 67 }])).field).toBe('links[0].mtu');
    expect(validationError(() => encodeLinkAdd([{ name: 'x', kind: 'bridge', mtu: 70000 }])).message).toContain('"70000"');
    expect(validationError(() => encodeLinkAdd([{ name: 'x', kind: 'bridge', mtu: 1400.5 }])).field).toBe('links[0].mtu');
    expect(validationError(() => encodeRoutes('add', [{ dst: '10.0.0.0/8', dev: 'x', mtu: 10 }], { x: 1 })).field).toBe('routes[0].mtu');
  });

  it('rejects an unknown link kind and a peer on a non-veth link', () => {
    expect(validationError(() => encodeLinkAdd([{ name: 'x', kind: 'vxlan' as 'veth' }])).field).toBe('links[0].kind');
    expect(validationError(() => encodeLinkAdd([{ name: 'x', kind: 'bridge', peer: { name: 'y' } }])).field).toBe('links[0].peer');
  });

  it('rejects duplicate names in one link batch', () => {
    expect(validationError(() => encodeLinkAdd([{ name: 'x', kind: 'bridge' }, { name: 'x', kind: 'bridge' }])).field).toBe('links[1].name');
  });

  it('rejects bad CIDRs: garbage, prefix too long, host bits set on a route (suggesting the network)', () => {
    for (const dst of ['10.0.0/8', '10.0.0.0/33', 'fd00::/129', 'banana', '10.0.0.0/-1', '10.0.0.0/']) {
      expect(validationError(() => encodeRoutes('add', [{ dst, dev: 'x' }], { x: 1 })).field).toBe('routes[0].dst');
    }
    const e = validationError(() => encodeRoutes('add', [{ dst: '10.1.2.3/8', dev: 'x' }], { x: 1 }));
    expect(e.message).toContain('"10.0.0.0/8"');
    const e6 = validationError(() => encodeRoutes('add', [{ dst: 'fd00::1/64', dev: 'x' }], { x: 1 }));
    expect(e6.message).toContain('"fd00::/64"');
  });

  it('rejects a gateway of the other family and a default route without a family', () => {
    expect(validationError(() => encodeRoutes('add', [{ dst: '10.0.0.0/8', gateway: 'fd00::1' }])).field).toBe('routes[0].gateway');
    expect(validationError(() => encodeRoutes('add', [{ dst: 'default', type: 'blackhole' }])).field).toBe('routes[0].family');
  });

  it('rejects a unicast route with neither dev nor gateway, and table 0', () => {
    expect(validationError(() => encodeRoutes('add', [{ dst: '10.0.0.0/8' }])).field).toBe('routes[0].dev');
    expect(validationError(() => encodeRoutes('add', [{ dst: '10.0.0.0/8', type: 'blackhole', table: 0 }])).field).toBe('routes[0].table');
  });

  it('rejects misspelled fields instead of ignoring them', () => {
    const e = validationError(() => encodeRoutes('add', [{ dst: '10.0.0.0/8', dev: 'x', metirc: 5 } as never], { x: 1 }));
    expect(e.field).toBe('routes[0].metirc');
  });

  it('rejects bad address strings and IPv6 labels', () => {
    expect(validationError(() => encodeAddressAdd([{ dev: 'x', address: '300.1.1.1/24' }], { x: 1 })).field).toBe('addresses[0].address');
    expect(validationError(() => encodeAddressAdd([{ dev: 'x', address: 'fd00::1/64', label: 'x:1' }], { x: 1 })).field).toBe('addresses[0].label');
  });

  it('rejects rule fields: family, fwmask without fwmark, selector of the other family, unknown action', () => {
    expect(validationError(() => encodeRules('add', [{ family: 5 as 4, priority: 1, table: 1 }])).field).toBe('rules[0].family');
    expect(validationError(() => encodeRules('add', [{ family: 4, priority: 1, table: 1, fwmask: 1 }])).field).toBe('rules[0].fwmask');
    expect(validationError(() => encodeRules('add', [{ family: 4, priority: 1, table: 1, src: 'fd00::/8' }])).field).toBe('rules[0].src');
    expect(validationError(() => encodeRules('add', [{ family: 4, priority: 1, table: 1, action: 'goto' as 'table' }])).field).toBe('rules[0].action');
    expect(validationError(() => encodeRules('add', [{ family: 4, priority: -1, table: 1 }])).field).toBe('rules[0].priority');
  });

  it('async verbs reject bad input before touching the kernel (no netns needed)', async () => {
    expect((await rejectsValidation(addLinks([{ name: 'x'.repeat(16), kind: 'veth' }]))).field).toBe('links[0].name');
    expect((await rejectsValidation(setLink('eth0', {}))).field).toBe('change');
    expect((await rejectsValidation(getLink('bad name'))).field).toBe('name');
    expect((await rejectsValidation(addAddresses([{ dev: 'eth0', address: 'nope' }]))).field).toBe('addresses[0].address');
    expect((await rejectsValidation(addRoutes([{ dst: '10.0.0.0/8', dev: 'eth0' }], { netns: 'a/b' }))).field).toBe('netns');
    expect((await rejectsValidation(listRoutes({ table: 0 }))).field).toBe('filter.table');
  });
});
