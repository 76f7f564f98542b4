/**
 * The operator's node certificate signer (only the leader runs it): watches
 * /veil/certs/requests/, checks each request (certificate-request-check.ts), signs the CSR with
 * the cluster CA (certs/ issueNodeCertificate, the one implementation), consumes a bootstrap token
 * by compare-and-swap delete (so a token works once), writes the answer to
 * /veil/certs/issued/<node> and deletes the request. Requests are handled one at a time, in store
 * order. A refusal is written as the answer too, so the agent can say why; a request whose id was
 * answered already (a replay of the exact record) is dropped without touching the answer the
 * node may still be reading.
 *
 * The operator has no audit log of its own (audit logs are per node and signed with the node
 * key): each issuance is logged (node, proof, serial, fingerprint, validity; never key material)
 * and counted in the operator's metrics; the node records "certificate.issued" /
 * "certificate.renewed" in its own audit log.
 */
import type { ClusterCa } from '../../certs/cluster-ca.js';
import { CertificateParseError, CsrRejectedError, PemError } from '../../certs/errors.js';
import { issueNodeCertificate } from '../../certs/node-certificate.js';
import { DEFAULT_CLOCK_SKEW_MS } from '../../certs/validity.js';
import type { ClusterClient } from '../cluster/client.js';
import type { Logger } from '../log/logger.js';
import { parseRegistration, type BootstrapRegistration } from '../node-cert/bootstrap-token.js';
import { CertificateRecordError, CertificateRequestRefusedError, type RefusalReason } from '../node-cert/errors.js';
import { putValue } from '../node-cert/put-value.js';
import { encodeResponse, MAX_ANSWERED, parseRequest, parseResponse, type CertificateResponse, type ProofKind } from '../node-cert/records.js';
import { bootstrapKey, issuedKey, nodeOfKey, REQUESTS_PREFIX } from '../node-cert/store-keys.js';
import { PrefixMirror } from '../store/prefix-mirror.js';
import type { KeyValue, Store } from '../store/store.js';
import { checkCertificateRequest, DEFAULT_MAX_REQUEST_AGE_MS } from './certificate-request-check.js';

export interface CertificateSignerOptions {
  store: Store;
  cluster: ClusterClient;
  ca: ClusterCa;
  /** Node certificate lifetime (default certs/ DEFAULT_NODE_TTL_MS, 7 days). */
  ttlMs?: number;
  maxRequestAgeMs?: number;
  clockSkewMs?: number;
  log?: Logger;
  now?: () => number;
  onIssued?(proof: ProofKind): void;
  onRefused?(reason: RefusalReason): void;
}

export type SignOutcome = { node: string; status: 'issued'; proof: ProofKind } | { node: string; status: 'refused'; reason: RefusalReason } | { node: string; status: 'ignored' };

export class CertificateSigner {
  readonly #o: CertificateSignerOptions;
  #mirror: PrefixMirror | undefined;
  #queue: Promise<unknown> = Promise.resolve();
  #stopped = false;

  constructor(opts: CertificateSignerOptions) {
    this.#o = opts;
  }

