/**
 * Reads a WireGuard device through the addon (getDevice) and reports any secret of the topology
 * that shows up anywhere in the result (it must not: reads carry has-key flags only).
 *
 * Usage: node wireguard-get.mjs STATE_FILE a|b [DEVICE]
 * Prints { device, leaks } where leaks lists the paths of values equal to a private or
 * preshared key (raw bytes, base64 or hex).
 */
import { b64, fromB64, fromDist, readState, runScenario } from './wireguard-common.mjs';

const { selectWireGuardBackend } = await fromDist('agent/wireguard/select.js');

function findSecrets(value, secrets, path = '$', out = []) {
  if (Buffer.isBuffer(value) || value instanceof Uint8Array) {
    if (secrets.some((s) => Buffer.from(value).includes(s))) out.push(path);
  } else if (typeof value === 'string') {
    if (secrets.some((s) => value.includes(b64(s)) || value.toLowerCase().includes(s.toString('hex')))) out.push(path);
  } else if (value && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) findSecrets(v, secrets, `${path}.${k}`, out);
  }
  return out;
}

await runScenario(async ([stateFile, side, dev = 'wg0']) => {
  const state = readState(stateFile);
  const node = state[side];
  const backend = await selectWireGuardBackend({ netns: node.ns, stateDir: `${state.stateDir}/${side}`, backend: 'auto' });
  const device = await backend.getDevice(dev);
  await backend.close();
  const secrets = [state.a.privateKey, state.b.privateKey, state.a.peer.presharedKey].map(fromB64);
  return { kind: backend.kind, device, leaks: findSecrets(device, secrets) };
});
