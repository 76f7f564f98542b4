/**
 * Loading, attaching and testing eBPF programs (docs/datapath.md §Loading, pinning and attaching).
 *
 * - loadObject(): libbpf loads an object; its maps declared LIBBPF_PIN_BY_NAME are pinned under
 *   `pinDir` and re-used (with their contents) by the next load, so a restarted agent adopts
 *   them. `reuseMaps` shares an unpinned map (the event ring buffer) between objects.
 * - attach(): tcx link where the kernel has it (pinned under `<pinDir>/links/`, survives the
 *   agent), else clsact + cls_bpf. Idempotent; a different program replaces the attached one
 *   atomically. attachment() reports what is attached (adopt on restart), detach() removes it.
 * - testRun(): BPF_PROG_TEST_RUN on a worker thread.
 */
import { isAbsolute } from 'node:path';
import { ValidationError, VeilError } from '../errors.js';
import { callNative, callNativeSync } from '../native/addon.js';
import { quote } from '../net/ip.js';
import { checkIfName, checkInt, checkNetnsName, U32_MAX } from '../netlink/validate.js';
import { bpfAddon, type AttachMode, type Direction, type RawObject, type RawObjectMap, type RawPinnedLink, type RawProgram } from './native.js';

/** Where the agent pins its maps and links by default. */
export const DEFAULT_PIN_DIR = '/sys/fs/bpf/veil';

/** A program or map the caller named is not in the object. */
export class BpfObjectError extends VeilError {
  constructor(message: string) {
    super('ENOENT', message);
  }
}

export interface LoadOptions {
  /** Absolute directory on bpffs (created when missing; bpffs is mounted when it is not). */
  pinDir: string;
  /** Load only these programs (default: all). */
  programs?: string[];
  /** `const volatile` variables to set before load, by name, as their raw bytes. */
  rodata?: Record<string, Uint8Array>;
  /** max_entries per map name, set before load. A pinned map of another size is refused. */
  maxEntries?: Record<string, number>;
  /** Use these maps (by name) instead of creating new ones: another object's map or an fd. */
  reuseMaps?: Record<string, BpfMapHandle | number>;
}

/** A loaded program; its fd is valid until its object is closed. */
export interface BpfProgram {
  readonly name: string;
  readonly fd: number;
  readonly id: number;
  readonly objectPath: string;
  /** The object that owns the fd: calls refuse a program whose object is closed (its fd number may be reused). */
  readonly object?: BpfObject;
}

/** A map of a loaded object; `ref` (its fd) is what the map classes take. */
export interface BpfMapHandle {
  readonly name: string;
  readonly fd: number;
  readonly id: number;
  readonly type: number;
  readonly keySize: number;
  readonly valueSize: number;
  readonly maxEntries: number;
  readonly pinPath: string | undefined;
  /** The object that owns the fd (see BpfProgram.object). */
  readonly object?: BpfObject;
}

/** Throws when `owner` is closed: its fds are closed and their numbers may belong to other files now. */
export function checkOwnerOpen(what: { name: string; object?: BpfObject | undefined }): void {
  if (what.object?.isClosed) {
    throw new VeilError('EBADF', `eBPF object ${quote(what.object.path)} that ${quote(what.name)} belongs to is closed; load it again`);
  }
}

/** A loaded eBPF object. Programs stay alive while attached, maps while pinned or in use. */
export class BpfObject {
  readonly programs: ReadonlyMap<string, BpfProgram>;
  readonly maps: ReadonlyMap<string, BpfMapHandle>;
  private closed = false;

  constructor(
    readonly path: string,
    private readonly raw: RawObject,
  ) {
    this.programs = new Map(raw.programs.map((p: RawProgram) => [p.name, { name: p.name, fd: p.fd, id: p.id, objectPath: path, object: this }]));
    this.maps = new Map(
      raw.maps.map((m: RawObjectMap) => [
        m.name,
        { name: m.name, fd: m.fd, id: m.id, type: m.type, keySize: m.keySize, valueSize: m.valueSize, maxEntries: m.maxEntries, pinPath: m.pinPath, object: this },
      ]),
    );
  }

