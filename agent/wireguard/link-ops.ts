import { addLinks, deleteLinks, findLink } from '../netlink/link.js';
import type { WgLinkOps } from './backend.js';

/** The rtnetlink link operations both WireGuard backends use (agent/netlink/link.ts). */
export const netlinkLinkOps: WgLinkOps = {
  addWireGuardLink: (name, netns) => addLinks([{ name, kind: 'wireguard' }], { netns }),
  async deleteLink(name, netns) {
    await deleteLinks([name], { netns });
  },
  async linkInfo(name, netns) {
    const link = await findLink(name, { netns });
    return link ? { ifindex: link.ifindex, kind: link.kind } : null;
  },
};
