import { describe, expect, it } from 'vitest';
import { classifyCapture, espPackets, splitEndpoint, wireguardPackets } from '../../../agent/connectivity/probes.js';

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

describe('classifyCapture (tcpdump -n lines on the underlay)', () => {
  const isPod = (ip: string) => ip.startsWith('10.78.');
  const lines = [
    '21:40:01.000001 IP 10.77.0.11.51871 > 10.77.0.12.51871: UDP, length 128',
    '21:40:01.000002 IP 10.77.0.11 > 10.77.0.12: ESP(spi=0x0000a1b2,seq=0x5), length 136',
    '21:40:01.000003 IP 10.78.1.2 > 10.78.2.2: ICMP echo request, id 1, seq 1, length 64',
    '21:40:01.000004 ARP, Request who-has 10.77.0.12 tell 10.77.0.11, length 28',
    '21:40:01.000005 IP 10.77.0.11.2379 > 10.77.0.1.40000: Flags [P.], length 20',
  ];

  it('counts WireGuard packets as encrypted in WireGuard mode, ESP as other', () => {
    const c = classifyCapture(lines, isPod, wireguardPackets([51871, 51872]));
    expect(c).toMatchObject({ encrypted: 1, plaintext: 1, other: 2 });
    expect(c.samples).toEqual([lines[2]]);
  });

  it('counts ESP packets as encrypted in IPsec mode, WireGuard UDP as other', () => {
    const c = classifyCapture(lines, isPod, espPackets());
    expect(c).toMatchObject({ encrypted: 1, plaintext: 1, other: 2 });
  });

  it('a pod packet to a WireGuard port is plaintext, not ciphertext (tunnels carry node addresses outside)', () => {
    const c = classifyCapture(['IP 10.78.1.2.51871 > 10.78.2.2.51871: UDP, length 10'], isPod, wireguardPackets([51871]));
    expect(c).toMatchObject({ encrypted: 0, plaintext: 1 });
  });

  it('an ESP header with pod addresses outside counts as a pod packet on the wire (Veil tunnels between nodes)', () => {
    const c = classifyCapture(['IP 10.78.1.2 > 10.78.2.2: ESP(spi=0x00000101,seq=0x1), length 100'], isPod, espPackets());
    expect(c).toMatchObject({ encrypted: 0, plaintext: 1 });
  });

  it('IPv6 ESP between node addresses is encrypted', () => {
    const c = classifyCapture(['IP6 fd77::b > fd77::c: ESP(spi=0x00000101,seq=0x1), length 100'], (ip) => ip.startsWith('fd78:'), espPackets());
    expect(c).toMatchObject({ encrypted: 1, plaintext: 0 });
  });
});
