/**
 * The ipcache: address or prefix -> identity, node, tunnel endpoint, key slot. Two tiers per
 * family (maps.h): host addresses (/32, /128) in a hash map, the fast common case, and other
 * prefixes in an LPM trie that programs consult only when the hash misses. The API takes
 * prefixes (a bare address is a host prefix) and picks the tier.
 */
import { canonicalCidr, formatCidr, type IpFamily } from '../net/ip.js';
import { openShared, type BatchResult, type BpfMap, type MapSource } from './bpf-map.js';
import { hostKeyCodec, ipcacheValueCodec, lpmKeyCodec, type IpcacheValue } from './layout.js';

export const IPCACHE_MAPS = { host4: 'veil_ipc4_host', host6: 'veil_ipc6_host', lpm4: 'veil_ipc4_lpm', lpm6: 'veil_ipc6_lpm' } as const;
export type { IpcacheValue };

type Tier = keyof typeof IPCACHE_MAPS;

export class Ipcache {
  private constructor(private readonly maps: Record<Tier, BpfMap<string, IpcacheValue>>) {}

  static async open(source: MapSource): Promise<Ipcache> {
    const [host4, host6, lpm4, lpm6] = await Promise.all([
      openShared(source, IPCACHE_MAPS.host4, hostKeyCodec(4), ipcacheValueCodec),
      openShared(source, IPCACHE_MAPS.host6, hostKeyCodec(6), ipcacheValueCodec),
      openShared(source, IPCACHE_MAPS.lpm4, lpmKeyCodec(4), ipcacheValueCodec),
      openShared(source, IPCACHE_MAPS.lpm6, lpmKeyCodec(6), ipcacheValueCodec),
    ]);
    return new Ipcache({ host4, host6, lpm4, lpm6 });
  }

  /** The tier and key of a prefix (canonical: host bits cleared). */
  static place(prefix: string): { tier: Tier; key: string } {
    const c = canonicalCidr('prefix', prefix);
    const host = c.prefixLen === (c.family === 4 ? 32 : 128);
    const tier: Tier = host ? (c.family === 4 ? 'host4' : 'host6') : c.family === 4 ? 'lpm4' : 'lpm6';
    return { tier, key: host ? c.addr : formatCidr(c) };
  }

  async set(prefix: string, value: IpcacheValue): Promise<void> {
    const { tier, key } = Ipcache.place(prefix);
    await this.maps[tier].set(key, value);
  }

  /** The entry stored for exactly this prefix (not a longest-prefix match). */
  async get(prefix: string): Promise<IpcacheValue | undefined> {
    const { tier, key } = Ipcache.place(prefix);
    return this.maps[tier].get(key);
  }

  async delete(prefix: string): Promise<boolean> {
    const { tier, key } = Ipcache.place(prefix);
    return this.maps[tier].delete(key);
  }

  /** Writes many entries, batched per tier; every prefix is validated before anything is written. */
  async setMany(entries: Iterable<readonly [string, IpcacheValue]>): Promise<BatchResult> {
    const byTier = this.split(entries, (e) => e[0], (key, e) => [key, e[1]] as const);
    let count = 0;
    let method: BatchResult['method'] = 'batch';
    for (const [tier, list] of byTier) {
      const r = await this.maps[tier].setMany(list);
      count += r.count;
      if (r.method === 'iterate') method = 'iterate';
    }
    return { count, method };
  }

  async deleteMany(prefixes: Iterable<string>): Promise<number> {
    const byTier = this.split(prefixes, (p) => p, (key) => key);
    let count = 0;
    for (const [tier, list] of byTier) count += (await this.maps[tier].deleteMany(list)).count;
    return count;
  }

  /** Every entry, keyed by prefix ("10.0.0.5/32", "10.1.0.0/16"). */
  async entries(): Promise<Array<[string, IpcacheValue]>> {
    const out: Array<[string, IpcacheValue]> = [];
    for (const tier of Object.keys(IPCACHE_MAPS) as Tier[]) {
      for (const [k, v] of await this.maps[tier].entries()) {
        const family: IpFamily = tier.endsWith('4') ? 4 : 6;
        out.push([tier.startsWith('host') ? `${k}/${family === 4 ? 32 : 128}` : k, v]);
      }
    }
    return out;
  }

  private split<T, R>(items: Iterable<T>, prefixOf: (t: T) => string, make: (key: string, t: T) => R): Map<Tier, R[]> {
    const by = new Map<Tier, R[]>();
    for (const t of items) {
      const { tier, key } = Ipcache.place(prefixOf(t));
      let l = by.get(tier);
      if (!l) by.set(tier, (l = []));
      l.push(make(key, t));
    }
    return by;
  }
}
