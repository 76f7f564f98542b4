/**
 * Changes the allowed IPs of A's peer (B) ROUNDS times, alternating between two sets that both
 * keep B's tunnel addresses, while the test pings B's tunnel address continuously. Each set is
 * a realistic size: FILLER /32s (pod addresses, say) ahead of B's tunnel addresses, so the
 * kernel spends a while inserting before it reaches the addresses the ping uses.
 *
 * Modes:
 *  - replace: one setDevice per round with replaceAllowedIps (WGPEER_F_REPLACE_ALLOWEDIPS).
 *    The kernel implements that flag as "remove every allowed IP of the peer, then insert the
 *    new ones one by one", visible to packets in between.
 *  - handover: the control. Add the new set without replacing (an IP the peer already has stays
 *    put), hand the stale IPs to a throwaway peer (an allowed IP moves between peers in one
 *    step), then remove that peer. B's tunnel addresses are never absent.
 *
 * Usage: node wireguard-replace-allowed-ips.mjs STATE_FILE ROUNDS FILLER replace|handover
 * Prints { mode, startMs, endMs, rounds, expected, peer } (times from Date.now(), to line up
 * with `ping -D` timestamps; peer as read back afterwards).
 */
import { randomBytes } from 'node:crypto';
import { fromB64, fromDist, readState, runScenario } from './wireguard-common.mjs';

const { selectWireGuardBackend } = await fromDist('agent/wireguard/select.js');

await runScenario(async ([stateFile, roundsArg, fillerArg, mode]) => {
  const state = readState(stateFile);
  const rounds = Number(roundsArg);
  const filler = Number(fillerArg);
  if (!Number.isInteger(rounds) || rounds < 1 || !Number.isInteger(filler) || filler < 0 || filler > 60_000 || !['replace', 'handover'].includes(mode)) {
    throw new Error('Usage: wireguard-replace-allowed-ips.mjs STATE_FILE ROUNDS FILLER replace|handover');
  }
  const a = state.a;
  const keep = a.peer.allowedIps; // B's tunnel addresses: traffic must never lose them
  const fill = (second) => Array.from({ length: filler }, (_, i) => `10.${second}.${i >> 8}.${i & 255}/32`);
  const sets = [
    [...fill(80), ...keep],
    [...fill(81), ...keep, 'fd78::/64'],
  ];
  const backend = await selectWireGuardBackend({ netns: a.ns, stateDir: `${state.stateDir}/a`, backend: 'auto' });
  const publicKey = fromB64(a.peer.publicKey);
  let current = (await backend.getDevice('wg0')).peers.find((p) => p.publicKey.equals(publicKey))?.allowedIps ?? [];

  const startMs = Date.now();
  for (let i = 0; i < rounds; i++) {
    const next = sets[i % 2];
    if (mode === 'replace') {
      await backend.setDevice('wg0', { peers: [{ publicKey, replaceAllowedIps: true, allowedIps: next }] });
    } else {
      const stale = current.filter((ip) => !next.includes(ip));
      await backend.setDevice('wg0', { peers: [{ publicKey, allowedIps: next }] });
      if (stale.length > 0) {
        const dummy = randomBytes(32);
        await backend.setDevice('wg0', { peers: [{ publicKey: dummy, allowedIps: stale }] });
        await backend.setDevice('wg0', { peers: [{ publicKey: dummy, remove: true }] });
      }
    }
    current = next;
  }
  const endMs = Date.now();
  const device = await backend.getDevice('wg0');
  await backend.close();
  const peer = device.peers.find((p) => p.publicKey.equals(publicKey)) ?? null;
  return { mode, startMs, endMs, rounds, expected: sets[(rounds - 1) % 2], peerCount: device.peers.length, peer };
});
