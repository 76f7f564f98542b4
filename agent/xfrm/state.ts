/**
 * XFRM states (IPsec security associations): ESP with an AEAD (AES-GCM or ChaCha20-Poly1305),
 * tunnel or transport mode, marks, set-mark, replay window / ESN and lifetime limits.
 *
 * Batches are pipelined over one netlink socket. A batch of creates that fails at index k
 * removes every state it had created, so nothing is half-applied, and the NetlinkError carries
 * k and the kernel's extended-ack text. Keys cross as Buffers, are wiped in the addon after use,
 * never appear in a message or log line, and are never read back.
 */
import type { NetlinkError } from '../errors.js';
import { callNative, callNativeSync } from '../native/addon.js';
import { decodeState } from './decode.js';
import { detailOf, dumpWithRetry, kernelSays, nsOpts, reword, rollbackNote, xfrmNative } from './native-call.js';
import type {
  XfrmOptions,
  XfrmState,
  XfrmStateConfig,
  XfrmStateFilter,
  XfrmStateId,
  XfrmStateStats,
} from './types.js';
import {
  IPPROTO_ESP,
  IPSEC_PROTO_ANY,
  canonicalAddress,
  invalid,
  list,
  mark as markArg,
  stateConfig,
  stateId,
  u32,
  type WireState,
  type WireStateId,
} from './validate.js';

const hex = (spi: number) => `0x${spi.toString(16).padStart(8, '0')}`;

/** `SPI 0x00000100 to "10.0.0.2" (mark 0x10/0xff)`: names a state without any key material. */
export function describeState(s: { spi: number; dst: string; mark?: { value: number; mask: number } | undefined }): string {
  const m = s.mark ? ` (mark 0x${s.mark.value.toString(16)}/0x${s.mark.mask.toString(16)})` : '';
  return `SPI ${hex(s.spi)} to "${s.dst}"${m}`;
}

/** The message for a failed state batch, naming the state and what the kernel lacks or refused. */
export function stateBatchMessage(verb: 'add' | 'update', e: NetlinkError, states: readonly WireState[]): string | undefined {
  const s = e.index !== undefined ? states[e.index] : undefined;
  if (!s) return undefined;
  const what = `Cannot ${verb} XFRM state ${e.index} of ${states.length}, ${describeState(s)}`;
  const tail = `${kernelSays(e)}; ${verb === 'add' ? 'no state of this batch was left installed' : `states before index ${e.index} were updated`}${rollbackNote(e)}`;
  switch (e.code) {
    case 'EEXIST':
      return `${what}: a state with this SPI, destination and mark already exists (the kernel looks up inbound states by mark, destination, SPI and protocol); choose an unused SPI or update the existing state${tail}`;
    case 'ESRCH':
    case 'ENOENT':
      return `${what}: no such state to update; add it first${tail}`;
    case 'ENOSYS':
      return `${what}: the kernel has no AEAD algorithm "${s.aead.name}"; it needs CONFIG_INET_ESP / CONFIG_INET6_ESP and the crypto for the algorithm (${s.aead.name.startsWith('rfc4106') ? 'CONFIG_CRYPTO_GCM, CONFIG_CRYPTO_AES' : 'CONFIG_CRYPTO_CHACHA20POLY1305'}), built in or loadable as modules${tail}`;
    case 'EPROTONOSUPPORT':
      return `${what}: the kernel does not support ESP; it needs CONFIG_INET_ESP (IPv4) / CONFIG_INET6_ESP (IPv6), built in or loadable as modules${tail}`;
    case 'EINVAL':
      return `${what}: the kernel rejected its parameters${tail}`;
    default:
      return `${what}: ${detailOf(e)}${tail}`;
  }
}

async function apply(verb: 'add' | 'update', states: readonly XfrmStateConfig[], opts: XfrmOptions): Promise<void> {
  const wire = list(states, 'states', stateConfig);
  if (wire.length === 0) return;
  try {
    await callNative(`Cannot ${verb} XFRM states`, () => xfrmNative().xfrmStatesApply(nsOpts(opts), wire, verb === 'update'));
  } catch (err) {
    throw reword(err, (e) => stateBatchMessage(verb, e, wire));
  }
}

