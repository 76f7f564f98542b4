import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  ETH_HLEN,
  icmpEcho,
  icmpError,
  icmpEchoPacket,
  inetChecksum,
  ipv4HeaderChecksumOk,
  l4ChecksumOk,
  tcp,
  tcpSegment,
  udp,
} from '../../support/packets.js';

describe('packet builder', () => {
  it('inetChecksum() matches the worked IPv4 header example (0xb861)', () => {
    const h = Buffer.from('450000730000400040110000c0a80001c0a800c7', 'hex');
    expect(inetChecksum(h)).toBe(0xb861);
  });

  it('builds IPv4 and IPv6 TCP, UDP and ICMP with valid checksums', () => {
    for (const [src, dst] of [
      ['10.0.0.1', '10.0.0.2'],
      ['fd00::1', 'fd00::2'],
    ] as const) {
      for (const f of [
        tcp({ src, dst, sport: 1000, dport: 80, payload: new Uint8Array([1, 2, 3]) }),
        udp({ src, dst, sport: 53, dport: 5353, payload: new Uint8Array([9]) }),
        icmpEcho({ src, dst, id: 7 }),
        icmpError({ src, dst, type: src.includes(':') ? 1 : 3, quoted: tcpSegment({ src: dst, dst: src, sport: 1, dport: 2 }) }),
      ]) {
        const ip = f.subarray(ETH_HLEN);
        if (!src.includes(':')) expect(ipv4HeaderChecksumOk(ip)).toBe(true);
        expect(l4ChecksumOk(ip)).toBe(true);
      }
    }
  });

  it('ICMPv6 echo is type 128 and its reply 129, ICMPv4 8 and 0', () => {
    expect(icmpEchoPacket({ src: 'fd00::1', dst: 'fd00::2', id: 1 })[40]).toBe(128);
    expect(icmpEchoPacket({ src: 'fd00::1', dst: 'fd00::2', id: 1, reply: true })[40]).toBe(129);
    expect(icmpEchoPacket({ src: '10.0.0.1', dst: '10.0.0.2', id: 1 })[20]).toBe(8);
  });

  it('tshark decodes the frames with correct checksums', () => {
    let tshark = true;
    try {
      execFileSync('which', ['tshark']);
    } catch {
      tshark = false;
    }
    expect(tshark, 'tshark is missing: run scripts/setup.sh (Debian package tshark)').toBe(true);
    // pcap: global header + one record per frame
    const frames = [
      tcp({ src: '10.1.0.1', dst: '10.1.0.2', sport: 4000, dport: 80 }),
      udp({ src: 'fd00::1', dst: 'fd00::2', sport: 4000, dport: 53 }),
    ];
    const parts: Buffer[] = [Buffer.from('d4c3b2a1020004000000000000000000ffff000001000000', 'hex')];
    for (const f of frames) {
      const h = Buffer.alloc(16);
      h.writeUInt32LE(f.length, 8);
      h.writeUInt32LE(f.length, 12);
      parts.push(h, Buffer.from(f));
    }
    const dir = mkdtempSync(join(tmpdir(), 'veil-pkt-'));
    const file = join(dir, 'frames.pcap');
    writeFileSync(file, Buffer.concat(parts));
    let out: string;
    try {
      out = execFileSync('tshark', ['-r', file, '-o', 'tcp.check_checksum:TRUE', '-o', 'udp.check_checksum:TRUE', '-o', 'ip.check_checksum:TRUE',
      '-T', 'fields', '-e', 'tcp.checksum.status', '-e', 'udp.checksum.status', '-e', 'ip.checksum.status'], {
        stdio: ['ignore', 'pipe', 'pipe'],
      }).toString();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    // checksum status 1 = good (0 bad, 2 unverified); fields: tcp, udp, ip
    const lines = out.split('\n').filter((l) => l.length > 0).map((l) => l.split('\t'));
    expect(lines[0]).toEqual(['1', '', '1']);
    expect(lines[1]).toEqual(['', '1', '']);
  });
});
