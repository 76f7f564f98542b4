import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  checkDeviceName,
  checkKey,
  keyFromBase64,
  keyToBase64,
  normalizeCidr,
  normalizeEndpoint,
  validateWgDeviceConfig,
} from '../../../agent/wireguard/keys.js';
import { publicKeyFingerprint } from '../../../agent/keys/fingerprint.js';
import { validationError } from '../../support/validation-error.js';

const key = (fill: number) => Buffer.alloc(32, fill);

describe('keys', () => {
  it('checkKey() accepts exactly 32 bytes and says the length it got', () => {
    expect(checkKey(key(1), 'k')).toEqual(key(1));
    expect(checkKey(new Uint8Array(32), 'k')).toHaveLength(32);
    for (const [v, why] of [
      [Buffer.alloc(31), 'got 31'],
      [Buffer.alloc(33), 'got 33'],
      ['a'.repeat(32), 'got a string'],
      [undefined, 'got a undefined'],
    ] as const) {
      const e = validationError(() => checkKey(v, 'peers[0].publicKey'));
      expect(e.field).toBe('peers[0].publicKey');
      expect(e.message).toContain(why);
    }
  });

  it('keyFromBase64() and keyToBase64() round-trip the "wg genkey" form and refuse other lengths', () => {
    const b64 = 'yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=';
    expect(keyToBase64(keyFromBase64(b64))).toBe(b64);
    expect(keyFromBase64(b64)).toHaveLength(32);
    for (const bad of ['', 'AAAA', `${b64}A`, b64.slice(0, 43), 'yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmj=', 42]) {
      validationError(() => keyFromBase64(bad, 'privateKey'));
    }
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), (b) => {
        expect(keyFromBase64(keyToBase64(b))).toEqual(Buffer.from(b));
      }),
    );
  });

});

describe('addresses', () => {
  // Parsing and formatting are agent/net/ip.ts's (tests/unit/net/ip.test.ts); these check the
  // WireGuard wording and normal form on top.
  it('normalizeEndpoint() canonicalises the address', () => {
    expect(normalizeEndpoint('192.0.2.1:51820')).toBe('192.0.2.1:51820');
    expect(normalizeEndpoint('[2001:DB8:0:0::1]:1')).toBe('[2001:db8::1]:1');
    expect(normalizeEndpoint('[::ffff:c000:201]:65535')).toBe('[::ffff:192.0.2.1]:65535');
  });

  it('normalizeEndpoint() refuses missing ports, bad ports, bare IPv6, bracketed IPv4 and zone ids', () => {
    for (const bad of [
      '192.0.2.1',
      '192.0.2.1:0',
      '192.0.2.1:65536',
      '192.0.2.1:+1',
      ':51820',
      '2001:db8::1:51820',
      '[192.0.2.1]:5',
      '[fe80::1%eth0]:5',
      '[2001:db8::1]5',
      '300.1.1.1:5',
      '01.2.3.4:5',
      'example.com:51820',
      12,
    ]) {
      const e = validationError(() => normalizeEndpoint(bad, 'peers[3].endpoint'));
      expect(e.field).toBe('peers[3].endpoint');
      expect(e.message).toMatch(/^Invalid endpoint ".*" at "peers\[3\]\.endpoint": .*; use "192\.0\.2\.1:51820"/s);
    }
  });

  it('normalizeCidr() clears host bits and canonicalises, as the kernel stores allowed IPs', () => {
    expect(normalizeCidr('10.0.1.7/24')).toBe('10.0.1.0/24');
    expect(normalizeCidr('FD00:0:0:0:1::1/64')).toBe('fd00::/64');
    expect(normalizeCidr('0.0.0.0/0')).toBe('0.0.0.0/0');
    expect(normalizeCidr('::/0')).toBe('::/0');
    expect(normalizeCidr('192.0.2.255/31')).toBe('192.0.2.254/31');
    expect(normalizeCidr('2001:db8::1/128')).toBe('2001:db8::1/128');
  });

  it('normalizeCidr() refuses missing and out-of-range prefixes and non-addresses, in WireGuard wording', () => {
    for (const bad of ['10.0.0.0', '10.0.0.0/33', 'fd00::/129', '10.0.0.0/08', '10.0.0.0/-1', 'x/1', '10.0.0/8', '/8', '', null]) {
      const e = validationError(() => normalizeCidr(bad, 'peers[0].allowedIps[2]'));
      expect(e.field).toBe('peers[0].allowedIps[2]');
      expect(e.message).toMatch(/^Invalid CIDR ".*" at "peers\[0\]\.allowedIps\[2\]": /s);
    }
  });

  it('checkDeviceName() refuses names the kernel would refuse', () => {
    expect(checkDeviceName('veil_wg0')).toBe('veil_wg0');
    for (const bad of ['', 'a'.repeat(16), 'a/b', 'a b', 'a:b', '.', '..', 7]) validationError(() => checkDeviceName(bad));
  });
});

