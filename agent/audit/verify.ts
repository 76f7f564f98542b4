/**
 * Verifies an audit log: the hash chain, the sequence numbers, every line's schema, and every
 * checkpoint's signature and certificate (through a CheckpointVerifier). Reports the first bad
 * line, or "unverified" when the chain is intact but its tail is not covered by a checkpoint
 * signature (including a torn last line), or "intact". What this proves and what it cannot is in
 * docs/audit.md.
 */
import { X509Certificate } from 'node:crypto';
import { AuditEventError, AuditSignatureError } from './errors.js';
import { checkNodeName, validateAuditEvent } from './events.js';
import { certificateFingerprint, isFingerprint } from '../keys/fingerprint.js';
import { linesOfBuffer, linesOfFile, type RawLine } from './line-reader.js';
import {
  AUDIT_FORMAT_VERSION,
  AUDIT_LEVEL,
  CHECKPOINT_EVENT,
  checkpointMessage,
  GENESIS_PREV,
  isLineHash,
  ISO_TIME,
  lineHash,
  MAX_LINE_BYTES,
  RECOVERED_EVENT,
} from './line-format.js';
import type { SignatureAlgorithm } from '../keys/signature.js';
import type { CheckpointVerifier } from './signer.js';

export interface AuditSummary {
  /** Lines read (including torn fragments). */
  lines: number;
  /** Lifecycle events (not checkpoints or recovery lines). */
  events: number;
  checkpoints: number;
  /** Torn fragments acknowledged by a recovery line. */
  recoveredFragments: number;
  /** Nodes whose verified checkpoints cover the log. */
  nodes: string[];
  /** Subjects of the certificates that signed checkpoints. */
  signers: string[];
  firstTime?: string;
  lastTime?: string;
  /** seq of the last verified checkpoint. */
  lastCheckpointSeq?: number;
  /** The log ends with the checkpoint a writer writes when it closes. */
  closedCleanly: boolean;
}

export type AuditVerifyResult =
  | { status: 'intact'; summary: AuditSummary }
  /** The chain up to `line` is intact and signed; from `line` on nothing is signed (or the last line is torn). */
  | { status: 'unverified'; line: number; reason: string; summary: AuditSummary }
  /** `line` is the first line found altered, removed, inserted, reordered or badly signed. */
  | { status: 'tampered'; line: number; reason: string; summary: AuditSummary };

const SIG_ALGS: SignatureAlgorithm[] = ['ecdsa-p256-sha256', 'ecdsa-p384-sha384', 'ed25519'];
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;
const MAX_CERT_PEM = 16 * 1024;
const ENVELOPE = new Set(['level', 'v', 'seq', 'time', 'node', 'prev', 'event']);

class Bad extends Error {
  constructor(
    readonly line: number,
    message: string,
  ) {
    super(message);
  }
}

interface Parsed {
  seq: number;
  time: string;
  node: string;
  prev: string;
  event: string;
  rest: Record<string, unknown>;
}

/** Parses a line into its envelope; undefined when it is not JSON (a torn fragment candidate). */
function parseJson(bytes: Buffer): unknown {
  try {
    return JSON.parse(bytes.toString('utf8'));
  } catch {
    return undefined;
  }
}

function parseEnvelope(n: number, obj: unknown): Parsed {
  if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) throw new Bad(n, `line ${n} is JSON but not an audit line object`);
  const o = obj as Record<string, unknown>;
  if (o.level !== AUDIT_LEVEL) throw new Bad(n, `line ${n} has level ${JSON.stringify(o.level)}, not "audit"`);
  if (o.v !== AUDIT_FORMAT_VERSION) throw new Bad(n, `line ${n} has format version ${JSON.stringify(o.v)}; this verifier reads version ${AUDIT_FORMAT_VERSION}`);
  if (!Number.isSafeInteger(o.seq) || (o.seq as number) < 1) throw new Bad(n, `line ${n} has no valid "seq"`);
  if (typeof o.time !== 'string' || !ISO_TIME.test(o.time) || Number.isNaN(Date.parse(o.time))) throw new Bad(n, `line ${n} has no valid "time"`);
  if (checkNodeName(o.node)) throw new Bad(n, `line ${n} has no valid "node"`);
  if (!isLineHash(o.prev)) throw new Bad(n, `line ${n} has no valid "prev" hash`);
  if (typeof o.event !== 'string') throw new Bad(n, `line ${n} has no "event"`);
  const rest: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(o)) if (!ENVELOPE.has(k)) rest[k] = v;
  return { seq: o.seq as number, time: o.time, node: o.node as string, prev: o.prev as string, event: o.event, rest };
}

function exactFields(n: number, what: string, rest: Record<string, unknown>, allowed: string[]): void {
  for (const k of Object.keys(rest)) if (!allowed.includes(k)) throw new Bad(n, `line ${n}: ${what} has an unknown field "${k}"`);
}

