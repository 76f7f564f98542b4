/**
 * The sweep of expired connection-tracking entries. The programs already ignore an entry past
 * its expiry and the LRU evicts the oldest when a table is full; the sweep gives the memory back
 * before that and keeps listings short. Run by the agent as a timer job:
 *
 *   jobs.timer('conntrack-gc', 30_000, conntrackGcJob(ct, log));
 *
 * An entry a program refreshes between the listing and the delete would be lost (the connection
 * then meets policy again on its next packet and, if still allowed, re-enters); the window is
 * the length of one sweep, and entries are only candidates once expired, which a live
 * connection's entry is not.
 */
import type { JobFn } from '../lifecycle/jobs.js';
import type { Logger } from '../log/logger.js';
import { monotonicNowNs, type Conntrack } from './conntrack.js';

export interface SweepResult {
  /** Entries looked at, both families. */
  scanned: number;
  /** Expired entries deleted. */
  deleted: number;
}

/** Deletes every entry expired at `now` from both tables. */
export async function sweepConntrack(ct: Conntrack, now: bigint = monotonicNowNs()): Promise<SweepResult> {
  const entries = await ct.list(now);
  let deleted = 0;
  for (const family of [4, 6] as const) {
    const dead = entries
      .filter((e) => e.family === family && e.expired)
      .map(({ saddr, daddr, sport, dport, proto }) => ({ saddr, daddr, sport, dport, proto }));
    if (dead.length > 0) deleted += (await ct.deleteMany(family, dead)).count;
  }
  return { scanned: entries.length, deleted };
}

/** The sweep as a job body (agent/lifecycle/jobs.ts); logs what it removed. */
export function conntrackGcJob(ct: Conntrack, log?: Logger): JobFn {
  return async () => {
    const r = await sweepConntrack(ct);
    if (r.deleted > 0) log?.debug({ scanned: r.scanned, deleted: r.deleted }, 'Removed expired connection-tracking entries');
  };
}
