/** Creates or replaces one store key by compare-and-swap (last writer wins), a bounded number of tries. */
import type { KeyValue, Store } from '../store/store.js';
import { CertificateRecordError } from './errors.js';

export async function putValue(store: Store, key: string, value: Buffer): Promise<KeyValue> {
  for (let attempt = 0; attempt < 5; attempt++) {
    const existing = await store.get(key);
    if (!existing) {
      const r = await store.create(key, value);
      if (r.created) return r.kv;
    } else {
      const r = await store.update(key, value, existing.modRevision);
      if (r.updated && r.kv) return r.kv;
    }
  }
  throw new CertificateRecordError(`Cannot write "${key}": it changed under five attempts in a row; retry when other writers are done`);
}
