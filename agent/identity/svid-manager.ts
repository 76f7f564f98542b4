/**
 * The running half of SVID issuance (issue 4): for every identity this node hosts, an X.509 SVID
 * (certs/svid.ts: one URI SAN spiffe://<td>/ns/<ns>/sa/<sa>, default lifetime 1 h) signed with the
 * node certificate's key, written to `<stateDir>/svids/<id>.pem` (SVID then node certificate) and
 * `<stateDir>/svids/<id>.key.pem` (its ECDSA P-256 key), both 0600 in a 0700 directory, each
 * written to a temporary sibling and renamed. One audit line per certificate: "certificate.issued"
 * for the first, "certificate.renewed" (with previousFingerprint) for each later one, including
 * the first one after a restart that found an earlier file.
 *
 * The SVID certifies its own ECDSA P-256 key, not the identity's X25519 key: X.509 has no
 * signature algorithm for X25519 and the SVID profile (certs/svid.ts, docs/keys.md) is
 * digitalSignature only; the X25519 key travels in the signed node record (key-manager.ts).
 *
 * Renewal is at renewalTime() (half-life ±10 %), one timer per identity, cleared on stop or when
 * the identity stops being hosted (its files are then overwritten and removed). The hosted set is
 * re-read every `tickMs` and on kick(). All work runs in one serialised queue; a failed issuance
 * is logged, kept as `lastError` and retried after `retryMs`.
 */
