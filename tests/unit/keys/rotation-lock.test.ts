import { describe, expect, it } from 'vitest';
import { RotationError } from '../../../agent/keys/errors.js';
import { KeyStorePaths } from '../../../agent/keys/key-store-paths.js';
import { NodeKeyRotationLock } from '../../../agent/keys/rotation-lock.js';
import { MemoryStore } from '../../../agent/store/memory-store.js';

const KEY = new KeyStorePaths().rotationLock();

describe('the node key rotation lease', () => {
  it('lives at /veil/locks/node-key-rotation and admits one node at a time', async () => {
    expect(KEY).toBe('/veil/locks/node-key-rotation');
    const store = new MemoryStore();
    const a = new NodeKeyRotationLock({ store, node: 'node-a', key: KEY });
    const b = new NodeKeyRotationLock({ store, node: 'node-b', key: KEY });
    expect(await a.acquire()).toBe(true);
    expect(await a.acquire()).toBe(true); // held: idempotent
    expect(await b.acquire()).toBe(false);
    expect(b.held).toBe(false);
    expect(await b.holder()).toBe('node-a');
    expect(JSON.parse((await store.get(KEY))!.value.toString())).toEqual({ v: 1, node: 'node-a' });
    await a.release();
    expect(await store.get(KEY)).toBeNull();
    expect(await b.acquire()).toBe(true);
    expect(await a.acquire()).toBe(false);
    await b.release();
    await b.release(); // not held: nothing to do
  });

  it('takes over a leftover of its own node (a restarted agent), never another node\'s', async () => {
    const store = new MemoryStore();
    const before = new NodeKeyRotationLock({ store, node: 'node-a', key: KEY });
    expect(await before.acquire()).toBe(true);
    // The agent "crashed": its lease still holds the key; a new process of the same node resumes.
    const after = new NodeKeyRotationLock({ store, node: 'node-a', key: KEY });
    expect(await after.acquire()).toBe(true);
    expect(after.held).toBe(true);
    expect(await new NodeKeyRotationLock({ store, node: 'node-c', key: KEY }).acquire()).toBe(false);
    // A key that is not a lock document is someone else's: left alone.
    await after.release();
    await store.create(KEY, Buffer.from('garbage'));
    expect(await new NodeKeyRotationLock({ store, node: 'node-a', key: KEY }).acquire()).toBe(false);
  });

  it('refuses a TTL outside 2..300 s', () => {
    for (const ttl of [1, 301, 2.5]) {
      expect(() => new NodeKeyRotationLock({ store: new MemoryStore(), node: 'node-a', key: KEY, ttlSeconds: ttl })).toThrow(RotationError);
    }
    expect(() => new NodeKeyRotationLock({ store: new MemoryStore(), node: 'node-a', key: KEY, ttlSeconds: 1 })).toThrow('Invalid rotation lock TTL 1: use 2 to 300 seconds');
  });
});
