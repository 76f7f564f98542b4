/**
 * IPsec mode's routes: every remote node's pod CIDRs through the uplink toward that node's
 * underlay address of the same family (`ip route replace CIDR via NODE dev UPLINK proto 0x76`).
 * XFRM transforms a packet after the route lookup, so a forwarded pod packet needs a route to
 * reach the output policy; the whole CIDR is routed before any pod there is known (LESSONS.md,
 * #35331). Marked pod packets then match Veil's out policies; a packet whose SA is missing hits
 * the block policy (dropped); an unmarked one leaving from a pod address is dropped by the strict
 * uplink program. Routes are built by wireguard-routes.ts (one route shape, protocol 0x76).
 *
 * Ownership as in WireGuard mode: only routes of protocol VEIL_ROUTE_PROTOCOL out of the uplink
 * are Veil's; adopt() reads them, prune() removes the ones no node accounts for.
 */
import { ipFamily } from '../net/ip.js';
import type { RemoteIpsecNode } from './ipsec-desired.js';
import { deleteTunnelRoutes, listTunnelRoutes, replaceTunnelRoutes, type TunnelRouteSettings } from './wireguard-routes.js';

/** Per family: the pod CIDRs of a node and the underlay address they are routed through. */
export function ipsecRoutePlan(record: Pick<RemoteIpsecNode, 'addresses' | 'podCidrs'>): { family: 4 | 6; gateway: string; cidrs: string[] }[] {
  const out: { family: 4 | 6; gateway: string; cidrs: string[] }[] = [];
  for (const family of [4, 6] as const) {
    const gateway = record.addresses.find((a) => ipFamily(a) === family);
    const cidrs = record.podCidrs.filter((c) => ipFamily(c.split('/')[0]!) === family);
    if (gateway && cidrs.length > 0) out.push({ family, gateway, cidrs });
  }
  return out;
}

export class IpsecRoutes {
  readonly #dev: string;
  readonly #netns: string;
  readonly #s: TunnelRouteSettings = {};
  /** node → the CIDRs routed for it. */
  readonly #owned = new Map<string, Set<string>>();
  /** Veil routes found at adopt() (CIDR → device). */
  #adopted = new Map<string, string>();

  /** `dev`: the uplink; `netns`: "" for the agent's own namespace. */
  constructor(dev: string, netns = '') {
    this.#dev = dev;
    this.#netns = netns;
  }

  async adopt(): Promise<void> {
    this.#adopted = await listTunnelRoutes([this.#dev], this.#s, this.#netns);
  }

  /** Routes the node's pod CIDRs (replace: atomic per route), then removes the ones it no longer has. */
  async update(node: string, record: Pick<RemoteIpsecNode, 'addresses' | 'podCidrs'>): Promise<void> {
    const want = new Set<string>();
    for (const p of ipsecRoutePlan(record)) {
      await replaceTunnelRoutes(p.cidrs, this.#dev, this.#s, this.#netns, p.gateway);
      for (const c of p.cidrs) want.add(c);
    }
    const gone = [...(this.#owned.get(node) ?? [])].filter((c) => !want.has(c));
    await deleteTunnelRoutes(gone, this.#s, this.#netns);
    this.#owned.set(node, want);
  }

  async delete(node: string): Promise<void> {
    const had = this.#owned.get(node);
    if (!had) return;
    await deleteTunnelRoutes([...had], this.#s, this.#netns);
    this.#owned.delete(node);
  }

  /** Removes adopted Veil routes on the uplink that no node accounts for (after every source synced). */
  async prune(): Promise<number> {
    const keep = new Set([...this.#owned.values()].flatMap((s) => [...s]));
    const stale = [...this.#adopted.keys()].filter((c) => !keep.has(c));
    await deleteTunnelRoutes(stale, this.#s, this.#netns);
    this.#adopted = new Map([...this.#adopted].filter(([c]) => keep.has(c)));
    return stale.length;
  }

  /** CIDRs routed per node (for `veil status`). */
  routed(): Record<string, string[]> {
    return Object.fromEntries([...this.#owned].map(([n, s]) => [n, [...s].sort()]));
  }
}
