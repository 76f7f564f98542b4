/**
 * `veil certs`: the cluster CA, node certificates and SVIDs as files (layout in
 * certs/directory.ts). The commands only parse flags, read and write files; all certificate
 * logic lives in certs/.
 *
 *   veil certs init        --dir DIR --trust-domain TD [--ttl 3650d] [--ca-cert PEM --ca-key PEM]
 *   veil certs issue-node  --dir DIR --node NAME [--ttl 7d] [--csr PEM]
 *   veil certs issue-svid  --dir DIR --node NAME --namespace NS --service-account SA [--ttl 1h]
 *   veil certs verify      --ca BUNDLE.pem CERT.pem [--chain PEM]... [--trust-domain TD] [--clock-skew 60s]
 *   veil certs bootstrap-token --node NAME --store URLS --out FILE [--ttl 24h]
 */
import { existsSync } from 'node:fs';
import { ConfigError } from '../errors.js';
import { readCertificatePem, readCertificatesPem, type Certificate } from '../../certs/certificate.js';
import { createClusterCa, importClusterCa, type ClusterCa } from '../../certs/cluster-ca.js';
import { loadClusterCaDirectory } from '../../certs/ca-directory.js';
import { caPaths, nodePaths, svidPaths } from '../../certs/directory.js';
import { readInputFile, writePrivateKeyFile, writePublicFile } from '../../certs/files.js';
import { privateKeyToPem } from '../../certs/keys.js';
import { issueNodeCertificate } from '../../certs/node-certificate.js';
import { createNodeCsr } from '../../certs/node-csr.js';
import { signingTrustDomain } from '../../certs/profile.js';
import { issueSvid, loadNodeCredentials, nodeCredentials } from '../../certs/svid.js';
import { TrustBundle } from '../../certs/trust-bundle.js';
import { validateTrustDomain } from '../../certs/spiffe-id.js';
import { DEFAULT_CLOCK_SKEW_MS, MAX_CLOCK_SKEW_MS, MAX_TTL_MS, MIN_TTL_MS } from '../../certs/validity.js';
import { parseDuration } from '../config/duration.js';
import { verifyNodeCertificate, verifySvid } from '../../certs/verify.js';
import { validatePath } from '../../certs/chain.js';
import { validateNodeName } from '../../certs/names.js';
import { parseStoreEndpoints } from '../config/agent-config.js';
import { createBootstrapToken, registerBootstrapToken, writeBootstrapTokenFile } from '../node-cert/bootstrap-token.js';
import { EtcdStore } from '../store/etcd-store.js';
import { parseCommandArgs, requiredFlag, type CliOptions } from './args.js';
import { commandGroup } from './command-group.js';

/** Lifetimes on the command line: the bounds of every certificate Veil issues. */
const TTL_BOUNDS = { minMs: MIN_TTL_MS, maxMs: MAX_TTL_MS };

const USAGE = `Usage: veil certs <command> [options]

Commands:
  init        --dir DIR --trust-domain TD [--ttl 3650d] [--ca-cert PEM --ca-key PEM]
              Create the cluster CA (ECDSA P-256), or import an existing one, and the trust bundle
  issue-node  --dir DIR --node NAME [--ttl 7d] [--csr PEM]
              Issue a node certificate on the node's certificate request (made here unless --csr)
  issue-svid  --dir DIR --node NAME --namespace NS --service-account SA [--ttl 1h]
              Issue an SVID spiffe://TD/ns/NS/sa/SA with the node's certificate key
  bootstrap-token --node NAME --store URLS --out FILE [--ttl 24h]
              Provision a node: write a one-time bootstrap token (0600) for the node to FILE and
              register its public key in the store; the node's agent gets its certificate from
              "veil operator --ca-dir" with it (docs/keys.md §Node certificate lifecycle)
  verify      --ca BUNDLE.pem CERT.pem [--chain PEM]... [--trust-domain TD] [--clock-skew 60s]
              Verify a CA, node certificate or SVID against the trust bundle
`;

const parse = (sub: string, args: string[], options: CliOptions, positionals = 0) => parseCommandArgs(`certs ${sub}`, args, options, positionals);
const required = (values: Record<string, unknown>, name: string, sub: string): string => requiredFlag(values, name, `certs ${sub}`);

function out(line: string): void {
  process.stdout.write(`${line}\n`);
}


