/** Interface addresses (IPv4 and IPv6) over rtnetlink: add, delete, list. */
import { ValidationError } from '../errors.js';
import { callNativeSync } from '../native/addon.js';
import { callRtnl, rtnl, where, withDumpRetry } from './call.js';
import type { NetnsOption } from './types.js';
import { checkCidr, checkIp } from '../net/ip.js';
import { checkArray, checkBool, checkIfName, checkInt, checkKnownKeys, checkObject, nativeOpts, quote } from './validate.js';

/** IFA_F_* flags (linux/if_addr.h). */
export const IFA_F_NODAD = 0x02;
export const IFA_F_NOPREFIXROUTE = 0x200;

export type AddressScope = 'global' | 'site' | 'link' | 'host';
const SCOPES: Record<AddressScope, number> = { global: 0, site: 200, link: 253, host: 254 };

export interface AddressSpec {
  dev: string;
  /** "IP/prefix", e.g. "10.0.0.1/24" or "fd00::1/64" (a bare address means /32 or /128). */
  address: string;
  /** Point-to-point peer address (IFA_ADDRESS). */
  peer?: string;
  /** IPv4 broadcast address. */
  broadcast?: string;
  /** IPv4 label; must start with the device name ("eth0" or "eth0:1"). */
  label?: string;
  scope?: AddressScope | number;
  /** Do not add the prefix route the kernel adds by default. */
  noPrefixRoute?: boolean;
  /** IPv6: skip duplicate address detection (usable at once instead of tentative). */
  noDad?: boolean;
}

export interface Address {
  /** Device name, null when the device vanished between the two dumps (or from parseAddresses()). */
  dev: string | null;
  ifindex: number;
  family: 4 | 6;
  address: string;
  peer: string | null;
  broadcast: string | null;
  label: string | null;
  scope: number;
  /** IFA_F_* flags. */
  flags: number;
}

export interface AddressFilter {
  dev?: string;
  family?: 4 | 6;
}

interface NativeAddr {
  dev?: string;
  ifindex?: number;
  local: string;
  prefixLen: number;
  peer?: string;
  broadcast?: string;
  label?: string;
  scope?: number;
  flags?: number;
}

const KNOWN = ['dev', 'address', 'peer', 'broadcast', 'label', 'scope', 'noPrefixRoute', 'noDad'] as const;

function toNative(addrs: AddressSpec[]): NativeAddr[] {
  checkArray('addresses', addrs);
  return addrs.map((a, i) => {
    const f = `addresses[${i}]`;
    checkKnownKeys(f, checkObject(f, a), KNOWN);
    const dev = checkIfName(`${f}.dev`, a.dev);
    const c = checkCidr(`${f}.address`, a.address);
    const out: NativeAddr = { dev, local: c.addr, prefixLen: c.prefixLen };
    if (a.peer !== undefined) out.peer = checkIp(`${f}.peer`, a.peer, c.family).addr;
    if (a.broadcast !== undefined) {
      if (c.family !== 4) throw new ValidationError(`${f}.broadcast`, `Invalid ${f}.broadcast for ${quote(a.address)}: only IPv4 addresses have a broadcast address`);
      out.broadcast = checkIp(`${f}.broadcast`, a.broadcast, 4).addr;
    }
    if (a.label !== undefined) {
      if (c.family !== 4) throw new ValidationError(`${f}.label`, `Invalid ${f}.label for ${quote(a.address)}: only IPv4 addresses have a label`);
      if (typeof a.label !== 'string' || !a.label.startsWith(dev) || Buffer.byteLength(a.label) > 15) {
        throw new ValidationError(`${f}.label`, `Invalid ${f}.label ${quote(a.label)}: use the device name, optionally followed by ":" and a suffix, at most 15 bytes`);
      }
      out.label = a.label;
    }
    if (a.scope !== undefined) {
      out.scope = typeof a.scope === 'string' ? SCOPES[a.scope] : checkInt(`${f}.scope`, a.scope, 0, 255);
      if (out.scope === undefined) throw new ValidationError(`${f}.scope`, `Invalid ${f}.scope ${quote(a.scope)}: use ${Object.keys(SCOPES).join(', ')} or 0..255`);
    }
    let flags = 0;
    if (a.noPrefixRoute !== undefined && checkBool(`${f}.noPrefixRoute`, a.noPrefixRoute)) flags |= IFA_F_NOPREFIXROUTE;
    if (a.noDad !== undefined && checkBool(`${f}.noDad`, a.noDad)) flags |= IFA_F_NODAD;
    if (flags) out.flags = flags;
    return out;
  });
}

