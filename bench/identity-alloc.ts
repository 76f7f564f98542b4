/**
 * Identity allocations per second against a real etcd (started the way the tests start it,
 * tests/support/etcd.ts). Two cases, each on fresh label sets under a fresh key prefix per
 * repetition:
 *   - one allocator (one agent) with 16 allocations in flight: IdentityAllocator.allocate()
 *     (get mapping, create claim, create mapping — three round trips) against the floor of one
 *     plain etcd3 put per label set with the same concurrency (a write that agrees on nothing);
 *   - 8 allocators with their own clients racing over the same label sets (the acceptance test's
 *     shape): time until every allocator has every id, against the same put floor.
 * Repetition 0 is a warm-up, kept in `extra.warmup` and left out of the median.
 */
import { loadavg } from 'node:os';
import etcd3 from 'etcd3';
import { IdentityAllocator } from '../agent/identity/allocator.js';
import { canonicalLabelSet, type LabelSet } from '../agent/identity/labels.js';
import { openEtcdStore, type EtcdStore } from '../agent/store/etcd-store.js';
import { EtcdServer } from '../tests/support/etcd.js';
import { compare, round, seconds, type ComparisonCase } from './lib/report.js';

export interface AllocOptions {
  reps: number;
}

const SETS = 1_000;
const IN_FLIGHT = 16;
const RACERS = 8;

function labelSets(rep: number): LabelSet[] {
  return Array.from({ length: SETS }, (_, i) =>
    canonicalLabelSet({ namespace: `bench-${rep}`, serviceAccount: `sa-${i % 10}`, podLabels: { app: `app-${i}` } }),
  );
}

async function pool<T>(items: T[], fn: (item: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: IN_FLIGHT }, async () => {
      for (let i = next++; i < items.length; i = next++) await fn(items[i]!);
    }),
  );
}

export async function allocCases(o: AllocOptions): Promise<ComparisonCase[]> {
  const etcd = await EtcdServer.start();
  const stores: EtcdStore[] = [];
  const client = new etcd3.Etcd3({ hosts: etcd.clientUrl });
  try {
    for (let i = 0; i < RACERS; i++) stores.push(await openEtcdStore({ endpoints: [etcd.clientUrl], requestTimeoutMs: 10_000 }));
    const put = async (rep: string) => {
      const sets = labelSets(0);
      return seconds(() => pool(sets, (s) => client.put(`/bench-put/${rep}/${s.hash}`).value('x').exec()));
    };

    const single = { ours: [] as number[], base: [] as number[] };
    const racing = { ours: [] as number[], base: [] as number[], lost: [] as number[] };
    for (let rep = 0; rep <= o.reps; rep++) {
      const sets = labelSets(rep);
      const alloc = new IdentityAllocator({ store: stores[0]!, prefix: `/bench-alloc/${rep}/` });
      single.ours.push(await seconds(() => pool(sets, (s) => alloc.allocate(s))));
      single.base.push(await put(`single-${rep}`));

      const racers = stores.map((store) => new IdentityAllocator({ store, prefix: `/bench-race/${rep}/` }));
      racing.ours.push(await seconds(() => Promise.all(racers.map((a) => pool(sets, (s) => a.allocate(s))))));
      racing.lost.push(racers.reduce((n, a) => n + a.stats.claimsLost + a.stats.mappingsLost, 0));
      racing.base.push(await put(`race-${rep}`));
    }

    const rows: ComparisonCase[] = [];
    const one = compare('identity allocations, 1 allocator (real etcd)', SETS, 'etcd3 put per label set', single.ours.slice(1), single.base.slice(1));
    one.load_1m = round(loadavg()[0]!, 2);
    one.extra = {
      allocations_per_s: round(SETS / one.ours_s, 0),
      puts_per_s: round(SETS / one.baseline_s, 0),
      in_flight: IN_FLIGHT,
      warmup: { ours_s: round(single.ours[0]!), baseline_s: round(single.base[0]!) },
    };
    one.note = 'ours: get mapping + create claim + create mapping per new label set; baseline: one put, no agreement';
    rows.push(one);

    const race = compare(`identity allocations, ${RACERS} allocators racing (real etcd)`, SETS, 'etcd3 put per label set', racing.ours.slice(1), racing.base.slice(1));
    race.load_1m = round(loadavg()[0]!, 2);
    race.extra = {
      label_sets_per_s: round(SETS / race.ours_s, 0),
      allocate_calls_per_s: round((SETS * RACERS) / race.ours_s, 0),
      races_lost: racing.lost.slice(1),
      allocators: RACERS,
      in_flight_each: IN_FLIGHT,
      warmup: { ours_s: round(racing.ours[0]!), baseline_s: round(racing.base[0]!) },
    };
    race.note = `${RACERS} allocators (own clients) each allocate all ${SETS} label sets; time until all agree`;
    rows.push(race);
    return rows;
  } finally {
    client.close();
    await Promise.all(stores.map((s) => s.close()));
    await etcd.cleanup();
  }
}
