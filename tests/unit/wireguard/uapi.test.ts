/**
 * The UAPI text protocol (https://www.wireguard.com/xplatform/): requests byte-exact against
 * hand-written text, answers parsed field by field. Keys are the ones of the protocol page's
 * example exchange.
 */
import { describe, expect, it } from 'vitest';
import { UapiError, ValidationError } from '../../../agent/errors.js';
import {
  encodeUapiGet,
  encodeUapiSet,
  parseUapiGet,
  parseUapiSetResponse,
  uapiErrnoError,
  x25519PublicKey,
} from '../../../agent/wireguard/uapi.js';
import { validateWgDeviceConfig } from '../../../agent/wireguard/keys.js';

const PRIV = 'e84b5a6d2717c1003a13b431570353dbaca9146cf150c5f8575680feba52027a';
/** `wg pubkey` of PRIV. */
const PRIV_PUB = 'c1532e1b3d3508fc7ebc354fa679620f33f287149542e684c67b7b0d81362b29';
const PEER1 = 'b85996fecc9c7f1fc6d2572a76eda11d59bcd20be8e543b15ce4bd85a8e75a33';
const PSK1 = '188515093e952f5f22e865cef3012e72f8b5f0b598ac0309d5dacce3b70fcf52';
const PEER2 = '58402e695ba1772b1cc9309755f043251ea77fdcf10fbe63989ceb7e19321376';
const PEER3 = '662e14fd594556f522604703340351258903b64f35553763f19426ab2a515c58';
const PEER4 = 'e818b58db5274087fcc1be5dc728cf53d3b5726b4cef6b9bab8f8f8c2452c25c';
const ZERO = '0'.repeat(64);
const hex = (h: string): Buffer => Buffer.from(h, 'hex');
const text = (s: string): Buffer => Buffer.from(s, 'latin1');

describe('encodeUapiSet', () => {
  it('encodes a full configuration byte-exact, device lines first, listen_port leading', () => {
    const buf = encodeUapiSet({
      privateKey: hex(PRIV),
      listenPort: 12912,
      fwmark: 0,
      replacePeers: true,
      peers: [
        { publicKey: hex(PEER1), presharedKey: hex(PSK1), endpoint: '[abcd:23::33]:51820', replaceAllowedIps: true, allowedIps: ['192.168.4.4/32'] },
        { publicKey: hex(PEER2), endpoint: '182.122.22.19:3233', persistentKeepalive: 111, replaceAllowedIps: true, allowedIps: ['192.168.4.6/32'] },
        { publicKey: hex(PEER3), endpoint: '5.152.198.39:51820', allowedIps: ['192.168.4.10/32', '192.168.4.11/32'] },
        { publicKey: hex(PEER4), remove: true, allowedIps: ['10.9.9.9/32'] },
      ],
    });
    expect(buf.toString('latin1')).toBe(
      'set=1\n' +
        'listen_port=12912\n' +
        'fwmark=0\n' +
        `private_key=${PRIV}\n` +
        'replace_peers=true\n' +
        `public_key=${PEER1}\n` +
        `preshared_key=${PSK1}\n` +
        'endpoint=[abcd:23::33]:51820\n' +
        'replace_allowed_ips=true\n' +
        'allowed_ip=192.168.4.4/32\n' +
        `public_key=${PEER2}\n` +
        'endpoint=182.122.22.19:3233\n' +
        'persistent_keepalive_interval=111\n' +
        'replace_allowed_ips=true\n' +
        'allowed_ip=192.168.4.6/32\n' +
        `public_key=${PEER3}\n` +
        'endpoint=5.152.198.39:51820\n' +
        'allowed_ip=192.168.4.10/32\n' +
        'allowed_ip=192.168.4.11/32\n' +
        `public_key=${PEER4}\n` +
        'remove=true\n' +
        '\n',
    );
  });

  it('encodes removal of the private and preshared keys as all-zero keys', () => {
    const buf = encodeUapiSet({ privateKey: null, peers: [{ publicKey: hex(PEER1), updateOnly: true, presharedKey: null }] });
    expect(buf.toString('latin1')).toBe(
      `set=1\nprivate_key=${ZERO}\npublic_key=${PEER1}\nupdate_only=true\npreshared_key=${ZERO}\n\n`,
    );
  });

  it('encodes an empty configuration as an empty transaction', () => {
    expect(encodeUapiSet({}).toString('latin1')).toBe('set=1\n\n');
  });

  it('sends allowed IPs in canonical masked form (inet_ntop text, as the kernel backend reads them back)', () => {
    const buf = encodeUapiSet({ peers: [{ publicKey: hex(PEER1), allowedIps: ['10.1.2.3/16', 'FD00:0:0:0::1/64', '::ffff:102:304/128'] }] });
    expect(buf.toString('latin1')).toBe(
      `set=1\npublic_key=${PEER1}\nallowed_ip=10.1.0.0/16\nallowed_ip=fd00::/64\nallowed_ip=::ffff:1.2.3.4/128\n\n`,
    );
  });

  it('appends a retirement as a throw-away peer that takes the CIDRs and is removed', () => {
    const buf = encodeUapiSet(
      { peers: [{ publicKey: hex(PEER1), allowedIps: ['10.0.2.0/24'] }] },
      { publicKey: hex(PEER4), allowedIps: ['10.0.1.0/24', 'fd00::/64'] },
    );
    expect(buf.toString('latin1')).toBe(
      `set=1\npublic_key=${PEER1}\nallowed_ip=10.0.2.0/24\n` +
        `public_key=${PEER4}\nallowed_ip=10.0.1.0/24\nallowed_ip=fd00::/64\nremove=true\n\n`,
    );
  });

  it('encodes 5,000 peers quickly', () => {
    const peers = Array.from({ length: 5000 }, (_, i) => {
      const k = Buffer.alloc(32, 7);
      k.writeUInt32BE(i);
      return { publicKey: k, endpoint: `192.0.2.${i % 250}:51820`, allowedIps: [`10.${i >> 8}.${i & 255}.0/24`] };
    });
    const t0 = performance.now();
    const buf = encodeUapiSet({ replacePeers: true, peers });
    const ms = performance.now() - t0;
    expect(buf.toString('latin1').split('\npublic_key=').length).toBe(5001);
    expect(ms).toBeLessThan(500);
  });

  it('encodes get as "get=1" and an empty line', () => {
    expect(encodeUapiGet().toString('latin1')).toBe('get=1\n\n');
  });
});

