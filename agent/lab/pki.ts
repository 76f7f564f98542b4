/**
 * The lab's PKI through the certs/ API, in the layout `veil certs` uses (certs/directory.ts):
 * a cluster CA for trust domain "<lab>.veil.lab" and one node certificate per node. Private key
 * files are 0600 (certs/files.ts). Agents of the lab load their node credentials from here.
 */
import { createClusterCa, issueNodeCertificate, createNodeCsr, privateKeyToPem, TrustBundle, type ClusterCa } from '../../certs/index.js';
import { caPaths, nodePaths } from '../../certs/directory.js';
import { writePrivateKeyFile, writePublicFile } from '../../certs/files.js';

export function labTrustDomain(lab: string): string {
  return `${lab}.veil.lab`;
}

/** Creates the lab CA in `dir`; returns it (kept in memory only while `up` runs) and its certificate path. */
export async function createLabCa(dir: string, lab: string): Promise<{ ca: ClusterCa; caCert: string }> {
  const trustDomain = labTrustDomain(lab);
  const ca = await createClusterCa({ trustDomain });
  const p = caPaths(dir);
  await writePrivateKeyFile(p.caKey, privateKeyToPem(ca.privateKey));
  await writePublicFile(p.caCert, ca.certificate.pem);
  await writePublicFile(p.bundle, TrustBundle.of([ca.certificate]).toPem());
  await writePublicFile(p.trustDomain, `${trustDomain}\n`);
  return { ca, caCert: p.caCert };
}

/** Issues a node certificate and key for `node` under `dir`. */
export async function issueLabNodeCertificate(dir: string, ca: ClusterCa, node: string): Promise<{ cert: string; key: string }> {
  const paths = nodePaths(dir, node);
  const csr = await createNodeCsr({ nodeName: node });
  const cert = await issueNodeCertificate(ca, { csrPem: csr.csrPem, nodeName: node });
  await writePrivateKeyFile(paths.key, privateKeyToPem(csr.privateKey));
  await writePublicFile(paths.csr, csr.csrPem);
  await writePublicFile(paths.cert, cert.pem);
  return { cert: paths.cert, key: paths.key };
}
