/**
 * Named network namespaces (`ip netns add|del NAME`) and sysctls inside a namespace
 * (`ip netns exec NS sysctl -w KEY=VALUE`), through the addon: the namespace is unshared on a
 * worker thread and bind-mounted at /run/netns/NAME exactly as iproute2 does, so `ip netns exec`
 * and every `{ netns: NAME }` option of the netlink wrappers find it.
 */
import { ValidationError } from '../errors.js';
import { callRtnl, rtnl } from './call.js';
import type { NetnsOption } from './types.js';
import { nativeOpts, quote } from './validate.js';

type Fn = (...args: any[]) => any; // eslint-disable-line @typescript-eslint/no-explicit-any

interface NetnsAddon {
  netnsAdd: Fn;
  netnsDelete: Fn;
  sysctlSet: Fn;
  sysctlGet: Fn;
}

function addon(): NetnsAddon {
  return rtnl() as unknown as NetnsAddon;
}

/** Where named namespaces are mounted. */
export const NETNS_DIR = '/run/netns';

/** A namespace name iproute2 accepts: a plain file name under /run/netns. */
export function checkNamedNetns(field: string, v: unknown): string {
  if (typeof v !== 'string' || v.length === 0 || Buffer.byteLength(v) > 255 || v.includes('\0')) {
    throw new ValidationError(field, `Invalid ${field} ${quote(v)}: give a namespace name of 1 to 255 bytes`);
  }
  if (v.includes('/') || v === '.' || v === '..') {
    throw new ValidationError(field, `Invalid ${field} ${quote(v)}: a namespace name cannot be "." or ".." or contain "/"`);
  }
  return v;
}

/**
 * A sysctl key in dotted form ("net.ipv4.ip_forward"): segments of letters, digits, "_" and
 * "-". Only net.* keys are per network namespace; others would change the whole machine.
 */
export function checkSysctlKey(field: string, v: unknown): string {
  if (typeof v !== 'string' || !/^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)+$/.test(v) || v.length > 200) {
    throw new ValidationError(field, `Invalid ${field} ${quote(v)}: give a dotted sysctl key such as "net.ipv4.ip_forward"`);
  }
  if (!v.startsWith('net.')) {
    throw new ValidationError(field, `Invalid ${field} ${quote(v)}: only "net." sysctls belong to a network namespace; change others on the host`);
  }
  return v;
}

/**
 * Creates a named network namespace (`ip netns add NAME`). NetlinkError "EEXIST" when the name
 * is taken. Loopback starts down, as with iproute2.
 */
export async function addNetns(name: string): Promise<void> {
  checkNamedNetns('name', name);
  await callRtnl(() => `Cannot add network namespace ${quote(name)}`, () => addon().netnsAdd(name));
}

/**
 * Removes a named namespace (`ip netns del NAME`): the mount is detached and the file removed;
 * the kernel frees the namespace once no process and no open file holds it. NetlinkError
 * "ENOENT" when absent, unless `ignoreMissing`.
 */
export async function deleteNetns(name: string, opts: { ignoreMissing?: boolean } = {}): Promise<void> {
  checkNamedNetns('name', name);
  try {
    await callRtnl(() => `Cannot delete network namespace ${quote(name)}`, () => addon().netnsDelete(name));
  } catch (err) {
    if (opts.ignoreMissing && (err as { code?: string }).code === 'ENOENT') return;
    throw err;
  }
}

/** Writes a net.* sysctl inside a namespace (`ip netns exec NS sysctl -w KEY=VALUE`). */
export async function setSysctl(key: string, value: string | number, opts?: NetnsOption): Promise<void> {
  checkSysctlKey('key', key);
  const text = String(value);
  if (text.length === 0 || text.length > 4096 || text.includes('\0')) {
    throw new ValidationError('value', `Invalid value ${quote(value)} for sysctl ${quote(key)}: give 1 to 4096 characters`);
  }
  const o = nativeOpts(opts);
  await callRtnl(() => `Cannot set sysctl ${quote(key)} to ${quote(text)}${opts?.netns ? ` in network namespace ${quote(opts.netns)}` : ''}`, () =>
    addon().sysctlSet(key, text, o),
  );
}

/** Reads a net.* sysctl inside a namespace, trailing newline removed. */
export async function getSysctl(key: string, opts?: NetnsOption): Promise<string> {
  checkSysctlKey('key', key);
  const o = nativeOpts(opts);
  return callRtnl(() => `Cannot read sysctl ${quote(key)}${opts?.netns ? ` in network namespace ${quote(opts.netns)}` : ''}`, () =>
    addon().sysctlGet(key, o) as Promise<string>,
  );
}
