/**
 * The datapath loader as the agent wires it: one pin directory and attach mode for the node,
 * every kernel change logged (a child logger "datapath"), restart adoption and pruning. The
 * operations themselves are datapath.ts's; this only binds the node's configuration to them.
 */
import { moduleLogger, type Logger } from '../log/logger.js';
import {
  attach,
  attachment,
  checkPinDir,
  DEFAULT_PIN_DIR,
  detach,
  ensurePinDir,
  listLinks,
  loadObjects,
  pruneLinks,
  type AttachResult,
  type AttachTarget,
  type Attachment,
  type BpfObject,
  type BpfProgram,
  type LoadOptions,
  type PinnedLink,
} from './datapath.js';
import type { AttachMode } from './native.js';

export interface DatapathLoaderDeps {
  /** The process's root logger. */
  log: Logger;
  /** Where maps and links are pinned (default /sys/fs/bpf/veil). */
  pinDir?: string;
  /** auto (default): tcx where the kernel has it, else clsact. */
  mode?: AttachMode;
}

export class DatapathLoader {
  readonly pinDir: string;
  readonly mode: AttachMode;
  private readonly log: Logger;

  constructor(deps: DatapathLoaderDeps) {
    this.pinDir = checkPinDir('pinDir', deps.pinDir ?? DEFAULT_PIN_DIR);
    this.mode = deps.mode ?? 'auto';
    this.log = moduleLogger(deps.log, 'datapath');
  }

  /** Mounts bpffs if needed and creates the pin directory. */
  async prepare(): Promise<void> {
    await ensurePinDir(this.pinDir);
  }

  /** Loads the node's objects sharing every map (pinned maps are adopted with their contents). */
  async load(paths: string[], opts: Omit<LoadOptions, 'pinDir'> = {}): Promise<BpfObject[]> {
    const objects = await loadObjects(paths, { ...opts, pinDir: this.pinDir });
    for (const o of objects) {
      const pinned = [...o.maps.values()].filter((m) => m.pinPath).map((m) => m.name);
      this.log.info({ object: o.path, programs: [...o.programs.keys()], pinnedMaps: pinned }, 'Loaded eBPF object');
    }
    return objects;
  }

  /** Attaches (idempotent); logs created and replaced attachments at info, unchanged at debug. */
  async attach(program: BpfProgram, target: AttachTarget): Promise<AttachResult> {
    const r = await attach(program, target, { pinDir: this.pinDir, mode: this.mode });
    const fields = { program: program.name, interface: target.interface, direction: target.direction, netns: target.netns, mode: r.mode, ifindex: r.ifindex };
    if (r.action === 'unchanged') this.log.debug(fields, 'eBPF program already attached');
    else this.log.info({ ...fields, action: r.action }, r.action === 'created' ? 'Attached eBPF program' : 'Replaced attached eBPF program');
    return r;
  }

  async detach(target: AttachTarget): Promise<('tcx' | 'clsact')[]> {
    const removed = await detach(target, { pinDir: this.pinDir });
    if (removed.length) this.log.info({ interface: target.interface, direction: target.direction, netns: target.netns, removed }, 'Detached eBPF program');
    return removed;
  }

  /** What is attached to the target now (adopted by attaching the new program over it). */
  attachment(target: AttachTarget): Promise<Attachment> {
    return attachment(target, { pinDir: this.pinDir });
  }

  /** Every pinned link (ifindex 0: defunct). */
  links(): Promise<PinnedLink[]> {
    return listLinks({ pinDir: this.pinDir });
  }

  /** Unpins links whose device is gone; call after every source has synced. */
  async prune(): Promise<PinnedLink[]> {
    const pruned = await pruneLinks({ pinDir: this.pinDir });
    if (pruned.length) this.log.info({ links: pruned.map((l) => l.name) }, 'Unpinned eBPF links of deleted devices');
    return pruned;
  }
}
