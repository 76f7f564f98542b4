import { generateKeyPairSync } from 'node:crypto';
import { appendFileSync, existsSync, readFileSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openAuditLog, type AuditLogOptions } from '../../../agent/audit/audit-log.js';
import { createCaVerifier } from '../../../agent/audit/ca-verifier.js';
import { AuditKeyMaterialError, AuditLogError, AuditSignerError } from '../../../agent/audit/errors.js';
import type { AuditEvent } from '../../../agent/audit/events.js';
import { publicKeyFingerprint } from '../../../agent/keys/fingerprint.js';
import { keyObjectSigner } from '../../../agent/audit/signer.js';
import { verifyAuditFile } from '../../../agent/audit/verify.js';
import { OpensslPki, type Issued, type TestCa } from '../../support/openssl-pki.js';

let pki: OpensslPki;
let ca: TestCa;
let node: Issued;
let renewed: Issued;
let fileN = 0;

beforeAll(() => {
  pki = new OpensslPki();
  ca = pki.createCa('audit-log-ca', 'p256');
  node = pki.issueNode(ca, 'node-a', 'p256');
  renewed = pki.issueNode(ca, 'node-a', 'p256');
});
afterAll(() => pki.cleanup());

function newPath(): string {
  return join(pki.root, `log-${++fileN}.jsonl`);
}
function open(path: string, extra: Partial<AuditLogOptions> = {}) {
  return openAuditLog({ path, node: 'node-a', signer: keyObjectSigner(node.key, node.certPem), mirror: null, checkpointIntervalMs: 0, ...extra });
}
function gen(generation: number): AuditEvent {
  const { publicKey } = generateKeyPairSync('x25519');
  return { event: 'key.generated', keyKind: 'node', generation, fingerprint: publicKeyFingerprint(publicKey), algorithm: 'x25519' };
}
const verify = (path: string) => verifyAuditFile(path, createCaVerifier([ca.certPem]));
const lines = (path: string) => readFileSync(path, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);

