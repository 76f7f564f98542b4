// Runs eBPF program cases through BPF_PROG_TEST_RUN and records what happened, without judging:
// the test that built the cases asserts (tests/support/program-cases.ts checkResult). Plain
// JavaScript so that the same runner serves the privileged tests (host kernel, the TypeScript
// modules passed in) and the VM test (a guest scenario passes the built dist/ modules).
//
// world: what every case of a run shares
//   { devices: ["pod-a", ...],              veth links created in a fresh namespace
//     config: { flags, wireguard: ["wg0","wg1"] | [], nodeIdentity, wireguardPort, nodeIndex },
//     endpoints: [{ dev, identity, flags, ipv4?, ipv6?, keyGeneration? }],
//     ipcache: [{ prefix, identity, nodeIndex?, keySlot?, flags, tunnel? }],
//     policy: [{ key, value }] (agent/datapath/policy-compile.ts output) }
// case: { name, prog, frame (hex), ctx?: { dev?, ingressDev?, mark? }, events?: n }
// result: { name, retval, mark, counters: { "HOOK/REASON": packets }, events: [...], ifindex, error? }
//
// api: { loadObjects, testRun, Ipcache, openEndpointMap, ConfigMap, openPolicyMap, Counters,
//        EventReader } from agent/datapath/.
import { execFileSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';

const PROGRAMS = {
  'from-pod': 'veil_from_pod_prog',
  'to-pod': 'veil_to_pod_prog',
  'uplink-egress': 'veil_uplink_egress_prog',
  'uplink-ingress': 'veil_uplink_ingress_prog',
};

function ip(args) {
  return execFileSync('ip', args, { stdio: ['ignore', 'pipe', 'pipe'] }).toString();
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function snapshot(counters) {
  const m = new Map();
  for (const row of await counters.read()) m.set(`${row.hook}/${row.reason}`, row.packets);
  return m;
}

export async function runProgramCases(api, opts) {
  const { objectsDir, pinDir, netns, world, cases } = opts;
  const objects = [];
  let reader;
  ip(['netns', 'add', netns]);
  try {
    const ifindexes = new Map();
    for (const dev of world.devices ?? []) {
      // veth: the one device type every kernel here has (the host kernel has no dummy module)
      ip(['-n', netns, 'link', 'add', dev, 'type', 'veth', 'peer', 'name', `${dev}-p`]);
      ip(['-n', netns, 'link', 'set', dev, 'up']);
      ifindexes.set(dev, JSON.parse(ip(['-n', netns, '-j', 'link', 'show', dev]))[0].ifindex);
    }
    const ifindex = (dev) => {
      const i = ifindexes.get(dev);
      if (i === undefined) throw new Error(`Case names device "${dev}" that the world does not create`);
      return i;
    };

    // one instance of every map for the four objects (pinned ones by name, the ring buffer shared)
    objects.push(...(await api.loadObjects(Object.keys(PROGRAMS).map((name) => join(objectsDir, `${name}.bpf.o`)), { pinDir })));
    const progs = Object.fromEntries(Object.entries(PROGRAMS).map(([name, prog], i) => [name, objects[i].program(prog)]));
    const events = objects[0].map('veil_events');
    const src = objects[0];

    if (world.config) {
      const wg = world.config.wireguard ?? [];
      const cfg = await api.ConfigMap.open(src);
      await cfg.set({
        flags: world.config.flags,
        wireguardIfindex: [wg[0] ? ifindex(wg[0]) : 0, wg[1] ? ifindex(wg[1]) : 0],
        nodeIdentity: world.config.nodeIdentity ?? 1,
        wireguardPort: world.config.wireguardPort ?? 0,
        nodeIndex: world.config.nodeIndex ?? 0,
      });
    }
    const endpoints = await api.openEndpointMap(src);
    for (const ep of world.endpoints ?? []) {
      const { dev, ...value } = ep;
      await endpoints.set(ifindex(dev), value);
    }
    const ipcache = await api.Ipcache.open(src);
    await ipcache.setMany(
      (world.ipcache ?? []).map((e) => [
        e.prefix,
        { identity: e.identity, nodeIndex: e.nodeIndex ?? 0, keySlot: e.keySlot ?? 0, flags: e.flags, ...(e.tunnel ? { tunnelEndpoint: e.tunnel } : {}) },
      ]),
    );
    const policy = await api.openPolicyMap(src);
    await policy.setMany((world.policy ?? []).map((p) => [p.key, p.value]));
    const counters = await api.Counters.open(src);

    const received = [];
    reader = api.EventReader.open(events, { onEvent: (e) => received.push(e) });

    const results = [];
    for (const c of cases) {
      const before = await snapshot(counters);
      const seen = received.length;
      const ctx = {};
      if (c.ctx?.dev) ctx.ifindex = ifindex(c.ctx.dev);
      if (c.ctx?.ingressDev) ctx.ingressIfindex = ifindex(c.ctx.ingressDev);
      if (c.ctx?.mark !== undefined) ctx.mark = c.ctx.mark;
      let r;
      try {
        r = await api.testRun(progs[c.prog], Buffer.from(c.frame, 'hex'), { ctx, netns });
      } catch (e) {
        results.push({ name: c.name, error: String(e?.message ?? e) });
        continue;
      }
      const want = c.events ?? 0;
      const deadline = Date.now() + 3000;
      while (received.length - seen < want && Date.now() < deadline) await sleep(5);
      if (want === 0) await sleep(10); // room for an event that must not come
      const after = await snapshot(counters);
      const delta = {};
      for (const [k, n] of after) {
        const d = n - (before.get(k) ?? 0n);
        if (d) delta[k] = Number(d);
      }
      results.push({
        name: c.name,
        retval: r.retval,
        mark: r.mark,
        counters: delta,
        events: received.slice(seen).map((e) => ({ ...e, timestampNs: String(e.timestampNs) })),
        ifindex: ctx.ifindex ?? 1,
      });
    }
    return { results, ifindexes: Object.fromEntries(ifindexes) };
  } finally {
    reader?.close();
    for (const o of objects) o.close();
    try {
      ip(['netns', 'del', netns]);
    } catch {
      /* already gone */
    }
    rmSync(pinDir, { recursive: true, force: true });
  }
}