  /** Lists the pending requests, handles them, and keeps watching. */
  async start(): Promise<void> {
    this.#mirror = new PrefixMirror({
      store: this.#o.store,
      prefix: REQUESTS_PREFIX,
      onChange: (_key, kv) => {
        // A failure is logged by #enqueue and retried by the next pass.
        if (kv) this.#enqueue(kv).catch(() => undefined);
      },
      onResync: (err) => this.#o.log?.warn({ err }, 'Re-listing certificate requests'),
    });
    await this.#mirror.start();
    await this.#queue;
  }

  /** Handles every request still pending (a resync; the watch normally handles them). */
  async pass(): Promise<SignOutcome[]> {
    const kvs = [...(this.#mirror?.items.values() ?? [])];
    return Promise.all(kvs.map((kv) => this.#enqueue(kv)));
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    await this.#mirror?.stop();
    await this.#queue.catch(() => undefined);
  }

  #enqueue(kv: KeyValue): Promise<SignOutcome> {
    const run = this.#queue.then(() => this.handle(kv));
    this.#queue = run.catch((err: unknown) => this.#o.log?.warn({ err, key: kv.key }, 'Handling a certificate request failed; it is retried at the next pass'));
    return run;
  }

  /** Handles one request record. Exported for tests; normally driven by the watch. */
  async handle(kv: KeyValue): Promise<SignOutcome> {
    const { store, log } = this.#o;
    const node = nodeOfKey(REQUESTS_PREFIX, kv.key);
    if (!node) {
      log?.warn({ key: kv.key }, 'Deleting a store key under the certificate requests prefix that names no valid node');
      await store.delete(kv.key, kv.modRevision);
      return { node: kv.key, status: 'ignored' };
    }
    if (this.#stopped) return { node, status: 'ignored' };
    const current = await store.get(kv.key);
    if (!current || current.modRevision !== kv.modRevision) return { node, status: 'ignored' }; // handled or replaced meanwhile
    const responseKv = await store.get(issuedKey(node));
    const previous = this.#parseResponse(responseKv, node);
    const answered = previous ? [previous.requestId, ...previous.answered.filter((a) => a !== previous.requestId)] : [];
    let requestId: string | undefined;
    try {
      let req;
      try {
        req = parseRequest(kv, node);
      } catch (err) {
        throw new CertificateRequestRefusedError(node, 'malformed', `Refusing the certificate request of node "${node}": ${(err as Error).message}; upgrade the agent or remove the record`);
      }
      requestId = req.requestId;
      if (answered.includes(req.requestId)) {
        // The exact record again: the node may still be reading the answer, leave it.
        log?.warn({ node, requestId: req.requestId }, 'Dropping a replayed certificate request: it was answered already');
        this.#o.onRefused?.('replayed');
        await store.delete(kv.key, kv.modRevision);
        return { node, status: 'refused', reason: 'replayed' };
      }
      const now = new Date((this.#o.now ?? Date.now)());
      let registration: { reg: BootstrapRegistration; kv: KeyValue } | null = null;
      if (req.proof.kind === 'bootstrap-token') {
        const regKv = await store.get(bootstrapKey(node));
        if (regKv) {
          try {
            registration = { reg: parseRegistration(regKv, node), kv: regKv };
          } catch (err) {
            log?.warn({ err, node }, 'Ignoring an invalid bootstrap registration');
          }
        }
      }
      await checkCertificateRequest(req, {
        ca: this.#o.ca,
        answered,
        nodeExists: (await this.#o.cluster.get('nodes', node)) !== null,
        registration: registration?.reg ?? null,
        now,
        maxAgeMs: this.#o.maxRequestAgeMs ?? DEFAULT_MAX_REQUEST_AGE_MS,
        clockSkewMs: this.#o.clockSkewMs ?? DEFAULT_CLOCK_SKEW_MS,
      });
      let cert;
      try {
        cert = await issueNodeCertificate(this.#o.ca, { csrPem: req.csrPem, nodeName: node, now, ...(this.#o.ttlMs !== undefined ? { ttlMs: this.#o.ttlMs } : {}) });
      } catch (err) {
        if (err instanceof CsrRejectedError || err instanceof CertificateParseError || err instanceof PemError) {
          throw new CertificateRequestRefusedError(node, 'bad-csr', `${(err as Error).message}; the agent makes a new request at its next start`);
        }
        throw err;
      }
      if (registration && !(await store.delete(registration.kv.key, registration.kv.modRevision))) {
        throw new CertificateRequestRefusedError(node, 'no-token', `Refusing the certificate request of node "${node}": its bootstrap token was used or replaced while the request was checked; provision a new token for the node`);
      }
      await this.#answer({ node, requestId: req.requestId, answered: answered.slice(0, MAX_ANSWERED), status: 'issued', certificatePem: cert.pem });
      log?.info(
        { node, proof: req.proof.kind, serial: cert.serialNumber.toLowerCase().replace(/^0+(?=.)/, ''), fingerprint: cert.fingerprint, notBefore: cert.notBefore.toISOString(), notAfter: cert.notAfter.toISOString() },
        req.proof.kind === 'bootstrap-token' ? 'Issued a node certificate' : 'Renewed a node certificate',
      );
      this.#o.onIssued?.(req.proof.kind);
      await store.delete(kv.key, kv.modRevision);
      return { node, status: 'issued', proof: req.proof.kind };
    } catch (err) {
      if (!(err instanceof CertificateRequestRefusedError)) throw err;
      log?.warn({ node, reason: err.reason, err }, 'Refused a node certificate request');
      this.#o.onRefused?.(err.reason);
      // A refusal never overwrites an answer written since it was read (another replica that just
      // lost the lease may have issued for this very request).
      if (requestId) {
        const value = encodeResponse({ node, requestId, answered: answered.slice(0, MAX_ANSWERED), status: 'refused', reason: err.reason, message: err.message });
        const key = issuedKey(node);
        const ok = responseKv ? (await store.update(key, value, responseKv.modRevision)).updated : (await store.create(key, value)).created;
        if (!ok) log?.info({ node, requestId }, 'Not writing the refusal: the answer changed meanwhile');
      }
      await store.delete(kv.key, kv.modRevision);
      return { node, status: 'refused', reason: err.reason };
    }
  }

  #parseResponse(kv: KeyValue | null, node: string): CertificateResponse | null {
    if (!kv) return null;
    try {
      return parseResponse(kv, node);
    } catch (err) {
      if (err instanceof CertificateRecordError) {
        this.#o.log?.warn({ err, node }, 'Replacing an invalid certificate response');
        return null;
      }
      throw err;
    }
  }

  async #answer(r: CertificateResponse): Promise<void> {
    await putValue(this.#o.store, issuedKey(r.node), encodeResponse(r));
  }
}
