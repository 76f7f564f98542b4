/**
 * The addon's eBPF exports (native/src/bpf.cc, bpf-attach.cc, bpf-ringbuf.cc), typed. Only the
 * modules of agent/datapath/ call them, after validating their arguments.
 */
import { native } from '../native/addon.js';

/** A program of a loaded object. `fd` is valid until the object is closed. */
export interface RawProgram {
  name: string;
  section: string;
  fd: number;
  id: number;
  type: number;
}

/** A map as libbpf or the kernel describes it. */
export interface RawMapInfo {
  name: string;
  id: number;
  type: number;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  flags: number;
}

export interface RawObjectMap extends RawMapInfo {
  fd: number;
  pinPath?: string;
}

export interface RawMapDescription extends RawMapInfo {
  perCpu: boolean;
  possibleCpus: number;
}

export interface RawObject {
  handle: unknown;
  programs: RawProgram[];
  maps: RawObjectMap[];
}

export type AttachMode = 'auto' | 'tcx' | 'clsact';
export type Direction = 'ingress' | 'egress';

export interface RawAttachArgs {
  interface: string | number;
  direction: Direction;
  netns?: string;
  mode?: AttachMode;
  pinDir: string;
}

export interface RawAttachResult {
  mode: 'tcx' | 'clsact';
  action: 'created' | 'replaced' | 'unchanged';
  ifindex: number;
  progId: number;
}

export interface RawAttachment {
  ifindex: number;
  tcx?: { progId: number; linkId: number };
  clsact?: { progId: number };
}

export interface RawPinnedLink {
  name: string;
  linkId: number;
  progId: number;
  /** 0 when the link's device is gone (the link runs nothing). */
  ifindex: number;
  direction?: Direction;
}

export interface RawBatchResult {
  count: number;
  method: 'batch' | 'iterate';
}

export interface RawDump extends RawBatchResult {
  keys: Buffer;
  values: Buffer;
}

export interface RawTestRun {
  retval: number;
  dataOut: Buffer;
  mark: number;
  durationNs: number;
}

export interface RawBtfMember {
  name: string;
  offset: number;
  size: number;
  bitOffset: number;
  bitSize: number;
}

/** A map named by its fd or by its pinned path. */
export type MapRef = number | string;
export type BatchMethod = 'auto' | 'batch' | 'iterate';

export interface BpfAddon {
  bpfLoad(path: string, opts: { pinDir: string; programs?: string[]; rodata?: Record<string, Uint8Array>; maxEntries?: Record<string, number>; reuseMaps?: Record<string, number> }): Promise<RawObject>;
  bpfClose(handle: unknown): void;
  bpfMapInfo(map: MapRef): Promise<RawMapDescription>;
  bpfMapLookup(map: MapRef, key: Uint8Array): Promise<Buffer | null>;
  bpfMapUpdate(map: MapRef, key: Uint8Array, value: Uint8Array, flags: number): Promise<void>;
  bpfMapDelete(map: MapRef, key: Uint8Array): Promise<boolean>;
  bpfMapUpdateBatch(map: MapRef, keys: Uint8Array, values: Uint8Array, opts: { flags?: number; method?: BatchMethod }): Promise<RawBatchResult>;
  bpfMapDeleteBatch(map: MapRef, keys: Uint8Array, opts: { method?: BatchMethod }): Promise<RawBatchResult>;
  bpfMapDump(map: MapRef, opts: { method?: BatchMethod; chunk?: number }): Promise<RawDump>;
  bpfTestRun(progFd: number, data: Uint8Array, opts: { ctx?: { mark?: number; ifindex?: number; ingressIfindex?: number; priority?: number }; repeat?: number; netns?: string }): Promise<RawTestRun>;
  bpfBtfStructLayout(objectPath: string, structName: string): { size: number; members: RawBtfMember[] };
  bpfPossibleCpus(): number;
  bpfEnsureBpffs(dir: string): Promise<void>;
  bpfAttach(args: RawAttachArgs & { progFd: number }): Promise<RawAttachResult>;
  bpfDetach(args: RawAttachArgs): Promise<{ removed: ('tcx' | 'clsact')[]; ifindex: number }>;
  bpfAttachment(args: RawAttachArgs): Promise<RawAttachment>;
  bpfLinks(args: { pinDir: string; prune?: boolean }): Promise<RawPinnedLink[]>;
  bpfRingbufOpen(mapFd: number, onRecord: (record: Buffer) => void): unknown;
  bpfRingbufClose(handle: unknown): { lost: number };
  bpfRingbufLost(handle: unknown): number;
}

/** The loaded addon, typed for the datapath. */
export function bpfAddon(): BpfAddon {
  return native() as unknown as BpfAddon;
}

/** Kernel map types the datapath uses (include/uapi/linux/bpf.h enum bpf_map_type). */
export const MapType = {
  HASH: 1,
  ARRAY: 2,
  PERCPU_HASH: 5,
  PERCPU_ARRAY: 6,
  LRU_HASH: 9,
  LRU_PERCPU_HASH: 10,
  LPM_TRIE: 11,
  RINGBUF: 27,
} as const;

/** Update flags (BPF_ANY, BPF_NOEXIST, BPF_EXIST). */
export const UpdateFlags = { ANY: 0, NOEXIST: 1, EXIST: 2 } as const;
