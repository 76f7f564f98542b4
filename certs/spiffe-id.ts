/**
 * SPIFFE IDs as Veil issues and accepts them.
 *
 * Workload (SVID) IDs have exactly the shape `spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>`,
 * the convention Istio and SPIRE's Kubernetes registrar use, so existing SPIFFE-aware policy can
 * read them. Signing certificates (cluster CA, node certificates) carry the trust domain's own ID
 * `spiffe://<trust-domain>` with no path, as the X509-SVID standard (§3.2) requires.
 */
import { ValidationError } from '../agent/errors.js';
import { SpiffeIdError } from './errors.js';
import { isDns1123Label, isDns1123Subdomain, validateNamespace, validateServiceAccount } from './names.js';

/** Longest SPIFFE ID accepted (the SPIFFE ID standard's limit for URIs). */
export const MAX_SPIFFE_ID_LENGTH = 2048;
const TRUST_DOMAIN = /^[a-z0-9._-]{1,255}$/;
const SEGMENT = /^[A-Za-z0-9._-]+$/;

export interface WorkloadId {
  spiffeId: string;
  trustDomain: string;
  namespace: string;
  serviceAccount: string;
}

export function isTrustDomain(s: string): boolean {
  return TRUST_DOMAIN.test(s) && s !== '.' && s !== '..';
}

/** A trust domain name: lowercase letters, digits, ".", "-", "_" (SPIFFE ID standard §2.1). */
export function validateTrustDomain(value: unknown, field = 'trustDomain'): string {
  if (typeof value !== 'string' || !isTrustDomain(value)) {
    const shown = typeof value === 'string' ? value.slice(0, 80) : String(value);
    throw new ValidationError(
      field,
      `Invalid trust domain "${shown}": use lowercase letters, digits, ".", "-" and "_" (at most 255), e.g. "cluster.local"`,
    );
  }
  return value;
}

/** `spiffe://<td>`: the ID of signing certificates. */
export function trustDomainId(trustDomain: string): string {
  return `spiffe://${validateTrustDomain(trustDomain)}`;
}

/** `spiffe://<td>/ns/<ns>/sa/<sa>`, after validating each part. */
export function workloadSpiffeId(trustDomain: string, namespace: string, serviceAccount: string): string {
  return `spiffe://${validateTrustDomain(trustDomain)}/ns/${validateNamespace(namespace)}/sa/${validateServiceAccount(serviceAccount)}`;
}

export interface ParsedSpiffeId {
  trustDomain: string;
  /** Path segments; empty for a trust domain ID. */
  segments: string[];
}

/**
 * Parses a SPIFFE ID strictly: lowercase `spiffe` scheme, a valid trust domain (no port, user
 * info, query or fragment), path segments of [A-Za-z0-9._-] that are not "." or "..", no
 * trailing slash. Throws SpiffeIdError.
 */
export function parseSpiffeId(uri: string): ParsedSpiffeId {
  const shown = uri.length > 120 ? `${uri.slice(0, 120)}…` : uri;
  if (uri.length > MAX_SPIFFE_ID_LENGTH) {
    throw new SpiffeIdError(`SPIFFE ID "${shown}" is longer than ${MAX_SPIFFE_ID_LENGTH} characters`);
  }
  if (!uri.startsWith('spiffe://')) {
    throw new SpiffeIdError(`URI "${shown}" is not a SPIFFE ID: the scheme must be "spiffe://"`);
  }
  const rest = uri.slice('spiffe://'.length);
  const slash = rest.indexOf('/');
  const trustDomain = slash === -1 ? rest : rest.slice(0, slash);
  if (!isTrustDomain(trustDomain)) {
    throw new SpiffeIdError(
      `SPIFFE ID "${shown}" has an invalid trust domain "${trustDomain}": lowercase letters, digits, ".", "-", "_" only, no port or user info`,
    );
  }
  if (slash === -1) return { trustDomain, segments: [] };
  const segments = rest.slice(slash + 1).split('/');
  for (const seg of segments) {
    if (seg === '' || seg === '.' || seg === '..' || !SEGMENT.test(seg)) {
      throw new SpiffeIdError(
        `SPIFFE ID "${shown}" has an invalid path segment "${seg}": segments are non-empty [A-Za-z0-9._-], not "." or "..", no trailing "/"`,
      );
    }
  }
  return { trustDomain, segments };
}

/**
 * Parses a workload SVID ID and checks its trust domain and path shape `/ns/<ns>/sa/<sa>`.
 * Throws SpiffeIdError naming what is wrong.
 */
export function parseWorkloadId(uri: string, expectedTrustDomain: string): WorkloadId {
  const { trustDomain, segments } = parseSpiffeId(uri);
  if (trustDomain !== expectedTrustDomain) {
    throw new SpiffeIdError(`SPIFFE ID "${uri}" is in trust domain "${trustDomain}", not "${expectedTrustDomain}"`);
  }
  const [ns, namespace, sa, serviceAccount] = segments;
  if (
    segments.length !== 4 ||
    ns !== 'ns' ||
    sa !== 'sa' ||
    namespace === undefined ||
    serviceAccount === undefined ||
    !isDns1123Label(namespace) ||
    !isDns1123Subdomain(serviceAccount)
  ) {
    throw new SpiffeIdError(
      `SPIFFE ID "${uri}" does not have the workload shape "spiffe://${expectedTrustDomain}/ns/<namespace>/sa/<service-account>"`,
    );
  }
  return { spiffeId: uri, trustDomain, namespace, serviceAccount };
}
