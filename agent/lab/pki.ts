/**
 * The lab's PKI through the certs/ API, in the layout `veil certs` uses (certs/directory.ts): a
 * cluster CA for trust domain "<lab>.veil.lab", whose key only the lab's operator reads (it signs
 * the node certificates, agent/operator/certificate-signer.ts), and per node a one-time bootstrap
 * token (0600) in `nodes/<node>/bootstrap-token`. Each agent obtains its node certificate and key
 * (nodes/<node>/node.pem, node-key.pem) from the operator with that token; the lab, as the node
 * provisioner, registers each token's public key in the store (agent/node-cert/bootstrap-token.ts).
 */
import { createClusterCa, privateKeyToPem, TrustBundle, type ClusterCa } from '../../certs/index.js';
import { caPaths, nodePaths } from '../../certs/directory.js';
import { writePrivateKeyFile, writePublicFile } from '../../certs/files.js';
import { join } from 'node:path';
import { createBootstrapToken, readBootstrapTokenFile, registerBootstrapToken, writeBootstrapTokenFile } from '../node-cert/bootstrap-token.js';
import type { Store } from '../store/store.js';

/** How long a lab node's bootstrap token stays registered (agents start right after `up` registers it). */
export const LAB_BOOTSTRAP_TOKEN_TTL_MS = 3_600_000;

export function labTrustDomain(lab: string): string {
  return `${lab}.veil.lab`;
}

/** Creates the lab CA in `dir`; returns it and its certificate path. */
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

/** Gives `node` a bootstrap token under `dir`; returns where its agent keeps token, certificate and key. */
export async function provisionLabNode(dir: string, node: string): Promise<{ cert: string; key: string; bootstrapToken: string }> {
  const paths = nodePaths(dir, node);
  const bootstrapToken = join(paths.dir, 'bootstrap-token');
  await writeBootstrapTokenFile(bootstrapToken, createBootstrapToken());
  return { cert: paths.cert, key: paths.key, bootstrapToken };
}

/** Registers a node's bootstrap token (from its file) in the lab's store. */
export async function registerLabNodeToken(store: Store, node: { name: string; bootstrapToken: string }): Promise<void> {
  await registerBootstrapToken(store, node.name, await readBootstrapTokenFile(node.bootstrapToken), { ttlMs: LAB_BOOTSTRAP_TOKEN_TTL_MS });
}
