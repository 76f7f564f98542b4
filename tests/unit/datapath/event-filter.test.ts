import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../../agent/errors.js';
import { eventFilterQuery, eventMatches, parseEventFilter, parseReason } from '../../../agent/datapath/event-filter.js';
import { eventRecord } from '../../../agent/datapath/event-record.js';
import { flowEvent, sampleEvent } from './event-sample.js';

describe('event filter', () => {
  it('accepts reason names in any spelling, and numbers', () => {
    for (const v of ['policy-default-deny', 'POLICY_DEFAULT_DENY', 'drop_policy_default_deny', 'DROP_POLICY_DEFAULT_DENY', '36']) {
      expect(parseReason(v)).toBe('DROP_POLICY_DEFAULT_DENY');
    }
    expect(parseReason('wireguard')).toBe('FWD_WIREGUARD');
  });

  it('refuses unknown values, naming what is accepted', () => {
    expect(() => parseReason('nope')).toThrow(ValidationError);
    expect(() => parseReason('nope')).toThrow(/Unknown event reason "nope": use one of .*policy-deny/);
    expect(() => parseReason('99')).toThrow(/Unknown event reason "99"/);
    expect(() => parseEventFilter({ type: 'drops' })).toThrow(/Unknown event type "drops": use "drop" or "flow"/);
    expect(() => parseEventFilter({ identity: '-1' })).toThrow(/Invalid identity "-1"/);
    expect(() => parseEventFilter({ identity: '4294967296' })).toThrow(/Invalid identity/);
    expect(() => parseEventFilter({ address: '10.0.0.300' })).toThrow(ValidationError);
    expect(() => parseEventFilter({ hook: 'sideways' })).toThrow(/Unknown hook "sideways": use one of from-pod, to-pod/);
  });

  it('matches every given criterion (identity and address on either side)', () => {
    const drop = eventRecord(sampleEvent());
    const flow = eventRecord(flowEvent());
    const f = parseEventFilter(new URLSearchParams('type=drop&reason=policy-default-deny&identity=400&address=10.0.1.10&hook=from-pod'));
    expect(f).toEqual({ type: 'drop', reason: 'DROP_POLICY_DEFAULT_DENY', hook: 'FROM_POD', identity: 400, address: '10.0.1.10' });
    expect(eventMatches(f, drop)).toBe(true);
    expect(eventMatches(f, flow)).toBe(false);
    expect(eventMatches({}, flow)).toBe(true);
    expect(eventMatches({ identity: 301 }, drop)).toBe(false);
    expect(eventMatches({ address: '10.0.2.20' }, drop)).toBe(true);
    expect(eventMatches({ address: '10.0.2.21' }, drop)).toBe(false);
    expect(eventMatches({ hook: 'TO_POD' }, drop)).toBe(false);
  });

  it('canonicalizes addresses (IPv6)', () => {
    const r = eventRecord(sampleEvent({ family: 6, saddr: 'fd00:1::10', daddr: 'fd00:2::20' }));
    expect(eventMatches(parseEventFilter({ address: 'fd00:0001:0::10' }), r)).toBe(true);
  });

  it('round-trips through query parameters', () => {
    const f = parseEventFilter({ type: 'flow', reason: 'wireguard', identity: '256' });
    expect(parseEventFilter(eventFilterQuery(f))).toEqual(f);
  });
});
