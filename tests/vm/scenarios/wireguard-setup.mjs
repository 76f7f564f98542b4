/**
 * Builds the two-node WireGuard topology in existing namespaces A and B, every kernel change
 * through the addon (no `ip`, no `wg`):
 *
 *   A: ul0 192.168.77.1/24 ── veth ── B: ul0 192.168.77.2/24                (underlay)
 *   A: wg0 10.77.0.1/24 fd77::1/64  ══ WireGuard ══  B: wg0 10.77.0.2/24 fd77::2/64
 *
 * Usage: node wireguard-setup.mjs STATE_FILE NS_A NS_B STATE_DIR
 * Writes STATE_FILE (keys included: later scenarios and the test's `wg show` cross-check need
 * them) and prints it.
 */
import { randomBytes } from 'node:crypto';
import { b64, fromDist, keyPair, runScenario, writeState } from './wireguard-common.mjs';

const { selectWireGuardBackend } = await fromDist('agent/wireguard/select.js');
const { addLinks, setLink } = await fromDist('agent/netlink/link.js');
const { addAddresses } = await fromDist('agent/netlink/address.js');

await runScenario(async ([stateFile, nsA, nsB, stateDir]) => {
  if (!stateFile || !nsA || !nsB || !stateDir) throw new Error('Usage: wireguard-setup.mjs STATE_FILE NS_A NS_B STATE_DIR');

  // Underlay: one veth pair, the peer end created directly in B.
  await addLinks([{ name: 'ul0', kind: 'veth', peer: { name: 'ul0', netns: nsB } }], { netns: nsA });
  for (const [ns, addr] of [[nsA, '192.168.77.1/24'], [nsB, '192.168.77.2/24']]) {
    await addAddresses([{ dev: 'ul0', address: addr }], { netns: ns });
    await setLink('lo', { up: true }, { netns: ns });
    await setLink('ul0', { up: true }, { netns: ns });
  }

  const a = { ns: nsA, ...keyPair(), listenPort: 51820, fwmark: 0x1234, tunnel4: '10.77.0.1', tunnel6: 'fd77::1' };
  const b = { ns: nsB, ...keyPair(), listenPort: 51821, fwmark: 0, tunnel4: '10.77.0.2', tunnel6: 'fd77::2' };
  const psk = randomBytes(32);

  const peerOf = {
    // A's view of B: v4 endpoint, one v4 and one v6 allowed IP, preshared key, keepalive.
    a: { publicKey: b.publicKey, presharedKey: psk, endpoint: '192.168.77.2:51821', allowedIps: ['10.77.0.2/32', 'fd77::2/128'], persistentKeepalive: 25 },
    // B's view of A: no keepalive (so `wg show` prints "off").
    b: { publicKey: a.publicKey, presharedKey: psk, endpoint: '192.168.77.1:51820', allowedIps: ['10.77.0.1/32', 'fd77::1/128'], persistentKeepalive: 0 },
  };

  const kinds = {};
  for (const [side, node] of [['a', a], ['b', b]]) {
    const backend = await selectWireGuardBackend({ netns: node.ns, stateDir: `${stateDir}/${side}`, backend: 'auto' });
    kinds[side] = backend.kind;
    if (backend.kind !== 'kernel') throw new Error(`Auto mode picked the "${backend.kind}" backend in "${node.ns}", expected "kernel"`);
    await backend.createDevice('wg0');
    await backend.setDevice('wg0', {
      privateKey: node.privateKey,
      listenPort: node.listenPort,
      fwmark: node.fwmark,
      peers: [peerOf[side]],
    });
    await addAddresses(
      [
        { dev: 'wg0', address: `${node.tunnel4}/24` },
        { dev: 'wg0', address: `${node.tunnel6}/64`, noDad: true },
      ],
      { netns: node.ns },
    );
    await setLink('wg0', { up: true }, { netns: node.ns });
    await backend.close();
  }

  const show = (node, peer) => ({
    ns: node.ns,
    privateKey: b64(node.privateKey),
    publicKey: b64(node.publicKey),
    listenPort: node.listenPort,
    fwmark: node.fwmark,
    tunnel4: node.tunnel4,
    tunnel6: node.tunnel6,
    peer: { ...peer, publicKey: b64(peer.publicKey), presharedKey: b64(peer.presharedKey) },
  });
  const state = { stateDir, kinds, a: show(a, peerOf.a), b: show(b, peerOf.b) };
  writeState(stateFile, state);
  return state;
});
