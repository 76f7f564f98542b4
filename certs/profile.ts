/**
 * The three certificate profiles Veil issues and the checks that recognise them.
 *
 *   cluster CA   CA:TRUE, pathlen 1, keyUsage keyCertSign+cRLSign, URI SAN spiffe://<td>
 *   node         CA:TRUE, pathlen 0, keyUsage keyCertSign+digitalSignature, URI SAN spiffe://<td>,
 *                nameConstraints permitted URI <td>, subject CN=<node name>
 *   SVID         CA:FALSE, keyUsage digitalSignature, EKU serverAuth+clientAuth,
 *                exactly one URI SAN spiffe://<td>/ns/<ns>/sa/<sa>
 *
 * Key usage is critical everywhere (X509-SVID §4.3), basic constraints too.
 */
import { KeyUsageFlags } from '@peculiar/asn1-x509';
import { KNOWN_EXTENSIONS, type Certificate } from './certificate.js';
import { CertificateProfileError, SpiffeIdError } from './errors.js';
import { isDns1123Subdomain } from './names.js';
import { permittedUriConstraints } from './name-constraints.js';
import { parseSpiffeId, parseWorkloadId, trustDomainId, type WorkloadId } from './spiffe-id.js';

export const SERVER_AUTH = '1.3.6.1.5.5.7.3.1';
export const CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';

/** Refuses a certificate with a critical extension Veil does not understand (RFC 5280 §4.2). */
export function checkCriticalExtensions(cert: Certificate): void {
  for (const e of cert.extensions) {
    if (e.critical && !KNOWN_EXTENSIONS.has(e.oid)) {
      throw new CertificateProfileError(`${cert.what} has critical extension ${e.oid}, which Veil does not understand: it cannot be used`);
    }
  }
}

/** A certificate that may sign others: CA:TRUE and, when key usage is present, keyCertSign. */
export function checkSigningCertificate(cert: Certificate): void {
  checkCriticalExtensions(cert);
  if (!cert.basicConstraints?.ca) {
    throw new CertificateProfileError(`${cert.what} ("${cert.subject}") is not a CA certificate (basicConstraints CA:TRUE missing): it cannot sign certificates`);
  }
  if (cert.keyUsage !== undefined && (cert.keyUsage & KeyUsageFlags.keyCertSign) === 0) {
    throw new CertificateProfileError(`${cert.what} ("${cert.subject}") lacks key usage keyCertSign: it cannot sign certificates`);
  }
}

/** Trust domain named by a signing certificate's URI SAN (`spiffe://<td>`), if it has one. */
export function signingTrustDomain(cert: Certificate): string | undefined {
  const uri = cert.uriSans.find((u) => u.startsWith('spiffe://'));
  if (uri === undefined) return undefined;
  const parsed = parseSpiffeId(uri);
  if (parsed.segments.length !== 0) {
    throw new SpiffeIdError(`${cert.what} is a signing certificate with SPIFFE ID "${uri}": signing certificates must not have a path (X509-SVID §3.2)`);
  }
  return parsed.trustDomain;
}

/** Checks the node certificate profile and returns the node name (subject CN). */
export function checkNodeCertificate(cert: Certificate, trustDomain: string): string {
  checkSigningCertificate(cert);
  if (cert.basicConstraints?.pathLength !== 0) {
    throw new CertificateProfileError(`${cert.what} is not a node certificate: basicConstraints pathlen must be 0`);
  }
  if (cert.keyUsage === undefined || !isCritical(cert, '2.5.29.15')) {
    throw new CertificateProfileError(`${cert.what} is not a node certificate: key usage must be present and critical`);
  }
  const [cn, ...more] = cert.commonNames;
  if (cn === undefined || more.length > 0 || !isDns1123Subdomain(cn)) {
    throw new CertificateProfileError(`${cert.what} is not a node certificate: the subject must have exactly one CN that is a node name`);
  }
  if (cert.uriSans.length !== 1 || cert.uriSans[0] !== trustDomainId(trustDomain)) {
    throw new SpiffeIdError(`${cert.what} (node "${cn}") must carry exactly one URI SAN "${trustDomainId(trustDomain)}"`);
  }
  const permitted = permittedUriConstraints(cert);
  if (!permitted || permitted.length !== 1 || permitted[0] !== trustDomain || !isCritical(cert, '2.5.29.30')) {
    throw new CertificateProfileError(
      `${cert.what} (node "${cn}") must carry a critical name constraint permitting only URIs in "${trustDomain}"`,
    );
  }
  return cn;
}

/** Checks the SVID leaf profile (X509-SVID §5.2) and returns the workload ID. */
export function checkSvidLeaf(cert: Certificate, trustDomain: string): WorkloadId {
  checkCriticalExtensions(cert);
  if (cert.basicConstraints?.ca) {
    throw new CertificateProfileError(`${cert.what} is a CA certificate, not an SVID: basicConstraints must be CA:FALSE`);
  }
  if (cert.keyUsage === undefined) {
    throw new CertificateProfileError(`${cert.what} has no key usage extension; an SVID must carry a critical one with digitalSignature`);
  }
  if ((cert.keyUsage & KeyUsageFlags.digitalSignature) === 0) {
    throw new CertificateProfileError(`${cert.what} lacks key usage digitalSignature, which an SVID must have`);
  }
  if ((cert.keyUsage & (KeyUsageFlags.keyCertSign | KeyUsageFlags.cRLSign)) !== 0) {
    throw new CertificateProfileError(`${cert.what} has key usage keyCertSign or cRLSign, which an SVID must not have`);
  }
  if (cert.extKeyUsage !== undefined && !(cert.extKeyUsage.includes(SERVER_AUTH) && cert.extKeyUsage.includes(CLIENT_AUTH))) {
    throw new CertificateProfileError(`${cert.what} has an extended key usage without both serverAuth and clientAuth`);
  }
  if (cert.uriSans.length !== 1) {
    throw new SpiffeIdError(
      `${cert.what} has ${cert.uriSans.length} URI SANs; an SVID must have exactly one (spiffe://${trustDomain}/ns/<namespace>/sa/<service-account>)`,
    );
  }
  return parseWorkloadId(cert.uriSans[0] as string, trustDomain);
}

function isCritical(cert: Certificate, oid: string): boolean {
  return cert.extensions.some((e) => e.oid === oid && e.critical);
}
