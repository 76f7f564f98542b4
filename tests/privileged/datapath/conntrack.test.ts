/**
 * Conntrack entries as the programs write them (listed through Conntrack), expiry honoured by the
 * programs, and the sweep deleting only expired entries. Programs run through BPF_PROG_TEST_RUN
 * on the loopback device (ifindex 1, the test skb's default device), which is the endpoint here.
 */
import { describe, expect, it } from 'vitest';
import { openShared } from '../../../agent/datapath/bpf-map.js';
import { ConfigMap } from '../../../agent/datapath/config-map.js';
import { Conntrack, CONNTRACK_MAPS, ctEntryCodec, CtFlags, ctKeyCodec, monotonicNowNs } from '../../../agent/datapath/conntrack.js';
import { sweepConntrack } from '../../../agent/datapath/conntrack-gc.js';
import { loadObjects, testRun, type BpfObject } from '../../../agent/datapath/datapath.js';
import { openEndpointMap } from '../../../agent/datapath/endpoints.js';
import { Ipcache } from '../../../agent/datapath/ipcache.js';
import { openPolicyMap } from '../../../agent/datapath/policy-map.js';
import { compilePolicy } from '../../../agent/datapath/policy-compile.js';
import { pinDirPerTest, programObject } from '../../support/bpf.js';
import { tcp, TCP_FLAGS } from '../../support/packets.js';
import { CFG_F, EP_F, IPC_F, TC_ACT_REDIRECT, TC_ACT_SHOT } from '../../support/program-cases.js';

const pinDir = pinDirPerTest('pg');
const S = 1_000_000_000n;
const TICK = 20_000_000n;

async function setup(dir = pinDir()): Promise<{ from: BpfObject; to: BpfObject; ct: Conntrack; dir: string; close(): void }> {
  const [from, to] = (await loadObjects([programObject('from-pod'), programObject('to-pod')], { pinDir: dir })) as [BpfObject, BpfObject];
  await (await ConfigMap.open(from)).set({ flags: CFG_F.MODE_WIREGUARD, wireguardIfindex: [7, 8], nodeIdentity: 1, wireguardPort: 51820, nodeIndex: 1 });
  await (await openEndpointMap(from)).set(1, { identity: 300, flags: EP_F.ENFORCE_EGRESS | EP_F.ENFORCE_INGRESS, ipv4: '10.0.1.10', ipv6: 'fd00:1::10' });
  const ipc = await Ipcache.open(from);
  await ipc.setMany([
    ['10.0.1.10/32', { identity: 300, nodeIndex: 0, keySlot: 0, flags: IPC_F.POD | IPC_F.LOCAL }],
    ['10.0.2.20/32', { identity: 400, nodeIndex: 2, keySlot: 1, flags: IPC_F.POD, tunnelEndpoint: '192.168.0.2' }],
    ['fd00:2::20/128', { identity: 400, nodeIndex: 2, keySlot: 1, flags: IPC_F.POD, tunnelEndpoint: '192.168.0.2' }],
  ]);
  await (await openPolicyMap(from)).setMany(
    compilePolicy(
      [
        { subject: 300, peer: 400, direction: 'egress', protocol: 'tcp', port: 80, verdict: 'allow' },
      ],
      [{ identity: 300, ingress: true, egress: true }],
    ).map((e) => [e.key, e.value]),
  );
  const ct = await Conntrack.open(dir);
  return { from, to, ct, dir, close: () => (from.close(), to.close()) };
}

