/**
 * The node's half of certificate issuance through the store (docs/keys.md §Node certificate
 * lifecycle). ensure(), at agent start:
 *
 *   1. the node certificate and key files exist, the certificate chains to the CA bundle, names
 *      this node and belongs to the key, and its renewal time has not come  → use them
 *   2. they are valid but due for renewal  → renew: a fresh key and CSR, proved with the current
 *      certificate's key (no token needed); if that fails, keep using the valid certificate
 *   3. otherwise  → bootstrap: a fresh key and CSR, proved with the one-time bootstrap token;
 *      the token file is removed once the certificate is written
 *
 * A request is written to /veil/certs/requests/<node> and the answer polled from
 * /veil/certs/issued/<node> until it carries the request's id (or the timeout). The certificate is
 * verified (chains to the CA bundle, names this node, certifies the key made here) before the key
 * (0600) and then the certificate are written, each atomically (temporary file + rename). The
 * private key never leaves the node and is never logged.
 *
 * While the agent runs, startRenewal() renews at the renewal time: notAfter − renewBefore, but not
 * before half the lifetime (so a renewBefore longer than the lifetime cannot loop). A failure is
 * retried after `retryMs`.
 */
import { createPublicKey, randomBytes, sign as cryptoSign, type KeyObject } from 'node:crypto';
import { readFile, rm } from 'node:fs/promises';
import type { AuditEvent } from '../audit/events.js';
import { readCertificatePem, type Certificate } from '../../certs/certificate.js';
import { writePrivateKeyFile, writePublicFile } from '../../certs/files.js';
import { privateKeyToPem, readPrivateKeyPem, spkiDer } from '../../certs/keys.js';
import { createNodeCsr } from '../../certs/node-csr.js';
import { signingTrustDomain } from '../../certs/profile.js';
import { TrustBundle } from '../../certs/trust-bundle.js';
import { verifyNodeCertificate } from '../../certs/verify.js';
import { digestOf, signatureAlgorithmOf } from '../keys/signature.js';
import type { Logger } from '../log/logger.js';
import type { Store } from '../store/store.js';
import { abortableSleep } from '../util/abortable-sleep.js';
import { readBootstrapTokenFile, tokenSigningKey } from './bootstrap-token.js';
import { CertificateRecordError, CertificateRequestRefusedError, NodeCertificateUnavailableError } from './errors.js';
import { putValue } from './put-value.js';
import { encodeRequest, parseResponse, requestSigningData, type ProofKind, type RequestProof } from './records.js';
import { issuedKey, requestKey } from './store-keys.js';

export interface NodeCertificateFiles {
  caBundle: string;
  nodeCert: string;
  nodeKey: string;
  bootstrapToken: string;
}

export interface NodeCertificateClientOptions {
  store: Store;
  node: string;
  files: NodeCertificateFiles;
  /** Renew when less than this remains of the certificate's lifetime. */
  renewBeforeMs: number;
  /** How long to wait for the operator's answer (default 120 s). */
  timeoutMs?: number;
  /** Poll period of the answer (default 250 ms). */
  pollMs?: number;
  /** Delay before a failed renewal is tried again (default 10 s). */
  retryMs?: number;
  log?: Logger;
  now?: () => number;
}

/** The node's current credentials. */
export interface NodeCertificateState {
  certificate: Certificate;
  privateKey: KeyObject;
  /** The CA bundle file's PEM. */
  caPem: string;
  renewAt: Date;
}

export type NodeCertificateSource = 'existing' | 'issued' | 'renewed';

export interface EnsureResult {
  state: NodeCertificateState;
  source: NodeCertificateSource;
  /** The audit event to record for a new certificate (null when the files were used as they were). */
  event: AuditEvent | null;
}

const MAX_TIMER_MS = 2 ** 31 - 1;
const MIN_RENEW_DELAY_MS = 1000;

/** When a certificate valid from `notBefore` to `notAfter` is renewed. Pure. */
export function nodeCertificateRenewalTime(notBefore: Date, notAfter: Date, renewBeforeMs: number): Date {
  const half = notBefore.getTime() + (notAfter.getTime() - notBefore.getTime()) / 2;
  return new Date(Math.max(notAfter.getTime() - renewBeforeMs, Math.round(half)));
}

/** The audit event for a node certificate the node obtained (no key material). */
export function nodeCertificateEvent(cert: Certificate, issuer: Certificate, previousFingerprint?: string): AuditEvent {
  const fields = {
    certKind: 'node' as const,
    subject: cert.subject.split('\n').join(', '),
    serial: cert.serialNumber.toLowerCase().replace(/^0+(?=.)/, ''),
    fingerprint: cert.fingerprint,
    issuerFingerprint: issuer.fingerprint,
    notBefore: cert.notBefore.toISOString(),
    notAfter: cert.notAfter.toISOString(),
  };
  return previousFingerprint ? { event: 'certificate.renewed', ...fields, previousFingerprint } : { event: 'certificate.issued', ...fields };
}

