/**
 * WgLinkOps implemented with `ip` for the privileged tests of the userspace backend, until the
 * addon's link API (agent/netlink/link.ts) is merged; then tests pass that instead.
 */
import { VeilError } from '../../../agent/errors.js';
import type { WgLinkOps } from '../../../agent/wireguard/backend.js';
import { run } from '../../support/netns.js';

const nsArgs = (netns: string): string[] => (netns ? ['-n', netns] : []);

export const ipLinkOps: WgLinkOps = {
  async addWireGuardLink(name, netns) {
    await run('ip', [...nsArgs(netns), 'link', 'add', name, 'type', 'wireguard']);
  },
  async deleteLink(name, netns) {
    try {
      await run('ip', [...nsArgs(netns), 'link', 'del', name]);
    } catch (err) {
      if (/Cannot find device|does not exist/.test(String(err))) throw new VeilError('ENODEV', `Link "${name}" does not exist`);
      throw err;
    }
  },
  async linkInfo(name, netns) {
    try {
      const r = await run('ip', [...nsArgs(netns), '-d', '-j', 'link', 'show', 'dev', name]);
      const [link] = JSON.parse(r.stdout) as { ifindex: number; linkinfo?: { info_kind?: string } }[];
      return link ? { ifindex: link.ifindex, kind: link.linkinfo?.info_kind ?? null } : null;
    } catch (err) {
      if (/does not exist|Cannot find device/.test(String(err))) return null;
      throw err;
    }
  },
};
