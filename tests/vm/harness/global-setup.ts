// Replaced by the VM harness (boots the shared VM); until then the vm tier fails loudly.
export default function setup(): void {
  throw new Error('VM harness is not built yet');
}
