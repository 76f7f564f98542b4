/**
 * The checkpoint verifier that trusts one or more CA certificates (two during a CA rotation).
 * For each checkpoint it checks, in this order, and names the first failure:
 *  1. the embedded certificate parses, is not a CA, and has a supported key;
 *  2. it was issued and signed by one of the trusted CAs (X509Certificate.checkIssued + verify);
 *  3. that CA and the certificate were both valid at the checkpoint's time (no skew allowance:
 *     the time is the signer's own clock and is covered by the signature);
 *  4. the certificate names the node the checkpoint claims (its subject's single CN);
 *  5. the signature scheme matches the key and the signature verifies.
 * Steps 1–4 are the node-certificate check shared with node records (agent/keys/node-certificate-check.ts).
 */
import { X509Certificate } from 'node:crypto';
import { AuditSignatureError, AuditTrustError } from './errors.js';
import { certificateFingerprint } from '../keys/fingerprint.js';
import { checkNodeCertificate } from '../keys/node-certificate-check.js';
import type { CheckpointToVerify, CheckpointVerifier } from './signer.js';
import { signatureAlgorithmOf, verifySignature } from '../keys/signature.js';

const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g;
const MAX_TRUST_PEM = 1024 * 1024;

function oneLine(dn: string): string {
  return dn.split('\n').join(', ');
}

/** Parses every certificate in a PEM bundle; each must be a CA. */
export function parseCaBundle(pem: string, source = 'CA bundle'): X509Certificate[] {
  if (pem.length > MAX_TRUST_PEM) {
    throw new AuditTrustError(`Cannot use ${source}: larger than ${MAX_TRUST_PEM} bytes; pass a PEM file with the CA certificates only`);
  }
  const blocks = pem.match(PEM_CERT) ?? [];
  if (blocks.length === 0) {
    throw new AuditTrustError(`Cannot use ${source}: it holds no PEM certificate ("-----BEGIN CERTIFICATE-----")`);
  }
  return blocks.map((block, i) => {
    let cert: X509Certificate;
    try {
      cert = new X509Certificate(block);
    } catch (err) {
      throw new AuditTrustError(`Cannot use ${source}: certificate ${i + 1} does not parse`, { cause: err });
    }
    if (!cert.ca) {
      throw new AuditTrustError(`Cannot use ${source}: certificate "${oneLine(cert.subject)}" is not a CA (basicConstraints CA:TRUE missing)`);
    }
    return cert;
  });
}

/** A CheckpointVerifier trusting the CA certificates in the given PEM texts. */
export function createCaVerifier(caPems: string[]): CheckpointVerifier {
  if (caPems.length === 0) throw new AuditTrustError('Cannot verify audit checkpoints without a CA: pass at least one CA PEM (--ca CA.pem)');
  const cas = caPems.flatMap((pem, i) => parseCaBundle(pem, `CA file ${i + 1}`));
  const parsed = new Map<string, X509Certificate>();

  return {
    verify(c: CheckpointToVerify) {
      let cert = parsed.get(c.certificatePem);
      if (!cert) {
        try {
          cert = new X509Certificate(c.certificatePem);
        } catch (err) {
          throw new AuditSignatureError('The checkpoint certificate does not parse as X.509', { cause: err });
        }
        parsed.set(c.certificatePem, cert);
      }
      const subject = oneLine(cert.subject);
      const fp = certificateFingerprint(cert);
      const alg = signatureAlgorithmOf(cert.publicKey);
      const check = checkNodeCertificate(cert, { anchors: cas, at: c.time.getTime(), skewMs: 0, node: c.node });
      if (!check.ok) {
        const at = c.time.toISOString();
        switch (check.problem) {
          case 'anchor':
            throw new AuditSignatureError(`Certificate "${subject}" (${fp}) is a trust anchor or self-issued: checkpoints must be signed with a node certificate`);
          case 'untrusted':
            throw new AuditSignatureError(
              `Certificate "${subject}" (${fp}) does not chain to a trusted CA (issuer "${oneLine(cert.issuer)}"): the checkpoint was signed with a key the CA never certified`,
            );
          case 'ca-invalid':
            throw new AuditSignatureError(`CA "${oneLine(check.anchor!.subject)}" was not valid at signing time ${at} (valid ${check.anchor!.validFrom} to ${check.anchor!.validTo})`);
          case 'expired':
            throw new AuditSignatureError(`Certificate "${subject}" (${fp}) had expired at signing time ${at} (valid until ${cert.validTo})`);
          case 'not-yet-valid':
            throw new AuditSignatureError(`Certificate "${subject}" (${fp}) was not yet valid at signing time ${at} (valid from ${cert.validFrom})`);
          case 'name':
            throw new AuditSignatureError(`Certificate "${subject}" (${fp}) does not name node "${c.node}" that the checkpoint claims`);
        }
      }
      if (!alg) throw new AuditSignatureError(`Certificate "${subject}" has an unsupported key type "${cert.publicKey.asymmetricKeyType}"`);
      if (c.sigAlg !== alg) {
        throw new AuditSignatureError(`Checkpoint says signature algorithm "${c.sigAlg}" but certificate "${subject}" has a key for "${alg}"`);
      }
      if (!verifySignature(alg, cert.publicKey, c.data, c.signature)) {
        throw new AuditSignatureError(`Checkpoint signature does not verify with certificate "${subject}" (${fp}): forged or altered`);
      }
      return { subject };
    },
  };
}
