/**
 * The one check that a certificate is a node certificate of this cluster, made synchronously on
 * node:crypto for the two places that trust a node's signature without the full certs/ path
 * validation: node records (node-record-verify.ts) and audit checkpoints
 * (agent/audit/ca-verifier.ts). In this order, the first failure named by `problem`:
 *
 *   anchor         it is a trust anchor itself or self-issued (a node certificate is neither)
 *   untrusted      not issued and signed directly by one of the trusted CAs (so SVIDs and anything
 *                  a node issued are refused too)
 *   ca-invalid     that CA is outside its validity window at `at` ± skew
 *   expired / not-yet-valid   the certificate is outside its window at `at` ± skew
 *   name           its node name (subject's single CN, as certs/ issues node certificates) is not
 *                  the expected node
 *
 * Callers turn a problem into their own error (record rejection reason, audit verification
 * failure) and check the signature algorithm their format supports.
 */
import type { X509Certificate } from 'node:crypto';

export type NodeCertificateProblem = 'anchor' | 'untrusted' | 'ca-invalid' | 'expired' | 'not-yet-valid' | 'name';

export type NodeCertificateCheck =
  | { ok: true; anchor: X509Certificate; nodeName: string }
  | { ok: false; problem: NodeCertificateProblem; anchor?: X509Certificate; nodeName?: string };

/** The node name a node certificate vouches for: its subject's single CN. */
export function nodeNameFromCertificate(cert: X509Certificate): string | undefined {
  const cns = cert.subject
    .split('\n')
    .filter((l) => l.startsWith('CN='))
    .map((l) => l.slice(3));
  return cns.length === 1 ? cns[0] : undefined;
}

function window(cert: X509Certificate, at: number, skewMs: number): 'ok' | 'expired' | 'not-yet-valid' {
  if (at + skewMs < Date.parse(cert.validFrom)) return 'not-yet-valid';
  if (at - skewMs > Date.parse(cert.validTo)) return 'expired';
  return 'ok';
}

export interface NodeCertificateCheckOptions {
  /** Trusted cluster CAs (one, or two during a CA rotation). */
  anchors: readonly X509Certificate[];
  /** Time the certificate must be valid at, ms since the epoch. */
  at: number;
  /** Tolerated clock skew at both ends of both validity windows. */
  skewMs: number;
  /** The node the certificate must name. */
  node: string;
  /** Reads the node name (default nodeNameFromCertificate). */
  nodeNameOf?: (cert: X509Certificate) => string | undefined;
}

export function checkNodeCertificate(cert: X509Certificate, o: NodeCertificateCheckOptions): NodeCertificateCheck {
  if (o.anchors.some((ca) => ca.fingerprint256 === cert.fingerprint256) || cert.checkIssued(cert)) return { ok: false, problem: 'anchor' };
  const anchor = o.anchors.find((ca) => ca.ca && cert.checkIssued(ca) && cert.verify(ca.publicKey));
  if (!anchor) return { ok: false, problem: 'untrusted' };
  if (window(anchor, o.at, o.skewMs) !== 'ok') return { ok: false, problem: 'ca-invalid', anchor };
  const w = window(cert, o.at, o.skewMs);
  if (w !== 'ok') return { ok: false, problem: w, anchor };
  const nodeName = (o.nodeNameOf ?? nodeNameFromCertificate)(cert);
  if (nodeName !== o.node) return { ok: false, problem: 'name', anchor, ...(nodeName !== undefined ? { nodeName } : {}) };
  return { ok: true, anchor, nodeName };
}