/**
 * Adds states, failing on any that exists already (create-exclusive). All or nothing: when one
 * fails, those created before it are deleted again.
 * `ip xfrm state add src S dst D proto esp spi SPI reqid R mode tunnel aead ALG KEY 128 ...`
 */
export function addStates(states: readonly XfrmStateConfig[], opts: XfrmOptions = {}): Promise<void> {
  return apply('add', states, opts);
}

/**
 * Replaces existing states (same dst, SPI, proto, mark) with new parameters. Stops at the first
 * failure; the error's index says which state failed (those before it are updated).
 * `ip xfrm state update src S dst D proto esp spi SPI ...`
 */
export function updateStates(states: readonly XfrmStateConfig[], opts: XfrmOptions = {}): Promise<void> {
  return apply('update', states, opts);
}

/** Reads one state; null when it does not exist. `ip -s xfrm state get dst D proto esp spi SPI [mark V mask M]` */
export async function getState(id: XfrmStateId, opts: XfrmOptions = {}): Promise<XfrmState | null> {
  const wire = stateId(id, 'id');
  const raw = (await callNative(`Cannot read XFRM state ${describeState(wire)}`, () =>
    xfrmNative().xfrmStateGet(nsOpts(opts), wire),
  ));
  return raw ? decodeState(raw) : null;
}

/** Counters and replay state of one state; null when it does not exist. */
export async function stateStats(id: XfrmStateId, opts: XfrmOptions = {}): Promise<XfrmStateStats | null> {
  return (await getState(id, opts))?.stats ?? null;
}

function filterArg(f: unknown): (s: XfrmState) => boolean {
  if (f === undefined) return () => true;
  if (typeof f !== 'object' || f === null) throw invalid('filter', f, 'use an XfrmStateFilter object');
  const v = f as XfrmStateFilter;
  const src = v.src === undefined ? undefined : canonicalAddress(v.src, 'filter.src');
  const dst = v.dst === undefined ? undefined : canonicalAddress(v.dst, 'filter.dst');
  const spi = v.spi === undefined ? undefined : u32(v.spi, 'filter.spi');
  const reqid = v.reqid === undefined ? undefined : u32(v.reqid, 'filter.reqid');
  const ifId = v.ifId === undefined ? undefined : u32(v.ifId, 'filter.ifId');
  if (v.family !== undefined && v.family !== 4 && v.family !== 6) throw invalid('filter.family', v.family, 'use 4 or 6');
  const mark = markArg(v.mark, 'filter.mark');
  const setMark = markArg(v.setMark, 'filter.setMark');
  const maskGiven = v.mark?.mask !== undefined;
  const setMaskGiven = v.setMark?.mask !== undefined;
  return (s) =>
    (src === undefined || s.src === src) &&
    (dst === undefined || s.dst === dst) &&
    (spi === undefined || s.spi === spi) &&
    (reqid === undefined || s.reqid === reqid) &&
    (ifId === undefined || s.ifId === ifId) &&
    (v.family === undefined || s.family === v.family) &&
    (mark === undefined || (s.mark !== null && s.mark.value === mark.value && (!maskGiven || s.mark.mask === mark.mask))) &&
    (setMark === undefined ||
      (s.setMark !== null && s.setMark.value === setMark.value && (!setMaskGiven || s.setMark.mask === setMark.mask)));
}

/** Lists states (optionally only those matching `filter`). `ip -s xfrm state list` */
export async function listStates(filter?: XfrmStateFilter, opts: XfrmOptions = {}): Promise<XfrmState[]> {
  const match = filterArg(filter);
  const raw = (await dumpWithRetry('Cannot list XFRM states', () => xfrmNative().xfrmStatesList(nsOpts(opts))));
  return raw.map(decodeState).filter(match);
}

/**
 * Deletes states; resolves the number deleted. With ignoreMissing, states already gone are
 * skipped; otherwise the first missing one fails with its index (the others are still deleted).
 * `ip xfrm state delete dst D proto esp spi SPI [mark V mask M]`
 */