async function init(args: string[]): Promise<number> {
  const { values } = parse('init', args, {
    dir: { type: 'string' },
    'trust-domain': { type: 'string' },
    ttl: { type: 'string' },
    'ca-cert': { type: 'string' },
    'ca-key': { type: 'string' },
  });
  const dir = required(values, 'dir', 'init');
  const trustDomain = validateTrustDomain(required(values, 'trust-domain', 'init'), '--trust-domain');
  const p = caPaths(dir);
  if (existsSync(p.caCert) || existsSync(p.caKey)) {
    throw new ConfigError(`A cluster CA already exists in "${dir}": choose another --dir, or remove ca.pem and ca-key.pem to replace it`);
  }
  let ca: ClusterCa;
  if (values['ca-cert'] !== undefined || values['ca-key'] !== undefined) {
    const certPath = required(values, 'ca-cert', 'init');
    const keyPath = required(values, 'ca-key', 'init');
    if (values.ttl !== undefined) throw new ConfigError('--ttl applies to a created CA, not an imported one: drop it');
    ca = await importClusterCa({
      certificatePem: await readInputFile(certPath, 'CA certificate', 'pass the PEM of the CA to import'),
      privateKeyPem: await readInputFile(keyPath, 'CA private key', 'pass the PEM of the CA key to import'),
      trustDomain,
      certificateWhat: `CA certificate "${certPath}"`,
      keyWhat: `CA private key "${keyPath}"`,
    });
  } else {
    const ttlMs = values.ttl !== undefined ? parseDuration('--ttl', values.ttl, TTL_BOUNDS) : undefined;
    ca = await createClusterCa({ trustDomain, ...(ttlMs !== undefined ? { ttlMs } : {}) });
  }
  await writePrivateKeyFile(p.caKey, privateKeyToPem(ca.privateKey));
  await writePublicFile(p.caCert, ca.certificate.pem);
  await writePublicFile(p.bundle, TrustBundle.of([ca.certificate]).toPem());
  await writePublicFile(p.trustDomain, `${trustDomain}\n`);
  out(`${values['ca-cert'] !== undefined ? 'Imported' : 'Created'} cluster CA for trust domain "${trustDomain}" (fingerprint ${ca.certificate.fingerprint}, valid until ${ca.certificate.notAfter.toISOString()})`);
  out(`  ${p.caCert}\n  ${p.caKey} (0600)\n  ${p.bundle}`);
  return 0;
}

async function issueNode(args: string[]): Promise<number> {
  const { values } = parse('issue-node', args, { dir: { type: 'string' }, node: { type: 'string' }, ttl: { type: 'string' }, csr: { type: 'string' } });
  const dir = required(values, 'dir', 'issue-node');
  const nodeName = required(values, 'node', 'issue-node');
  const ttlMs = values.ttl !== undefined ? parseDuration('--ttl', values.ttl, TTL_BOUNDS) : undefined;
  const paths = nodePaths(dir, nodeName);
  const ca = await loadClusterCaDirectory(dir);
  let csrPem: string | Buffer;
  let nodeKey;
  if (values.csr !== undefined) {
    csrPem = await readInputFile(values.csr as string, 'certificate request', 'make it on the node: openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=NODE');
  } else {
    const made = await createNodeCsr({ nodeName });
    csrPem = made.csrPem;
    nodeKey = made.privateKey;
  }
  const cert = await issueNodeCertificate(ca, { csrPem, nodeName, ...(ttlMs !== undefined ? { ttlMs } : {}) });
  if (nodeKey) {
    nodeCredentials(cert, nodeKey); // the pair is usable for issue-svid
    await writePrivateKeyFile(paths.key, privateKeyToPem(nodeKey));
  }
  await writePublicFile(paths.csr, csrPem.toString());
  await writePublicFile(paths.cert, cert.pem);
  out(`Issued node certificate for "${nodeName}" (fingerprint ${cert.fingerprint}, valid until ${cert.notAfter.toISOString()})`);
  out(`  ${paths.cert}${nodeKey ? `\n  ${paths.key} (0600)` : ''}`);
  return 0;
}

async function issueSvidCommand(args: string[]): Promise<number> {
  const { values } = parse('issue-svid', args, {
    dir: { type: 'string' },
    node: { type: 'string' },
    namespace: { type: 'string' },
    'service-account': { type: 'string' },
    ttl: { type: 'string' },
  });
  const dir = required(values, 'dir', 'issue-svid');
  const nodeName = required(values, 'node', 'issue-svid');
  const namespace = required(values, 'namespace', 'issue-svid');
  const serviceAccount = required(values, 'service-account', 'issue-svid');
  const ttlMs = values.ttl !== undefined ? parseDuration('--ttl', values.ttl, TTL_BOUNDS) : undefined;
  const np = nodePaths(dir, nodeName);
  const sp = svidPaths(dir, nodeName, namespace, serviceAccount);
  const hint = `run "veil certs issue-node --dir ${dir} --node ${nodeName}" first`;
  const node = loadNodeCredentials({
    certificatePem: await readInputFile(np.cert, 'node certificate', hint),
    privateKeyPem: await readInputFile(np.key, 'node private key', hint),
    certificateWhat: `node certificate "${np.cert}"`,
    keyWhat: `node private key "${np.key}"`,
  });
  const svid = await issueSvid(node, { namespace, serviceAccount, ...(ttlMs !== undefined ? { ttlMs } : {}) });
  await writePrivateKeyFile(sp.key, privateKeyToPem(svid.privateKey));
  await writePublicFile(sp.cert, svid.certificate.pem);
  await writePublicFile(sp.chain, svid.chain.map((c) => c.pem).join(''));
  out(`Issued SVID "${svid.spiffeId}" on node "${nodeName}" (valid until ${svid.notAfter.toISOString()}, renew at ${svid.renewAt.toISOString()})`);
  out(`  ${sp.cert}\n  ${sp.key} (0600)\n  ${sp.chain}`);
  return 0;
}

