// Guest side of tests/vm/ipsec-reconcile.test.ts: runs the IPsec reconciler (the built dist/)
// for one node, the way a (re)starting agent does: adopt what the kernel has, update every
// remote node, prune. Each run is a fresh process, so every step also exercises adoption.
//
// stdin: JSON, one of
//   { "op": "setup", "nsA", "nsB", "a": { underlay, pod, podCidr }, "b": { ... } }
//      joins A and B with a veth underlay ("ul0"), gives each a dummy "pods" link with its pod
//      address and a route to the other's pod CIDR over the underlay — all through the addon.
//   { "op": "addresses", "netns", "addresses": [AddressSpec], "routes": [RouteSpec] }
//      adds addresses and routes (the IPv6 test: dual-stack nodes) — through the addon.
//   { "op": "reconcile", "netns", "local": LocalIpsecNode with base64 private keys,
//     "remotes": [record, ...], "options"?: {...} }
// stdout: one JSON object: what the reconciler changed (its log lines), the sending slots, and
// the planned states (SPIs, slots, identities; never keys).
import { readFileSync } from 'node:fs';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';

const dist = fileURLToPath(new URL('../../../dist/agent/', import.meta.url));
const load = (p) => import(`${dist}${p}`);

const input = JSON.parse(readFileSync(0, 'utf8'));

async function setup({ nsA, nsB, a, b }) {
  const { addLinks, setLink } = await load('netlink/link.js');
  const { addAddresses } = await load('netlink/address.js');
  const { addRoutes } = await load('netlink/route.js');
  // ip -n A link add ul0 type veth peer name ul0 netns B
  await addLinks([{ name: 'ul0', kind: 'veth', peer: { name: 'ul0', netns: nsB } }], { netns: nsA });
  for (const [ns, me, peer] of [
    [nsA, a, b],
    [nsB, b, a],
  ]) {
    await setLink('lo', { up: true }, { netns: ns });
    // ip -n NS link add pods type dummy; ip -n NS link set ul0 up
    await addLinks([{ name: 'pods', kind: 'dummy', up: true }], { netns: ns });
    await setLink('ul0', { up: true }, { netns: ns });
    await addAddresses(
      [
        { dev: 'ul0', address: `${me.underlay}/24` },
        { dev: 'pods', address: `${me.pod}/32` },
      ],
      { netns: ns },
    );
    // ip -n NS route add PEER_POD_CIDR dev ul0 src POD: the out policy turns it into ESP
    await addRoutes([{ dst: peer.podCidr, dev: 'ul0', src: me.pod }], { netns: ns });
  }
  return { ok: true };
}

async function addresses({ netns, addresses: addrs, routes }) {
  const { addAddresses } = await load('netlink/address.js');
  const { addRoutes } = await load('netlink/route.js');
  await addAddresses(addrs, { netns });
  await addRoutes(routes, { netns });
  return { ok: true };
}

async function reconcile({ netns, local, remotes, options }) {
  const { X25519PrivateKey } = await load('keys/x25519.js');
  const { createRootLogger } = await load('log/logger.js');
  const { IpsecReconciler } = await load('reconcile/ipsec-reconciler.js');
  const key = (k) => ({ generations: k.generations.map((g) => ({ generation: g.generation, privateKey: X25519PrivateKey.fromRaw(Buffer.from(g.privateKey, 'base64')) })), ...(k.sending ? { sending: k.sending } : {}) });
  const node = { ...local, nodeKey: key(local.nodeKey), identities: local.identities.map((k) => ({ identity: k.identity, ...key(k) })) };
  const lines = [];
  const sink = new Writable({
    write(chunk, _enc, cb) {
      lines.push(...chunk.toString().split('\n').filter(Boolean).map((l) => JSON.parse(l)));
      cb();
    },
  });
  const log = createRootLogger({ destination: sink, level: 'info' });
  const r = new IpsecReconciler(node, { log, netns, options });
  const t0 = Date.now();
  await r.adopt();
  for (const rec of remotes) await r.update(rec.name, rec);
  await r.prune();
  const took = Date.now() - t0;
  await new Promise((res) => setImmediate(res));
  return {
    tookMs: took,
    log: lines.map(({ msg, node: n, states, policies, addedStates, replacedStates, deletedStates, addedPolicies, updatedPolicies, deletedPolicies }) => ({
      msg, node: n, states, policies, addedStates, replacedStates, deletedStates, addedPolicies, updatedPolicies, deletedPolicies,
    })),
    counts: r.counts(),
    sendingSlots: remotes.map((rec) => ({ node: rec.name, slots: r.planOf(rec.name)?.sendingSlots ?? [] })),
    states: remotes.flatMap((rec) =>
      (r.planOf(rec.name)?.states ?? []).map((s) => ({
        direction: s.direction, node: s.node, identity: s.identity, slot: s.slot, spi: s.config.spi,
        src: s.config.src, dst: s.config.dst, senderGeneration: s.senderGeneration, receiverGeneration: s.receiverGeneration,
      })),
    ),
  };
}

try {
  const ops = { setup, addresses, reconcile };
  if (!ops[input.op]) throw new Error(`Unknown op "${input.op}"`);
  const out = await ops[input.op](input);
  console.log(JSON.stringify(out));
} catch (e) {
  console.log(JSON.stringify({ error: { name: e?.name, code: e?.code, message: e?.message } }));
  process.exit(1);
}
