import { addLinks, deleteLinks, findLink } from '../netlink/link.js';
import type { WgLinkOps } from './backend.js';

/** "" (the backends' "own namespace") → no netns option for the netlink calls. */
const ns = (netns: string): { netns?: string } => (netns ? { netns } : {});

/** The rtnetlink link operations both WireGuard backends use (agent/netlink/link.ts). */
export const netlinkLinkOps: WgLinkOps = {
  addWireGuardLink: (name, netns) => addLinks([{ name, kind: 'wireguard' }], ns(netns)),
  async deleteLink(name, netns) {
    await deleteLinks([name], ns(netns));
  },
  async linkInfo(name, netns) {
    const link = await findLink(name, ns(netns));
    return link ? { ifindex: link.ifindex, kind: link.kind } : null;
  },
};
