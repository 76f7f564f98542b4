/**
 * The audit log writer: appends one JSON line per lifecycle event through pino to a file (mode
 * 0600, O_APPEND) and mirrors it to stdout; chains each line to the previous one by SHA-256 and
 * writes signed checkpoints every `checkpointEvery` lines, every `checkpointIntervalMs` (when
 * something was written since the last one) and at close.
 *
 * Restart: opening an existing file continues its chain from the last complete line. A torn tail
 * (the file does not end in "\n" after a crash) is handled deliberately, never truncated:
 * - if the fragment is a complete, correctly chained line that only lacks its newline, the
 *   newline is appended and the chain continues after it;
 * - otherwise a newline is appended so the fragment stands as its own line, followed by an
 *   "audit.recovered" line that records the fragment's length and SHA-256 and continues the chain
 *   from the last complete line. The verifier accepts a fragment only when such a line follows.
 *
 * fsync policy (`fsync`): "line" (default) fdatasync()s after every line and record() resolves
 * once the line is on disk; "checkpoint" syncs at checkpoints and close only; "none" leaves it to
 * the kernel except at close. Lines are written synchronously in call order either way.
 */
import { closeSync, fchmodSync, fdatasync, fstatSync, fsyncSync, openSync } from 'node:fs';
import { X509Certificate } from 'node:crypto';
import { dirname } from 'node:path';
import { pino, type Logger } from 'pino';
import { ChainSink, type Mirror } from './chain-sink.js';
import { readChainTail, parseChainPosition } from './chain-tail.js';
import { AuditLogError, AuditSignerError } from './errors.js';
import { validateAuditEvent, checkNodeName, type AuditEvent } from './events.js';
import { lockFile, type FileLock } from './file-lock.js';
import { certificateFingerprint } from '../keys/fingerprint.js';
import { assertNoKeyMaterial } from './key-material-guard.js';
import {
  AUDIT_FORMAT_VERSION,
  CHECKPOINT_EVENT,
  checkpointMessage,
  lineHash,
  RECOVERED_EVENT,
  type CheckpointFields,
} from './line-format.js';
import type { CheckpointSigner } from './signer.js';
import { signatureAlgorithmOf, verifySignature, type SignatureAlgorithm } from '../keys/signature.js';

export type FsyncPolicy = 'line' | 'checkpoint' | 'none';

export interface AuditLogOptions {
  path: string;
  /** This node's name; every line carries it and the certificate must name it. */
  node: string;
  signer: CheckpointSigner;
  /** Checkpoint after this many lines since the last one (default 100). */
  checkpointEvery?: number;
  /** Checkpoint this often when lines were written since the last one; 0 disables (default 60 s). */
  checkpointIntervalMs?: number;
  fsync?: FsyncPolicy;
  /** Copy of every line; default process.stdout, null for none. */
  mirror?: Mirror | null;
  /** Clock (tests). */
  now?: () => Date;
  /** Receives failures of timer-driven checkpoints (default: process warning). */
  onError?: (err: Error) => void;
}

export interface WrittenLine {
  seq: number;
  /** SHA-256 of the line (the next line's prev). */
  hash: string;
}

interface SignerState {
  signer: CheckpointSigner;
  alg: SignatureAlgorithm;
  fingerprint: string;
  publicKey: X509Certificate['publicKey'];
}

function prepareSigner(signer: CheckpointSigner): SignerState {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(signer.certificatePem);
  } catch (err) {
    throw new AuditSignerError('Cannot use the checkpoint signer: its certificate is not a valid PEM certificate', { cause: err });
  }
  const alg = signatureAlgorithmOf(cert.publicKey);
  if (!alg) {
    throw new AuditSignerError(`Cannot use the checkpoint signer: key type "${cert.publicKey.asymmetricKeyType}" is not supported; use EC P-256, EC P-384 or Ed25519`);
  }
  return { signer, alg, fingerprint: certificateFingerprint(cert), publicKey: cert.publicKey };
}

export class AuditLog {
  readonly path: string;
  readonly node: string;
  private readonly fd: number;
  private readonly sink: ChainSink;
  private readonly logger: Logger<'audit'>;
  private readonly lock: FileLock;
  private readonly every: number;
  private readonly policy: FsyncPolicy;
  private readonly now: () => Date;
  private readonly onError: (err: Error) => void;
  private readonly timer: NodeJS.Timeout | undefined;
  private signerState: SignerState;
  private seq: number;
  private sinceCheckpoint = 0;
  private embeddedFingerprint: string | undefined;
  private closed = false;
  private failed: Error | undefined;
  private syncChain: Promise<void> = Promise.resolve();
  private pendingSync: Promise<void> | null = null;

