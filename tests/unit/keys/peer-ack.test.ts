import { describe, expect, it } from 'vitest';
import { NodeRecordError } from '../../../agent/keys/errors.js';
import { KeyStorePaths } from '../../../agent/keys/key-store-paths.js';
import { ackHas, encodePeerAck, parsePeerAck, type PeerAck } from '../../../agent/keys/peer-ack.js';
import { parseRotationRequest } from '../../../agent/keys/rotation-request.js';
import { RotationError } from '../../../agent/keys/errors.js';
import { thrown } from '../../support/validation-error.js';

const who = { owner: 'node-a', peer: 'node-b' };
const ack: PeerAck = {
  v: 1,
  ...who,
  installed: [{ kind: 'identity', identity: 300, generation: 2 }, { kind: 'node', identity: 0, generation: 4 }],
  using: [{ kind: 'node', identity: 0, generation: 3 }],
};

const refused = (bytes: Buffer | string): NodeRecordError => thrown(() => parsePeerAck(Buffer.from(bytes), who), NodeRecordError);

describe('acknowledgement documents', () => {
  it('round-trip in canonical form with sorted lists', () => {
    const bytes = encodePeerAck(ack);
    expect(bytes.toString()).toBe(
      '{"installed":[{"generation":2,"identity":300,"kind":"identity"},{"generation":4,"identity":0,"kind":"node"}],"owner":"node-a","peer":"node-b","using":[{"generation":3,"identity":0,"kind":"node"}],"v":1}',
    );
    const back = parsePeerAck(bytes, who);
    expect(ackHas(back.installed, { kind: 'node', identity: 0 }, 4)).toBe(true);
    expect(ackHas(back.installed, { kind: 'node', identity: 0 }, 3)).toBe(false);
    expect(ackHas(back.using, { kind: 'node', identity: 0 }, 3)).toBe(true);
  });

  it('carry the per-channel generations of the node key in WireGuard mode, in canonical form', () => {
    const bytes = encodePeerAck({ ...ack, channels: [5, 4] });
    expect(bytes.toString()).toMatch(/^\{"channels":\[5,4\],"installed":/);
    expect(parsePeerAck(bytes, who).channels).toEqual([5, 4]);
    expect(parsePeerAck(encodePeerAck(ack), who).channels).toBeUndefined();
    for (const bad of [[5], [5, 4, 3], [0, 4], [5, 1.5], ['5', 4], [5, 2 ** 32], { 0: 5, 1: 4 }, null]) {
      expect(refused(JSON.stringify({ ...ack, channels: bad })).message, JSON.stringify(bad)).toBe(
        'Malformed acknowledgement from "node-b" at "channels": expected [g0, g1], the node key generation installed on channel 0 and 1 (integers from 1 to 4294967295)',
      );
    }
  });

  it('refuses hostile documents, naming what is wrong', () => {
    expect(refused('not json').message).toBe('Malformed acknowledgement from "node-b": not JSON');
    expect(refused(Buffer.alloc(256 * 1024 + 1, 0x20)).message).toMatch(/exceeds 262144/);
    expect(refused(JSON.stringify({ ...ack, extra: 1 })).message).toBe('Malformed acknowledgement from "node-b": unknown member "extra"');
    expect(refused(JSON.stringify({ ...ack, v: 2 })).message).toMatch(/version 2, this agent reads 1/);
    expect(refused(JSON.stringify({ ...ack, peer: 'node-c' })).message).toMatch(/a peer acknowledges only under its own name/);
    expect(refused(JSON.stringify({ ...ack, owner: 'node-x' })).message).toMatch(/names owner "node-x"/);
    expect(refused(JSON.stringify({ ...ack, installed: [{ kind: 'node', identity: 5, generation: 1 }] })).message).toMatch(/at "installed\[0\]"/);
    expect(refused(JSON.stringify({ ...ack, using: [{ kind: 'identity', identity: 70000, generation: 1 }] })).message).toMatch(/at "using\[0\]"/);
    expect(refused(JSON.stringify({ ...ack, using: [{ kind: 'node', identity: 0, generation: 0 }] })).message).toMatch(/at "using\[0\]"/);
    expect(refused(JSON.stringify({ ...ack, using: Array(2049).fill({ kind: 'node', identity: 0, generation: 1 }) })).message).toMatch(/at most 2048/);
    expect(refused('[]').message).toMatch(/expected an object/);
  });
});

describe('store paths and rotation requests', () => {
  const paths = new KeyStorePaths();

  it('name each key once and read the slot back from a request key', () => {
    expect(paths.record('node-a')).toBe('/veil/nodes/node-a');
    expect(paths.ack('node-a', 'node-b')).toBe('/veil/keys/acks/node-a/node-b');
    expect(paths.rotateRequest('node-a', { kind: 'identity', identity: 300 })).toBe('/veil/keys/rotate/node-a/identity/300');
    expect(paths.rotateRequestSlot('node-a', '/veil/keys/rotate/node-a/node')).toEqual({ kind: 'node', identity: 0 });
    expect(paths.rotateRequestSlot('node-a', '/veil/keys/rotate/node-a/identity/300')).toEqual({ kind: 'identity', identity: 300 });
    for (const bad of ['/veil/keys/rotate/node-a/identity/0', '/veil/keys/rotate/node-a/identity/65536', '/veil/keys/rotate/node-a/identity/07', '/veil/keys/rotate/node-b/node', '/veil/keys/rotate/node-a/other']) {
      expect(paths.rotateRequestSlot('node-a', bad), bad).toBeUndefined();
    }
    expect(paths.recordNode('/veil/nodes/node-a')).toBe('node-a');
    expect(paths.recordNode('/veil/nodes/Node_A')).toBeUndefined();
    expect(() => paths.record('Node_A')).toThrow(/Invalid node name "Node_A"/);
    expect(() => new KeyStorePaths('veil')).toThrow(/use an absolute path ending in "\/"/);
  });

  it('parse requests and refuse malformed ones with the fix', () => {
    const key = '/veil/keys/rotate/node-a/node';
    expect(parseRotationRequest(paths, 'node-a', key, Buffer.from('{"v":1,"requestedAt":5}'), '7')).toEqual({ slot: { kind: 'node', identity: 0 }, requestedAt: 5, modRevision: '7' });
    expect(parseRotationRequest(paths, 'node-a', '/veil/keys/rotate/node-a/zzz', Buffer.from('{}'), '7')).toBeUndefined();
    for (const bad of ['{}', 'x', '{"v":1,"requestedAt":-1}', '{"v":2,"requestedAt":1}']) {
      expect(() => parseRotationRequest(paths, 'node-a', key, Buffer.from(bad), '7')).toThrow(RotationError);
    }
    expect(() => parseRotationRequest(paths, 'node-a', key, Buffer.from('x'), '7')).toThrow(
      'Malformed rotation request for the node key of "node-a" at "/veil/keys/rotate/node-a/node": expected {"v":1,"requestedAt":<ms>}; delete the key and run "veil keys rotate" again',
    );
  });
});
