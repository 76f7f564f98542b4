import { execFileSync, spawnSync } from 'node:child_process';
import { generateKeyPairSync, sign } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openAuditLog } from '../../../agent/audit/audit-log.js';
import { createCaVerifier } from '../../../agent/audit/ca-verifier.js';
import { AuditTrustError } from '../../../agent/audit/errors.js';
import type { AuditEvent } from '../../../agent/audit/events.js';
import { certificateFingerprint, publicKeyFingerprint } from '../../../agent/keys/fingerprint.js';
import { checkpointMessage, lineHash, type CheckpointFields } from '../../../agent/audit/line-format.js';
import { keyObjectSigner, type CheckpointSigner } from '../../../agent/audit/signer.js';
import { verifyAuditFile, type AuditVerifyResult } from '../../../agent/audit/verify.js';
import { projectRoot } from '../../../agent/project-root.js';
import { OpensslPki, type Issued, type KeyAlg, type TestCa } from '../../support/openssl-pki.js';

let pki: OpensslPki;
let n = 0;
beforeAll(() => {
  pki = new OpensslPki();
});
afterAll(() => pki.cleanup());

function gen(generation: number): AuditEvent {
  const { publicKey } = generateKeyPairSync('x25519');
  return { event: 'key.generated', keyKind: 'node', generation, fingerprint: publicKeyFingerprint(publicKey), algorithm: 'x25519' };
}

/** Writes a closed log: 6 events with a checkpoint after every 3 lines (lines 4 and 8), final checkpoint at line 9. */
async function writeLog(signer: CheckpointSigner, node = 'node-a', events = 6): Promise<string> {
  const path = join(pki.root, `verify-${++n}.jsonl`);
  const log = openAuditLog({ path, node, signer, checkpointEvery: 3, checkpointIntervalMs: 0, mirror: null });
  for (let g = 0; g < events; g++) await log.record(gen(g));
  await log.close();
  return path;
}

const readLines = (path: string) => readFileSync(path, 'utf8').split('\n').slice(0, -1);
function rewrite(path: string, lines: string[]): void {
  writeFileSync(path, `${lines.join('\n')}\n`);
}
function editJson(line: string, change: (o: Record<string, unknown>) => void): string {
  const o = JSON.parse(line) as Record<string, unknown>;
  change(o);
  return JSON.stringify(o);
}

