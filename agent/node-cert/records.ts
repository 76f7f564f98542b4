/**
 * The two records of node certificate issuance and the bytes a request's proof signs.
 *
 * Request (/veil/certs/requests/<node>, written by the node's agent):
 *   { v: 1, node, requestId: 32 hex, createdAt: ISO time, csr: PEM,
 *     proof: { kind: "bootstrap-token", signature: base64 }                        first certificate
 *          | { kind: "node-certificate", certificate: PEM, signature: base64 } }   renewal
 * The signature covers requestSigningData(): a domain-separation line, the node, the request id,
 * the creation time, the proof kind and the CSR's PEM text — so a proof cannot be moved to another
 * node, request, time or CSR. "bootstrap-token" is signed with the token's Ed25519 key
 * (bootstrap-token.ts), "node-certificate" with the key of the node's current, still valid
 * certificate (ECDSA P-256, SHA-256).
 *
 * Response (/veil/certs/issued/<node>, written by the operator):
 *   { v: 1, node, requestId, answered: [recent request ids], status: "issued", certificate: PEM }
 *   { v: 1, node, requestId, answered: [...], status: "refused", reason, message }
 * `answered` lets the operator refuse a replayed request it already answered.
 */
import type { KeyValue } from '../store/store.js';
import { validateNodeName } from '../../certs/names.js';
import { CertificateRecordError, REFUSAL_REASONS, type RefusalReason } from './errors.js';

export type ProofKind = 'bootstrap-token' | 'node-certificate';

export type RequestProof = { kind: 'bootstrap-token'; signature: Buffer } | { kind: 'node-certificate'; certificatePem: string; signature: Buffer };

export interface CertificateRequest {
  node: string;
  requestId: string;
  createdAt: Date;
  csrPem: string;
  proof: RequestProof;
}

export type CertificateResponse = {
  node: string;
  requestId: string;
  /** Ids of the last requests answered for this node, newest first (at most MAX_ANSWERED). */
  answered: string[];
} & ({ status: 'issued'; certificatePem: string } | { status: 'refused'; reason: RefusalReason; message: string });

export const MAX_RECORD_BYTES = 64 * 1024;
export const MAX_ANSWERED = 16;
const REQUEST_ID = /^[0-9a-f]{32}$/;
const MAX_PEM = 16 * 1024;
const MAX_SIGNATURE = 512;

/** The exact bytes a request's proof signs. */
export function requestSigningData(r: { node: string; requestId: string; createdAt: Date; csrPem: string }, kind: ProofKind): Buffer {
  return Buffer.from(`veil-node-certificate-request-v1\n${r.node}\n${r.requestId}\n${r.createdAt.toISOString()}\n${kind}\n${r.csrPem}`, 'utf8');
}

export function encodeRequest(r: CertificateRequest): Buffer {
  const proof =
    r.proof.kind === 'bootstrap-token'
      ? { kind: r.proof.kind, signature: r.proof.signature.toString('base64') }
      : { kind: r.proof.kind, certificate: r.proof.certificatePem, signature: r.proof.signature.toString('base64') };
  return Buffer.from(JSON.stringify({ v: 1, node: r.node, requestId: r.requestId, createdAt: r.createdAt.toISOString(), csr: r.csrPem, proof }));
}

export function encodeResponse(r: CertificateResponse): Buffer {
  const base = { v: 1, node: r.node, requestId: r.requestId, answered: r.answered };
  return Buffer.from(
    JSON.stringify(r.status === 'issued' ? { ...base, status: 'issued', certificate: r.certificatePem } : { ...base, status: 'refused', reason: r.reason, message: r.message }),
  );
}

type O = Record<string, unknown>;

function readObject(kv: KeyValue, what: string): { o: O; bad: (why: string) => CertificateRecordError } {
  const bad = (why: string) => new CertificateRecordError(`${what} "${kv.key}" is invalid: ${why}`);
  if (kv.value.length > MAX_RECORD_BYTES) throw bad(`it is ${kv.value.length} bytes, more than ${MAX_RECORD_BYTES}`);
  let o: unknown;
  try {
    o = JSON.parse(kv.value.toString('utf8'));
  } catch {
    throw bad('it is not JSON');
  }
  if (o === null || typeof o !== 'object' || Array.isArray(o)) throw bad('it is not an object');
  if ((o as O).v !== 1) throw bad('it is not a version 1 record');
  return { o: o as O, bad };
}

