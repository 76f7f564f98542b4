/**
 * URI name constraints (RFC 5280 §4.2.1.10, X509-SVID §4.2). Veil puts one on every node
 * certificate: permitted URI subtree = the trust domain, so whatever a node key signs can only
 * name SPIFFE IDs of that trust domain — `openssl verify`, Go's crypto/x509 and Veil's own
 * verifier all enforce it. Veil evaluates URI constraints only; a CA with constraints of any
 * other type is refused rather than half-checked.
 */
import { AsnConvert } from '@peculiar/asn1-schema';
import { GeneralName, GeneralSubtree, GeneralSubtrees, NameConstraints, id_ce_nameConstraints } from '@peculiar/asn1-x509';
import { Extension } from './x509.js';
import type { Certificate } from './certificate.js';
import { NameConstraintError } from './errors.js';

/** A critical nameConstraints extension permitting only URIs whose host is `trustDomain`. */
export function trustDomainNameConstraint(trustDomain: string): Extension {
  const nc = new NameConstraints({
    permittedSubtrees: new GeneralSubtrees([new GeneralSubtree({ base: new GeneralName({ uniformResourceIdentifier: trustDomain }) })]),
  });
  return new Extension(id_ce_nameConstraints, true, AsnConvert.serialize(nc));
}

/** The permitted URI constraints of a certificate (for profile checks), or undefined. */
export function permittedUriConstraints(cert: Certificate): string[] | undefined {
  const subtrees = cert.nameConstraints?.permittedSubtrees;
  if (!subtrees) return undefined;
  return [...subtrees].map((s) => s.base.uniformResourceIdentifier ?? '\u0000unsupported');
}

function uriHost(uri: string): string | undefined {
  const i = uri.indexOf('://');
  if (i < 1) return undefined;
  const rest = uri.slice(i + 3);
  const end = rest.search(/[/?#]/);
  let authority = end === -1 ? rest : rest.slice(0, end);
  const at = authority.lastIndexOf('@');
  if (at !== -1) authority = authority.slice(at + 1);
  const colon = authority.lastIndexOf(':');
  if (colon !== -1 && !authority.startsWith('[')) authority = authority.slice(0, colon);
  return authority.length > 0 ? authority.toLowerCase() : undefined;
}

function hostMatches(host: string, constraint: string): boolean {
  const c = constraint.toLowerCase();
  return c.startsWith('.') ? host.endsWith(c) && host.length > c.length : host === c;
}

function uriBases(subtrees: GeneralSubtrees | undefined, ca: Certificate): string[] {
  const out: string[] = [];
  for (const s of subtrees ?? []) {
    if (s.base.uniformResourceIdentifier === undefined || s.minimum !== 0 || s.maximum !== undefined) {
      throw new NameConstraintError(
        `${ca.what} has name constraints other than URI host constraints, which Veil does not evaluate: use a CA without them or with URI constraints only`,
      );
    }
    out.push(s.base.uniformResourceIdentifier);
  }
  return out;
}

/** Throws NameConstraintError when a URI SAN of `subject` falls outside `ca`'s constraints. */
export function checkNameConstraints(ca: Certificate, subject: Certificate): void {
  const nc = ca.nameConstraints;
  if (!nc) return;
  const permitted = uriBases(nc.permittedSubtrees, ca);
  const excluded = uriBases(nc.excludedSubtrees, ca);
  for (const uri of subject.uriSans) {
    const host = uriHost(uri);
    if (host === undefined) {
      throw new NameConstraintError(`${subject.what} names URI "${uri}" without a host, which ${ca.what}'s name constraints cannot permit`);
    }
    if (permitted.length > 0 && !permitted.some((c) => hostMatches(host, c))) {
      throw new NameConstraintError(
        `${subject.what} names "${uri}" but ${ca.what} permits only URIs in ${permitted.map((p) => `"${p}"`).join(', ')}`,
      );
    }
    const hit = excluded.find((c) => hostMatches(host, c));
    if (hit !== undefined) {
      throw new NameConstraintError(`${subject.what} names "${uri}", which ${ca.what} excludes ("${hit}")`);
    }
  }
}
