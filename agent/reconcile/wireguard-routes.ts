/**
 * Routes of remote pod CIDRs into the WireGuard channel devices (LESSONS.md: #35331 — the whole
 * remote pod CIDR is routed into the tunnel, before any pod there is known, so nothing to a
 * remote pod can leave in clear through the default route).
 *
 * Route vs eBPF redirect: pod traffic is steered per packet by the from-pod eBPF program, which
 * redirects into `wireguard_ifindex[key_slot & 1]` with key_slot written from the reconciler's
 * steeringChannel(node). The routes here carry everything that does not pass that program:
 * host-originated traffic, and all traffic until the datapath is attached. Each route points at
 * the device of the remote node's *current steering channel* (not always channel 0), so during a
 * rotation host traffic leaves a drained channel together with pod traffic; switching is one
 * `ip route replace`, which the kernel applies atomically. `src` (optional) is an address of the
 * local pod CIDR, so host-originated packets carry a source the remote peer's AllowedIPs accept.
 *
 * Ownership: the routes carry protocol VEIL_ROUTE_PROTOCOL; the reconciler adopts and prunes only
 * routes of that protocol out of its own devices.
 */
import { deleteRoutes, listRoutes, replaceRoutes, RT_TABLE_MAIN, type RouteSpec } from '../netlink/route.js';
import { parseIp } from '../net/ip.js';

/** rtm_protocol of Veil's tunnel routes ("v"; unassigned in rtnetlink's list). */
export const VEIL_ROUTE_PROTOCOL = 0x76;

export interface TunnelRouteSettings {
  /** Routing table; default main. */
  table?: number;
  /** Preferred source per family for host-originated traffic (an address inside the local pod CIDR). */
  source?: { 4?: string; 6?: string };
}

/**
 * `ip route replace CIDR [via GATEWAY] dev DEV [src S] proto 0x76 [table T]` for one CIDR. With a
 * gateway (IPsec mode: the remote node's underlay address) the route has global scope.
 */
export function tunnelRoute(cidr: string, dev: string, s: TunnelRouteSettings, gateway?: string): RouteSpec {
  const family = parseIp(cidr.split('/')[0]!)?.length === 4 ? 4 : 6;
  const route: RouteSpec = gateway
    ? { dst: cidr, dev, gateway, protocol: VEIL_ROUTE_PROTOCOL, table: s.table ?? RT_TABLE_MAIN }
    : { dst: cidr, dev, protocol: VEIL_ROUTE_PROTOCOL, scope: 'link', table: s.table ?? RT_TABLE_MAIN };
  const src = s.source?.[family];
  if (src) route.src = src;
  return route;
}

/** Veil's tunnel routes out of `devices` in the table: CIDR → device. */
/** "" (the backend's "own namespace") → no netns option for the netlink calls. */
function ns(netns: string): { netns?: string } {
  return netns ? { netns } : {};
}

export async function listTunnelRoutes(devices: readonly string[], s: TunnelRouteSettings, netns: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const dev of devices) {
    const routes = await listRoutes({ table: s.table ?? RT_TABLE_MAIN, dev }, ns(netns)).catch((err: unknown) => {
      if ((err as { code?: string }).code === 'ENODEV') return [];
      throw err;
    });
    for (const r of routes) if (r.protocol === VEIL_ROUTE_PROTOCOL && r.dst !== 'default') out.set(r.dst, dev);
  }
  return out;
}

/** Points each CIDR at `dev` (atomic per route), through `gateway` when given. */
export async function replaceTunnelRoutes(cidrs: readonly string[], dev: string, s: TunnelRouteSettings, netns: string, gateway?: string): Promise<void> {
  if (cidrs.length === 0) return;
  await replaceRoutes(cidrs.map((c) => tunnelRoute(c, dev, s, gateway)), ns(netns));
}

export async function deleteTunnelRoutes(cidrs: readonly string[], s: TunnelRouteSettings, netns: string): Promise<void> {
  if (cidrs.length === 0) return;
  await deleteRoutes(
    cidrs.map((c) => ({ dst: c, protocol: VEIL_ROUTE_PROTOCOL, table: s.table ?? RT_TABLE_MAIN })),
    { ...ns(netns), ignoreMissing: true },
  );
}
