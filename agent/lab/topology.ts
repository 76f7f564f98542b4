/**
 * The lab's kernel objects, made through the addon only (namespaces, veths, a bridge, addresses,
 * routes, sysctls); the `ip` equivalent of each step is in its comment. Removal is by namespace:
 * deleting a namespace deletes its links, and deleting one end of a veth deletes the other.
 */
import { hasCode } from '../errors.js';
import { quote } from '../net/ip.js';
import { addAddresses } from '../netlink/address.js';
import { addLinks, setLink } from '../netlink/link.js';
import { addNetns, setSysctl } from '../netlink/netns.js';
import { addRoutes } from '../netlink/route.js';
import { channelDeviceMtu } from '../reconcile/wireguard-channel-devices.js';
import { LabError, LAB_CONFLICT } from './errors.js';
import { POD_IFACE, type NodePlan, type PodAddressPlan, type UnderlayPlan } from './address-plan.js';

/** Records a namespace once it exists (the caller writes it to the state journal). */
export type RecordNetns = (name: string) => Promise<void>;

/**
 * `ip netns add NS && ip -n NS link set lo up` with DAD off, so IPv6 addresses (link-local
 * ones included) are usable at once instead of tentative for a second.
 */
async function freshNetns(name: string, record: RecordNetns): Promise<void> {
  try {
    await addNetns(name);
  } catch (err) {
    if (hasCode(err, 'EEXIST')) {
      // Not ours (it is not in the journal), so the cleanup of this `up` leaves it alone.
      throw new LabError(
        LAB_CONFLICT,
        `Network namespace ${quote(name)} already exists but is not part of this lab (left by an earlier lab that was not removed?): delete it with "ip netns del ${name}" and run "veil lab up" again`,
        { cause: err },
      );
    }
    throw err;
  }
  await record(name);
  await setSysctl('net.ipv6.conf.all.accept_dad', 0, { netns: name });
  await setSysctl('net.ipv6.conf.default.accept_dad', 0, { netns: name });
  await setLink('lo', { up: true }, { netns: name });
}

/** MTU of the underlay: the uplink veths and the bridge (the veth default, set explicitly). */
export const LAB_UNDERLAY_MTU = 1500;

/**
 * MTU of every route in a pod: what fits through the node's tunnel, the agent's channel device
 * MTU (underlay − 80), as a CNI sets it when the overlay or encryption takes room (Cilium's route
 * MTU, Calico's veth MTU). The pod's TCP then uses MSS 1368 (1380 without timestamps) and its
 * other packets fit too. Without it the pod sends 1500-byte packets: the from-pod program
 * redirects them into the WireGuard device, which bypasses the kernel's forwarding MTU check (no
 * ICMP "fragmentation needed" reaches the pod), and every encrypted packet (1500 + 60) was split
 * into two IP fragments on the underlay: twice the packets, reassembly at the receiver and more
 * UDP receive-buffer drops in its wireguard-go (docs/benchmarks.md, "lab": 0.72 of the baseline's
 * throughput). The veth itself keeps the underlay MTU, so a pod still receives full-size packets.
 */
export const LAB_POD_ROUTE_MTU = channelDeviceMtu(LAB_UNDERLAY_MTU);

const noDad = (address: string) => (address.includes(':') ? { noDad: true } : {});

/** The underlay: its namespace and a bridge with the underlay gateway addresses. */
export async function createUnderlay(u: UnderlayPlan, record: RecordNetns): Promise<void> {
  await freshNetns(u.netns, record);
  // ip -n U link add br0 type bridge && ip -n U link set br0 up
  await addLinks([{ name: u.bridge, kind: 'bridge', up: true }], { netns: u.netns });
  // ip -n U addr add 10.77.0.1/24 dev br0; ip -n U addr add fd77::1/64 dev br0 nodad
  await addAddresses(u.addresses.map((a) => ({ dev: u.bridge, address: a, ...noDad(a) })), { netns: u.netns });
}

/** A node: its namespace, forwarding on, and an uplink veth to the underlay bridge. */
export async function createNode(u: UnderlayPlan, n: NodePlan, record: RecordNetns): Promise<void> {
  await freshNetns(n.netns, record);
  // ip netns exec N sysctl -w net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
  await setSysctl('net.ipv4.ip_forward', 1, { netns: n.netns });
  await setSysctl('net.ipv6.conf.all.forwarding', 1, { netns: n.netns });
  // ip -n U link add nodeI mtu 1500 type veth peer name eth0 netns N && ip -n U link set nodeI master br0 up
  await addLinks([{ name: n.bridgePort, kind: 'veth', mtu: LAB_UNDERLAY_MTU, master: u.bridge, up: true, peer: { name: n.uplink, netns: n.netns } }], { netns: u.netns });
  // ip -n N addr add 10.77.0.(10+I)/24 dev eth0; ... fd77::/64 nodad; ip -n N link set eth0 up
  await addAddresses(n.underlayAddresses.map((a) => ({ dev: n.uplink, address: a, ...noDad(a) })), { netns: n.netns });
  await setLink(n.uplink, { up: true }, { netns: n.netns });
}

/**
 * A pod on node `n`: its namespace and a veth whose host side (lxcK) stays in the node netns.
 * Point-to-point addressing as most CNIs do it: the pod has /32 and /128 addresses and reaches
 * everything through the gateway address, which every host-side veth of the node carries; the
 * node routes each pod address to its veth.
 */
export async function createPod(n: NodePlan, p: PodAddressPlan, podNetnsName: string, record: RecordNetns): Promise<void> {
  await freshNetns(podNetnsName, record);
  // ip -n N link add lxcK type veth peer name eth0 netns P && ip -n N link set lxcK up
  await addLinks([{ name: p.hostIface, kind: 'veth', up: true, peer: { name: POD_IFACE, netns: podNetnsName } }], { netns: n.netns });
  // ip -n N addr add 10.78.I.1/32 dev lxcK; ip -n N addr add fd78:0:0:I::1/128 dev lxcK nodad
  await addAddresses(n.gateways.map((g) => ({ dev: p.hostIface, address: g, noPrefixRoute: true, ...noDad(g) })), { netns: n.netns });
  // ip -n N route add 10.78.I.K/32 dev lxcK; ip -n N route add fd78:0:0:I::K/128 dev lxcK
  await addRoutes(p.addresses.map((a) => ({ dst: a, dev: p.hostIface })), { netns: n.netns });
  // ip -n P addr add 10.78.I.K/32 dev eth0; ip -n P addr add fd78:0:0:I::K/128 dev eth0 nodad; up
  await addAddresses(p.addresses.map((a) => ({ dev: POD_IFACE, address: a, ...noDad(a) })), { netns: podNetnsName });
  await setLink(POD_IFACE, { up: true }, { netns: podNetnsName });
  // ip -n P route add 10.78.I.1 dev eth0 scope link mtu 1420; ip -n P route add default via 10.78.I.1 mtu 1420
  await addRoutes(n.gateways.map((g) => ({ dst: g, dev: POD_IFACE, scope: 'link' as const, mtu: LAB_POD_ROUTE_MTU })), { netns: podNetnsName });
  await addRoutes(
    n.gateways.map((g) => ({ dst: 'default', family: (g.includes(':') ? 6 : 4) as 4 | 6, gateway: g, dev: POD_IFACE, mtu: LAB_POD_ROUTE_MTU })),
    { netns: podNetnsName },
  );
}
