/**
 * A typed view of one BPF map: key and value codecs over the addon's map calls (single and
 * batched, every kernel call on a worker thread). The map is named by fd (a loaded object's map)
 * or by pinned path (a map another process, or an earlier agent, pinned). Per-CPU maps hold one
 * value per possible CPU: use perCpu(codec) as the value codec.
 */
import { ValidationError } from '../errors.js';
import { callNative } from '../native/addon.js';
import { quote } from '../net/ip.js';
import { checkOwnerOpen, type BpfMapHandle } from './datapath.js';
import type { Codec } from './layout.js';
import { bpfAddon, UpdateFlags, type BatchMethod, type MapRef, type RawMapDescription } from './native.js';

export type UpdateMode = 'any' | 'create' | 'replace';
const FLAG: Record<UpdateMode, number> = { any: UpdateFlags.ANY, create: UpdateFlags.NOEXIST, replace: UpdateFlags.EXIST };

export interface BatchResult {
  /** Entries written (update) or removed (delete). */
  count: number;
  /** batch: BPF_MAP_*_BATCH; iterate: one call per entry (map types without batch ops). */
  method: 'batch' | 'iterate';
}

/** Per-CPU value codec: one value per possible CPU, each padded to 8 bytes, as the kernel lays them out. */
export function perCpu<V>(codec: Codec<V>, cpus: number): Codec<V[]> {
  const slot = Math.ceil(codec.size / 8) * 8;
  return {
    size: slot * cpus,
    encode(values, out, off) {
      if (!Array.isArray(values) || values.length !== cpus) {
        throw new ValidationError('values', `Invalid per-CPU value: give one value per possible CPU (${cpus}), got ${Array.isArray(values) ? values.length : quote(values)}`);
      }
      out.fill(0, off, off + slot * cpus);
      values.forEach((v, i) => codec.encode(v, out, off + i * slot));
    },
    decode(buf, off) {
      const out: V[] = [];
      for (let i = 0; i < cpus; i++) out.push(codec.decode(buf, off + i * slot));
      return out;
    },
  };
}

export class BpfMap<K, V> {
  private constructor(
    readonly ref: MapRef,
    readonly info: RawMapDescription,
    readonly key: Codec<K>,
    readonly value: Codec<V>,
    /** The loaded object's map this was opened from (keeps the object, and so the fd, alive). */
    private readonly handle: BpfMapHandle | undefined,
  ) {}

  /** Every call checks that an fd-backed map's object is still open (its fd number could be reused). */
  private get liveRef(): MapRef {
    if (this.handle) checkOwnerOpen(this.handle);
    return this.ref;
  }

  /**
   * Opens a map by handle, fd or pinned path and checks that the codecs match its key and value
   * sizes (per-CPU maps: the value codec covers every CPU).
   */
  static async open<K, V>(map: BpfMapHandle | MapRef, key: Codec<K>, value: Codec<V>): Promise<BpfMap<K, V>> {
    const handle = typeof map === 'object' ? map : undefined;
    if (handle) checkOwnerOpen(handle);
    const ref: MapRef = handle ? handle.fd : (map as MapRef);
    if (typeof ref === 'number' ? !Number.isInteger(ref) || ref < 0 : typeof ref !== 'string' || !ref.startsWith('/')) {
      throw new ValidationError('map', `Invalid map ${quote(ref)}: give a map fd or the absolute path of a pinned map`);
    }
    const info = await callNative(`Cannot open BPF map ${quote(ref)}`, () => bpfAddon().bpfMapInfo(ref));
    const valueBytes = info.perCpu ? Math.ceil(info.valueSize / 8) * 8 * info.possibleCpus : info.valueSize;
    if (key.size !== info.keySize) {
      throw new ValidationError('key', `Map ${quote(info.name)} has ${info.keySize}-byte keys but the key codec encodes ${key.size}; the agent and the loaded programs disagree on the ABI: rebuild and reload both`);
    }
    if (value.size !== valueBytes) {
      throw new ValidationError('value', `Map ${quote(info.name)} has ${valueBytes}-byte values${info.perCpu ? ` (${info.possibleCpus} CPUs)` : ''} but the value codec encodes ${value.size}; the agent and the loaded programs disagree on the ABI: rebuild and reload both`);
    }
    return new BpfMap(ref, info, key, value, handle);
  }

  get name(): string {
    return this.info.name;
  }

  private encodeKey(k: K): Buffer {
    const b = Buffer.alloc(this.key.size);
    this.key.encode(k, b, 0);
    return b;
  }

