/**
 * Does this kernel do ESP? IPsec mode needs it, and the host kernel of the development machines
 * lacks it (no INET_ESP, no gcm). The only reliable answer is the kernel's own: install one ESP
 * state (AES-GCM, as Veil's IPsec mode does) through the addon in a scratch namespace made for the
 * probe, then remove the namespace (and the state with it).
 */
import { randomBytes } from 'node:crypto';
import { addNetns, deleteNetns } from '../netlink/netns.js';
import { addStates } from '../xfrm/state.js';

export interface EspSupport {
  supported: boolean;
  /** The kernel's answer when unsupported, e.g. "Requested AEAD algorithm not found". */
  reason?: string;
}

export async function probeEsp(scratchNetns: string): Promise<EspSupport> {
  await addNetns(scratchNetns);
  try {
    await addStates(
      [
        {
          src: '192.0.2.1',
          dst: '192.0.2.2',
          spi: 0x100,
          mode: 'tunnel',
          aead: { algorithm: 'rfc4106(gcm(aes))', key: randomBytes(20) },
        },
      ],
      { netns: scratchNetns },
    );
    return { supported: true };
  } catch (err) {
    const e = err as { extack?: string; message?: string; code?: string };
    return { supported: false, reason: e.extack ?? e.message ?? String(err) };
  } finally {
    await deleteNetns(scratchNetns, { ignoreMissing: true });
  }
}