export class NodeCertificateClient {
  readonly #o: NodeCertificateClientOptions;
  readonly #stop = new AbortController();
  #state: NodeCertificateState | undefined;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #lastError: Error | undefined;

  constructor(opts: NodeCertificateClientOptions) {
    this.#o = opts;
  }

  get current(): NodeCertificateState | undefined {
    return this.#state;
  }

  /** The last renewal failure, cleared by a success. */
  get lastError(): Error | undefined {
    return this.#lastError;
  }

  #now(): number {
    return (this.#o.now ?? Date.now)();
  }

  async #bundle(): Promise<{ caPem: string; bundle: TrustBundle; trustDomain: string }> {
    const path = this.#o.files.caBundle;
    let caPem: string;
    try {
      caPem = await readFile(path, 'utf8');
    } catch (err) {
      throw new NodeCertificateUnavailableError(`Cannot read the CA bundle "${path}": ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}; install the cluster's bundle.pem there (pki.caBundle)`, { cause: err });
    }
    const bundle = TrustBundle.fromPem(caPem, `CA bundle "${path}"`);
    const trustDomain = signingTrustDomain(bundle.cas[0]!);
    if (trustDomain === undefined) throw new NodeCertificateUnavailableError(`The CA bundle "${path}" names no trust domain (no spiffe:// URI SAN): use the bundle.pem that "veil certs init" wrote`);
    return { caPem, bundle, trustDomain };
  }

  /** Checks a certificate for this node and key against the bundle; returns its issuer. */
  async #verify(cert: Certificate, key: KeyObject, b: { bundle: TrustBundle; trustDomain: string }): Promise<Certificate> {
    const v = await verifyNodeCertificate(cert, { bundle: b.bundle, trustDomain: b.trustDomain, now: new Date(this.#now()) });
    if (v.nodeName !== this.#o.node) throw new NodeCertificateUnavailableError(`${cert.what} names node "${v.nodeName}", not "${this.#o.node}"`);
    if (!spkiDer(key).equals(cert.spkiDer)) throw new NodeCertificateUnavailableError(`${cert.what} does not certify the node key "${this.#o.files.nodeKey}"`);
    return v.path[1]!;
  }

  async #readExisting(b: { bundle: TrustBundle; trustDomain: string }): Promise<{ cert: Certificate; key: KeyObject } | null> {
    const { nodeCert, nodeKey } = this.#o.files;
    let certPem: string;
    let keyPem: string;
    try {
      [certPem, keyPem] = await Promise.all([readFile(nodeCert, 'utf8'), readFile(nodeKey, 'utf8')]);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
    try {
      const cert = readCertificatePem(certPem, `node certificate "${nodeCert}"`);
      const key = readPrivateKeyPem(keyPem, `node key "${nodeKey}"`);
      await this.#verify(cert, key, b);
      return { cert, key };
    } catch (err) {
      this.#o.log?.warn({ err, node: this.#o.node }, 'The node certificate on disk is not usable: requesting a new one');
      return null;
    }
  }

  /** Makes sure the node has a valid certificate (see the module comment). */
  async ensure(): Promise<EnsureResult> {
    const b = await this.#bundle();
    const existing = await this.#readExisting(b);
    if (existing) {
      const renewAt = nodeCertificateRenewalTime(existing.cert.notBefore, existing.cert.notAfter, this.#o.renewBeforeMs);
      this.#state = { certificate: existing.cert, privateKey: existing.key, caPem: b.caPem, renewAt };
      if (this.#now() < renewAt.getTime()) return { state: this.#state, source: 'existing', event: null };
      try {
        return await this.#renew();
      } catch (err) {
        this.#lastError = err as Error;
        this.#o.log?.warn({ err, node: this.#o.node }, 'Cannot renew the node certificate at start: using the current one, still valid');
        return { state: this.#state, source: 'existing', event: null };
      }
    }
    const token = await readBootstrapTokenFile(this.#o.files.bootstrapToken);
    const signingKey = tokenSigningKey(token);
    const r = await this.#obtain(b, 'bootstrap-token', (data) => ({ kind: 'bootstrap-token', signature: cryptoSign(null, data, signingKey) }));
    await rm(this.#o.files.bootstrapToken, { force: true });
    this.#o.log?.info({ node: this.#o.node, fingerprint: r.state.certificate.fingerprint, notAfter: r.state.certificate.notAfter.toISOString() }, 'Obtained the node certificate with the bootstrap token');
    return { state: r.state, source: 'issued', event: nodeCertificateEvent(r.state.certificate, r.issuer) };
  }

  /** Renews now with the current certificate's key. */
  async #renew(): Promise<EnsureResult> {
    const cur = this.#state;
    if (!cur) throw new NodeCertificateUnavailableError(`Node "${this.#o.node}" has no certificate to renew`);
    const b = await this.#bundle();
    const alg = signatureAlgorithmOf(createPublicKey({ key: cur.certificate.spkiDer, format: 'der', type: 'spki' }));
    if (!alg) throw new NodeCertificateUnavailableError(`${cur.certificate.what} has a key type that cannot sign a renewal request`);
    const r = await this.#obtain(b, 'node-certificate', (data) => ({
      kind: 'node-certificate',
      certificatePem: cur.certificate.pem,
      signature: cryptoSign(digestOf(alg), data, cur.privateKey),
    }));
    this.#lastError = undefined;
    this.#o.log?.info({ node: this.#o.node, fingerprint: r.state.certificate.fingerprint, previous: cur.certificate.fingerprint, notAfter: r.state.certificate.notAfter.toISOString() }, 'Renewed the node certificate');
    return { state: r.state, source: 'renewed', event: nodeCertificateEvent(r.state.certificate, r.issuer, cur.certificate.fingerprint) };
  }

  async #obtain(
    b: { caPem: string; bundle: TrustBundle; trustDomain: string },
    kind: ProofKind,
    prove: (data: Buffer) => RequestProof,
  ): Promise<{ state: NodeCertificateState; issuer: Certificate }> {
    const node = this.#o.node;
    const csr = await createNodeCsr({ nodeName: node });
    const base = { node, requestId: randomBytes(16).toString('hex'), createdAt: new Date(this.#now()), csrPem: csr.csrPem };
    const written = await putValue(this.#o.store, requestKey(node), encodeRequest({ ...base, proof: prove(requestSigningData(base, kind)) }));
    const timeoutMs = this.#o.timeoutMs ?? 120_000;
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const kv = await this.#o.store.get(issuedKey(node));
      let resp = null;
      if (kv) {
        try {
          resp = parseResponse(kv, node);
        } catch (err) {
          if (!(err instanceof CertificateRecordError)) throw err;
        }
      }
      if (resp && resp.requestId === base.requestId) {
        if (resp.status === 'refused') throw new CertificateRequestRefusedError(node, resp.reason, resp.message);
        const cert = readCertificatePem(resp.certificatePem, `node certificate issued for "${node}"`);
        let issuer: Certificate;
        try {
          issuer = await this.#verify(cert, csr.privateKey, b);
        } catch (err) {
          throw new NodeCertificateUnavailableError(`The certificate the operator issued for node "${node}" does not verify against the CA bundle "${this.#o.files.caBundle}": ${(err as Error).message}; check that the operator and the node use the same cluster CA`, { cause: err });
        }
        // Key first: a reader that sees the new certificate finds its key.
        await writePrivateKeyFile(this.#o.files.nodeKey, privateKeyToPem(csr.privateKey));
        await writePublicFile(this.#o.files.nodeCert, cert.pem);
        this.#state = { certificate: cert, privateKey: csr.privateKey, caPem: b.caPem, renewAt: nodeCertificateRenewalTime(cert.notBefore, cert.notAfter, this.#o.renewBeforeMs) };
        return { state: this.#state, issuer };
      }
      if (Date.now() > deadline || this.#stop.signal.aborted) {
        await this.#o.store.delete(requestKey(node), written.modRevision).catch(() => undefined);
        throw new NodeCertificateUnavailableError(
          `No answer to the certificate request of node "${node}" within ${Math.round(timeoutMs / 1000)} s: check that "veil operator" runs with --ca-dir and holds the leader lease`,
        );
      }
      await abortableSleep(this.#o.pollMs ?? 250, this.#stop.signal);
    }
  }

  /**
   * Renews at each renewal time while running; `onRenewed` gets every new certificate (with its
   * audit event), `onError` every failure (retried after `retryMs`).
   */
  startRenewal(handlers: { onRenewed(r: EnsureResult): void | Promise<void>; onError?(err: Error): void }): void {
    const schedule = (at: number) => {
      if (this.#stop.signal.aborted) return;
      const delay = Math.min(Math.max(at - this.#now(), MIN_RENEW_DELAY_MS), MAX_TIMER_MS);
      this.#timer = setTimeout(() => {
        this.#running = (async () => {
          try {
            const r = await this.#renew();
            await handlers.onRenewed(r);
            schedule(r.state.renewAt.getTime());
          } catch (err) {
            this.#lastError = err as Error;
            if (this.#stop.signal.aborted) return;
            this.#o.log?.warn({ err, node: this.#o.node }, 'Node certificate renewal failed; retrying');
            handlers.onError?.(err as Error);
            schedule(this.#now() + (this.#o.retryMs ?? 10_000));
          }
        })();
      }, delay);
    };
    if (!this.#state) throw new NodeCertificateUnavailableError(`Node "${this.#o.node}" has no certificate to renew: call ensure() first`);
    schedule(this.#state.renewAt.getTime());
  }

  async stop(): Promise<void> {
    this.#stop.abort();
    if (this.#timer) clearTimeout(this.#timer);
    await this.#running;
  }
}