import { readdir, mkdir, chmod, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { AuditEvent } from '../audit/events.js';
import type { Logger } from '../log/logger.js';
import { readCertificatesPem } from '../../certs/certificate.js';
import { writePrivateKeyFile } from '../../certs/files.js';
import { privateKeyToPem } from '../../certs/keys.js';
import { issueSvid, type NodeCredentials, type Svid } from '../../certs/svid.js';
import { ValidationError } from '../errors.js';
import { destroySecretFile } from '../keys/key-file.js';
import type { HostedIdentity } from './hosting.js';

export interface SvidManagerOptions {
  node: NodeCredentials;
  stateDir: string;
  /** The node's audit log (agent/audit). */
  audit: { record(event: AuditEvent): Promise<unknown> };
  /** The identities this node hosts now (agent/identity/hosting.ts hostedIdentities). */
  hosted: () => Promise<readonly HostedIdentity[]>;
  /** SVID lifetime (default 1 h, never beyond the node certificate's). */
  ttlMs?: number;
  /** How often the hosted set is re-read (default 5000 ms). */
  tickMs?: number;
  /** Delay before a failed issuance is tried again (default 10 000 ms). */
  retryMs?: number;
  log?: Logger;
  now?: () => number;
  /** Source of the renewal jitter (default Math.random). */
  random?: () => number;
}

/** One SVID as status() shows it (no key material). */
export interface SvidStatus {
  identity: number;
  spiffeId: string;
  fingerprint: string;
  notBefore: string;
  notAfter: string;
  renewAt: string;
}

interface Entry {
  identity: HostedIdentity;
  svid: Svid | undefined;
  /** Fingerprint of the certificate found on disk at start, replaced by the first issuance. */
  previousFingerprint: string | undefined;
  timer: NodeJS.Timeout | undefined;
}

/** setTimeout's largest delay. */
const MAX_TIMER_MS = 2 ** 31 - 1;
/** A renewal time already past (a short TTL, a slow clock) still waits this long: no tight loop. */
const MIN_RENEW_DELAY_MS = 1000;
const FILE = /^([1-9][0-9]{0,4})(\.key)?\.pem$/;

export class SvidManager {
  readonly #o: SvidManagerOptions;
  readonly #dir: string;
  readonly #now: () => number;
  readonly #entries = new Map<number, Entry>();
  #queue: Promise<void> = Promise.resolve();
  #tick: NodeJS.Timeout | undefined;
  #stopped = false;
  #lastError: Error | undefined;
  /** The node certificate and key that sign SVIDs (replaced by a renewal). */
  #node: NodeCredentials;

  constructor(o: SvidManagerOptions) {
    for (const [name, v] of [['ttlMs', o.ttlMs], ['tickMs', o.tickMs], ['retryMs', o.retryMs]] as const) {
      if (v !== undefined && (!Number.isSafeInteger(v) || v <= 0)) throw new ValidationError(name, `Invalid ${name} ${String(v)}: use a positive number of milliseconds`);
    }
    this.#o = o;
    this.#node = o.node;
    this.#dir = join(o.stateDir, 'svids');
    this.#now = o.now ?? Date.now;
  }

  /** The directory SVIDs are written to. */
  get dir(): string {
    return this.#dir;
  }

  /** Path of the certificate file (SVID + node certificate) of an identity. */
  certificatePath(identity: number): string {
    return join(this.#dir, `${identity}.pem`);
  }

  /** Path of the SVID private key of an identity. */
  keyPath(identity: number): string {
    return join(this.#dir, `${identity}.key.pem`);
  }

  /** Creates the directory (0700), issues SVIDs for the hosted identities, then re-reads them every tick. */
  async start(): Promise<void> {
    await mkdir(this.#dir, { recursive: true, mode: 0o700 });
    await chmod(this.#dir, 0o700);
    await this.#enqueue(() => this.#sync());
    this.#tick = setInterval(() => this.kick(), this.#o.tickMs ?? 5000);
    this.#tick.unref?.();
  }

  /** Re-reads the hosted identities at once (after the queued work). */
  kick(): void {
    void this.#enqueue(() => this.#sync());
  }

  /**
   * Switches to a renewed node certificate and key (agent/node-cert) and re-issues every SVID with
   * them at once (each audited as "certificate.renewed"), so none chains to the old certificate.
   */
  replaceNodeCredentials(node: NodeCredentials): Promise<void> {
    this.#node = node;
    return this.#enqueue(async () => {
      let failed: Error | undefined;
      for (const entry of this.#entries.values()) failed ??= await this.#issueOrRetry(entry);
      if (failed) throw failed;
    });
  }

  /** Waits for the queued work; for tests and orderly shutdown. */
  async settled(): Promise<void> {
    let q: Promise<void>;
    do {
      q = this.#queue;
      await q;
    } while (q !== this.#queue);
  }

  /** Clears every timer and waits for running work. SVID files stay: they are valid until they expire. */
  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#tick) clearInterval(this.#tick);
    for (const e of this.#entries.values()) if (e.timer) clearTimeout(e.timer);
    await this.settled();
  }

  /** The last error (cleared by a successful pass); for health. */
  get lastError(): Error | undefined {
    return this.#lastError;
  }

  status(): SvidStatus[] {
    return [...this.#entries.values()]
      .filter((e) => e.svid)
      .map((e) => ({
        identity: e.identity.id,
        spiffeId: e.svid!.spiffeId,
        fingerprint: e.svid!.certificate.fingerprint,
        notBefore: e.svid!.notBefore.toISOString(),
        notAfter: e.svid!.notAfter.toISOString(),
        renewAt: e.svid!.renewAt.toISOString(),
      }))
      .sort((a, b) => a.identity - b.identity);
  }

  #enqueue(work: () => Promise<void>): Promise<void> {
    this.#queue = this.#queue.then(async () => {
      if (this.#stopped) return;
      try {
        await work();
        this.#lastError = undefined;
      } catch (err) {
        this.#lastError = err as Error;
        this.#o.log?.error({ err }, 'SVID manager pass failed; retrying');
      }
    });
    return this.#queue;
  }

  /** Hosted set → entries: new identities get an SVID, gone ones lose timer and files. */
  async #sync(): Promise<void> {
    const hosted = await this.#o.hosted();
    const want = new Map(hosted.map((h) => [h.id, h]));
    for (const [id, e] of this.#entries) {
      if (want.has(id)) continue;
      if (e.timer) clearTimeout(e.timer);
      this.#entries.delete(id);
      await this.#removeFiles(id);
      this.#o.log?.info({ identity: id }, 'Identity no longer hosted: removed its SVID');
    }
    // Files of identities this agent does not track (hosted before a restart, gone since).
    for (const name of await readdir(this.#dir)) {
      const m = FILE.exec(name);
      if (m && !want.has(Number(m[1]))) await destroySecretFile(join(this.#dir, name));
    }
    let failed: Error | undefined;
    for (const h of want.values()) {
      if (this.#entries.has(h.id)) continue;
      const entry: Entry = { identity: h, svid: undefined, previousFingerprint: await this.#fileFingerprint(h.id), timer: undefined };
      this.#entries.set(h.id, entry);
      failed ??= await this.#issueOrRetry(entry);
    }
    if (failed) throw failed;
  }

  /** Fingerprint of the SVID a previous run left on disk, if it can be read. */
  async #fileFingerprint(id: number): Promise<string | undefined> {
    try {
      return readCertificatesPem(await readFile(this.certificatePath(id)), `SVID file "${this.certificatePath(id)}"`)[0]?.fingerprint;
    } catch {
      return undefined;
    }
  }

  /** Issues the entry's SVID; on failure schedules a retry and returns the error. */
  async #issueOrRetry(entry: Entry): Promise<Error | undefined> {
    try {
      await this.#issue(entry);
      return undefined;
    } catch (err) {
      this.#schedule(entry, this.#now() + (this.#o.retryMs ?? 10_000));
      return err as Error;
    }
  }

  async #issue(entry: Entry): Promise<void> {
    const { id, namespace, serviceAccount } = entry.identity;
    const svid = await issueSvid(this.#node, {
      namespace,
      serviceAccount,
      now: new Date(this.#now()),
      ...(this.#o.ttlMs !== undefined ? { ttlMs: this.#o.ttlMs } : {}),
      ...(this.#o.random ? { random: this.#o.random } : {}),
    });
    // Key first: a reader that sees the new certificate finds its key.
    await writePrivateKeyFile(this.keyPath(id), privateKeyToPem(svid.privateKey));
    await writePrivateKeyFile(this.certificatePath(id), [svid.certificate, ...svid.chain].map((c) => c.pem.trimEnd() + '\n').join(''));
    const previous = entry.svid?.certificate.fingerprint ?? entry.previousFingerprint;
    const cert = svid.certificate;
    const fields = {
      certKind: 'svid' as const,
      subject: cert.subject.split('\n').join(', '),
      spiffeId: svid.spiffeId,
      identity: id,
      serial: cert.serialNumber.toLowerCase().replace(/^0+(?=.)/, ''),
      fingerprint: cert.fingerprint,
      issuerFingerprint: this.#node.certificate.fingerprint,
      notBefore: cert.notBefore.toISOString(),
      notAfter: cert.notAfter.toISOString(),
    };
    entry.svid = svid;
    entry.previousFingerprint = undefined;
    await this.#o.audit.record(previous ? { event: 'certificate.renewed', ...fields, previousFingerprint: previous } : { event: 'certificate.issued', ...fields });
    this.#o.log?.info({ identity: id, spiffeId: svid.spiffeId, fingerprint: cert.fingerprint, notAfter: fields.notAfter, renewAt: svid.renewAt.toISOString() }, previous ? 'Renewed an SVID' : 'Issued an SVID');
    this.#schedule(entry, svid.renewAt.getTime());
  }

  #schedule(entry: Entry, at: number): void {
    if (entry.timer) clearTimeout(entry.timer);
    if (this.#stopped) return;
    const delay = Math.min(Math.max(at - this.#now(), MIN_RENEW_DELAY_MS), MAX_TIMER_MS);
    entry.timer = setTimeout(() => {
      entry.timer = undefined;
      void this.#enqueue(async () => {
        if (this.#entries.get(entry.identity.id) !== entry) return;
        try {
          await this.#issue(entry);
        } catch (err) {
          this.#schedule(entry, this.#now() + (this.#o.retryMs ?? 10_000));
          throw err;
        }
      });
    }, delay);
    entry.timer.unref?.();
  }

  async #removeFiles(id: number): Promise<void> {
    await destroySecretFile(this.certificatePath(id));
    await destroySecretFile(this.keyPath(id));
  }
}