  /** The program `name`; throws BpfObjectError listing the programs the object has. */
  program(name: string): BpfProgram {
    this.checkOpen();
    const p = this.programs.get(name);
    if (!p) throw new BpfObjectError(`Program ${quote(name)} is not loaded from ${quote(this.path)}; loaded: ${[...this.programs.keys()].map((n) => quote(n)).join(', ') || 'none'}`);
    return p;
  }

  /** The map `name`; throws BpfObjectError listing the maps the object has. */
  map(name: string): BpfMapHandle {
    this.checkOpen();
    const m = this.maps.get(name);
    if (!m) throw new BpfObjectError(`Map ${quote(name)} is not in ${quote(this.path)}; it has: ${[...this.maps.keys()].map((n) => quote(n)).join(', ')}`);
    return m;
  }

  /** Closes the object's fds. Attached programs and pinned maps live on in the kernel. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    bpfAddon().bpfClose(this.raw.handle);
  }

  get isClosed(): boolean {
    return this.closed;
  }

  private checkOpen(): void {
    if (this.closed) throw new VeilError('EBADF', `eBPF object ${quote(this.path)} is closed; load it again`);
  }
}

export function checkPinDir(field: string, v: unknown): string {
  if (typeof v !== 'string' || !isAbsolute(v) || v.includes('\0') || v.split('/').includes('..')) {
    throw new ValidationError(field, `Invalid ${field} ${quote(v)}: give an absolute directory on bpffs, such as ${quote(DEFAULT_PIN_DIR)}`);
  }
  return v.replace(/\/+$/, '') || '/';
}

function checkName(field: string, v: unknown): string {
  if (typeof v !== 'string' || v.length === 0 || v.length > 255 || v.includes('\0')) {
    throw new ValidationError(field, `Invalid ${field} ${quote(v)}: give the name as it appears in the object`);
  }
  return v;
}

/** Loads an eBPF object file (see LoadOptions). */
export async function loadObject(path: string, opts: LoadOptions): Promise<BpfObject> {
  if (typeof path !== 'string' || path.length === 0 || path.includes('\0')) {
    throw new ValidationError('objectPath', `Invalid objectPath ${quote(path)}: give the path of a compiled .bpf.o file`);
  }
  const pinDir = checkPinDir('pinDir', opts?.pinDir);
  const args: Parameters<ReturnType<typeof bpfAddon>['bpfLoad']>[1] = { pinDir };
  if (opts.programs !== undefined) {
    if (!Array.isArray(opts.programs)) throw new ValidationError('programs', `Invalid programs ${quote(opts.programs)}: give an array of program names`);
    args.programs = opts.programs.map((p, i) => checkName(`programs[${i}]`, p));
  }
  if (opts.rodata) {
    args.rodata = {};
    for (const [k, v] of Object.entries(opts.rodata)) {
      if (!(v instanceof Uint8Array)) throw new ValidationError(`rodata.${k}`, `Invalid rodata.${k}: give the variable's bytes as a Buffer`);
      args.rodata[checkName('rodata', k)] = v;
    }
  }
  if (opts.maxEntries) {
    args.maxEntries = {};
    for (const [k, v] of Object.entries(opts.maxEntries)) args.maxEntries[checkName('maxEntries', k)] = checkInt(`maxEntries.${k}`, v, 1, U32_MAX);
  }
  if (opts.reuseMaps) {
    args.reuseMaps = {};
    for (const [k, v] of Object.entries(opts.reuseMaps)) args.reuseMaps[checkName('reuseMaps', k)] = typeof v === 'number' ? checkInt(`reuseMaps.${k}`, v, 0, 1 << 30) : v.fd;
  }
  const raw = await callNative(`Cannot load eBPF object ${quote(path)}`, () => bpfAddon().bpfLoad(path, args));
  return new BpfObject(path, raw);
}

/** Maps every Veil object shares within one agent but does not pin (its readers are this process). */
export const UNPINNED_SHARED_MAPS = ['veil_events'] as const;

/**
 * Loads several objects (from-pod, to-pod, uplink programs) so that they share one instance of
 * every map: pinned maps through the pin directory, the unpinned ones in `shared` (default: the
 * event ring buffer) by handing the first object's map to the others. All or nothing: when one
 * object fails, the ones already loaded are closed.
 */
export async function loadObjects(paths: string[], opts: LoadOptions & { shared?: readonly string[] }): Promise<BpfObject[]> {
  const shared = opts.shared ?? UNPINNED_SHARED_MAPS;
  const loaded: BpfObject[] = [];
  const reuse: Record<string, BpfMapHandle | number> = { ...(opts.reuseMaps ?? {}) };
  try {
    for (const path of paths) {
      const obj = await loadObject(path, { ...opts, reuseMaps: reuse });
      loaded.push(obj);
      for (const name of shared) {
        const m = obj.maps.get(name);
        if (m && reuse[name] === undefined) reuse[name] = m;
      }
    }
    return loaded;
  } catch (err) {
    for (const o of loaded) o.close();
    throw err;
  }
}

/** Where a program attaches: a device (name or ifindex) in a namespace, one direction. */
export interface AttachTarget {
  interface: string | number;
  direction: Direction;
  /** A name under /run/netns or an absolute path; omitted = the agent's namespace. */
  netns?: string;
}

export interface AttachOptions {
  pinDir: string;
  /** auto (default): tcx where the kernel has it, else clsact. */
  mode?: AttachMode;
}

export interface AttachResult {
  /** How it is attached. */
  mode: 'tcx' | 'clsact';
  /** created: nothing of Veil's was attached; replaced: another program (or mode) was; unchanged: this program already was. */
  action: 'created' | 'replaced' | 'unchanged';
  ifindex: number;
}

function targetArgs(t: AttachTarget, pinDir: unknown, mode?: unknown) {
  if (typeof t !== 'object' || t === null) throw new ValidationError('target', `Invalid target ${quote(t)}: give { interface, direction, netns? }`);
  const itf = typeof t.interface === 'number' ? checkInt('interface', t.interface, 1, 0x7fffffff) : checkIfName('interface', t.interface);
  if (t.direction !== 'ingress' && t.direction !== 'egress') {
    throw new ValidationError('direction', `Invalid direction ${quote(t.direction)}: give "ingress" or "egress"`);
  }
  if (mode !== undefined && mode !== 'auto' && mode !== 'tcx' && mode !== 'clsact') {
    throw new ValidationError('mode', `Invalid mode ${quote(mode)}: give "auto", "tcx" or "clsact"`);
  }
  return {
    interface: itf,
    direction: t.direction,
    pinDir: checkPinDir('pinDir', pinDir),
    ...(t.netns !== undefined ? { netns: checkNetnsName('netns', t.netns) } : {}),
    ...(mode !== undefined ? { mode: mode as AttachMode } : {}),
  };
}

function describe(t: AttachTarget): string {
  return `${quote(String(t.interface))} ${t.direction}${t.netns ? ` in network namespace ${quote(t.netns)}` : ''}`;
}

/** Attaches `program` to the target (idempotent; replaces another program atomically). */
export async function attach(program: BpfProgram, target: AttachTarget, opts: AttachOptions): Promise<AttachResult> {
  const args = targetArgs(target, opts?.pinDir, opts?.mode);
  checkOwnerOpen(program);
  const r = await callNative(`Cannot attach program ${quote(program.name)} to ${describe(target)}`, () =>
    bpfAddon().bpfAttach({ ...args, progFd: program.fd }),
  );
  return { mode: r.mode, action: r.action, ifindex: r.ifindex };
}

/** Removes Veil's program from the target; returns what was removed (empty when nothing was). */
export async function detach(target: AttachTarget, opts: { pinDir: string }): Promise<('tcx' | 'clsact')[]> {
  const args = targetArgs(target, opts?.pinDir);
  const r = await callNative(`Cannot detach from ${describe(target)}`, () => bpfAddon().bpfDetach(args));
  return r.removed;
}

export interface Attachment {
  ifindex: number;
  /** The attached program's id, by mode; both absent when nothing of Veil's is attached. */
  tcx?: { progId: number; linkId: number };
  clsact?: { progId: number };
}

/**
 * What Veil has attached to the target (a restarted agent adopts it: attaching the new program
 * replaces it in place, without a moment with no program).
 */
export async function attachment(target: AttachTarget, opts: { pinDir: string }): Promise<Attachment> {
  const args = targetArgs(target, opts?.pinDir);
  return callNative(`Cannot read the attachment of ${describe(target)}`, () => bpfAddon().bpfAttachment(args));
}

/** A tcx link pinned under `<pinDir>/links/`. `ifindex` 0: its device is gone (defunct). */
export type PinnedLink = RawPinnedLink;

/** Every tcx link Veil pinned (what a restarted agent finds attached). */
export async function listLinks(opts: { pinDir: string }): Promise<PinnedLink[]> {
  const pinDir = checkPinDir('pinDir', opts?.pinDir);
  return callNative(`Cannot list the links pinned in ${quote(pinDir)}`, () => bpfAddon().bpfLinks({ pinDir }));
}

/**
 * Removes the pins of links whose device is gone (a pod deleted while the agent was down: the
 * kernel detached the program, the pin kept the link object). Returns the links it unpinned.
 */
export async function pruneLinks(opts: { pinDir: string }): Promise<PinnedLink[]> {
  const pinDir = checkPinDir('pinDir', opts?.pinDir);
  const all = await callNative(`Cannot prune the links pinned in ${quote(pinDir)}`, () => bpfAddon().bpfLinks({ pinDir, prune: true }));
  return all.filter((l) => l.ifindex === 0);
}

export interface TestRunOptions {
  /** Fields of the test skb: mark, ifindex and ingress ifindex (devices in `netns`), priority. */
  ctx?: { mark?: number; ifindex?: number; ingressIfindex?: number; priority?: number };
  /** Runs; durationNs is the average per run. */
  repeat?: number;
  netns?: string;
}

export interface TestRunResult {
  /** The program's return value (TC_ACT_*). */
  retval: number;
  /** The packet after the program. */
  dataOut: Buffer;
  /** skb->mark after the program. */
  mark: number;
  durationNs: number;
}

/** Ethernet header length: the kernel refuses shorter test packets. */
const ETH_HLEN = 14;

/** Runs `program` on `data` (an Ethernet frame) through BPF_PROG_TEST_RUN, off the main thread. */
export async function testRun(program: BpfProgram, data: Uint8Array, opts: TestRunOptions = {}): Promise<TestRunResult> {
  if (!(data instanceof Uint8Array) || data.length < ETH_HLEN) {
    throw new ValidationError('data', `Invalid data of ${data instanceof Uint8Array ? data.length : quote(data)} bytes: give an Ethernet frame of at least ${ETH_HLEN} bytes`);
  }
  const ctx: NonNullable<TestRunOptions['ctx']> = {};
  for (const f of ['mark', 'ifindex', 'ingressIfindex', 'priority'] as const) {
    const v = opts.ctx?.[f];
    if (v !== undefined) ctx[f] = checkInt(`ctx.${f}`, v, 0, U32_MAX);
  }
  checkOwnerOpen(program);
  const args = {
    ctx,
    repeat: opts.repeat === undefined ? 1 : checkInt('repeat', opts.repeat, 1, U32_MAX),
    ...(opts.netns !== undefined ? { netns: checkNetnsName('netns', opts.netns) } : {}),
  };
  const r = await callNative(`Cannot test-run program ${quote(program.name)}`, () => bpfAddon().bpfTestRun(program.fd, data, args));
  return { retval: r.retval, dataOut: r.dataOut, mark: r.mark >>> 0, durationNs: r.durationNs };
}

/** Makes sure bpffs is mounted and `dir` exists on it. */
export async function ensurePinDir(dir: string): Promise<void> {
  const d = checkPinDir('pinDir', dir);
  await callNative(`Cannot prepare pin directory ${quote(d)}`, () => bpfAddon().bpfEnsureBpffs(d));
}

/** Struct layout from an object's BTF (size and members with byte offsets and sizes). */
export function btfStructLayout(objectPath: string, structName: string) {
  return callNativeSync(`Cannot read struct ${quote(structName)} from ${quote(objectPath)}`, () => bpfAddon().bpfBtfStructLayout(objectPath, structName));
}

/** Number of possible CPUs: per-CPU maps hold one value for each. */
export function possibleCpus(): number {
  return bpfAddon().bpfPossibleCpus();
}