function describe(addrs: AddressSpec[], verb: string, netns: string | undefined) {
  return (i: number | undefined) =>
    i === undefined
      ? `Cannot ${verb} addresses${where(netns)}`
      : `Cannot ${verb} address ${quote(addrs[i]?.address)} on ${quote(addrs[i]?.dev)}${where(netns)}`;
}

/**
 * Adds addresses (`ip addr add A/P dev D [peer X] [broadcast B] [label L] [scope S]
 * [noprefixroute] [nodad]`), pipelined. Every device is looked up first, so a missing one
 * changes nothing; when the kernel rejects address k, addresses 0..k-1 are removed again.
 */
export async function addAddresses(addrs: AddressSpec[], opts?: NetnsOption): Promise<void> {
  const n = toNative(addrs);
  const o = nativeOpts(opts);
  if (n.length === 0) return;
  await callRtnl(describe(addrs, 'add', opts?.netns), (a) => a.addrAdd(n, o));
}

/** Deletes addresses (`ip addr del A/P dev D`), pipelined; stops at the first failure. */
export async function deleteAddresses(addrs: AddressSpec[], opts?: NetnsOption): Promise<void> {
  const n = toNative(addrs);
  const o = nativeOpts(opts);
  if (n.length === 0) return;
  await callRtnl(describe(addrs, 'delete', opts?.netns), (a) => a.addrDelete(n, o));
}

/** Addresses of every device, or of `filter.dev` (`ip addr show [dev D]`), both families unless `filter.family`. */
export async function listAddresses(filter: AddressFilter = {}, opts?: NetnsOption): Promise<Address[]> {
  checkKnownKeys('filter', checkObject('filter', filter), ['dev', 'family']);
  const f: Record<string, unknown> = {};
  if (filter.dev !== undefined) f.dev = checkIfName('filter.dev', filter.dev);
  if (filter.family !== undefined) {
    if (filter.family !== 4 && filter.family !== 6) throw new ValidationError('filter.family', `Invalid filter.family ${quote(filter.family)}: use 4 or 6`);
    f.family = filter.family;
  }
  const o = nativeOpts(opts);
  return withDumpRetry(() => callRtnl(() => `Cannot list addresses${where(opts?.netns)}`, (a) => a.addrList(f, o) as Promise<Address[]>));
}

/** The RTM_NEWADDR messages addAddresses() sends; `ifindex` maps device names to indexes. */
export function encodeAddressAdd(addrs: AddressSpec[], ifindex: Record<string, number>): Buffer[] {
  const n = withIfindex(toNative(addrs), ifindex);
  return callNativeSync('Cannot encode addresses', () => rtnl().encodeAddrAdd(n) as Buffer[]);
}

/** The RTM_DELADDR messages deleteAddresses() sends. */
export function encodeAddressDelete(addrs: AddressSpec[], ifindex: Record<string, number>): Buffer[] {
  const n = withIfindex(toNative(addrs), ifindex);
  return callNativeSync('Cannot encode addresses', () => rtnl().encodeAddrDelete(n) as Buffer[]);
}

function withIfindex(addrs: NativeAddr[], ifindex: Record<string, number>): NativeAddr[] {
  return addrs.map((a, i) => {
    const idx = ifindex[a.dev!];
    if (idx === undefined) throw new ValidationError(`addresses[${i}].dev`, `No ifindex given for device ${quote(a.dev)}: pass it in the ifindex map`);
    const { dev: _dev, ...rest } = a;
    return { ...rest, ifindex: idx };
  });
}

/** Parses RTM_NEWADDR messages; throws NetlinkError "EMALFORMED" on truncated input. */
export function parseAddresses(buf: Buffer): Address[] {
  return callNativeSync('Cannot parse address messages', () => rtnl().parseAddrs(buf) as Address[]);
}