describe('parseUapiGet', () => {
  const answer =
    `private_key=${PRIV}\n` +
    'listen_port=12912\n' +
    'fwmark=4660\n' +
    `public_key=${PEER1}\n` +
    `preshared_key=${PSK1}\n` +
    'protocol_version=1\n' +
    'endpoint=[abcd:23::33%2]:51820\n' +
    'last_handshake_time_sec=0\n' +
    'last_handshake_time_nsec=0\n' +
    'tx_bytes=0\n' +
    'rx_bytes=0\n' +
    'persistent_keepalive_interval=0\n' +
    'allowed_ip=192.168.4.4/32\n' +
    `public_key=${PEER2}\n` +
    `preshared_key=${ZERO}\n` +
    'protocol_version=1\n' +
    'endpoint=182.122.22.19:3233\n' +
    'last_handshake_time_sec=1500000000\n' +
    'last_handshake_time_nsec=500000000\n' +
    'tx_bytes=38333\n' +
    'rx_bytes=18446744073709551615\n' +
    'persistent_keepalive_interval=111\n' +
    'allowed_ip=192.168.4.6/32\n' +
    'allowed_ip=fd00:1::/64\n' +
    'some_future_key=whatever\n' +
    `public_key=${PEER3}\n` +
    'errno=0\n' +
    '\n';

  it('parses the device, three peers, endpoints v4/v6, handshake time and counters', () => {
    const dev = parseUapiGet(text(answer));
    expect(dev.hasPrivateKey).toBe(true);
    expect(dev.publicKey?.toString('hex')).toBe(PRIV_PUB);
    expect(dev.listenPort).toBe(12912);
    expect(dev.fwmark).toBe(4660);
    expect(dev.peers).toHaveLength(3);
    const [p1, p2, p3] = dev.peers;
    expect(p1).toEqual({
      publicKey: hex(PEER1),
      hasPresharedKey: true,
      endpoint: '[abcd:23::33%2]:51820',
      persistentKeepalive: 0,
      allowedIps: ['192.168.4.4/32'],
      lastHandshakeMs: null,
      rxBytes: 0n,
      txBytes: 0n,
      protocolVersion: 1,
    });
    expect(p2).toEqual({
      publicKey: hex(PEER2),
      hasPresharedKey: false,
      endpoint: '182.122.22.19:3233',
      persistentKeepalive: 111,
      allowedIps: ['192.168.4.6/32', 'fd00:1::/64'],
      lastHandshakeMs: 1_500_000_000_500,
      rxBytes: 18446744073709551615n,
      txBytes: 38333n,
      protocolVersion: 1,
    });
    expect(p3?.publicKey.toString('hex')).toBe(PEER3);
    expect(p3?.allowedIps).toEqual([]);
    expect(p3?.endpoint).toBeNull();
  });

  it('never returns key material other than public keys', () => {
    const dev = parseUapiGet(text(answer));
    const dump = JSON.stringify(dev, (_k, v) => (typeof v === 'bigint' ? String(v) : Buffer.isBuffer(v) ? v.toString('hex') : v));
    expect(dump).not.toContain(PRIV);
    expect(dump).not.toContain(PSK1);
  });

  it('reports an empty device (no private key, no peers)', () => {
    const dev = parseUapiGet(text('listen_port=0\nerrno=0\n\n'));
    expect(dev).toEqual({ publicKey: null, hasPrivateKey: false, listenPort: 0, fwmark: 0, peers: [] });
    expect(parseUapiGet(text(`private_key=${ZERO}\nerrno=0\n\n`)).hasPrivateKey).toBe(false);
  });

  it('turns a non-zero errno into a typed UapiError', () => {
    const err = (() => {
      try {
        parseUapiGet(text('errno=-22\n\n'), 'Cannot read device "wg0"');
      } catch (e) {
        return e;
      }
    })() as UapiError;
    expect(err).toBeInstanceOf(UapiError);
    expect(err.code).toBe('EINVAL');
    expect(err.errno).toBe(22);
    expect(err.message).toMatch(/^Cannot read device "wg0": wireguard-go answered errno 22 \(EINVAL\)/);
  });

  it.each([
    ['truncated', `private_key=${PRIV}\nlisten_port=1`],
    ['no errno line', 'listen_port=1\n\n'],
    ['a line without "="', 'garbage\nerrno=0\n\n'],
    ['a short key', 'public_key=abcd\nerrno=0\n\n'],
    ['a non-hex key', `public_key=${'zz'.repeat(32)}\nerrno=0\n\n`],
    ['a peer field before any peer', 'allowed_ip=10.0.0.0/8\nerrno=0\n\n'],
    ['a bad CIDR', `public_key=${PEER1}\nallowed_ip=10.0.0.0/33\nerrno=0\n\n`],
    ['a bad port', 'listen_port=70000\nerrno=0\n\n'],
    ['a bad endpoint', `public_key=${PEER1}\nendpoint=example.com:1\nerrno=0\n\n`],
    ['data after errno', 'errno=0\nlisten_port=1\n\n'],
    ['an empty line inside', 'listen_port=1\n\nerrno=0\n\n'],
  ])('rejects an answer with %s as EPROTO', (_what, body) => {
    expect(() => parseUapiGet(text(body))).toThrow(expect.objectContaining({ name: 'UapiError', code: 'EPROTO' }));
  });
});

