/**
 * The bad-input list in one place, against the real kernel: malformed keys, wrong
 * lengths, missing devices, unknown namespaces and oversized requests give a typed error that
 * says what was wrong — at the TypeScript edge, and again at the addon's own edge when the
 * TypeScript checks are bypassed — and leave the kernel exactly as it was. (Duplicate SPIs need
 * ESP, which this host kernel lacks: tests/vm/xfrm-esp.test.ts covers them on a real kernel.)
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NetlinkError, ValidationError, VeilError } from '../../agent/errors.js';
import { native } from '../../agent/native/addon.js';
import { addAddresses } from '../../agent/netlink/address.js';
import { addLinks, getLink, listLinks, setLink } from '../../agent/netlink/link.js';
import { addRoutes, listRoutes } from '../../agent/netlink/route.js';
import { addRules } from '../../agent/netlink/rule.js';
import { KernelWireGuardBackend } from '../../agent/wireguard/kernel-backend.js';
import { netlinkLinkOps } from '../../agent/wireguard/link-ops.js';
import { addPolicies, listPolicies } from '../../agent/xfrm/policy.js';
import { addStates, listStates } from '../../agent/xfrm/state.js';
import { ipJson, NetnsSet } from '../support/netns.js';

const nsSet = new NetnsSet();
let ns = '';

beforeAll(async () => {
  ns = await nsSet.add('vbad');
  await addLinks([{ name: 'veth0', kind: 'veth', peer: { name: 'veth1' }, up: true }], { netns: ns });
  await addAddresses([{ dev: 'veth0', address: '10.77.0.1/24' }], { netns: ns });
});
afterAll(() => nsSet.cleanup());

/** Everything the namespace holds that a bad request could have touched. */
async function snapshot(): Promise<string> {
  const [links, addrs, routes, rules, policies] = await Promise.all([
    ipJson(ns, ['-d', 'link', 'show']),
    ipJson(ns, ['addr', 'show']),
    ipJson(ns, ['route', 'show', 'table', 'all']),
    ipJson(ns, ['rule', 'show']),
    listPolicies({}, { netns: ns }),
  ]);
  const stripCounters = (l: unknown) => JSON.stringify(l, (k, v) => (k === 'stats64' || k === 'stats' ? undefined : v));
  return stripCounters({ links, addrs, routes, rules, policies });
}

async function rejects(p: Promise<unknown> | (() => unknown)): Promise<VeilError & Record<string, unknown>> {
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (err) {
    return err as VeilError & Record<string, unknown>;
  }
  throw new Error('Expected the call to fail');
}