  private encodeValue(v: V): Buffer {
    const b = Buffer.alloc(this.value.size);
    this.value.encode(v, b, 0);
    return b;
  }

  async get(k: K): Promise<V | undefined> {
    const key = this.encodeKey(k);
    const r = await callNative(`Cannot look up in map ${quote(this.name)}`, () => bpfAddon().bpfMapLookup(this.liveRef, key));
    return r ? this.value.decode(r, 0) : undefined;
  }

  async set(k: K, v: V, mode: UpdateMode = 'any'): Promise<void> {
    const key = this.encodeKey(k);
    const value = this.encodeValue(v);
    await callNative(`Cannot update map ${quote(this.name)}`, () => bpfAddon().bpfMapUpdate(this.liveRef, key, value, FLAG[mode]));
  }

  /** True when the key existed. */
  async delete(k: K): Promise<boolean> {
    const key = this.encodeKey(k);
    return callNative(`Cannot delete from map ${quote(this.name)}`, () => bpfAddon().bpfMapDelete(this.liveRef, key));
  }

  /**
   * Writes many entries in one kernel call where the map type supports it (else one per entry).
   * Every entry is encoded (and validated) before anything is written; on a kernel failure the
   * entries before the failing one are written and the error's `index` names it.
   */
  async setMany(entries: Iterable<readonly [K, V]>, opts: { mode?: UpdateMode; method?: BatchMethod } = {}): Promise<BatchResult> {
    const list = [...entries];
    const keys = Buffer.alloc(list.length * this.key.size);
    const values = Buffer.alloc(list.length * this.value.size);
    list.forEach(([k, v], i) => {
      try {
        this.key.encode(k, keys, i * this.key.size);
        this.value.encode(v, values, i * this.value.size);
      } catch (err) {
        if (err instanceof ValidationError) throw new ValidationError(`entries[${i}].${err.field}`, `Entry ${i}: ${err.message}`, { cause: err });
        throw err;
      }
    });
    if (list.length === 0) return { count: 0, method: 'batch' };
    return callNative(`Cannot update ${list.length} entries of map ${quote(this.name)}`, () =>
      bpfAddon().bpfMapUpdateBatch(this.liveRef, keys, values, { flags: FLAG[opts.mode ?? 'any'], method: opts.method ?? 'auto' }),
    );
  }

  /** Removes many keys (absent keys are skipped); count = how many existed. */
  async deleteMany(keysIn: Iterable<K>, opts: { method?: BatchMethod } = {}): Promise<BatchResult> {
    const list = [...keysIn];
    const keys = Buffer.alloc(list.length * this.key.size);
    list.forEach((k, i) => this.key.encode(k, keys, i * this.key.size));
    if (list.length === 0) return { count: 0, method: 'batch' };
    return callNative(`Cannot delete ${list.length} entries of map ${quote(this.name)}`, () => bpfAddon().bpfMapDeleteBatch(this.liveRef, keys, { method: opts.method ?? 'auto' }));
  }

  /** Every entry (batched lookup where the map type supports it, else get_next_key). */
  async entries(opts: { method?: BatchMethod; chunk?: number } = {}): Promise<Array<[K, V]>> {
    const d = await callNative(`Cannot read map ${quote(this.name)}`, () =>
      bpfAddon().bpfMapDump(this.liveRef, { method: opts.method ?? 'auto', ...(opts.chunk ? { chunk: opts.chunk } : {}) }),
    );
    const out: Array<[K, V]> = [];
    for (let i = 0; i < d.count; i++) out.push([this.key.decode(d.keys, i * this.key.size), this.value.decode(d.values, i * this.value.size)]);
    return out;
  }

  async *[Symbol.asyncIterator](): AsyncIterator<[K, V]> {
    yield* await this.entries();
  }

  /** Removes every entry (hash and LPM maps; array maps cannot shrink). */
  async clear(): Promise<number> {
    const keys = (await this.entries()).map(([k]) => k);
    return (await this.deleteMany(keys)).count;
  }
}

/** Where a shared map lives: a loaded object (its map by name) or a pin directory (the pinned map). */
export type MapSource = { map(name: string): BpfMapHandle } | string;

/** Opens the shared map `name` from a loaded object or from `<pinDir>/<name>`. */
export function openShared<K, V>(source: MapSource, name: string, key: Codec<K>, value: Codec<V>): Promise<BpfMap<K, V>> {
  return BpfMap.open(typeof source === 'string' ? `${source.replace(/\/+$/, '')}/${name}` : source.map(name), key, value);
}