describe('connection tracking', () => {
  it('from-pod opens an entry with tuple, identities and a SYN lifetime; the reply makes it established', async () => {
    const s = await setup();
    try {
      const before = monotonicNowNs();
      const syn = await testRun(s.from.program('veil_from_pod_prog'), tcp({ src: '10.0.1.10', dst: '10.0.2.20', sport: 40000, dport: 80 }));
      expect(syn.retval).toBe(TC_ACT_REDIRECT);
      let [e] = await s.ct.list();
      expect(e).toMatchObject({ family: 4, saddr: '10.0.1.10', daddr: '10.0.2.20', sport: 40000, dport: 80, proto: 6, srcIdentity: 300, dstIdentity: 400, flags: CtFlags.EGRESS_OK, expired: false });
      // the programs' clock is CLOCK_MONOTONIC_COARSE: up to a tick behind `before`
      expect(e!.expiresNs - before).toBeGreaterThanOrEqual(60n * S - TICK);
      expect(e!.expiresNs - before).toBeLessThan(61n * S);

      const synAck = tcp({ src: '10.0.2.20', dst: '10.0.1.10', sport: 80, dport: 40000, flags: TCP_FLAGS.syn | TCP_FLAGS.ack });
      expect((await testRun(s.to.program('veil_to_pod_prog'), synAck)).retval).toBe(0);
      [e] = await s.ct.list();
      expect(e!.flags).toBe(CtFlags.EGRESS_OK | CtFlags.SEEN_REPLY);
      expect(e!.expiresNs - before).toBeGreaterThan(21599n * S);
      expect(e!.expiresNs - before).toBeLessThan(21601n * S);

      const fin = tcp({ src: '10.0.1.10', dst: '10.0.2.20', sport: 40000, dport: 80, flags: TCP_FLAGS.fin | TCP_FLAGS.ack });
      await testRun(s.from.program('veil_from_pod_prog'), fin);
      [e] = await s.ct.list();
      expect(e!.flags & CtFlags.CLOSING).toBe(CtFlags.CLOSING);
      expect(e!.expiresNs - monotonicNowNs()).toBeLessThanOrEqual(10n * S);
    } finally {
      s.close();
    }
  });

  it('an expired entry does not admit packets: they meet policy again', async () => {
    const s = await setup();
    try {
      // an entry for a port the policy denies, admitted long ago and expired a second ago
      const key = { saddr: '10.0.1.10', daddr: '10.0.2.20', sport: 40001, dport: 81, proto: 6 };
      const v4 = await openShared(s.from, CONNTRACK_MAPS[4], ctKeyCodec(4), ctEntryCodec);
      await v4.set(key, { expiresNs: monotonicNowNs() - S, srcIdentity: 300, dstIdentity: 400, flags: CtFlags.EGRESS_OK | CtFlags.SEEN_REPLY });
      const pkt = tcp({ src: key.saddr, dst: key.daddr, sport: key.sport, dport: key.dport, flags: TCP_FLAGS.ack });
      expect((await testRun(s.from.program('veil_from_pod_prog'), pkt)).retval).toBe(TC_ACT_SHOT);
      // the same entry, live, lets the packet through without policy
      await v4.set(key, { expiresNs: monotonicNowNs() + 30n * S, srcIdentity: 300, dstIdentity: 400, flags: CtFlags.EGRESS_OK | CtFlags.SEEN_REPLY });
      expect((await testRun(s.from.program('veil_from_pod_prog'), pkt)).retval).toBe(TC_ACT_REDIRECT);
    } finally {
      s.close();
    }
  });

  it('sweepConntrack() deletes the expired entries of both families and keeps the live ones', async () => {
    const s = await setup();
    try {
      const now = monotonicNowNs();
      const v4 = await openShared(s.from, CONNTRACK_MAPS[4], ctKeyCodec(4), ctEntryCodec);
      const v6 = await openShared(s.from, CONNTRACK_MAPS[6], ctKeyCodec(6), ctEntryCodec);
      const entry = (expiresNs: bigint) => ({ expiresNs, srcIdentity: 300, dstIdentity: 400, flags: CtFlags.EGRESS_OK });
      await v4.setMany([
        [{ saddr: '10.0.1.10', daddr: '10.0.2.20', sport: 1, dport: 80, proto: 6 }, entry(now - S)],
        [{ saddr: '10.0.1.10', daddr: '10.0.2.20', sport: 2, dport: 80, proto: 6 }, entry(now + 60n * S)],
        [{ saddr: '10.0.1.10', daddr: '10.0.2.20', sport: 3, dport: 53, proto: 17 }, entry(1n)],
      ]);
      await v6.setMany([
        [{ saddr: 'fd00:1::10', daddr: 'fd00:2::20', sport: 7, dport: 0, proto: 58 }, entry(now - 5n * S)],
        [{ saddr: 'fd00:1::10', daddr: 'fd00:2::20', sport: 8, dport: 443, proto: 6 }, entry(now + 5n * S)],
      ]);
      expect((await s.ct.list(now)).filter((e) => e.expired)).toHaveLength(3);
      expect(await sweepConntrack(s.ct, now)).toEqual({ scanned: 5, deleted: 3 });
      const left = await s.ct.list(now);
      expect(left.map((e) => `${e.family}:${e.sport}`).sort()).toEqual(['4:2', '6:8']);
      expect(await sweepConntrack(s.ct, now)).toEqual({ scanned: 2, deleted: 0 });
    } finally {
      s.close();
    }
  });

  it('connections survive a reload of the programs (the tables are pinned): the reply still passes', async () => {
    const first = await setup();
    const syn = tcp({ src: '10.0.1.10', dst: '10.0.2.20', sport: 40100, dport: 80 });
    expect((await testRun(first.from.program('veil_from_pod_prog'), syn)).retval).toBe(TC_ACT_REDIRECT);
    first.close();
    // a restarted agent: new objects, same pin directory
    const second = await setup(first.dir);
    try {
      expect(await second.ct.get(4, { saddr: '10.0.1.10', daddr: '10.0.2.20', sport: 40100, dport: 80, proto: 6 })).toMatchObject({ flags: CtFlags.EGRESS_OK });
      const synAck = tcp({ src: '10.0.2.20', dst: '10.0.1.10', sport: 80, dport: 40100, flags: TCP_FLAGS.syn | TCP_FLAGS.ack });
      expect((await testRun(second.to.program('veil_to_pod_prog'), synAck)).retval).toBe(0);
    } finally {
      second.close();
    }
  });

  it('IPv6 entries carry the 16-byte tuple', async () => {
    const s = await setup();
    try {
      const r = await testRun(s.from.program('veil_from_pod_prog'), tcp({ src: 'fd00:1::10', dst: 'fd00:2::20', sport: 40000, dport: 80 }));
      expect(r.retval).toBe(TC_ACT_REDIRECT);
      expect(await s.ct.get(6, { saddr: 'fd00:1::10', daddr: 'fd00:2::20', sport: 40000, dport: 80, proto: 6 })).toMatchObject({ srcIdentity: 300, dstIdentity: 400, flags: CtFlags.EGRESS_OK });
    } finally {
      s.close();
    }
  });
});