describe('parseUapiSetResponse and errno', () => {
  it('returns 0 for success and the errno otherwise', () => {
    expect(parseUapiSetResponse(text('errno=0\n\n'))).toBe(0);
    expect(parseUapiSetResponse(text('errno=-98\n\n'))).toBe(-98);
  });

  it('rejects anything but a single errno line', () => {
    expect(() => parseUapiSetResponse(text('errno=0\n'))).toThrow(UapiError);
    expect(() => parseUapiSetResponse(text('listen_port=1\nerrno=0\n\n'))).toThrow(UapiError);
    expect(() => parseUapiSetResponse(text('errno=x\n\n'))).toThrow(UapiError);
  });

  it('explains EADDRINUSE with the fix', () => {
    const err = uapiErrnoError(-98, 'Cannot configure WireGuard device "wg0" in namespace "a"');
    expect(err.code).toBe('EADDRINUSE');
    expect(err.message).toBe(
      'Cannot configure WireGuard device "wg0" in namespace "a": wireguard-go answered errno 98 (EADDRINUSE): the listen port is already in use; choose another listenPort',
    );
  });
});

describe('validation', () => {
  it('derives the same public key as `wg pubkey`', () => {
    expect(x25519PublicKey(hex(PRIV)).toString('hex')).toBe(PRIV_PUB);
  });

  // Names, endpoints and CIDRs are checked by keys.ts for both backends (tests/unit/wireguard/
  // keys.test.ts, tests/unit/net/ip.test.ts); here: what the userspace path makes of its output.
  it('sends wireguard-go the normal form validateWgDeviceConfig() returns, as the kernel backend sends', () => {
    const config = validateWgDeviceConfig({
      peers: [{ publicKey: hex(PEER1), endpoint: '[ABCD:23:0::33]:51820', allowedIps: ['192.168.4.7/24', '192.168.4.0/24', 'FD00::1/64'] }],
    });
    expect(encodeUapiSet(config).toString('latin1')).toBe(
      'set=1\n' +
        `public_key=${PEER1}\n` +
        'endpoint=[abcd:23::33]:51820\n' +
        'allowed_ip=192.168.4.0/24\n' +
        'allowed_ip=fd00::/64\n' +
        '\n',
    );
  });

  it('names the failing field and never prints the key', () => {
    const badKey = Buffer.alloc(31, 0xab);
    try {
      validateWgDeviceConfig({ peers: [{ publicKey: hex(PEER1) }, { publicKey: hex(PEER2), presharedKey: badKey }] });
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(ValidationError);
      expect((err as ValidationError).field).toBe('config.peers[1].presharedKey');
      expect((err as Error).message).toBe('Invalid WireGuard key at "config.peers[1].presharedKey": expected 32 bytes, got 31; pass the raw 32-byte key');
      expect((err as Error).message).not.toContain(badKey.toString('hex'));
    }
    expect(() => validateWgDeviceConfig({ listenPort: 65536 })).toThrow(/listenPort/);
    expect(() => validateWgDeviceConfig({ fwmark: -1 })).toThrow(/fwmark/);
    expect(() => validateWgDeviceConfig({ peers: [{ publicKey: hex(PEER1), persistentKeepalive: 1.5 }] })).toThrow(/persistentKeepalive/);
    expect(() => validateWgDeviceConfig({ peers: [{ publicKey: hex(PEER1), allowedIps: ['10.0.0.0/8', 'nope'] }] })).toThrow(/allowedIps\[1\]/);
  });
});