export async function deleteStates(
  ids: readonly XfrmStateId[],
  opts: XfrmOptions & { ignoreMissing?: boolean } = {},
): Promise<number> {
  const wire = list(ids, 'ids', stateId);
  if (wire.length === 0) return 0;
  return deleteWire(wire, opts, opts.ignoreMissing === true);
}

async function deleteWire(wire: WireStateId[], opts: XfrmOptions, ignoreMissing: boolean): Promise<number> {
  try {
    return (await callNative('Cannot delete XFRM states', () =>
      xfrmNative().xfrmStatesDelete(nsOpts(opts), wire, ignoreMissing),
    ));
  } catch (err) {
    throw reword(err, (e) => {
      const s = e.index !== undefined ? wire[e.index] : undefined;
      if (!s) return undefined;
      const why = e.code === 'ESRCH' ? 'no such state' : detailOf(e);
      return `Cannot delete XFRM state ${e.index} of ${wire.length}, ${describeState(s)}: ${why}${kernelSays(e)}; pass ignoreMissing to skip states that are already gone`;
    });
  }
}

/**
 * Deletes every state matching `filter` (for example all states with one mark or reqid): one
 * dump, then pipelined deletes. States that vanish in between are not an error. An empty filter
 * is refused; use flushStates to remove everything.
 */
export async function deleteStatesMatching(filter: XfrmStateFilter, opts: XfrmOptions = {}): Promise<number> {
  if (typeof filter !== 'object' || filter === null || Object.values(filter).every((v) => v === undefined)) {
    throw invalid('filter', filter, 'name at least one field to match (use flushStates() to delete every state)');
  }
  const states = (await listStates(filter, opts)).filter((s) => s.proto === 'esp');
  const ids = states.map<WireStateId>((s) => ({
    dst: s.dst,
    spi: s.spi,
    proto: IPPROTO_ESP,
    ...(s.mark ? { mark: s.mark } : {}),
  }));
  if (ids.length === 0) return 0;
  return deleteWire(ids, opts, true);
}

/** Deletes every state of one protocol (default: all). `ip xfrm state flush [proto esp]` */
export async function flushStates(opts: XfrmOptions & { proto?: 'esp' | 'any' } = {}): Promise<void> {
  const proto = opts.proto ?? 'any';
  if (proto !== 'esp' && proto !== 'any') throw invalid('proto', proto, 'use "esp" or "any"');
  await callNative('Cannot flush XFRM states', () =>
    xfrmNative().xfrmStatesFlush(nsOpts(opts), proto === 'esp' ? IPPROTO_ESP : IPSEC_PROTO_ANY),
  );
}

// ---------------------------------------------------------------------------------------------
// Encode-only and parse-only twins of the operations above (same validation and C++ encoders;
// for byte-exact tests). Messages have seq and port id 0.

export function encodeStates(states: readonly XfrmStateConfig[], opts: { update?: boolean } = {}): Buffer[] {
  const wire = list(states, 'states', stateConfig);
  return callNativeSync('Cannot encode XFRM states', () => xfrmNative().encodeXfrmStates(wire, opts.update === true));
}

export function encodeStateIds(ids: readonly XfrmStateId[], kind: 'get' | 'delete'): Buffer[] {
  const wire = list(ids, 'ids', stateId);
  return callNativeSync('Cannot encode XFRM state ids', () => xfrmNative().encodeXfrmStateIds(wire, kind));
}

export function encodeStatesFlush(proto: 'esp' | 'any' = 'any'): Buffer[] {
  return callNativeSync('Cannot encode XFRM state flush', () =>
    xfrmNative().encodeXfrmStatesFlush(proto === 'esp' ? IPPROTO_ESP : IPSEC_PROTO_ANY),
  );
}

export function encodeStatesDump(): Buffer[] {
  return callNativeSync('Cannot encode XFRM state dump', () => xfrmNative().encodeXfrmStatesDump());
}

/** Parses XFRM_MSG_NEWSA messages (a dump or get reply) into states. */
export function parseStates(buf: Buffer): XfrmState[] {
  const raw = callNativeSync('Cannot parse XFRM states', () => xfrmNative().parseXfrmStates(buf));
  return raw.map(decodeState);
}
