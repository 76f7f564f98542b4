/**
 * A drop storm against the event reader: the fixture's drop program runs 2,000,000 times under
 * BPF_PROG_TEST_RUN (each run counts a drop and emits an event) while the JavaScript thread is
 * kept busy, as an agent's would be under load. The reader thread keeps draining the ring buffer;
 * at most 16 batches wait for JavaScript and the rest are discarded and counted (EventReader.lost),
 * so memory stays bounded; every drop is still in the counter; nothing is counted twice.
 */
import { describe, expect, it } from 'vitest';
import { Counters } from '../../../agent/datapath/counters.js';
import { loadObject, testRun } from '../../../agent/datapath/datapath.js';
import { EventReader } from '../../../agent/datapath/events.js';
import { Hook, Reason } from '../../../agent/datapath/reasons.js';
import { fixtureObject, ipv4UdpFrame, pinDirPerTest } from '../../support/bpf.js';
import { eventually } from '../../support/netns.js';

const pinDir = pinDirPerTest('ev');
const RUNS = 2_000_000;

describe('event reader under a drop storm', () => {
  it('sheds and counts what JavaScript cannot take, never more than was dropped', async () => {
    const dir = pinDir();
    const obj = await loadObject(fixtureObject('loader-fixture'), { pinDir: dir });
    let delivered = 0;
    const reader = EventReader.open(obj.map('veil_events'), { onEvent: () => delivered++ });
    try {
      // A storm while the JavaScript thread is busy. On a loaded machine the reader thread itself
      // may get too little CPU in one storm to fill its queue (it then drains fewer, larger
      // batches): storm again, a bounded number of times, until it had to shed.
      let storms = 0;
      while (storms < 5 && (storms === 0 || reader.lost === 0)) {
        storms++;
        const storm = testRun(obj.program('fixture_drop'), ipv4UdpFrame('10.0.0.1', '10.0.0.9'), { repeat: RUNS });
        const until = Date.now() + 3000;
        while (Date.now() < until) {
          // busy
        }
        await storm;
        // the queued batches arrive; what did not fit was counted, not kept
        await eventually(async () => {
          const before = delivered;
          await new Promise((r) => setTimeout(r, 300));
          return delivered === before;
        }, { timeoutMs: 30_000, what: 'the reader to go quiet' });
      }
      const counters = await Counters.open(dir);
      const dropped = (await counters.get(Hook.FROM_POD, Reason.DROP_POLICY_DENY)).packets;
      expect(dropped).toBe(BigInt(RUNS * storms));
      const lost = reader.lost;
      expect(lost).toBeGreaterThan(0);
      expect(delivered).toBeGreaterThan(0);
      // the rest were lost in the full ring buffer (the programs skip the event, never the count)
      expect(BigInt(delivered + lost)).toBeLessThanOrEqual(dropped);
    } finally {
      reader.close();
      obj.close();
    }
    expect(reader.lost).toBeGreaterThan(0);
  });
});