  private constructor(opts: AuditLogOptions, fd: number, lock: FileLock, sink: ChainSink, nextSeq: number) {
    this.path = opts.path;
    this.node = opts.node;
    this.fd = fd;
    this.lock = lock;
    this.sink = sink;
    this.seq = nextSeq;
    this.every = opts.checkpointEvery ?? 100;
    this.policy = opts.fsync ?? 'line';
    this.now = opts.now ?? (() => new Date());
    this.onError = opts.onError ?? ((err) => process.emitWarning(err));
    this.signerState = prepareSigner(opts.signer);
    this.logger = pino<'audit'>(
      {
        base: null,
        timestamp: false,
        customLevels: { audit: 35 },
        useOnlyCustomLevels: true,
        level: 'audit',
        formatters: { level: (label) => ({ level: label }) },
      },
      sink,
    );
    const interval = opts.checkpointIntervalMs ?? 60_000;
    if (interval > 0) {
      this.timer = setInterval(() => {
        if (this.sinceCheckpoint === 0 || this.closed || this.failed) return;
        this.checkpoint().catch((err: Error) => this.onError(err));
      }, interval);
      this.timer.unref();
    }
  }

  /** Opens (creating with mode 0600) or continues the audit log at `opts.path`. */
  static open(opts: AuditLogOptions): AuditLog {
    const nodeProblem = checkNodeName(opts.node);
    if (nodeProblem) throw new AuditLogError(`Cannot open audit log "${opts.path}": node name "${opts.node}" is not ${nodeProblem}`);
    if (opts.checkpointEvery !== undefined && (!Number.isSafeInteger(opts.checkpointEvery) || opts.checkpointEvery < 1)) {
      throw new AuditLogError(`Invalid checkpointEvery "${opts.checkpointEvery}": use a positive integer number of lines`);
    }
    prepareSigner(opts.signer);
    const lock = lockFile(opts.path);
    let fd: number | undefined;
    try {
      fd = openSync(opts.path, 'a+', 0o600);
      const st = fstatSync(fd);
      if (!st.isFile()) throw new AuditLogError(`Cannot open audit log "${opts.path}": not a regular file`);
      if ((st.mode & 0o777) !== 0o600) fchmodSync(fd, 0o600);
      if (st.size === 0) syncDirectory(opts.path);
      const tail = readChainTail(fd, opts.path);
      const sink = new ChainSink(fd, tail.head, opts.mirror === undefined ? process.stdout : opts.mirror);
      let nextSeq = tail.nextSeq;
      let tornRecord: { bytes: number; fingerprint: string } | undefined;
      if (tail.torn) {
        const pos = parseChainPosition(tail.torn);
        const chained = pos !== undefined && pos.seq === tail.nextSeq && pos.prev === tail.head;
        sink.terminateFragment(tail.torn, chained);
        if (chained) {
          // A complete line that lost only its newline: it is part of the chain.
          nextSeq++;
        } else {
          tornRecord = { bytes: tail.torn.length, fingerprint: `sha256:${lineHash(tail.torn)}` };
        }
      }
      const log = new AuditLog(opts, fd, lock, sink, nextSeq);
      if (tornRecord) log.writeLine(RECOVERED_EVENT, { tornBytes: tornRecord.bytes, tornFingerprint: tornRecord.fingerprint });
      return log;
    } catch (err) {
      if (fd !== undefined) closeSync(fd);
      lock.release();
      if (err instanceof AuditLogError || err instanceof AuditSignerError) throw err;
      throw new AuditLogError(`Cannot open audit log "${opts.path}": ${(err as Error).message}`, { cause: err });
    }
  }

  /** seq the next line will carry. */
  get nextSeq(): number {
    return this.seq;
  }

  /** Hash of the last line written (the chain head). */
  get head(): string {
    return this.sink.chainHead;
  }

  /**
   * Validates and appends one event. The line is written before this returns (in call order);
   * the promise resolves when it is durable under the fsync policy. Refuses key material
   * (AuditKeyMaterialError) and schema violations (AuditEventError) without writing anything.
   */
  async record(event: AuditEvent): Promise<WrittenLine> {
    this.assertOpen();
    assertNoKeyMaterial(event);
    const valid = validateAuditEvent(event);
    const { event: type, ...fields } = valid;
    const written = this.writeLine(type, fields);
    if (this.sinceCheckpoint >= this.every) await this.checkpoint();
    else if (this.policy === 'line') await this.sync();
    return written;
  }

