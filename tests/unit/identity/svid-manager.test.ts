import { mkdtempSync, rmSync, statSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { AuditEvent } from '../../../agent/audit/events.js';
import { validateAuditEvent } from '../../../agent/audit/events.js';
import type { HostedIdentity } from '../../../agent/identity/hosting.js';
import { SvidManager } from '../../../agent/identity/svid-manager.js';
import { readCertificatesPem } from '../../../certs/certificate.js';
import { readPrivateKeyPem, spkiDer } from '../../../certs/keys.js';
import { makePki } from '../certs/pki-fixture.js';

const WEB: HostedIdentity = { id: 300, namespace: 'default', serviceAccount: 'web' };
const DB: HostedIdentity = { id: 301, namespace: 'shop', serviceAccount: 'db' };
const MIN = 60_000;

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'veil-sv-unit-'));
});
afterEach(() => {
  vi.useRealTimers();
  rmSync(dir, { recursive: true, force: true });
});

async function setup(hosted: HostedIdentity[], random = () => 0.5) {
  const pki = await makePki({ nodeName: 'sv-node' });
  const events: AuditEvent[] = [];
  const audit = { record: async (e: AuditEvent) => void events.push(validateAuditEvent(e)) };
  const m = new SvidManager({ node: pki.node, stateDir: dir, audit, hosted: async () => hosted, tickMs: 1000, random });
  return { pki, events, m };
}

describe('SvidManager', () => {
  it('issues an SVID per hosted identity: one URI SAN, 1 h, node-signed, 0600 files in a 0700 directory', async () => {
    const { pki, events, m } = await setup([WEB, DB]);
    await m.start();
    expect(statSync(m.dir).mode & 0o777).toBe(0o700);
    for (const h of [WEB, DB]) {
      expect(statSync(m.certificatePath(h.id)).mode & 0o777).toBe(0o600);
      expect(statSync(m.keyPath(h.id)).mode & 0o777).toBe(0o600);
      const [leaf, node] = readCertificatesPem(readFileSync(m.certificatePath(h.id)), 'svid file');
      expect(leaf!.uriSans).toEqual([`spiffe://cluster.local/ns/${h.namespace}/sa/${h.serviceAccount}`]);
      expect(leaf!.otherSanCount).toBe(0);
      expect(node!.fingerprint).toBe(pki.node.certificate.fingerprint);
      expect(await leaf!.x509.verify({ publicKey: pki.node.certificate.x509.publicKey })).toBe(true);
      expect(leaf!.notAfter.getTime() - Date.now()).toBeGreaterThan(59 * MIN);
      expect(leaf!.notAfter.getTime() - Date.now()).toBeLessThanOrEqual(60 * MIN);
      // The key file holds the key the certificate names.
      expect(spkiDer(readPrivateKeyPem(readFileSync(m.keyPath(h.id)), 'svid key')).equals(leaf!.spkiDer)).toBe(true);
    }
    expect(events.map((e) => [e.event, 'identity' in e ? e.identity : undefined])).toEqual([
      ['certificate.issued', WEB.id],
      ['certificate.issued', DB.id],
    ]);
    expect(m.status().map((s) => s.spiffeId)).toEqual(['spiffe://cluster.local/ns/default/sa/web', 'spiffe://cluster.local/ns/shop/sa/db']);
    await m.stop();
  });

  it('renews at half-life with jitter, audits certificate.renewed with previousFingerprint, and stops renewing on stop()', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date'] });
    const { events, m } = await setup([WEB], () => 0.99);
    await m.start();
    const first = m.status()[0]!;
    // notBefore is backdated 1 min: lifetime 61 min, renewal at 30.5 min × 1.098 after notBefore.
    const renewAt = Date.parse(first.renewAt);
    expect(renewAt - Date.parse(first.notBefore)).toBe(Math.round(30.5 * MIN * (0.9 + 0.2 * 0.99)));
    await vi.advanceTimersByTimeAsync(renewAt - Date.now() - 1000);
    await m.settled();
    expect(events.filter((e) => e.event === 'certificate.renewed')).toEqual([]);
    await vi.advanceTimersByTimeAsync(2000);
    await m.settled();
    const renewed = events.filter((e) => e.event === 'certificate.renewed');
    expect(renewed).toHaveLength(1);
    expect(renewed[0]).toMatchObject({ identity: WEB.id, previousFingerprint: first.fingerprint, spiffeId: first.spiffeId });
    const second = m.status()[0]!;
    expect(second.fingerprint).not.toBe(first.fingerprint);
    expect(readCertificatesPem(readFileSync(m.certificatePath(WEB.id)), 'svid file')[0]!.fingerprint).toBe(second.fingerprint);
    await m.stop();
    const n = events.length;
    await vi.advanceTimersByTimeAsync(3 * 60 * MIN);
    expect(events).toHaveLength(n);
  });

  it('removes the files of an identity no longer hosted, and of one hosted before a restart', async () => {
    const hosted = [WEB, DB];
    const { events, m } = await setup(hosted);
    await m.start();
    hosted.splice(1, 1);
    m.kick();
    await m.settled();
    expect(existsSync(m.certificatePath(DB.id))).toBe(false);
    expect(existsSync(m.keyPath(DB.id))).toBe(false);
    expect(existsSync(m.certificatePath(WEB.id))).toBe(true);
    await m.stop();
    // A restart finds WEB's file: its first SVID is a renewal of that one; a stray file goes.
    const before = m.status()[0]!.fingerprint;
    writeFileSync(join(m.dir, '999.pem'), 'left over', { mode: 0o600 });
    const m2 = new SvidManager({ node: (await setup([])).pki.node, stateDir: dir, audit: { record: async (e: AuditEvent) => void events.push(e) }, hosted: async () => hosted });
    await m2.start();
    expect(existsSync(join(m.dir, '999.pem'))).toBe(false);
    expect(events.at(-1)).toMatchObject({ event: 'certificate.renewed', identity: WEB.id, previousFingerprint: before });
    await m2.stop();
  });

  it('keeps running and reports lastError when the identity source fails, and rejects bad options', async () => {
    const pki = await makePki({ nodeName: 'sv-node' });
    let fail = true;
    const m = new SvidManager({
      node: pki.node,
      stateDir: dir,
      audit: { record: async () => undefined },
      hosted: async () => {
        if (fail) throw new Error('store unreachable');
        return [WEB];
      },
    });
    await m.start();
    expect(m.lastError?.message).toBe('store unreachable');
    fail = false;
    m.kick();
    await m.settled();
    expect(m.lastError).toBeUndefined();
    expect(m.status()).toHaveLength(1);
    await m.stop();
    expect(() => new SvidManager({ node: pki.node, stateDir: dir, audit: { record: async () => undefined }, hosted: async () => [], ttlMs: -1 })).toThrow(
      'Invalid ttlMs -1: use a positive number of milliseconds',
    );
  });
});