describe('validateWgDeviceConfig()', () => {
  it('returns a normalised configuration', () => {
    const out = validateWgDeviceConfig({
      privateKey: key(1),
      listenPort: 51820,
      fwmark: 0xe00,
      replacePeers: true,
      peers: [
        { publicKey: key(2), endpoint: '[2001:DB8::1]:51820', allowedIps: ['10.0.1.9/24', '10.0.1.0/24'], persistentKeepalive: 0, presharedKey: null },
        { publicKey: key(3), remove: true, endpoint: 'not even parsed', allowedIps: ['10.0.1.0/24'] },
      ],
    });
    expect(out).toEqual({
      privateKey: key(1),
      listenPort: 51820,
      fwmark: 0xe00,
      replacePeers: true,
      peers: [
        { publicKey: key(2), endpoint: '[2001:db8::1]:51820', allowedIps: ['10.0.1.0/24'], persistentKeepalive: 0, presharedKey: null },
        { publicKey: key(3), remove: true },
      ],
    });
  });

  it('refuses out-of-range numbers naming the field', () => {
    const cases: [unknown, string][] = [
      [{ listenPort: 65536 }, 'config.listenPort'],
      [{ listenPort: -1 }, 'config.listenPort'],
      [{ fwmark: 2 ** 32 }, 'config.fwmark'],
      [{ fwmark: 1.5 }, 'config.fwmark'],
      [{ peers: [{ publicKey: key(1), persistentKeepalive: 65536 }] }, 'config.peers[0].persistentKeepalive'],
      [{ peers: [{ publicKey: key(1), persistentKeepalive: -1 }] }, 'config.peers[0].persistentKeepalive'],
      [{ peers: [{ publicKey: key(1), persistentKeepalive: 2.5 }] }, 'config.peers[0].persistentKeepalive'],
      [{ peers: [{ publicKey: key(1), replaceAllowedIps: 'yes' }] }, 'config.peers[0].replaceAllowedIps'],
      [{ peers: [{ publicKey: key(1), allowedIps: '10.0.0.0/8' }] }, 'config.peers[0].allowedIps'],
      [{ peers: [{ publicKey: key(1), allowedIps: ['10.0.0.0/99'] }] }, 'config.peers[0].allowedIps[0]'],
      [{ peers: [{ publicKey: key(1), endpoint: '10.0.0.1' }] }, 'config.peers[0].endpoint'],
      [{ peers: [{ publicKey: Buffer.alloc(16) }] }, 'config.peers[0].publicKey'],
      [{ peers: {} }, 'config.peers'],
      [{ peers: [null] }, 'config.peers[0]'],
    ];
    for (const [config, field] of cases) {
      const e = validationError(() => validateWgDeviceConfig(config));
      expect(e.field).toBe(field);
      expect(e.message).toMatch(/^[A-Z]/);
      expect(e.message).not.toMatch(/\.$/);
    }
    const e = validationError(() => validateWgDeviceConfig({ peers: [{ publicKey: key(1), persistentKeepalive: 70000 }] }));
    expect(e.message).toBe(
      'Invalid persistent keepalive "70000" at "config.peers[0].persistentKeepalive": use whole seconds from 0 (off) to 65535',
    );
  });

  it('refuses a peer listed twice and an allowed IP given to two peers', () => {
    const dup = validationError(() => validateWgDeviceConfig({ peers: [{ publicKey: key(7) }, { publicKey: key(8) }, { publicKey: key(7) }] }));
    expect(dup.field).toBe('config.peers[2].publicKey');
    expect(dup.message).toContain('"config.peers[0]"');
    // Public keys are named by the project's one fingerprint (agent/keys/fingerprint.ts).
    expect(dup.message).toContain(`Duplicate peer "${publicKeyFingerprint(key(7))}"`);
    const cidr = validationError(() =>
      validateWgDeviceConfig({ peers: [{ publicKey: key(7), allowedIps: ['10.0.0.0/8'] }, { publicKey: key(8), allowedIps: ['10.1.2.3/8'] }] }),
    );
    expect(cidr.message).toContain('"10.0.0.0/8"');
  });

  it('never puts private or preshared key material into an error message', () => {
    const secret = Buffer.from('c2VjcmV0LXByaXZhdGUta2V5LW5ldmVyLWxvZ2dlZA', 'base64');
    const messages = [
      validationError(() => validateWgDeviceConfig({ privateKey: secret })).message,
      validationError(() => validateWgDeviceConfig({ peers: [{ publicKey: key(1), presharedKey: secret }] })).message,
      validationError(() => validateWgDeviceConfig({ privateKey: secret.toString('base64') })).message,
    ];
    for (const m of messages) {
      expect(m).not.toContain(secret.toString('base64'));
      expect(m).not.toContain(secret.toString('hex'));
      expect(m).not.toContain(secret.toString('latin1'));
    }
  });
});
