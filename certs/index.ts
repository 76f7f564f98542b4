/** Veil's certificates: cluster CA, node certificates, SVIDs, trust bundles, verification. */
export * from './errors.js';
export { readCertificatePem, readCertificatesPem, parseCertificateDer, type Certificate } from './certificate.js';
export { createClusterCa, importClusterCa, CA_KEY_ALGORITHMS, type ClusterCa } from './cluster-ca.js';
export { TrustBundle, MAX_BUNDLE_CAS } from './trust-bundle.js';
export { createNodeCsr, readCsrPem, type NodeCsr } from './node-csr.js';
export { issueNodeCertificate, type IssueNodeCertificateOptions } from './node-certificate.js';
export { issueSvid, loadNodeCredentials, nodeCredentials, type NodeCredentials, type Svid, type IssueSvidOptions } from './svid.js';
export {
  verifySvid,
  verifyNodeCertificate,
  type IssuingNodeHostsIdentity,
  type VerifiedSvid,
  type VerifiedNode,
  type VerifyOptions,
  type VerifySvidOptions,
} from './verify.js';
export { renewalTime, RENEWAL_JITTER } from './renewal.js';
export { parseSpiffeId, parseWorkloadId, workloadSpiffeId, trustDomainId, validateTrustDomain } from './spiffe-id.js';
export { generateKeyPair, readPrivateKeyPem, privateKeyToPem, describeKey } from './keys.js';
export * from './validity.js';