async function verify(args: string[]): Promise<number> {
  const { values, positionals } = parse(
    'verify',
    args,
    { ca: { type: 'string' }, chain: { type: 'string', multiple: true }, 'trust-domain': { type: 'string' }, 'clock-skew': { type: 'string' } },
    1,
  );
  const caPath = required(values, 'ca', 'verify');
  const certPath = positionals[0];
  if (certPath === undefined) throw new ConfigError('"veil certs verify" needs the certificate to verify: veil certs verify --ca BUNDLE.pem CERT.pem');
  const bundle = TrustBundle.fromPem(await readInputFile(caPath, 'trust bundle', 'pass the CA or bundle PEM'), `trust bundle "${caPath}"`);
  const cert = readCertificatePem(await readInputFile(certPath, 'certificate', 'pass the PEM to verify'), `certificate "${certPath}"`);
  const intermediates: Certificate[] = [];
  for (const p of (values.chain as string[] | undefined) ?? []) {
    intermediates.push(...readCertificatesPem(await readInputFile(p, 'chain file', 'pass the issuing certificates'), `chain "${p}"`));
  }
  const clockSkewMs = values['clock-skew'] !== undefined ? parseDuration('--clock-skew', values['clock-skew'], { minMs: 0, maxMs: MAX_CLOCK_SKEW_MS }) : undefined;
  let trustDomain = values['trust-domain'] as string | undefined;
  if (trustDomain === undefined) {
    const tds = new Set(bundle.cas.map((c) => signingTrustDomain(c)).filter((t) => t !== undefined));
    if (tds.size !== 1) {
      throw new ConfigError(`Cannot tell the trust domain from the bundle "${caPath}" (its CAs name ${tds.size === 0 ? 'none' : 'several'}): pass --trust-domain`);
    }
    trustDomain = [...tds][0] as string;
  }
  const opts = { bundle, trustDomain, intermediates, ...(clockSkewMs !== undefined ? { clockSkewMs } : {}) };
  if (cert.basicConstraints?.ca && cert.basicConstraints.pathLength === 0) {
    const v = await verifyNodeCertificate(cert, opts);
    out(`OK: node certificate for "${v.nodeName}" in trust domain "${v.trustDomain}", valid until ${v.notAfter.toISOString()}`);
  } else if (cert.basicConstraints?.ca) {
    await validatePath(cert, intermediates, bundle, { now: new Date(), clockSkewMs: clockSkewMs ?? DEFAULT_CLOCK_SKEW_MS });
    const inBundle = bundle.cas.some((c) => c.fingerprint === cert.fingerprint);
    out(`OK: CA certificate "${cert.subject}"${inBundle ? ' (in the trust bundle)' : ''}, valid until ${cert.notAfter.toISOString()}`);
  } else {
    const v = await verifySvid(cert, { ...opts, issuingNodeHostsIdentity: () => true });
    out(`OK: SVID "${v.spiffeId}" issued by node "${v.nodeName}", valid until ${v.notAfter.toISOString()}`);
    out('  Not checked: whether node hosts the identity (needs the cluster store)');
  }
  return 0;
}

async function bootstrapToken(args: string[]): Promise<number> {
  const { values } = parse('bootstrap-token', args, { node: { type: 'string' }, store: { type: 'string' }, out: { type: 'string' }, ttl: { type: 'string' } });
  const node = validateNodeName(required(values, 'node', 'bootstrap-token'), '--node');
  const endpoints = parseStoreEndpoints(required(values, 'store', 'bootstrap-token'), '--store');
  const file = required(values, 'out', 'bootstrap-token');
  const ttlMs = values.ttl !== undefined ? parseDuration('--ttl', values.ttl, { minMs: 60_000, maxMs: 30 * 86_400_000 }) : undefined;
  if (existsSync(file)) throw new ConfigError(`"${file}" exists: a bootstrap token is never overwritten in place; remove the file or choose another --out`);
  const token = createBootstrapToken();
  await writeBootstrapTokenFile(file, token);
  const store = new EtcdStore({ endpoints });
  try {
    const reg = await registerBootstrapToken(store, node, token, ttlMs !== undefined ? { ttlMs } : {});
    out(`Registered a bootstrap token for node "${node}" (valid until ${reg.expiresAt.toISOString()}, usable once)`);
    out(`  ${file} (0600): install it on the node as its pki.bootstrapToken`);
  } finally {
    await store.close();
  }
  return 0;
}

export const certsCommand = commandGroup({
  name: 'certs',
  summary: 'Create the cluster CA, issue node certificates and SVIDs, verify certificates',
  usage: USAGE,
  subcommands: { init, 'issue-node': issueNode, 'issue-svid': issueSvidCommand, verify, 'bootstrap-token': bootstrapToken },
});
