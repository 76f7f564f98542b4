import { describe, expect, it } from 'vitest';
import { ipsecRoutePlan } from '../../../agent/reconcile/ipsec-routes.js';
import { tunnelRoute, VEIL_ROUTE_PROTOCOL } from '../../../agent/reconcile/wireguard-routes.js';

describe('ipsecRoutePlan: remote pod CIDRs toward the node underlay address of their family', () => {
  it('routes each family through the first underlay address of that family', () => {
    expect(ipsecRoutePlan({ addresses: ['10.77.0.12', 'fd77::12', '10.77.0.99'], podCidrs: ['10.78.2.0/24', 'fd78:0:0:2::/64', '10.79.2.0/24'] })).toEqual([
      { family: 4, gateway: '10.77.0.12', cidrs: ['10.78.2.0/24', '10.79.2.0/24'] },
      { family: 6, gateway: 'fd77::12', cidrs: ['fd78:0:0:2::/64'] },
    ]);
  });

  it('leaves out a family the node has no underlay address of (no SA can carry it either)', () => {
    expect(ipsecRoutePlan({ addresses: ['10.77.0.12'], podCidrs: ['10.78.2.0/24', 'fd78:0:0:2::/64'] })).toEqual([{ family: 4, gateway: '10.77.0.12', cidrs: ['10.78.2.0/24'] }]);
    expect(ipsecRoutePlan({ addresses: ['fd77::12'], podCidrs: [] })).toEqual([]);
  });

  it('the route is a gateway route of protocol 0x76 (global scope), the WireGuard one stays a link route', () => {
    expect(tunnelRoute('10.78.2.0/24', 'eth0', {}, '10.77.0.12')).toEqual({ dst: '10.78.2.0/24', dev: 'eth0', gateway: '10.77.0.12', protocol: VEIL_ROUTE_PROTOCOL, table: 254 });
    expect(tunnelRoute('10.78.2.0/24', 'veil_wg0', { source: { 4: '10.78.1.1' } })).toEqual({ dst: '10.78.2.0/24', dev: 'veil_wg0', protocol: VEIL_ROUTE_PROTOCOL, scope: 'link', table: 254, src: '10.78.1.1' });
  });
});
