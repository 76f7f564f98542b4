/**
 * The on-disk layout `veil certs` writes (one directory per cluster):
 *
 *   DIR/ca.pem  DIR/ca-key.pem (0600)  DIR/bundle.pem  DIR/trust-domain
 *   DIR/nodes/<node>/node.pem  node-key.pem (0600)  node.csr
 *   DIR/nodes/<node>/svids/<namespace>/<service-account>/svid.pem  svid-key.pem (0600)  chain.pem
 *
 * svid.pem holds the SVID alone, chain.pem the node certificate that completes its path, so
 * `openssl verify -CAfile DIR/bundle.pem -untrusted chain.pem svid.pem` checks it.
 */
import { join } from 'node:path';
import { validateNamespace, validateNodeName, validateServiceAccount } from './names.js';

export interface CertDirectoryPaths {
  caCert: string;
  caKey: string;
  bundle: string;
  trustDomain: string;
}

export function caPaths(dir: string): CertDirectoryPaths {
  return {
    caCert: join(dir, 'ca.pem'),
    caKey: join(dir, 'ca-key.pem'),
    bundle: join(dir, 'bundle.pem'),
    trustDomain: join(dir, 'trust-domain'),
  };
}

export function nodePaths(dir: string, nodeName: string): { dir: string; cert: string; key: string; csr: string } {
  const d = join(dir, 'nodes', validateNodeName(nodeName));
  return { dir: d, cert: join(d, 'node.pem'), key: join(d, 'node-key.pem'), csr: join(d, 'node.csr') };
}

export function svidPaths(
  dir: string,
  nodeName: string,
  namespace: string,
  serviceAccount: string,
): { dir: string; cert: string; key: string; chain: string } {
  const d = join(nodePaths(dir, nodeName).dir, 'svids', validateNamespace(namespace), validateServiceAccount(serviceAccount));
  return { dir: d, cert: join(d, 'svid.pem'), key: join(d, 'svid-key.pem'), chain: join(d, 'chain.pem') };
}
