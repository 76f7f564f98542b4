import { describe, expect, it } from 'vitest';
import { eventRecord, formatEventLine, monotonicToDate } from '../../../agent/datapath/event-record.js';
import { Hook, Reason } from '../../../agent/datapath/reasons.js';
import { flowEvent, sampleEvent } from './event-sample.js';

const at = new Date('2026-12-07T21:00:00.000Z');

describe('event records', () => {
  it('name the hook, reason, protocol and identities', () => {
    const describe_ = (id: number) => (id === 300 ? 'default:app=web' : id === 2 ? 'reserved:world' : undefined);
    const r = eventRecord(sampleEvent(), describe_, at);
    expect(r).toEqual({
      time: '2026-12-07T21:00:00.000Z',
      type: 'drop',
      hook: 'FROM_POD',
      reason: 'DROP_POLICY_DEFAULT_DENY',
      reasonCode: Reason.DROP_POLICY_DEFAULT_DENY,
      srcIdentity: 300,
      dstIdentity: 400,
      srcLabels: 'default:app=web',
      family: 4,
      proto: 'udp',
      saddr: '10.0.1.10',
      daddr: '10.0.2.20',
      sport: 41000,
      dport: 5555,
      ifindex: 7,
    });
  });

  it('converts the monotonic timestamp to wall-clock time', () => {
    const offset = BigInt(at.getTime()) * 1_000_000n - 7_000_000_000n;
    expect(monotonicToDate(5_000_000_000n, offset).toISOString()).toBe('2026-12-07T20:59:58.000Z');
    // now, give or take the test's own run time
    const now = monotonicToDate(process.hrtime.bigint()).getTime();
    expect(Math.abs(now - Date.now())).toBeLessThan(1000);
  });

  it('prints one line per event: time, hook, verdict and reason, addresses with ports, identities', () => {
    const line = formatEventLine(eventRecord(sampleEvent(), (id) => (id === 300 ? 'default:app=web' : undefined), at));
    expect(line).toMatch(/^2026-12-07T21:00:00.000Z FROM_POD +DROP POLICY_DEFAULT_DENY +udp +10\.0\.1\.10:41000 300\(default:app=web\) -> 10\.0\.2\.20:5555 400$/);
    const flow = formatEventLine(eventRecord(flowEvent({ family: 6, saddr: 'fd00:1::10', daddr: 'fd00:2::20', proto: 6 }), undefined, at));
    expect(flow).toContain('FLOW WIREGUARD');
    expect(flow).toContain('[fd00:1::10]:41000 300 -> [fd00:2::20]:5555 400');
  });

  it('shows ICMP type and code instead of ports', () => {
    const line = formatEventLine(eventRecord(sampleEvent({ proto: 1, sport: 77, dport: 8 << 8, hook: Hook.TO_POD }), undefined, at));
    expect(line).toContain('TO_POD');
    expect(line).toMatch(/icmp +10\.0\.1\.10 300 -> 10\.0\.2\.20 400 type 8 code 0 id 77$/);
  });
});