describe('bad input leaves the kernel untouched', () => {
  it('unknown namespaces fail with ENOENT naming the namespace, for every family', async () => {
    const missing = { netns: 'veil-no-such-netns' };
    const calls: [string, () => Promise<unknown>][] = [
      ['links', () => listLinks(missing)],
      ['routes', () => addRoutes([{ dst: '10.9.0.0/24', dev: 'lo' }], missing)],
      ['rules', () => addRules([{ family: 4, priority: 100, table: 100, fwmark: 1 }], missing)],
      ['xfrm', () => listStates({}, missing)],
      ['wireguard', () => new KernelWireGuardBackend({ netns: missing.netns, links: netlinkLinkOps }).getDevice('wg0')],
    ];
    for (const [family, call] of calls) {
      const err = await rejects(call);
      expect(err, family).toBeInstanceOf(NetlinkError);
      expect(err.code, family).toBe('ENOENT');
      expect(err.op, family).toBe('netns');
      expect(err.message, family).toContain('veil-no-such-netns');
    }
  });

  it('a missing device fails the whole batch with ENODEV naming it, before anything is sent', async () => {
    const before = await snapshot();
    const err = await rejects(
      addRoutes(
        [
          { dst: '10.10.0.0/24', dev: 'veth0' },
          { dst: '10.11.0.0/24', dev: 'nosuchdev0' },
        ],
        { netns: ns },
      ),
    );
    expect(err).toBeInstanceOf(NetlinkError);
    expect(err.code).toBe('ENODEV');
    expect(err.message).toContain('"nosuchdev0"');
    expect(await snapshot()).toBe(before);
    expect((await listRoutes({}, { netns: ns })).some((r) => r.dst === '10.10.0.0/24')).toBe(false);
  });

  it('malformed keys and wrong lengths are refused in TypeScript, and again by the addon itself', async () => {
    const before = await snapshot();
    // TypeScript edge: a 16-byte AEAD key for AES-GCM (needs 20, 28 or 36 bytes with the salt).
    const ts = await rejects(
      addStates(
        [
          {
            src: '10.77.0.1',
            dst: '10.77.0.2',
            spi: 0x1000,
            reqid: 1,
            mode: 'tunnel',
            aead: { algorithm: 'rfc4106(gcm(aes))', key: Buffer.alloc(16, 0xab) },
          },
        ],
        { netns: ns },
      ),
    );
    expect(ts).toBeInstanceOf(ValidationError);
    expect(ts.message).not.toContain('abab');

    // The addon's edge, with the TypeScript checks bypassed: a WireGuard device record cut short
    // inside its private key (the packed records of agent/wireguard/pack.ts).
    const secret = Buffer.alloc(31, 0x5a);
    const raw = await rejects(native().wgSetDevice!({ netns: ns }, 'wg0', secret, Buffer.alloc(0), Buffer.alloc(0)));
    expect(raw.code).toBe('EINVAL');
    expect(String(raw.message)).toMatch(/31 bytes is not a whole number of 44-byte records/);
    expect(String(raw.message)).not.toContain('5a5a');

    // And a packed route batch whose length is not a whole number of records.
    const packed = await rejects(native().routeAdd!(Buffer.alloc(13), [], { netns: ns }));
    expect(packed.code).toBe('EINVAL');
    expect(await snapshot()).toBe(before);
  });

  it('oversized requests are refused with a clear error and nothing applied', async () => {
    const before = await snapshot();
    // An interface name longer than IFNAMSIZ - 1, at the TypeScript edge and at the kernel.
    const long = 'x'.repeat(300);
    const ts = await rejects(addLinks([{ name: long, kind: 'veth', peer: { name: 'p0' } }], { netns: ns }));
    expect(ts).toBeInstanceOf(ValidationError);
    const kernel = await rejects(native().linkAdd!([{ name: long, kind: 'veth', peerName: 'p0' }], { netns: ns }));
    // The kernel's own policy check refuses it (IFLA_IFNAME is at most IFNAMSIZ bytes).
    expect(kernel.code).toBe('ERANGE');
    expect(kernel.extack).toBe('Attribute failed policy validation');
    // An XFRM policy with more templates than the kernel's XFRM_MAX_DEPTH (6).
    const tmpl = { src: '10.77.0.1', dst: '10.77.0.2', proto: 'esp', mode: 'tunnel', reqid: 1 };
    const deep = await rejects(
      addPolicies(
        [
          {
            dir: 'out',
            selector: { src: '10.1.0.0/24', dst: '10.2.0.0/24' },
            templates: Array.from({ length: 7 }, () => tmpl),
          },
        ] as never,
        { netns: ns },
      ),
    );
    expect(deep).toBeInstanceOf(ValidationError);
    // A WireGuard peer set over the protocol's limit of 2^20 peers per device.
    const key = Buffer.alloc(32, 1);
    const peers = new Array((1 << 20) + 1).fill({ publicKey: key });
    const many = await rejects(
      new KernelWireGuardBackend({ netns: ns, links: netlinkLinkOps }).setDevice('wg0', { peers }),
    );
    expect(many).toBeInstanceOf(ValidationError);
    expect(many.message).toContain('1048577');
    expect(await snapshot()).toBe(before);
  });

  it('a change to a missing link fails with ENODEV and the existing link keeps its settings', async () => {
    const mtu = (await getLink('veth0', { netns: ns })).mtu;
    const err = await rejects(setLink('nosuchdev0', { mtu: 1400 }, { netns: ns }));
    expect(err.code).toBe('ENODEV');
    expect((await getLink('veth0', { netns: ns })).mtu).toBe(mtu);
  });
});