  /** Writes a signed checkpoint over the current chain head now. */
  async checkpoint(): Promise<WrittenLine> {
    this.assertOpen();
    const written = this.writeCheckpoint(false);
    if (this.policy !== 'none') await this.sync();
    return written;
  }

  /**
   * Switches to a new signer (a renewed node certificate): lines written so far are first covered
   * by a checkpoint with the old signer; the next checkpoint embeds the new certificate.
   */
  async replaceSigner(signer: CheckpointSigner): Promise<void> {
    this.assertOpen();
    const next = prepareSigner(signer);
    if (this.sinceCheckpoint > 0) await this.checkpoint();
    this.signerState = next;
  }

  /** Writes the final checkpoint, syncs, and releases the file. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    if (this.timer) clearInterval(this.timer);
    try {
      if (!this.failed) this.writeCheckpoint(true);
    } finally {
      this.closed = true;
      await this.syncChain;
      try {
        if (!this.failed) fsyncSync(this.fd);
      } finally {
        closeSync(this.fd);
        this.lock.release();
      }
    }
  }

  private assertOpen(): void {
    if (this.closed) throw new AuditLogError(`Audit log "${this.path}" is closed: open it again to record`);
    if (this.failed) {
      throw new AuditLogError(`Audit log "${this.path}" stopped after a write failure (${this.failed.message}); fix the cause and restart the agent`, {
        cause: this.failed,
      });
    }
  }

  private writeCheckpoint(final: boolean): WrittenLine {
    const s = this.signerState;
    const fields: CheckpointFields = {
      seq: this.seq,
      time: this.now().toISOString(),
      node: this.node,
      prev: this.sink.chainHead,
      final,
      certFingerprint: s.fingerprint,
      sigAlg: s.alg,
    };
    const message = checkpointMessage(fields);
    let signature: Buffer;
    try {
      signature = s.signer.sign(message);
    } catch (err) {
      throw new AuditSignerError('Cannot sign an audit checkpoint: the signer failed', { cause: err });
    }
    if (!verifySignature(s.alg, s.publicKey, message, signature)) {
      throw new AuditSignerError(`Cannot sign an audit checkpoint: the signer's signature does not verify with its certificate (${s.fingerprint}) as "${s.alg}"`);
    }
    const embed = this.embeddedFingerprint !== s.fingerprint;
    const written = this.writeLine(
      CHECKPOINT_EVENT,
      {
        final,
        certFingerprint: s.fingerprint,
        sigAlg: s.alg,
        ...(embed ? { certificate: s.signer.certificatePem } : {}),
        signature: signature.toString('base64'),
      },
      fields.time,
    );
    if (embed) this.embeddedFingerprint = s.fingerprint;
    this.sinceCheckpoint = 0;
    return written;
  }

  private writeLine(event: string, fields: Record<string, unknown>, time = this.now().toISOString()): WrittenLine {
    const seq = this.seq;
    const before = this.sink.written;
    this.logger.audit({ v: AUDIT_FORMAT_VERSION, seq, time, node: this.node, prev: this.sink.chainHead, event, ...fields });
    const err = this.sink.failure;
    if (err || this.sink.written !== before + 1) {
      this.failed = err ?? new Error('pino did not write the line');
      throw new AuditLogError(`Cannot write to audit log "${this.path}": ${this.failed.message}`, { cause: this.failed });
    }
    this.seq++;
    this.sinceCheckpoint++;
    return { seq, hash: this.sink.chainHead };
  }

  /** fdatasync, coalescing callers that arrive while one is queued but not started. */
  private sync(): Promise<void> {
    if (this.pendingSync) return this.pendingSync;
    const p = this.syncChain.then(
      () =>
        new Promise<void>((resolve, reject) => {
          this.pendingSync = null;
          fdatasync(this.fd, (err) => (err ? reject(new AuditLogError(`Cannot sync audit log "${this.path}": ${err.message}`, { cause: err })) : resolve()));
        }),
    );
    this.pendingSync = p;
    this.syncChain = p.catch(() => undefined);
    return p;
  }
}

/** Makes a newly created file's directory entry durable. */
function syncDirectory(path: string): void {
  let dfd: number | undefined;
  try {
    dfd = openSync(dirname(path), 'r');
    fsyncSync(dfd);
  } catch {
    // Some filesystems refuse fsync on directories; the file's own fsyncs still apply.
  } finally {
    if (dfd !== undefined) closeSync(dfd);
  }
}

/** Opens (or continues) an audit log. */
export function openAuditLog(opts: AuditLogOptions): AuditLog {
  return AuditLog.open(opts);
}