for (const alg of ['p256', 'ed25519'] as KeyAlg[]) {
  describe(`veil audit verify (${alg} CA and node certificates made by openssl)`, () => {
    let ca: TestCa;
    let otherCa: TestCa;
    let nodeA: Issued;
    let verify: (path: string) => AuditVerifyResult;

    beforeAll(() => {
      ca = pki.createCa(`ca-${alg}`, alg);
      otherCa = pki.createCa(`other-ca-${alg}`, alg);
      nodeA = pki.issueNode(ca, 'node-a', alg);
      verify = (path) => verifyAuditFile(path, createCaVerifier([ca.certPem]));
    });
    const signerA = () => keyObjectSigner(nodeA.key, nodeA.certPem);

    it('reports an intact log with its summary', async () => {
      const path = await writeLog(signerA());
      const r = verify(path);
      expect(r).toMatchObject({
        status: 'intact',
        summary: { lines: 9, events: 6, checkpoints: 3, nodes: ['node-a'], signers: ['CN=node-a'], closedCleanly: true, lastCheckpointSeq: 9 },
      });
      expect(r.summary.firstTime! <= r.summary.lastTime!).toBe(true);
    });

    it('names an edited event line as the first bad line', async () => {
      const path = await writeLog(signerA());
      const lines = readLines(path);
      lines[4] = lines[4]!.replace('"generation":3', '"generation":7');
      rewrite(path, lines);
      expect(verify(path)).toMatchObject({ status: 'tampered', line: 5, reason: expect.stringMatching(/line 5 was altered/) });
    });

    it('names an edited line just before a checkpoint', async () => {
      const path = await writeLog(signerA());
      const lines = readLines(path);
      lines[2] = editJson(lines[2]!, (o) => (o.generation = 99));
      rewrite(path, lines);
      expect(verify(path)).toMatchObject({ status: 'tampered', line: 3 });
    });

    it('detects an edited checkpoint field through its signature', async () => {
      const path = await writeLog(signerA());
      const lines = readLines(path);
      lines[3] = editJson(lines[3]!, (o) => (o.final = true));
      rewrite(path, lines);
      expect(verify(path)).toMatchObject({ status: 'tampered', line: 4, reason: expect.stringMatching(/signature does not verify/) });
    });

    it('detects a removed line', async () => {
      const path = await writeLog(signerA());
      const lines = readLines(path);
      lines.splice(5, 1);
      rewrite(path, lines);
      expect(verify(path)).toMatchObject({ status: 'tampered', line: 6, reason: expect.stringMatching(/sequence 7 where 6 was expected: 1 line\(s\) before it were removed/) });
    });

    it('detects reordered lines', async () => {
      const path = await writeLog(signerA());
      const lines = readLines(path);
      [lines[4], lines[5]] = [lines[5]!, lines[4]!];
      rewrite(path, lines);
      expect(verify(path)).toMatchObject({ status: 'tampered', line: 5, reason: expect.stringMatching(/sequence 6 where 5 was expected/) });
    });

    it('detects an inserted line, even one with the right sequence number', async () => {
      const path = await writeLog(signerA());
      const lines = readLines(path);
      const forged = editJson(lines[4]!, (o) => (o.prev = lineHash(Buffer.from(lines[2]!))));
      lines.splice(4, 0, forged);
      rewrite(path, lines);
      expect(verify(path)).toMatchObject({ status: 'tampered', line: 5, reason: expect.stringMatching(/line 5 was inserted/) });
    });

    it('detects an inserted line even when every following line is re-chained, at the checkpoint', async () => {
      const path = await writeLog(signerA());
      const lines = readLines(path);
      lines.splice(4, 0, lines[4]!);
      for (let i = 4; i < lines.length; i++) {
        lines[i] = editJson(lines[i]!, (o) => {
          o.seq = i + 1;
          o.prev = lineHash(Buffer.from(lines[i - 1]!));
        });
      }
      rewrite(path, lines);
      expect(verify(path)).toMatchObject({ status: 'tampered', line: 9, reason: expect.stringMatching(/signature does not verify/) });
    });

    it('reports a torn last line as unverified, not intact', async () => {
      const path = await writeLog(signerA());
      const text = readFileSync(path);
      writeFileSync(path, text.subarray(0, text.length - 30));
      expect(verify(path)).toMatchObject({ status: 'unverified', line: 9, reason: expect.stringMatching(/incomplete \(no newline/) });
    });

    it('reports lines after the last checkpoint as an unsigned tail', async () => {
      const path = await writeLog(signerA());
      const lines = readLines(path);
      rewrite(path, lines.slice(0, 6));
      expect(verify(path)).toMatchObject({ status: 'unverified', line: 5, reason: expect.stringMatching(/lines 5\.\.6 \(2\) follow the last checkpoint and are not signed/) });
    });

    it('cannot detect removal of the whole tail back to a periodic checkpoint, but says the log was not closed', async () => {
      const path = await writeLog(signerA());
      rewrite(path, readLines(path).slice(0, 4));
      expect(verify(path)).toMatchObject({ status: 'intact', summary: { closedCleanly: false, lastCheckpointSeq: 4 } });
    });

    it('detects a forged signature', async () => {
      const path = await writeLog(signerA());
      const lines = readLines(path);
      lines[7] = editJson(lines[7]!, (o) => {
        const sig = Buffer.from(o.signature as string, 'base64');
        sig[sig.length - 5]! ^= 0x01;
        o.signature = sig.toString('base64');
      });
      rewrite(path, lines);
      expect(verify(path)).toMatchObject({ status: 'tampered', line: 8, reason: expect.stringMatching(/signature does not verify/) });
    });

    it('detects a log signed with a key whose certificate does not chain to the CA, and accepts it when both CAs are trusted', async () => {
      const foreign = pki.issueNode(otherCa, 'node-a', alg);
      const path = await writeLog(keyObjectSigner(foreign.key, foreign.certPem));
      expect(verify(path)).toMatchObject({ status: 'tampered', line: 4, reason: expect.stringMatching(/does not chain to a trusted CA/) });
      expect(verifyAuditFile(path, createCaVerifier([ca.certPem, otherCa.certPem])).status).toBe('intact');
    });

    it('detects a checkpoint re-signed by an attacker who swapped in their own certificate', async () => {
      const path = await writeLog(signerA());
      const lines = readLines(path);
      const attacker = pki.issueNode(otherCa, 'node-a', 'p256');
      lines[3] = editJson(lines[3]!, (o) => {
        const fields: CheckpointFields = {
          seq: o.seq as number,
          time: o.time as string,
          node: o.node as string,
          prev: o.prev as string,
          final: o.final as boolean,
          certFingerprint: certificateFingerprint(attacker.certPem),
          sigAlg: 'ecdsa-p256-sha256',
        };
        o.certFingerprint = fields.certFingerprint;
        o.sigAlg = fields.sigAlg;
        o.certificate = attacker.certPem;
        o.signature = sign('sha256', checkpointMessage(fields), attacker.key).toString('base64');
      });
      rewrite(path, lines);
      expect(verify(path)).toMatchObject({ status: 'tampered', line: 4, reason: expect.stringMatching(/does not chain to a trusted CA/) });
    });

    it('detects a signature made with a certificate that had expired at signing time', async () => {
      const day = 86400_000;
      const expired = pki.issueNode(ca, 'node-a', alg, { notBefore: new Date(Date.now() - 3 * day), notAfter: new Date(Date.now() - day) });
      const path = await writeLog(keyObjectSigner(expired.key, expired.certPem));
      expect(verify(path)).toMatchObject({ status: 'tampered', line: 4, reason: expect.stringMatching(/had expired at signing time/) });
    });

    it('detects a signature made with a certificate that was not yet valid at signing time', async () => {
      const day = 86400_000;
      const future = pki.issueNode(ca, 'node-a', alg, { notBefore: new Date(Date.now() + day), notAfter: new Date(Date.now() + 2 * day) });
      const path = await writeLog(keyObjectSigner(future.key, future.certPem));
      expect(verify(path)).toMatchObject({ status: 'tampered', line: 4, reason: expect.stringMatching(/was not yet valid at signing time/) });
    });

    it("detects lines claiming a node that the signing certificate does not name", async () => {
      const nodeB = pki.issueNode(ca, 'node-b', alg);
      const path = await writeLog(keyObjectSigner(nodeB.key, nodeB.certPem), 'node-a');
      expect(verify(path)).toMatchObject({ status: 'tampered', line: 4, reason: expect.stringMatching(/does not name node "node-a"/) });
    });
  });
}

describe('veil audit verify (command line)', () => {
  let ca: TestCa;
  let path: string;
  const cli = join(projectRoot(), 'dist/agent/cli/main.js');

  beforeAll(async () => {
    execFileSync('npx', ['tsc', '-p', 'tsconfig.json'], { cwd: projectRoot(), stdio: 'pipe' });
    ca = pki.createCa('cli-ca', 'p256');
    const node = pki.issueNode(ca, 'node-a', 'p256');
    path = await writeLog(keyObjectSigner(node.key, node.certPem));
  }, 120_000);

  const run = (...args: string[]) => spawnSync(process.execPath, [cli, 'audit', 'verify', ...args], { encoding: 'utf8' });

  it('exits 0 with a summary for an intact log', () => {
    const r = run(path, '--ca', ca.certPath);
    expect(r.status).toBe(0);
    expect(r.stdout).toContain(`Audit log "${path}" is intact`);
    expect(r.stdout).toMatch(/lines: 9 \(events 6, checkpoints 3/);
    expect(r.stdout).toContain('nodes: node-a');
  });

  it('exits 1 and names the first bad line of a tampered log', () => {
    const copy = `${path}.tampered`;
    const lines = readLines(path);
    lines[1] = lines[1]!.replace('"generation":1', '"generation":5');
    rewrite(copy, lines);
    const r = run(copy, '--ca', ca.certPath);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/is NOT intact: first bad line 2: line 2 was altered/);
  });

  it('exits 3 for an unsigned tail and 2 for usage errors', () => {
    const copy = `${path}.tail`;
    rewrite(copy, readLines(path).slice(0, 5));
    expect(run(copy, '--ca', ca.certPath).status).toBe(3);
    expect(run(path).status).toBe(2);
    expect(run(path, '--ca', '/nonexistent.pem').status).toBe(2);
  });

  it('refuses a CA file that holds no CA certificate', () => {
    const node = pki.issueNode(ca, 'node-z', 'p256');
    expect(() => createCaVerifier([node.certPem])).toThrow(AuditTrustError);
    const r = run(path, '--ca', node.certPath);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/is not a CA \(basicConstraints CA:TRUE missing\)/);
  });
});
