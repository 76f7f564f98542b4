import { describe, expect, it } from 'vitest';
import { splitEndpoint } from '../../../agent/connectivity/probes.js';

describe('splitEndpoint (tcpdump -n addresses)', () => {
  it('splits an IPv4 address from its port', () => {
    expect(splitEndpoint('10.77.0.11.51871')).toEqual(['10.77.0.11', 51871]);
  });
  it('takes an IPv4 address without port (ICMP) as port 0', () => {
    expect(splitEndpoint('10.78.1.2')).toEqual(['10.78.1.2', 0]);
  });
  it('splits an IPv6 address from its port and keeps one without', () => {
    expect(splitEndpoint('fd77::b.51872')).toEqual(['fd77::b', 51872]);
    expect(splitEndpoint('fd78:0:0:1::2')).toEqual(['fd78:0:0:1::2', 0]);
  });
  it('returns anything else unchanged with port 0', () => {
    expect(splitEndpoint('ff02::1:ff00:2,')).toEqual(['ff02::1:ff00:2,', 0]);
  });
});
