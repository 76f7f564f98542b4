/**
 * Bad input against the kernel backend:
 *  - missing: setDevice on a device that does not exist (in A);
 *  - clash: in B, an up device wg1 with one peer gets a call that sets B's wg0 listen port
 *    (in use), fwmark 0x99, a new private key and, with replacePeers, COUNT new peers (several
 *    messages). The addon sends the listen port alone first and the rest only after it
 *    succeeded, so the device must read back unchanged (the fwmark included).
 *
 * Usage: node wireguard-bad-input.mjs STATE_FILE COUNT
 * Prints { missing: error, clash: { error, messages, attemptedPublicKey, before, after } }.
 */
import { randomBytes } from 'node:crypto';
import { describeError, fromDist, keyPair, readState, runScenario } from './wireguard-common.mjs';

const { selectWireGuardBackend } = await fromDist('agent/wireguard/select.js');
const { encodeWgSetDevice } = await fromDist('agent/wireguard/kernel-netlink.js');
const { setLink } = await fromDist('agent/netlink/link.js');

async function failure(run) {
  try {
    await run();
  } catch (err) {
    return describeError(err);
  }
  return null;
}

await runScenario(async ([stateFile, countArg]) => {
  const state = readState(stateFile);
  const count = Number(countArg);
  if (!Number.isInteger(count) || count < 1) throw new Error('Usage: wireguard-bad-input.mjs STATE_FILE COUNT');
  const { a, b } = state;

  const backendA = await selectWireGuardBackend({ netns: a.ns, stateDir: `${state.stateDir}/a`, backend: 'auto' });
  const missing = await failure(() => backendA.setDevice('nope0', { listenPort: 51999 }));
  await backendA.close();

  const backendB = await selectWireGuardBackend({ netns: b.ns, stateDir: `${state.stateDir}/b`, backend: 'auto' });
  await backendB.createDevice('wg1');
  await backendB.setDevice('wg1', {
    privateKey: keyPair().privateKey,
    listenPort: 51830,
    peers: [{ publicKey: keyPair().publicKey, endpoint: '192.0.2.1:51820', allowedIps: ['10.90.0.0/24'] }],
  });
  await setLink('wg1', { up: true }, { netns: b.ns }); // a down device only records its port
  const before = await backendB.getDevice('wg1');

  const attempted = keyPair();
  const config = {
    privateKey: attempted.privateKey,
    listenPort: b.listenPort, // wg0's, bound in this namespace
    replacePeers: true,
    // The kernel applies WGDEVICE_A_FWMARK before it binds the listen port; the addon sends the
    // port alone first, so the refused port must leave this fwmark unapplied too.
    fwmark: 0x99,
    peers: Array.from({ length: count }, (_, i) => ({
      publicKey: randomBytes(32), // any 32 bytes are a valid peer key to the kernel; fast to make
      allowedIps: [`10.${120 + (i >> 8)}.${i & 255}.0/24`],
    })),
  };
  const messages = encodeWgSetDevice('wg1', config).length;
  const error = await failure(() => backendB.setDevice('wg1', config));
  const after = await backendB.getDevice('wg1');
  await backendB.close();

  return { missing, clash: { error, messages, attemptedPublicKey: attempted.publicKey, before, after } };
});
