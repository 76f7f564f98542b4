/**
 * Runs inside the VM harness's guest (started by bench/netlink-vm.ts): the WireGuard peers case
 * against kernel WireGuard, printing the runs as one JSON line on stdout.
 * `node dist/bench/netlink-vm-guest.js PEERS REPS`
 */
import { loadavg, release } from 'node:os';
import { measureWireGuard } from './netlink-wireguard.js';

async function main(): Promise<void> {
  const [peers, reps] = process.argv.slice(2).map(Number);
  if (!Number.isInteger(peers) || !Number.isInteger(reps)) throw new Error('Usage: netlink-vm-guest.js PEERS REPS');
  const runs = await measureWireGuard('kernel', peers!, reps!, (msg) => process.stderr.write(`guest: ${msg}\n`));
  process.stdout.write(JSON.stringify({ runs, load1m: loadavg()[0], kernelRelease: release() }) + '\n');
}

main().catch((err: unknown) => {
  process.stderr.write(`${(err as Error)?.stack ?? String(err)}\n`);
  process.exitCode = 1;
});
