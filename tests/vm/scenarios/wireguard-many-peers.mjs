/**
 * Sets COUNT peers on a new device in one setDevice call (replacePeers) and reads them back.
 * The device stays down: the peers' endpoints are unreachable documentation addresses.
 *
 * Usage: node wireguard-many-peers.mjs STATE_FILE DEVICE COUNT
 * Prints { messages, set, read }: how many netlink messages the call is split into (from the
 * encoder the real call runs, at its real size bound), the peers as set and as read, each as
 * { publicKey, endpoint, persistentKeepalive, allowedIps }.
 */
import { randomBytes } from 'node:crypto';
import { fromDist, keyPair, readState, runScenario } from './wireguard-common.mjs';

const { selectWireGuardBackend } = await fromDist('agent/wireguard/select.js');
const { encodeWgSetDevice } = await fromDist('agent/wireguard/kernel-netlink.js');

await runScenario(async ([stateFile, dev, countArg]) => {
  const state = readState(stateFile);
  const count = Number(countArg);
  if (!dev || !Number.isInteger(count) || count < 1) throw new Error('Usage: wireguard-many-peers.mjs STATE_FILE DEVICE COUNT');
  const a = state.a;

  const peers = Array.from({ length: count }, (_, i) => ({
    publicKey: keyPair().publicKey,
    endpoint: i % 2 ? `[2001:db8::${(i + 1).toString(16)}]:${20000 + i}` : `192.0.2.${(i % 250) + 1}:${20000 + i}`,
    persistentKeepalive: i % 60,
    allowedIps: [`10.${100 + (i >> 8)}.${i & 255}.0/24`, `fd10::${(i + 1).toString(16)}:0/112`],
    ...(i % 3 === 0 ? { presharedKey: randomBytes(32) } : {}),
  }));
  const config = { privateKey: keyPair().privateKey, listenPort: 0, replacePeers: true, peers };

  const backend = await selectWireGuardBackend({ netns: a.ns, stateDir: `${state.stateDir}/a`, backend: 'auto' });
  await backend.createDevice(dev);
  const messages = encodeWgSetDevice(dev, config).length;
  const started = Date.now();
  await backend.setDevice(dev, config);
  const setMs = Date.now() - started;
  const device = await backend.getDevice(dev);
  await backend.close();

  const brief = (p) => ({
    publicKey: p.publicKey,
    endpoint: p.endpoint,
    persistentKeepalive: p.persistentKeepalive,
    allowedIps: p.allowedIps,
    hasPresharedKey: p.hasPresharedKey ?? p.presharedKey !== undefined,
  });
  return { messages, setMs, set: peers.map(brief), read: device.peers.map(brief) };
});
