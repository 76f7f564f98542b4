/**
 * The objects the netlink benchmark installs, each in two spellings: the API's (for the addon)
 * and the tool's (an `ip -batch` line, a `wg setconf` section), generated from the same numbers
 * so both sides install exactly the same kernel state.
 */
import { generateKeyPairSync } from 'node:crypto';
import type { RouteSpec } from '../agent/netlink/route.js';
import type { WgDeviceConfig } from '../agent/wireguard/backend.js';
import type { XfrmPolicyConfig } from '../agent/xfrm/types.js';

/** The device (one end of a veth pair) every route points at (created in each namespace before timing). */
export const ROUTE_DEV = 'bn0';

export interface Objects<T> {
  api: T;
  /** What the baseline tool reads (file contents). */
  text: string;
}

function octets(i: number): [number, number] {
  return [(i >> 8) & 255, i & 255];
}

/** `count` distinct /24 routes out of ROUTE_DEV (`ip route add 10.A.B.0/24 dev bn0`). */
export function routes(count: number): Objects<RouteSpec[]> {
  const api: RouteSpec[] = [];
  const lines: string[] = [];
  for (let i = 0; i < count; i++) {
    const [a, b] = octets(i);
    const dst = `10.${a}.${b}.0/24`;
    api.push({ dst, dev: ROUTE_DEV });
    lines.push(`route add ${dst} dev ${ROUTE_DEV}`);
  }
  return { api, text: lines.join('\n') + '\n' };
}

/**
 * `count` distinct outbound tunnel-mode policies, shaped like Veil's (mark-matched, one template
 * per remote node): `ip xfrm policy add src 10.255.0.0/16 dst 172.16.A.B/32 dir out priority 100
 * mark 0xe00 mask 0xf00 tmpl src 192.0.2.1 dst 198.18.A.B proto esp reqid 1 mode tunnel`.
 */
export function policies(count: number): Objects<XfrmPolicyConfig[]> {
  const api: XfrmPolicyConfig[] = [];
  const lines: string[] = [];
  for (let i = 0; i < count; i++) {
    const [a, b] = octets(i);
    const dst = `172.${16 + (i >> 16)}.${a}.${b}/32`;
    const peer = `198.18.${a}.${b}`;
    api.push({
      dir: 'out',
      selector: { src: '10.255.0.0/16', dst },
      priority: 100,
      mark: { value: 0xe00, mask: 0xf00 },
      templates: [{ src: '192.0.2.1', dst: peer, proto: 'esp', reqid: 1, mode: 'tunnel' }],
    });
    lines.push(
      `xfrm policy add src 10.255.0.0/16 dst ${dst} dir out priority 100 mark 0xe00 mask 0xf00 ` +
        `tmpl src 192.0.2.1 dst ${peer} proto esp reqid 1 mode tunnel`,
    );
  }
  return { api, text: lines.join('\n') + '\n' };
}

function keyPair(): { priv: Buffer; pub: Buffer } {
  const { privateKey, publicKey } = generateKeyPairSync('x25519');
  return {
    priv: Buffer.from(privateKey.export({ format: 'jwk' }).d!, 'base64url'),
    pub: Buffer.from(publicKey.export({ format: 'jwk' }).x!, 'base64url'),
  };
}

export const WG_LISTEN_PORT = 51820;

/**
 * A device configuration with `count` distinct peers (real X25519 public keys), each with one
 * allowed IP and an endpoint, replacing every existing peer: what `wg setconf` applies from the
 * matching config file.
 */
export function wireguardPeers(count: number): Objects<WgDeviceConfig> {
  const device = keyPair();
  const config: WgDeviceConfig = { privateKey: device.priv, listenPort: WG_LISTEN_PORT, replacePeers: true, peers: [] };
  const lines = ['[Interface]', `PrivateKey = ${device.priv.toString('base64')}`, `ListenPort = ${WG_LISTEN_PORT}`, ''];
  for (let i = 0; i < count; i++) {
    const [a, b] = octets(i);
    const pub = keyPair().pub;
    const allowed = `10.${100 + (i >> 16)}.${a}.${b}/32`;
    const endpoint = `198.18.${a}.${b}:${WG_LISTEN_PORT}`;
    config.peers!.push({ publicKey: pub, allowedIps: [allowed], endpoint });
    lines.push('[Peer]', `PublicKey = ${pub.toString('base64')}`, `AllowedIPs = ${allowed}`, `Endpoint = ${endpoint}`, '');
  }
  return { api: config, text: lines.join('\n') };
}