function onlyKeys(o: O, allowed: string[], bad: (why: string) => CertificateRecordError, where = ''): void {
  for (const k of Object.keys(o)) if (!allowed.includes(k)) throw bad(`unknown field "${where}${k}"`);
}

function pem(v: unknown, field: string, bad: (why: string) => CertificateRecordError): string {
  if (typeof v !== 'string' || v.length === 0 || v.length > MAX_PEM || !v.startsWith('-----BEGIN ')) throw bad(`"${field}" is not a PEM block`);
  return v;
}

function signature(v: unknown, bad: (why: string) => CertificateRecordError): Buffer {
  if (typeof v !== 'string' || v.length === 0 || v.length > MAX_SIGNATURE || !/^[A-Za-z0-9+/]+={0,2}$/.test(v)) throw bad('"proof.signature" is not base64');
  return Buffer.from(v, 'base64');
}

/** Parses a request from the store (hostile input); it must be about `node`, the node its key names. */
export function parseRequest(kv: KeyValue, node: string): CertificateRequest {
  const { o, bad } = readObject(kv, 'Certificate request');
  onlyKeys(o, ['v', 'node', 'requestId', 'createdAt', 'csr', 'proof'], bad);
  if (o.node !== node) throw bad(`it names node ${JSON.stringify(o.node)?.slice(0, 80)}, not the node of its key`);
  validateNodeName(node);
  if (typeof o.requestId !== 'string' || !REQUEST_ID.test(o.requestId)) throw bad('"requestId" is not 32 lowercase hex digits');
  const createdAt = typeof o.createdAt === 'string' ? new Date(o.createdAt) : new Date(NaN);
  if (Number.isNaN(createdAt.getTime()) || createdAt.toISOString() !== o.createdAt) throw bad('"createdAt" is not an ISO time');
  const csrPem = pem(o.csr, 'csr', bad);
  const p = o.proof;
  if (p === null || typeof p !== 'object' || Array.isArray(p)) throw bad('"proof" is not an object');
  const proof = p as O;
  let parsed: RequestProof;
  if (proof.kind === 'bootstrap-token') {
    onlyKeys(proof, ['kind', 'signature'], bad, 'proof.');
    parsed = { kind: 'bootstrap-token', signature: signature(proof.signature, bad) };
  } else if (proof.kind === 'node-certificate') {
    onlyKeys(proof, ['kind', 'certificate', 'signature'], bad, 'proof.');
    parsed = { kind: 'node-certificate', certificatePem: pem(proof.certificate, 'proof.certificate', bad), signature: signature(proof.signature, bad) };
  } else {
    throw bad('"proof.kind" is neither "bootstrap-token" nor "node-certificate"');
  }
  return { node, requestId: o.requestId, createdAt, csrPem, proof: parsed };
}

/** Parses the operator's response (read by the agent; still checked). */
export function parseResponse(kv: KeyValue, node: string): CertificateResponse {
  const { o, bad } = readObject(kv, 'Certificate response');
  if (o.node !== node) throw bad(`it names node ${JSON.stringify(o.node)?.slice(0, 80)}`);
  if (typeof o.requestId !== 'string' || !REQUEST_ID.test(o.requestId)) throw bad('"requestId" is not 32 lowercase hex digits');
  if (!Array.isArray(o.answered) || o.answered.length > MAX_ANSWERED || !o.answered.every((a) => typeof a === 'string' && REQUEST_ID.test(a))) {
    throw bad(`"answered" is not a list of at most ${MAX_ANSWERED} request ids`);
  }
  const base = { node, requestId: o.requestId, answered: o.answered as string[] };
  if (o.status === 'issued') {
    onlyKeys(o, ['v', 'node', 'requestId', 'answered', 'status', 'certificate'], bad);
    return { ...base, status: 'issued', certificatePem: pem(o.certificate, 'certificate', bad) };
  }
  if (o.status === 'refused') {
    onlyKeys(o, ['v', 'node', 'requestId', 'answered', 'status', 'reason', 'message'], bad);
    if (!REFUSAL_REASONS.includes(o.reason as RefusalReason)) throw bad(`"reason" ${JSON.stringify(o.reason)?.slice(0, 40)} is unknown`);
    if (typeof o.message !== 'string' || o.message.length > 1024) throw bad('"message" is not a string of at most 1024 characters');
    return { ...base, status: 'refused', reason: o.reason as RefusalReason, message: o.message };
  }
  throw bad('"status" is neither "issued" nor "refused"');
}
