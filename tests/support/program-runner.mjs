// Runs eBPF program cases through BPF_PROG_TEST_RUN and records what happened, without judging:
// the test that built the cases asserts. Plain JavaScript so that the same runner serves the
// privileged tests (host kernel, TypeScript modules passed in) and the VM test (a guest scenario
// passes the built dist/ modules): the cases are data, built on the host by
// tests/support/program-cases.ts.
//
// world: the map contents and devices every case of a run shares
//   { devices: ["pod-a", ...],                  veth links created in a fresh namespace
//     config: { flags, wireguard: ["wg0","wg1"] | [], nodeIdentity, wireguardPort, nodeIndex },
//     endpoints: [{ dev, identity, flags, ipv4?, ipv6? }],          addresses as hex bytes
//     ipcache: [{ addr, prefixLen, identity, nodeIndex?, keySlot?, flags, tunnel? }],
//     policy: [{ key: { subject, peer, dport, proto, direction }, value: { verdict, flags } }] }
// case: { name, prog, frame (hex), ctx?: { dev?, ingressDev?, mark? }, events?: n }
// result: { name, retval, mark, counters: { "hook/reason": packets }, events: [...], error? }
import { execFileSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';

const PROGRAMS = {
  'from-pod': 'veil_from_pod_prog',
  'to-pod': 'veil_to_pod_prog',
  'uplink-egress': 'veil_uplink_egress_prog',
  'uplink-ingress': 'veil_uplink_ingress_prog',
};
const REASON_MAX = 64;
const HOOKS = 4;

const hex = (h) => Buffer.from(h, 'hex');

function sh(args) {
  return execFileSync('ip', args, { stdio: ['ignore', 'pipe', 'pipe'] }).toString();
}

function encodeEndpoint(ep) {
  const v = Buffer.alloc(32);
  v.writeUInt32LE(ep.identity, 0);
  v.writeUInt32LE(ep.flags, 4);
  if (ep.ipv4) hex(ep.ipv4).copy(v, 8);
  if (ep.ipv6) hex(ep.ipv6).copy(v, 12);
  return v;
}

function encodeIpcacheEntry(e) {
  const v = Buffer.alloc(24);
  v.writeUInt32LE(e.identity, 0);
  v.writeUInt16LE(e.nodeIndex ?? 0, 4);
  v[6] = e.keySlot ?? 0;
  v[7] = e.flags;
  if (e.tunnel) hex(e.tunnel).copy(v, 8);
  return v;
}

function encodeConfig(c, ifindex) {
  const v = Buffer.alloc(24);
  v.writeUInt32LE(c.flags, 0);
  (c.wireguard ?? []).forEach((dev, i) => v.writeUInt32LE(ifindex(dev), 4 + 4 * i));
  v.writeUInt32LE(c.nodeIdentity ?? 1, 12);
  v.writeUInt16LE(c.wireguardPort ?? 0, 16);
  v.writeUInt16LE(c.nodeIndex ?? 0, 18);
  return v;
}

function encodePolicyKey(k) {
  const b = Buffer.alloc(12);
  b.writeUInt32LE(k.subject, 0);
  b.writeUInt32LE(k.peer, 4);
  b.writeUInt16LE(k.dport, 8);
  b[10] = k.proto;
  b[11] = k.direction;
  return b;
}

function decodeEvent(r) {
  const family = r[23];
  const alen = family === 6 ? 16 : 4;
  const addr = (off) => r.subarray(off, off + alen).toString('hex');
  return {
    srcIdentity: r.readUInt32LE(8),
    dstIdentity: r.readUInt32LE(12),
    ifindex: r.readUInt32LE(16),
    type: r[20],
    reason: r[21],
    hook: r[22],
    family,
    proto: r[24],
    sport: r.readUInt16LE(28),
    dport: r.readUInt16LE(30),
    saddr: family ? addr(32) : '', // hex bytes
    daddr: family ? addr(48) : '',
  };
}

async function counters(addon, fd) {
  const d = await addon.bpfMapDump(fd, {});
  const out = new Map();
  const cpus = addon.bpfPossibleCpus();
  for (let i = 0; i < d.count; i++) {
    const idx = d.keys.readUInt32LE(i * 4);
    let packets = 0n;
    for (let c = 0; c < cpus; c++) packets += d.values.readBigUInt64LE((i * cpus + c) * 16);
    if (packets) out.set(idx, packets);
  }
  return out;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * api: { loadObject, testRun, bpfAddon } (agent/datapath/datapath + native).
 * opts: { objectsDir, pinDir, netns, world, cases, keep? }.
 */
export async function runProgramCases(api, opts) {
  const { objectsDir, pinDir, netns, world, cases } = opts;
  const addon = api.bpfAddon();
  const objects = [];
  let ring;
  sh(['netns', 'add', netns]);
  try {
    const ifindexes = new Map();
    for (const dev of world.devices ?? []) {
      // veth: the one device type every kernel here has (the host kernel has no dummy module)
      sh(['-n', netns, 'link', 'add', dev, 'type', 'veth', 'peer', 'name', `${dev}-p`]);
      sh(['-n', netns, 'link', 'set', dev, 'up']);
      ifindexes.set(dev, JSON.parse(sh(['-n', netns, '-j', 'link', 'show', dev]))[0].ifindex);
    }
    const ifindex = (dev) => {
      const i = ifindexes.get(dev);
      if (i === undefined) throw new Error(`Case names device "${dev}" that the world does not create`);
      return i;
    };

    const progs = {};
    let events;
    for (const [name, prog] of Object.entries(PROGRAMS)) {
      const obj = await api.loadObject(join(objectsDir, `${name}.bpf.o`), {
        pinDir,
        ...(events ? { reuseMaps: { veil_events: events } } : {}),
      });
      objects.push(obj);
      events ??= obj.map('veil_events');
      progs[name] = obj.program(prog);
    }
    const maps = objects[0].maps;
    const fd = (name) => maps.get(name).fd;

    if (world.config) await addon.bpfMapUpdate(fd('veil_config'), Buffer.alloc(4), encodeConfig(world.config, ifindex), 0);
    for (const ep of world.endpoints ?? []) {
      const k = Buffer.alloc(4);
      k.writeUInt32LE(ifindex(ep.dev));
      await addon.bpfMapUpdate(fd('veil_endpoints'), k, encodeEndpoint(ep), 0);
    }
    for (const e of world.ipcache ?? []) {
      const a = hex(e.addr);
      const v6 = a.length === 16;
      const plen = e.prefixLen;
      if (plen === (v6 ? 128 : 32)) {
        await addon.bpfMapUpdate(fd(v6 ? 'veil_ipc6_host' : 'veil_ipc4_host'), a, encodeIpcacheEntry(e), 0);
      } else {
        const k = Buffer.alloc(4 + a.length);
        k.writeUInt32LE(plen, 0);
        a.copy(k, 4);
        await addon.bpfMapUpdate(fd(v6 ? 'veil_ipc6_lpm' : 'veil_ipc4_lpm'), k, encodeIpcacheEntry(e), 0);
      }
    }
    for (const p of world.policy ?? []) {
      const v = Buffer.alloc(4);
      v[0] = p.value.verdict;
      v[1] = p.value.flags;
      await addon.bpfMapUpdate(fd('veil_policy'), encodePolicyKey(p.key), v, 0);
    }

    const received = [];
    ring = addon.bpfRingbufOpen(events.fd, (rec) => received.push(decodeEvent(rec)));

    const results = [];
    for (const c of cases) {
      const before = await counters(addon, fd('veil_counters'));
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
      if (want === 0) await sleep(10); // room for an event that should not be there
      const after = await counters(addon, fd('veil_counters'));
      const delta = {};
      for (const [idx, n] of after) {
        const d = n - (before.get(idx) ?? 0n);
        if (d) delta[`${Math.floor(idx / REASON_MAX)}/${idx % REASON_MAX}`] = Number(d);
      }
      results.push({
        name: c.name,
        retval: r.retval,
        mark: r.mark,
        counters: delta,
        events: received.slice(seen),
        ifindex: ctx.ifindex ?? 1,
      });
    }
    return { results, ifindexes: Object.fromEntries(ifindexes) };
  } finally {
    if (ring) addon.bpfRingbufClose(ring);
    for (const o of objects) o.close();
    try {
      sh(['netns', 'del', netns]);
    } catch {
      /* already gone */
    }
    rmSync(pinDir, { recursive: true, force: true });
  }
}

export const HOOK_COUNT = HOOKS;
