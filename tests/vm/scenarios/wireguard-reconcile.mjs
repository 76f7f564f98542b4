/**
 * The two-channel WireGuard reconciler on kernel WireGuard (the host kernel has none): two node
 * namespaces A and B joined by a veth underlay, each with a "pod" address on a dummy link; the
 * channel devices, peers and tunnel routes come only from agent/reconcile (built dist/), on the
 * backend auto mode picks. Then, under a continuous ping between the pod addresses:
 *   1. a restart: new backends and reconcilers adopt everything and change nothing;
 *   2. a rotation of A's key through the two channels.
 * The scenario uses `ip` and `ping` for topology and traffic only.
 *
 * Usage: node wireguard-reconcile.mjs NS_A NS_B STATE_DIR
 * Prints { kinds, handshakeBefore, restart: { sets, ping }, rotation: { ping, keys }, steering }.
 */
import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import { fromDist, runScenario } from './wireguard-common.mjs';

const sh = promisify(execFile);
const { selectWireGuardBackend } = await fromDist('agent/wireguard/select.js');
const { X25519PrivateKey } = await fromDist('agent/keys/x25519.js');
const { setUpChannelDevices } = await fromDist('agent/reconcile/wireguard-channel-devices.js');
const { steadyChannelState } = await fromDist('agent/reconcile/wireguard-channel-state.js');
const { WireGuardPeerReconciler } = await fromDist('agent/reconcile/wireguard-peers.js');
const { WireGuardLocalRotation } = await fromDist('agent/reconcile/wireguard-local-rotation.js');

const BASE = 'veil';
const PORT = 51870;

/** Pings at 20 per second (the guest runs under TCG emulation) until stopped; resolves to { sent, received }. */
function pingStream(ns, dst, count) {
  const child = spawn('ip', ['netns', 'exec', ns, 'ping', '-n', '-i', '0.05', '-c', String(count), '-W', '5', dst], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d) => (out += String(d)));
  return new Promise((resolve, reject) =>
    child.on('exit', () => {
      const m = /(\d+) packets transmitted, (\d+) received/.exec(out);
      if (m) resolve({ sent: Number(m[1]), received: Number(m[2]) });
      else reject(new Error(`Unexpected ping output: ${out.slice(-300)}`));
    }),
  );
}