describe('AuditLog', () => {
  it('creates the file with mode 0600, chains lines and mirrors the exact bytes to the mirror stream', async () => {
    const path = newPath();
    const mirrored: string[] = [];
    const log = open(path, { mirror: { write: (s: string) => mirrored.push(s) } });
    for (let g = 0; g < 3; g++) await log.record(gen(g));
    await log.close();
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(mirrored.join('')).toBe(readFileSync(path, 'utf8'));
    const l = lines(path);
    expect(l.map((x) => x.seq)).toEqual([1, 2, 3, 4]);
    expect(l.map((x) => x.event)).toEqual(['key.generated', 'key.generated', 'key.generated', 'audit.checkpoint']);
    expect(l[3]).toMatchObject({ final: true, sigAlg: 'ecdsa-p256-sha256' });
    expect(verify(path)).toMatchObject({ status: 'intact', summary: { events: 3, checkpoints: 1, nodes: ['node-a'], closedCleanly: true } });
  });

  it('tightens the mode of an existing file to 0600', async () => {
    const path = newPath();
    writeFileSync(path, '', { mode: 0o644 });
    const log = open(path);
    await log.close();
    expect(statSync(path).mode & 0o777).toBe(0o600);
  });

  it('writes a checkpoint every N lines and embeds the certificate only in the first one of a process', async () => {
    const path = newPath();
    const log = open(path, { checkpointEvery: 2 });
    for (let g = 0; g < 5; g++) await log.record(gen(g));
    await log.close();
    const cps = lines(path).filter((x) => x.event === 'audit.checkpoint');
    expect(cps.map((c) => [c.seq, c.final])).toEqual([[3, false], [6, false], [8, true]]);
    expect(cps.map((c) => typeof c.certificate)).toEqual(['string', 'undefined', 'undefined']);
    expect(verify(path).status).toBe('intact');
  });

  it('writes a checkpoint after the interval when lines are waiting', async () => {
    const path = newPath();
    const log = open(path, { checkpointIntervalMs: 50 });
    await log.record(gen(0));
    const deadline = Date.now() + 5000;
    while (!lines(path).some((x) => x.event === 'audit.checkpoint')) {
      if (Date.now() > deadline) throw new Error('No interval checkpoint within 5 s');
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(verify(path).status).toBe('intact');
    await log.close();
  });

  it('continues the chain of an existing file after a restart', async () => {
    const path = newPath();
    let log = open(path);
    await log.record(gen(0));
    await log.close();
    log = open(path);
    expect(log.nextSeq).toBe(3);
    await log.record(gen(1));
    await log.close();
    expect(lines(path).map((x) => x.seq)).toEqual([1, 2, 3, 4]);
    expect(verify(path)).toMatchObject({ status: 'intact', summary: { events: 2, checkpoints: 2 } });
  });

  it('after a crash, the next process signs the lines the crashed one left unsigned', async () => {
    const path = newPath();
    const crashed = open(path);
    await crashed.record(gen(0));
    await crashed.record(gen(1));
    // Simulate the crash: the process is gone without close(); its lock is stale.
    writeFileSync(`${path}.lock`, '999999999\n');
    expect(verify(path)).toMatchObject({ status: 'unverified', line: 1 });
    const next = open(path);
    await next.close();
    expect(verify(path)).toMatchObject({ status: 'intact', summary: { events: 2 } });
  });

  it('handles a torn tail at every cut point: the chain continues and verifies, recording the fragment', async () => {
    const base = newPath();
    const log = open(base);
    for (let g = 0; g < 3; g++) await log.record(gen(g));
    await log.checkpoint();
    await log.record(gen(3));
    await log.record(gen(4));
    await log.close();
    const full = readFileSync(base);
    const lastTwoStart = full.lastIndexOf(0x0a, full.lastIndexOf(0x0a, full.length - 2) - 1) + 1;
    // Cut inside the last event line and inside the final checkpoint line, at many offsets.
    for (let cut = lastTwoStart - 40; cut < full.length; cut += 37) {
      const path = newPath();
      writeFileSync(path, full.subarray(0, cut), { mode: 0o600 });
      const torn = full[cut - 1] !== 0x0a;
      const before = verify(path);
      if (torn) expect(before.status).toBe('unverified');
      const again = open(path);
      await again.record(gen(9));
      await again.close();
      const r = verify(path);
      expect(r.status, `cut at ${cut}: ${JSON.stringify(r)}`).toBe('intact');
      expect(r.summary.recoveredFragments).toBe(torn ? 1 : 0);
    }
  });

  it('keeps a complete line that only lost its newline as part of the chain', async () => {
    const path = newPath();
    const log = open(path);
    await log.record(gen(0));
    await log.record(gen(1));
    await log.close();
    truncateSync(path, statSync(path).size - 1);
    const again = open(path);
    await again.close();
    const r = verify(path);
    expect(r).toMatchObject({ status: 'intact', summary: { recoveredFragments: 0, checkpoints: 2 } });
  });

  it('refuses a second writer while the first holds the file', async () => {
    const path = newPath();
    const log = open(path);
    expect(() => open(path)).toThrow(AuditLogError);
    expect(() => open(path)).toThrow(/process \d+ is writing it/);
    await log.close();
    expect(existsSync(`${path}.lock`)).toBe(false);
    await open(path).close();
  });

  it('refuses to continue a file whose last complete line is not an audit line', () => {
    const path = newPath();
    writeFileSync(path, 'not an audit line\n');
    expect(() => open(path)).toThrow(/last complete line is not an audit line; move the file aside/);
    expect(existsSync(`${path}.lock`)).toBe(false);
  });

  it('switches to a renewed certificate after covering earlier lines with the old one', async () => {
    const path = newPath();
    const log = open(path);
    await log.record(gen(0));
    await log.replaceSigner(keyObjectSigner(renewed.key, renewed.certPem));
    await log.record(gen(1));
    await log.close();
    const cps = lines(path).filter((x) => x.event === 'audit.checkpoint');
    expect(cps).toHaveLength(2);
    expect(cps[0]!.certFingerprint).not.toBe(cps[1]!.certFingerprint);
    expect(typeof cps[1]!.certificate).toBe('string');
    expect(verify(path).status).toBe('intact');
  });

  it('refuses a signer whose key does not belong to its certificate, without naming the key', () => {
    expect(() => keyObjectSigner(renewed.key, node.certPem)).toThrow(AuditSignerError);
    try {
      keyObjectSigner(renewed.key, node.certPem);
    } catch (err) {
      expect((err as Error).message).toMatch(/^Cannot sign audit checkpoints: the private key does not belong to the certificate "CN=node-a"/);
      expect((err as Error).message).not.toContain(renewed.keyPem.split('\n')[1]);
    }
  });

  it('no key material of any form reaches the file across a whole key lifecycle, the signing key included', async () => {
    const path = newPath();
    const mirrored: string[] = [];
    const log = open(path, { checkpointEvery: 4, mirror: { write: (s: string) => mirrored.push(s) } });
    const keys = [0, 1].map(() => generateKeyPairSync('x25519'));
    const fps = keys.map((k) => publicKeyFingerprint(k.publicKey));
    for (const [generation, fingerprint] of fps.entries()) {
      for (const event of ['key.generated', 'key.published', 'key.activated'] as const) {
        const e = { event, keyKind: 'identity', identity: 300, generation, fingerprint, ...(event === 'key.generated' ? { algorithm: 'x25519' } : {}) };
        await log.record(e as AuditEvent);
      }
    }
    await log.record({ event: 'key.retired', keyKind: 'identity', identity: 300, generation: 0, fingerprint: fps[0]!, reason: 'rotation' });
    await log.record({ event: 'key.destroyed', keyKind: 'identity', identity: 300, generation: 0, fingerprint: fps[0]! });
    await log.record({ event: 'rotation.completed', keyKind: 'identity', identity: 300, fromGeneration: 0, toGeneration: 1, fingerprint: fps[1]!, previousFingerprint: fps[0]! });
    await log.record({ event: 'record.rejected', peerNode: 'node-b', reason: 'stale-generation', detail: 'Generation 0 is older than 1', generation: 0 });
    await log.close();
    const file = readFileSync(path);
    const text = file.toString('utf8');
    expect(mirrored.join('')).toBe(text);
    const secrets: Buffer[] = [];
    for (const k of keys) {
      secrets.push(Buffer.from(k.privateKey.export({ format: 'jwk' }).d!, 'base64url'), Buffer.from(k.publicKey.export({ format: 'jwk' }).x!, 'base64url'));
      secrets.push(k.privateKey.export({ format: 'der', type: 'pkcs8' }));
    }
    secrets.push(node.key.export({ format: 'der', type: 'pkcs8' }));
    for (const secret of secrets) {
      expect(file.includes(secret)).toBe(false);
      for (const form of [secret.toString('hex'), secret.toString('hex').toUpperCase(), secret.toString('base64'), secret.toString('base64url')]) {
        expect(text).not.toContain(form);
        expect(text).not.toContain(form.slice(0, 24));
      }
    }
    expect(text).not.toMatch(/PRIVATE KEY/);
    for (const pemLine of node.keyPem.split('\n').filter((l) => l && !l.startsWith('-----'))) expect(text).not.toContain(pemLine);
    expect(verify(path).status).toBe('intact');
  });

  it('refuses events carrying key material and writes nothing for them', async () => {
    const path = newPath();
    const log = open(path);
    const { privateKey } = generateKeyPairSync('x25519');
    const raw = Buffer.from(privateKey.export({ format: 'jwk' }).d!, 'base64url');
    const bad = [
      { ...gen(0), fingerprint: raw.toString('hex') },
      { ...gen(0), privateKey: raw.toString('base64') },
      { event: 'record.rejected', peerNode: 'node-b', reason: 'malformed', detail: `key ${raw.toString('base64url')}` },
      { event: 'record.rejected', peerNode: 'node-b', reason: 'malformed', detail: raw },
    ];
    for (const e of bad) await expect(log.record(e as AuditEvent)).rejects.toBeInstanceOf(AuditKeyMaterialError);
    expect(log.nextSeq).toBe(1);
    await log.close();
    expect(lines(path).map((x) => x.event)).toEqual(['audit.checkpoint']);
  });
});
