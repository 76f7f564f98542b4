/** Global setup of the privileged and vm tiers: they need root, and say so instead of skipping. */
export default function requireRoot(): void {
  if (typeof process.getuid === 'function' && process.getuid() !== 0) {
    throw new Error(
      'The privileged and vm test tiers need root (network namespaces, netlink, qemu): run "sudo bash scripts/test.sh"',
    );
  }
}
