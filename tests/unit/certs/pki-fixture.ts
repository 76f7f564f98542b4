import type { KeyObject } from 'node:crypto';
/** A real small PKI (CA → node → SVID) for certificate tests, plus a helper to sign odd certificates. */
import { KeyUsageFlags } from '@peculiar/asn1-x509';
import type { Extension, JsonName } from '../../../certs/x509.js';
import { BasicConstraintsExtension, KeyUsagesExtension, SubjectAlternativeNameExtension } from '../../../certs/x509.js';
import { createClusterCa, type ClusterCa } from '../../../certs/cluster-ca.js';
import type { Certificate } from '../../../certs/certificate.js';
import { generateKeyPair, spkiDer, type KeyAlgorithm } from '../../../certs/keys.js';
import { issueNodeCertificate } from '../../../certs/node-certificate.js';
import { createNodeCsr } from '../../../certs/node-csr.js';
import { signCertificate } from '../../../certs/sign.js';
import { issueSvid, nodeCredentials, type NodeCredentials, type Svid } from '../../../certs/svid.js';
import { TrustBundle } from '../../../certs/trust-bundle.js';

export const TD = 'cluster.local';

export interface Pki {
  ca: ClusterCa;
  bundle: TrustBundle;
  node: NodeCredentials;
  svid: Svid;
}

export async function makePki(opts: { nodeName?: string; now?: Date; trustDomain?: string } = {}): Promise<Pki> {
  const now = opts.now ?? new Date();
  const ca = await createClusterCa({ trustDomain: opts.trustDomain ?? TD, now });
  const nodeName = opts.nodeName ?? 'node-1';
  const csr = await createNodeCsr({ nodeName });
  const cert = await issueNodeCertificate(ca, { csrPem: csr.csrPem, nodeName, now });
  const node = nodeCredentials(cert, csr.privateKey);
  const svid = await issueSvid(node, { namespace: 'default', serviceAccount: 'web', now });
  return { ca, bundle: TrustBundle.of([ca.certificate]), node, svid };
}

/** Signs an arbitrary certificate with the node key (what a compromised node could do). */
export async function signWithNode(
  node: Pick<NodeCredentials, 'certificate' | 'privateKey'>,
  extensions: Extension[],
  opts: { subject?: JsonName; notBefore?: Date; notAfter?: Date; algorithms?: KeyAlgorithm[] } = {},
): Promise<Certificate> {
  return (await signWithNodeKeepKey(node, extensions, opts)).certificate;
}

/** As signWithNode(), also returning the new certificate's private key. */
export async function signWithNodeKeepKey(
  node: Pick<NodeCredentials, 'certificate' | 'privateKey'>,
  extensions: Extension[],
  opts: { subject?: JsonName; notBefore?: Date; notAfter?: Date; algorithms?: KeyAlgorithm[] } = {},
): Promise<{ certificate: Certificate; privateKey: KeyObject }> {
  const { publicKey, privateKey } = await generateKeyPair();
  const now = Date.now();
  const certificate = await signCertificate(
    { certificate: node.certificate, privateKey: node.privateKey, algorithms: opts.algorithms ?? ['ECDSA P-256'], keyWhat: 'node key' },
    {
      what: 'test certificate',
      subject: opts.subject ?? [{ O: ['Veil'] }],
      subjectPublicKey: spkiDer(publicKey),
      notBefore: opts.notBefore ?? new Date(now - 60_000),
      notAfter: opts.notAfter ?? new Date(now + 3_600_000),
      extensions,
    },
  );
  return { certificate, privateKey };
}

/** The extensions of a well-formed SVID with the given URI SANs. */
export function svidExtensions(uris: string[], keyUsage = KeyUsageFlags.digitalSignature): Extension[] {
  return [
    new BasicConstraintsExtension(false, undefined, true),
    new KeyUsagesExtension(keyUsage, true),
    new SubjectAlternativeNameExtension(
      uris.map((value) => ({ type: 'url' as const, value })),
      false,
    ),
  ];
}
