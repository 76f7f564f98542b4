/**
 * The runtime configuration map (veil_config): one entry at index 0 that every program reads
 * (mode, strict mode, WireGuard devices per channel, this node's identity and index).
 */
import { openShared, type BpfMap, type MapSource } from './bpf-map.js';
import { configCodec, u32Codec, type DatapathConfig } from './layout.js';

export const CONFIG_MAP = 'veil_config';
export type { DatapathConfig };

export class ConfigMap {
  private constructor(private readonly map: BpfMap<number, DatapathConfig>) {}

  static async open(source: MapSource): Promise<ConfigMap> {
    return new ConfigMap(await openShared(source, CONFIG_MAP, u32Codec, configCodec));
  }

  /** The configuration programs see now (all zero before the agent wrote it). */
  async get(): Promise<DatapathConfig> {
    const v = await this.map.get(0);
    if (!v) throw new Error(`Array map ${CONFIG_MAP} has no index 0`); // an array map always has it
    return v;
  }

  /** Replaces the configuration in one write: programs see the old or the new one, never a mix. */
  async set(cfg: DatapathConfig): Promise<void> {
    await this.map.set(0, cfg);
  }
}
