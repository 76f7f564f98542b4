import { beforeAll, describe, expect, it } from 'vitest';
import { NetlinkError } from '../../../agent/errors.js';
import {
  addStates,
  deleteStates,
  deleteStatesMatching,
  flushStates,
  getState,
  listStates,
  stateStats,
  updateStates,
} from '../../../agent/xfrm/state.js';
import type { XfrmStateConfig } from '../../../agent/xfrm/types.js';
import { netnsPerTest } from '../../support/netns.js';
import { ipXfrmStateText, requireIp } from './ip-xfrm-text.js';

// The host kernel has no ESP and no AEAD crypto (ENVIRONMENT.md): every state is refused. These
// tests pin down the exact typed error and that nothing is half-applied; ESP with real traffic is
// the VM tier's job.

const freshNetns = netnsPerTest('vx');
beforeAll(requireIp);

const gcm = (spi: number, over: Partial<XfrmStateConfig> = {}): XfrmStateConfig => ({
  src: '192.0.2.1',
  dst: '192.0.2.2',
  spi,
  reqid: 1,
  aead: { algorithm: 'rfc4106(gcm(aes))', key: Buffer.alloc(20, 0x42) },
  mark: { value: 0xe00, mask: 0xf00 },
  setMark: { value: 0x1200, mask: 0xff00 },
  replayWindow: 128,
  esn: true,
  ...over,
});

describe('XFRM states on the host kernel (no ESP support)', () => {
  it('addStates() fails with the kernel errno as a typed error naming the missing kernel support', async () => {
    const ns = await freshNetns();
    const err = (await addStates([gcm(0x100)], { netns: ns }).catch((e: unknown) => e)) as NetlinkError;
    expect(err).toBeInstanceOf(NetlinkError);
    // attach_aead() runs first and cannot find the algorithm: ENOSYS with the kernel's text.
    expect(err).toMatchObject({ code: 'ENOSYS', errno: 38, op: 'xfrm.state.add', index: 0, extack: 'Requested AEAD algorithm not found' });
    expect(err.message).toBe(
      'Cannot add XFRM state 0 of 1, SPI 0x00000100 to "192.0.2.2" (mark 0xe00/0xf00): the kernel has no AEAD algorithm "rfc4106(gcm(aes))"; it needs CONFIG_INET_ESP / CONFIG_INET6_ESP and the crypto for the algorithm (CONFIG_CRYPTO_GCM, CONFIG_CRYPTO_AES), built in or loadable as modules (kernel: Requested AEAD algorithm not found); no state of this batch was left installed',
    );
    expect(err.message).not.toContain('4242');
    expect(await ipXfrmStateText(ns)).toBe('');
  });

  it('a ChaCha20-Poly1305 IPv6 transport state fails the same way and names its crypto', async () => {
    const ns = await freshNetns();
    const err = (await addStates(
      [
        {
          src: '2001:db8::1',
          dst: '2001:db8::2',
          spi: 0xabcdef,
          mode: 'transport',
          aead: { algorithm: 'rfc7539esp(chacha20,poly1305)', key: Buffer.alloc(36, 1) },
        },
      ],
      { netns: ns },
    ).catch((e: unknown) => e)) as NetlinkError;
    expect(err).toMatchObject({ code: 'ENOSYS', index: 0 });
    expect(err.message).toContain('SPI 0x00abcdef to "2001:db8::2"');
    expect(err.message).toContain('CONFIG_CRYPTO_CHACHA20POLY1305');
    expect(await ipXfrmStateText(ns)).toBe('');
  });

  it('a batch of states stops at the first failure and leaves no state behind', async () => {
    const ns = await freshNetns();
    const batch = Array.from({ length: 50 }, (_, i) => gcm(0x1000 + i, { dst: `192.0.2.${i + 2}` }));
    const err = (await addStates(batch, { netns: ns }).catch((e: unknown) => e)) as NetlinkError;
    expect(err).toMatchObject({ code: 'ENOSYS', index: 0 });
    expect(await listStates(undefined, { netns: ns })).toEqual([]);
    expect(await ipXfrmStateText(ns)).toBe('');
  });

  it('updateStates() of a state that cannot exist fails typed too', async () => {
    const ns = await freshNetns();
    const err = (await updateStates([gcm(0x200)], { netns: ns }).catch((e: unknown) => e)) as NetlinkError;
    expect(err).toBeInstanceOf(NetlinkError);
    expect(err.op).toBe('xfrm.state.update');
    expect(err.index).toBe(0);
  });

  it('reads, deletes and flushes on an empty database with typed results', async () => {
    const ns = await freshNetns();
    const id = { dst: '192.0.2.2', spi: 0x100, mark: { value: 0xe00, mask: 0xf00 } };
    expect(await getState(id, { netns: ns })).toBeNull();
    expect(await stateStats(id, { netns: ns })).toBeNull();
    expect(await listStates({ reqid: 1 }, { netns: ns })).toEqual([]);
    const err = (await deleteStates([id], { netns: ns }).catch((e: unknown) => e)) as NetlinkError;
    expect(err).toMatchObject({ code: 'ESRCH', index: 0, op: 'xfrm.state.delete' });
    expect(err.message).toBe(
      'Cannot delete XFRM state 0 of 1, SPI 0x00000100 to "192.0.2.2" (mark 0xe00/0xf00): no such state; pass ignoreMissing to skip states that are already gone',
    );
    expect(await deleteStates([id, { ...id, spi: 0x101 }], { netns: ns, ignoreMissing: true })).toBe(0);
    expect(await deleteStatesMatching({ mark: { value: 0xe00 } }, { netns: ns })).toBe(0);
    await flushStates({ netns: ns });
    await flushStates({ netns: ns, proto: 'esp' });
  });
});
