import { describe, expect, it } from 'vitest';
import {
  checkLabName,
  defaultPods,
  MAX_NODES,
  nextPodHost,
  nodePlan,
  podAddressPlan,
  podNetns,
  underlayPlan,
} from '../../../agent/lab/address-plan.js';
import { canonicalCidr, canonicalIp } from '../../../agent/net/ip.js';
import { ConfigError } from '../../../agent/errors.js';

describe('lab address plan', () => {
  it('gives the underlay and node 1 the documented addresses', () => {
    expect(underlayPlan('veil')).toEqual({ netns: 'veil-veil-underlay', bridge: 'br0', addresses: ['10.77.0.1/24', 'fd77::1/64'], etcdUrl: 'http://10.77.0.1:2379' });
    expect(nodePlan('veil', 1)).toEqual({
      index: 1,
      name: 'node-1',
      netns: 'veil-veil-node-1',
      uplink: 'eth0',
      bridgePort: 'node1',
      underlayAddresses: ['10.77.0.11/24', 'fd77::b/64'],
      podCidrs: ['10.78.1.0/24', 'fd78:0:0:1::/64'],
      gateways: ['10.78.1.1', 'fd78:0:0:1::1'],
    });
    expect(podAddressPlan(1, 2)).toEqual({ host: 2, addresses: ['10.78.1.2', 'fd78:0:0:1::2'], hostIface: 'lxc2' });
  });

  it('never gives two nodes the same underlay address, pod CIDR or bridge port, and every address is canonical', () => {
    const plans = Array.from({ length: MAX_NODES }, (_, i) => nodePlan('lab', i + 1));
    for (const field of ['name', 'netns', 'bridgePort'] as const) expect(new Set(plans.map((p) => p[field])).size).toBe(MAX_NODES);
    const underlay = plans.flatMap((p) => p.underlayAddresses);
    const cidrs = plans.flatMap((p) => p.podCidrs);
    expect(new Set(underlay).size).toBe(underlay.length);
    expect(new Set(cidrs).size).toBe(cidrs.length);
    for (const c of cidrs) {
      const parsed = canonicalCidr('c', c);
      expect(`${parsed.addr}/${parsed.prefixLen}`).toBe(c);
    }
    for (const a of underlay) expect(canonicalIp('a', a.split('/')[0])).toBe(a.split('/')[0]);
    for (const p of plans) expect(p.bridgePort.length).toBeLessThanOrEqual(15);
  });

  it('puts pod addresses inside their node’s pod CIDRs', () => {
    for (const node of [1, 17, MAX_NODES]) {
      const n = nodePlan('lab', node);
      for (const host of [2, 100, 254]) {
        const p = podAddressPlan(node, host);
        expect(p.addresses[0]!.startsWith(n.podCidrs[0]!.replace(/0\/24$/, ''))).toBe(true);
        expect(p.addresses[1]!.startsWith(n.podCidrs[1]!.replace(/\/64$/, ''))).toBe(true);
        expect(canonicalIp('a', p.addresses[1])).toBe(p.addresses[1]);
        expect(p.hostIface.length).toBeLessThanOrEqual(15);
      }
    }
  });

  it('hands out the lowest free pod host and reports a full node', () => {
    expect(nextPodHost([])).toBe(2);
    expect(nextPodHost([2, 3, 5])).toBe(4);
    expect(nextPodHost(Array.from({ length: 253 }, (_, i) => i + 2))).toBeNull();
    expect(() => podAddressPlan(1, 1)).toThrow(ConfigError);
    expect(() => podAddressPlan(1, 255)).toThrow(ConfigError);
    expect(() => nodePlan('lab', 0)).toThrow(ConfigError);
    expect(() => nodePlan('lab', MAX_NODES + 1)).toThrow(ConfigError);
  });

  it('alternates default pods between client and server in two namespaces', () => {
    expect(defaultPods(2, 3)).toEqual([
      { name: 'client-2-0', namespace: 'frontend', labels: { app: 'client' }, serviceAccount: 'client' },
      { name: 'server-2-1', namespace: 'backend', labels: { app: 'server' }, serviceAccount: 'server' },
      { name: 'client-2-2', namespace: 'frontend', labels: { app: 'client' }, serviceAccount: 'client' },
    ]);
    expect(podNetns('lab', 'frontend', 'client-2-0')).toBe('veil-lab-pod-frontend-client-2-0');
  });

  it('accepts only short DNS-like lab names', () => {
    expect(checkLabName('veil')).toBe('veil');
    expect(checkLabName('a-1')).toBe('a-1');
    for (const bad of ['', 'A', '-a', 'a-', 'a_b', 'a/b', 'x'.repeat(17), 7]) expect(() => checkLabName(bad)).toThrow(/Invalid lab name/);
  });
});