await runScenario(async ([nsA, nsB, stateDir]) => {
  if (!nsA || !nsB || !stateDir) throw new Error('Usage: wireguard-reconcile.mjs NS_A NS_B STATE_DIR');
  const ip = (...args) => sh('ip', args);
  await ip('link', 'add', 'ul0', 'netns', nsA, 'type', 'veth', 'peer', 'name', 'ul0', 'netns', nsB);
  const nodes = [
    { name: 'node-a', ns: nsA, underlay: '192.168.78.1', pod: '10.78.0.1', podCidrs: ['10.78.0.0/24'] },
    { name: 'node-b', ns: nsB, underlay: '192.168.78.2', pod: '10.78.1.1', podCidrs: ['10.78.1.0/24'] },
  ];
  for (const n of nodes) {
    await ip('-n', n.ns, 'link', 'set', 'lo', 'up');
    await ip('-n', n.ns, 'addr', 'add', `${n.underlay}/24`, 'dev', 'ul0');
    await ip('-n', n.ns, 'link', 'set', 'ul0', 'up');
    await ip('-n', n.ns, 'link', 'add', 'pod0', 'type', 'dummy');
    await ip('-n', n.ns, 'addr', 'add', `${n.pod}/32`, 'dev', 'pod0');
    await ip('-n', n.ns, 'link', 'set', 'pod0', 'up');
    n.keys = new Map([[1, X25519PrivateKey.generate()]]);
    n.state = steadyChannelState(1);
    n.sequence = 0;
  }
  const record = (n) => ({
    version: 1,
    name: n.name,
    addresses: [n.underlay],
    podCidrs: n.podCidrs,
    bootId: '0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0',
    keys: [...n.keys].map(([generation, k]) => ({ kind: 'node', identity: 0, generation, publicKey: k.publicKey.base64 })),
    issuedAt: Date.now(),
    sequence: ++n.sequence,
  });
  const counting = (inner) => {
    const sets = [];
    return {
      sets,
      backend: {
        get kind() { return inner.kind; },
        get netns() { return inner.netns; },
        createDevice: (name) => inner.createDevice(name),
        deleteDevice: (name) => inner.deleteDevice(name),
        getDevice: (name) => inner.getDevice(name),
        setDevice: (name, config) => (sets.push(name), inner.setDevice(name, config)),
        close: () => inner.close(),
      },
    };
  };
  const start = async (n) => {
    const c = counting(await selectWireGuardBackend({ netns: n.ns, stateDir: `${stateDir}/${n.name}`, backend: 'auto' }));
    n.counter = c;
    n.backend = c.backend;
    const g = n.state.generations;
    await setUpChannelDevices(n.backend, { base: BASE, port: PORT, underlayMtu: 1500 }, [n.keys.get(g[0]), n.keys.get(g[1])]);
    n.reconciler = new WireGuardPeerReconciler({
      backend: n.backend,
      deviceBase: BASE,
      port: PORT,
      localNode: n.name,
      localPodCidrs: n.podCidrs,
      localChannels: n.state,
      routes: { source: { 4: n.pod } },
    });
    await n.reconciler.adopt();
  };
  const publish = async (from) => {
    const rec = record(from);
    for (const n of nodes) await n.reconciler.update(from.name, { record: rec, channels: from.state });
  };
  const sync = async () => {
    for (const n of nodes) await publish(n);
    for (const n of nodes) await n.reconciler.prune();
  };

  for (const n of nodes) await start(n);
  await sync();
  const [a, b] = nodes;
  const kinds = nodes.map((n) => n.backend.kind);
  // First traffic (handshake included) must pass before the loss-counting phases.
  let up = false;
  for (let i = 0; i < 30 && !up; i++) {
    up = await sh('ip', ['netns', 'exec', a.ns, 'ping', '-c', '1', '-W', '1', b.pod]).then(() => true, () => false);
  }
  if (!up) throw new Error(`No ping from "${a.pod}" to "${b.pod}" through the tunnel`);
  const handshakeBefore = (await a.backend.getDevice(`${BASE}0`)).peers.map((p) => p.lastHandshakeMs !== null);

  // 1. restart under ping.
  const restartPing = pingStream(a.ns, b.pod, 100);
  await new Promise((r) => setTimeout(r, 1000));
  for (const n of nodes) {
    await n.backend.close();
    await start(n);
  }
  await sync();
  const restart = { sets: nodes.map((n) => n.counter.sets.length), ping: await restartPing };

  // 2. rotation of A's key under ping (both directions).
  const pings = [pingStream(a.ns, b.pod, 200), pingStream(b.ns, a.pod, 200)];
  await new Promise((r) => setTimeout(r, 1000));
  const rotation = new WireGuardLocalRotation({ backend: a.backend, deviceBase: BASE, reconciler: a.reconciler });
  const newKey = X25519PrivateKey.generate();
  const acks = () => new Map([[b.name, b.reconciler.installedGenerations(a.name)]]);
  a.keys.set(2, newKey);
  a.state = await rotation.begin(2);
  await publish(a);
  a.state = await rotation.activate(newKey, acks());
  await publish(a);
  a.state = await rotation.drainOther();
  await publish(a);
  a.state = await rotation.complete(newKey, acks());
  await publish(a);
  a.keys.delete(1);
  a.state = steadyChannelState(2);
  await publish(a);
  const rotationPing = await Promise.all(pings);
  const keys = [];
  for (const d of [0, 1]) {
    const devA = await a.backend.getDevice(`${BASE}${d}`);
    const devB = await b.backend.getDevice(`${BASE}${d}`);
    keys.push({
      aHasNewKey: devA.publicKey?.equals(newKey.publicKey.raw) ?? false,
      bPeers: devB.peers.map((p) => (p.publicKey.equals(newKey.publicKey.raw) ? 'new' : 'other')),
    });
  }
  const steering = [a.reconciler.steeringChannel(b.name), b.reconciler.steeringChannel(a.name)];
  const mtu = JSON.parse((await sh('ip', ['-n', a.ns, '-j', 'link', 'show', `${BASE}0`])).stdout)[0].mtu;
  return { kinds, handshakeBefore, restart, rotation: { ping: rotationPing, keys }, steering, mtu };
});
