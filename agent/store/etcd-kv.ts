/**
 * Conversions between etcd's key-value messages and the Store's KeyValue, and etcd's prefix
 * range end (the smallest key greater than every key with the prefix).
 */
import type etcd3 from 'etcd3';
import type { KeyValue } from './store.js';

/** A KeyValue from etcd's mvccpb.KeyValue (lease "0" means none). */
export function kvFromEtcd(kv: etcd3.IKeyValue): KeyValue {
  const out: KeyValue = {
    key: kv.key.toString('utf8'),
    value: Buffer.from(kv.value),
    createRevision: kv.create_revision,
    modRevision: kv.mod_revision,
  };
  if (kv.lease && kv.lease !== '0') out.lease = kv.lease;
  return out;
}

/**
 * The range end for "every key starting with prefix": the prefix with its last byte below 0xff
 * incremented and what follows dropped; "\0" (to the end of the key space) when every byte is 0xff.
 */
export function prefixRangeEnd(prefix: Buffer): Buffer {
  const end = Buffer.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i]! < 0xff) {
      end[i]! += 1;
      return end.subarray(0, i + 1);
    }
  }
  return Buffer.from([0]);
}
