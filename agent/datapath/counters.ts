/**
 * The per-CPU counter map (veil_counters): packets and bytes per (hook, reason), summed over
 * CPUs and named after reasons.h.
 */
import { openShared, perCpu, type BpfMap, type MapSource } from './bpf-map.js';
import { counterCodec, u32Codec, type CounterValue } from './layout.js';
import { possibleCpus } from './datapath.js';
import { HOOK_MAX, REASON_MAX, counterIndex, hookName, isDrop, reasonName } from './reasons.js';

export const COUNTER_MAP = 'veil_counters';

export interface CounterRow {
  hook: string;
  reason: string;
  drop: boolean;
  packets: bigint;
  bytes: bigint;
}

export class Counters {
  private constructor(private readonly map: BpfMap<number, CounterValue[]>) {}

  static async open(source: MapSource): Promise<Counters> {
    return new Counters(await openShared(source, COUNTER_MAP, u32Codec, perCpu(counterCodec, possibleCpus())));
  }

  /** One counter summed over every CPU. */
  async get(hook: number, reason: number): Promise<CounterValue> {
    const v = (await this.map.get(counterIndex(hook, reason))) ?? [];
    return sum(v);
  }

  /** Every non-zero counter, by hook and reason name. */
  async read(): Promise<CounterRow[]> {
    const rows: CounterRow[] = [];
    for (const [index, perCpuValues] of await this.map.entries()) {
      const hook = Math.floor(index / REASON_MAX);
      const reason = index % REASON_MAX;
      if (hook >= HOOK_MAX) continue;
      const s = sum(perCpuValues);
      if (s.packets === 0n && s.bytes === 0n) continue;
      rows.push({ hook: hookName(hook), reason: reasonName(reason), drop: isDrop(reason), packets: s.packets, bytes: s.bytes });
    }
    return rows;
  }
}

function sum(values: CounterValue[]): CounterValue {
  let packets = 0n;
  let bytes = 0n;
  for (const v of values) {
    packets += v.packets;
    bytes += v.bytes;
  }
  return { packets, bytes };
}
