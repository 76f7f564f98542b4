/**
 * Replaces the allowed IPs of A's peer (B) ROUNDS times, alternating between two sets that both
 * keep B's tunnel addresses, each time with replaceAllowedIps (WGPEER_F_REPLACE_ALLOWEDIPS: the
 * kernel swaps the set in one operation). The test runs a continuous ping across the tunnel
 * meanwhile and expects no loss.
 *
 * Usage: node wireguard-replace-allowed-ips.mjs STATE_FILE ROUNDS
 * Prints { startMs, endMs, rounds, expected, peer } (times from Date.now(), to line up with
 * `ping -D` timestamps; peer as read back afterwards).
 */
import { fromB64, fromDist, readState, runScenario } from './wireguard-common.mjs';

const { selectWireGuardBackend } = await fromDist('agent/wireguard/select.js');

await runScenario(async ([stateFile, roundsArg]) => {
  const state = readState(stateFile);
  const rounds = Number(roundsArg);
  if (!Number.isInteger(rounds) || rounds < 1) throw new Error(`Invalid ROUNDS "${roundsArg}": give a positive integer`);
  const a = state.a;
  const keep = a.peer.allowedIps; // B's tunnel addresses: traffic must never lose them
  const sets = [
    [...keep, '10.78.0.0/24'],
    [...keep, '10.79.0.0/24', 'fd78::/64'],
  ];
  const backend = await selectWireGuardBackend({ netns: a.ns, stateDir: `${state.stateDir}/a`, backend: 'auto' });
  const publicKey = fromB64(a.peer.publicKey);
  const startMs = Date.now();
  for (let i = 0; i < rounds; i++) {
    await backend.setDevice('wg0', { peers: [{ publicKey, replaceAllowedIps: true, allowedIps: sets[i % 2] }] });
  }
  const endMs = Date.now();
  const device = await backend.getDevice('wg0');
  await backend.close();
  const peer = device.peers.find((p) => p.publicKey.equals(publicKey)) ?? null;
  return { startMs, endMs, rounds, expected: sets[(rounds - 1) % 2], peer };
});