/** A one-line lookahead over the raw lines (used to tell an edited line from an inserted one). */
class Peekable {
  private peeked: IteratorResult<RawLine> | undefined;
  constructor(private readonly it: Iterator<RawLine>) {}
  next(): IteratorResult<RawLine> {
    if (this.peeked) {
      const p = this.peeked;
      this.peeked = undefined;
      return p;
    }
    return this.it.next();
  }
  peek(): RawLine | undefined {
    this.peeked ??= this.it.next();
    return this.peeked.done ? undefined : this.peeked.value;
  }
}

function prevOf(line: RawLine | undefined): string | undefined {
  if (!line || line.tooLong) return undefined;
  const o = parseJson(line.bytes) as Record<string, unknown> | undefined;
  return isLineHash(o?.prev) ? (o.prev as string) : undefined;
}

export function verifyAuditLines(lines: Iterable<RawLine>, verifier: CheckpointVerifier): AuditVerifyResult {
  const summary: AuditSummary = {
    lines: 0,
    events: 0,
    checkpoints: 0,
    recoveredFragments: 0,
    nodes: [],
    signers: [],
    closedCleanly: false,
  };
  const nodes = new Set<string>();
  const signers = new Set<string>();
  const certs = new Map<string, string>();
  let expectedSeq = 1;
  let head = GENESIS_PREV;
  let headLine = 0;
  /** Chained lines not yet covered by a checkpoint: [line number, node]. */
  let unsigned: Array<[number, string]> = [];
  let fragment: { line: number; bytes: Buffer } | undefined;
  const input = new Peekable(lines[Symbol.iterator]());

  const finish = (): AuditVerifyResult => {
    summary.nodes = [...nodes].sort();
    summary.signers = [...signers].sort();
    if (fragment) {
      return { status: 'unverified', line: fragment.line, reason: `line ${fragment.line} is a torn fragment that no recovery line acknowledges (the writer crashed mid-line, or the tail was cut)`, summary };
    }
    if (summary.lines === 0) return { status: 'unverified', line: 1, reason: 'the file is empty: there is nothing to verify', summary };
    if (unsigned.length > 0) {
      const first = unsigned[0]![0];
      const last = unsigned[unsigned.length - 1]![0];
      return {
        status: 'unverified',
        line: first,
        reason: `lines ${first}..${last} (${unsigned.length}) follow the last checkpoint and are not signed: they chain correctly but could have been altered, appended or cut without trace`,
        summary,
      };
    }
    return { status: 'intact', summary };
  };

  try {
    for (let r = input.next(); !r.done; r = input.next()) {
      const raw = r.value;
      summary.lines = raw.number;
      if (raw.tooLong) throw new Bad(raw.number, `line ${raw.number} is longer than ${MAX_LINE_BYTES} bytes`);
      const n = raw.number;
      if (!raw.terminated) {
        summary.closedCleanly = false;
        return {
          status: 'unverified',
          line: n,
          reason: `line ${n} is incomplete (no newline at the end of the file): a torn write or a cut file; nothing from it on is verified`,
          summary: { ...summary, nodes: [...nodes].sort(), signers: [...signers].sort() },
        };
      }
      if (raw.bytes.length === 0) throw new Bad(n, `line ${n} is empty`);
      const json = parseJson(raw.bytes);
      if (json === undefined) {
        if (fragment) throw new Bad(fragment.line, `line ${fragment.line} is not a valid audit line (not JSON)`);
        fragment = { line: n, bytes: raw.bytes };
        continue;
      }
      const p = parseEnvelope(n, json);
      if (fragment && p.event !== RECOVERED_EVENT) throw new Bad(fragment.line, `line ${fragment.line} is not a valid audit line (not JSON)`);

      if (p.seq !== expectedSeq) {
        if (p.seq > expectedSeq) {
          throw new Bad(n, `line ${n} has sequence ${p.seq} where ${expectedSeq} was expected: ${p.seq - expectedSeq} line(s) before it were removed, or lines were reordered`);
        }
        throw new Bad(n, `line ${n} has sequence ${p.seq} where ${expectedSeq} was expected: a line was inserted or duplicated before it, or lines were reordered`);
      }
      if (p.prev !== head) {
        if (headLine === 0) throw new Bad(n, `line ${n} is the first line but does not start the chain ("prev" is not the genesis value): lines before it were removed`);
        const hashHere = lineHash(raw.bytes);
        const nextPrev = prevOf(input.peek());
        if (nextPrev === head) {
          throw new Bad(n, `line ${n} does not commit to line ${headLine} but the line after it does: line ${n} was inserted`);
        }
        if (nextPrev !== undefined && nextPrev !== hashHere) {
          throw new Bad(n, `line ${n} does not commit to line ${headLine}, and the next line does not commit to it: line ${n} was replaced or lines around it were altered`);
        }
        throw new Bad(headLine, `line ${headLine} was altered: its hash does not match the "prev" of line ${n}, which commits to the original`);
      }

      summary.firstTime ??= p.time;
      summary.lastTime = p.time;
      summary.closedCleanly = false;

      if (p.event === RECOVERED_EVENT) {
        exactFields(n, 'the recovery line', p.rest, ['tornBytes', 'tornFingerprint']);
        const { tornBytes, tornFingerprint } = p.rest;
        if (!fragment) throw new Bad(n, `line ${n} acknowledges a torn fragment but the line before it is not one`);
        if (tornBytes !== fragment.bytes.length || tornFingerprint !== `sha256:${lineHash(fragment.bytes)}`) {
          throw new Bad(fragment.line, `line ${fragment.line} is not the torn fragment that line ${n} acknowledges (length or hash differ): it was altered`);
        }
        summary.recoveredFragments++;
        fragment = undefined;
        unsigned.push([n, p.node]);
      } else if (p.event === CHECKPOINT_EVENT) {
        exactFields(n, 'the checkpoint', p.rest, ['final', 'certFingerprint', 'sigAlg', 'certificate', 'signature']);
        const { final, certFingerprint, sigAlg, certificate, signature } = p.rest;
        if (typeof final !== 'boolean') throw new Bad(n, `line ${n}: checkpoint has no boolean "final"`);
        if (!isFingerprint(certFingerprint)) throw new Bad(n, `line ${n}: checkpoint has no valid "certFingerprint"`);
        if (typeof sigAlg !== 'string' || !SIG_ALGS.includes(sigAlg as SignatureAlgorithm)) throw new Bad(n, `line ${n}: checkpoint has unknown "sigAlg" ${JSON.stringify(sigAlg)}`);
        if (typeof signature !== 'string' || signature.length > 1024 || !BASE64.test(signature)) throw new Bad(n, `line ${n}: checkpoint has no valid base64 "signature"`);
        let pem: string | undefined;
        if (certificate !== undefined) {
          if (typeof certificate !== 'string' || certificate.length > MAX_CERT_PEM) throw new Bad(n, `line ${n}: checkpoint "certificate" is not a PEM string`);
          let fp: string;
          try {
            fp = certificateFingerprint(new X509Certificate(certificate));
          } catch {
            throw new Bad(n, `line ${n}: checkpoint "certificate" does not parse as X.509`);
          }
          if (fp !== certFingerprint) throw new Bad(n, `line ${n}: embedded certificate ${fp} does not match "certFingerprint" ${certFingerprint}`);
          pem = certificate;
        } else {
          pem = certs.get(certFingerprint);
          if (!pem) throw new Bad(n, `line ${n}: checkpoint refers to certificate ${certFingerprint} that no earlier checkpoint embeds`);
        }
        const data = checkpointMessage({ seq: p.seq, time: p.time, node: p.node, prev: p.prev, final, certFingerprint, sigAlg: sigAlg as SignatureAlgorithm });
        let subject: string;
        try {
          subject = verifier.verify({ certificatePem: pem, node: p.node, time: new Date(p.time), sigAlg, data, signature: Buffer.from(signature, 'base64') }).subject;
        } catch (err) {
          if (err instanceof AuditSignatureError) throw new Bad(n, `line ${n}: bad checkpoint: ${err.message}`);
          throw err;
        }
        for (const [line, node] of unsigned) {
          if (node !== p.node) throw new Bad(line, `line ${line} claims node "${node}" but the checkpoint that signs it (line ${n}) is node "${p.node}"'s`);
        }
        certs.set(certFingerprint, pem);
        nodes.add(p.node);
        signers.add(subject);
        unsigned = [];
        summary.checkpoints++;
        summary.lastCheckpointSeq = p.seq;
        summary.closedCleanly = final;
      } else {
        try {
          validateAuditEvent({ event: p.event, ...p.rest });
        } catch (err) {
          if (err instanceof AuditEventError) throw new Bad(n, `line ${n}: ${err.message}`);
          throw err;
        }
        summary.events++;
        unsigned.push([n, p.node]);
      }
      head = lineHash(raw.bytes);
      headLine = n;
      expectedSeq++;
    }
  } catch (err) {
    if (err instanceof Bad) {
      summary.nodes = [...nodes].sort();
      summary.signers = [...signers].sort();
      return { status: 'tampered', line: err.line, reason: err.message, summary };
    }
    throw err;
  }
  return finish();
}

/** Verifies an audit log file, reading it line by line with bounded memory. */
export function verifyAuditFile(path: string, verifier: CheckpointVerifier): AuditVerifyResult {
  return verifyAuditLines(linesOfFile(path, MAX_LINE_BYTES), verifier);
}

/** Verifies an audit log held in memory. */
export function verifyAuditBuffer(data: Buffer, verifier: CheckpointVerifier): AuditVerifyResult {
  return verifyAuditLines(linesOfBuffer(data, MAX_LINE_BYTES), verifier);
}
