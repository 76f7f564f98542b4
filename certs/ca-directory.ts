/**
 * Loads the cluster CA from a `veil certs` directory (directory.ts layout: ca.pem, ca-key.pem,
 * trust-domain), validated by importClusterCa(). Used by `veil certs` and by the operator, which
 * signs node certificates with it.
 */
import { caPaths } from './directory.js';
import { importClusterCa, type ClusterCa } from './cluster-ca.js';
import { readInputFile } from './files.js';

export async function loadClusterCaDirectory(dir: string): Promise<ClusterCa> {
  const p = caPaths(dir);
  const hint = `run "veil certs init --dir ${dir} --trust-domain TD" first`;
  const trustDomain = (await readInputFile(p.trustDomain, 'trust domain file', hint)).toString('utf8').trim();
  return importClusterCa({
    certificatePem: await readInputFile(p.caCert, 'CA certificate', hint),
    privateKeyPem: await readInputFile(p.caKey, 'CA private key', hint),
    trustDomain,
    certificateWhat: `CA certificate "${p.caCert}"`,
    keyWhat: `CA private key "${p.caKey}"`,
  });
}
