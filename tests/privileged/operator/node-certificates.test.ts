/**
 * Node certificates through the operator, on a real etcd: a node bootstraps with its one-time
 * token (certificate chains to the CA bundle per `openssl verify`, key file 0600, token gone),
 * restarts on the same files, is refused when it replays its request or reuses the token, cannot
 * claim another node's name, renews with its current certificate (at start and while running),
 * and the operator collects the records of a node removed from the cluster model.
 */
import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { sign } from 'node:crypto';
import { PassThrough } from 'node:stream';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { caPaths } from '../../../certs/directory.js';
import { createNodeCsr } from '../../../certs/node-csr.js';
import { validateAuditEvent } from '../../../agent/audit/events.js';
import { ClusterClient } from '../../../agent/cluster/client.js';
import { loadOperatorConfig } from '../../../agent/config/operator-config.js';
import { createLabCa } from '../../../agent/lab/pki.js';
import { createRootLogger } from '../../../agent/log/logger.js';
import { createBootstrapToken, registerBootstrapToken, tokenSigningKey, writeBootstrapTokenFile } from '../../../agent/node-cert/bootstrap-token.js';
import { CertificateRequestRefusedError } from '../../../agent/node-cert/errors.js';
import { NodeCertificateClient, type EnsureResult } from '../../../agent/node-cert/node-certificate-client.js';
import { putValue } from '../../../agent/node-cert/put-value.js';
import { encodeRequest, parseResponse, requestSigningData } from '../../../agent/node-cert/records.js';
import { bootstrapKey, issuedKey, requestKey } from '../../../agent/node-cert/store-keys.js';
import { startOperator, type RunningOperator } from '../../../agent/operator/operator.js';
import { EtcdStore } from '../../../agent/store/etcd-store.js';
import type { Store } from '../../../agent/store/store.js';
import { certsCommand } from '../../../agent/cli/certs-command.js';
import { EtcdServer } from '../../support/etcd.js';
import { eventually } from '../../support/netns.js';

let etcd: EtcdServer;
let store: EtcdStore;
let cluster: ClusterClient;
let operator: RunningOperator;
let dir: string;
let bundle: string;
/** Every log line of the operator and the agents' clients (debug and up), checked for secrets at the end. */
const logLines: string[] = [];
const logSink = new PassThrough();
logSink.on('data', (chunk: Buffer) => logLines.push(chunk.toString('utf8')));
const log = createRootLogger({ level: 'debug', destination: logSink });
/** Every token the tests made. */
const tokens: string[] = [];
function newToken(): string {
  const t = createBootstrapToken();
  tokens.push(t);
  return t;
}
const clients: NodeCertificateClient[] = [];

function files(node: string) {
  const d = join(dir, node);
  return { caBundle: bundle, nodeCert: join(d, 'node.pem'), nodeKey: join(d, 'node-key.pem'), bootstrapToken: join(d, 'bootstrap-token') };
}

function client(node: string, opts: { renewBeforeMs?: number; store?: Store } = {}): NodeCertificateClient {
  const c = new NodeCertificateClient({ store: opts.store ?? store, node, files: files(node), renewBeforeMs: opts.renewBeforeMs ?? 1_000, timeoutMs: 15_000, retryMs: 500, log });
  clients.push(c);
  return c;
}

async function provision(node: string): Promise<string> {
  const token = newToken();
  await writeBootstrapTokenFile(files(node).bootstrapToken, token);
  await registerBootstrapToken(store, node, token, { ttlMs: 600_000 });
  return token;
}

function opensslVerify(cert: string): string {
  return execFileSync('openssl', ['verify', '-CAfile', bundle, cert], { encoding: 'utf8' }).trim();
}

async function refusedCount(reason: string): Promise<number> {
  const m = await operator.metrics.nodeCertificateRequestsRefused.get();
  return m.values.find((v) => v.labels.reason === reason)?.value ?? 0;
}

async function registerNode(name: string, i: number): Promise<void> {
  await cluster.put('nodes', { name, addresses: [`10.77.0.${i}`], podCidrs: [`10.78.${i}.0/24`], labels: {} });
}

beforeAll(async () => {
  etcd = await EtcdServer.start();
  store = new EtcdStore({ endpoints: [etcd.clientUrl] });
  cluster = new ClusterClient(store);
  dir = await mkdtemp(join(tmpdir(), 'veil-oc-certs-'));
  await createLabCa(join(dir, 'ca'), 'oc');
  bundle = caPaths(join(dir, 'ca')).bundle;
  for (const [i, n] of ['node-a', 'node-b', 'node-c'].entries()) await registerNode(n, i + 1);
  const config = loadOperatorConfig(
    ['--store', etcd.clientUrl, '--id', 'oc-op', '--status-listen', '127.0.0.1:0', '--lease-ttl', '3s', '--ca-dir', join(dir, 'ca'), '--node-cert-ttl', '1m', '--cert-grace', '1s', '--gc-interval', '200ms'],
    {},
  );
  operator = await startOperator(config, { log, leaderRetryMs: 100 });
  await eventually(() => operator.isLeader(), { what: 'the operator to lead' });
}, 60_000);

afterAll(async () => {
  for (const c of clients) await c.stop();
  await operator?.stop();
  await store?.close();
  await etcd?.cleanup();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('node certificates signed by the operator', () => {
  let first: EnsureResult;
  const captured: Buffer[] = [];

  it('bootstraps a node with its token: chained certificate, 0600 key, token consumed and removed', async () => {
    await provision('node-a');
    // Capture what the agent writes, to replay it below.
    const spy: Store = Object.assign(Object.create(store) as Store, {
      create: (k: string, v: Buffer, o?: never) => {
        if (k === requestKey('node-a')) captured.push(v);
        return store.create(k, v, o);
      },
      update: (k: string, v: Buffer, r: string, o?: never) => {
        if (k === requestKey('node-a')) captured.push(v);
        return store.update(k, v, r, o);
      },
    });
    first = await client('node-a', { store: spy }).ensure();
    expect(first.source).toBe('issued');
    expect(first.state.certificate.commonNames).toEqual(['node-a']);
    const f = files('node-a');
    expect(opensslVerify(f.nodeCert)).toBe(`${f.nodeCert}: OK`);
    expect((await stat(f.nodeKey)).mode & 0o777).toBe(0o600);
    await expect(stat(f.bootstrapToken)).rejects.toThrow(/ENOENT/);
    expect(await store.get(bootstrapKey('node-a'))).toBeNull();
    expect(await store.get(requestKey('node-a'))).toBeNull();
    expect(validateAuditEvent(first.event)).toMatchObject({ event: 'certificate.issued', certKind: 'node', subject: 'CN=node-a', fingerprint: first.state.certificate.fingerprint });
    expect(JSON.stringify(first.event)).not.toContain('PRIVATE');
    const issued = await operator.metrics.nodeCertificatesIssued.get();
    expect(issued.values.find((v) => v.labels.proof === 'bootstrap-token')?.value).toBe(1);
    expect(captured).toHaveLength(1);
  });

  it('shows certificate signing in the operator\'s /status', async () => {
    const status = (await (await fetch(`http://127.0.0.1:${operator.address.port}/status`)).json()) as { nodeCertificates: unknown };
    expect(status.nodeCertificates).toEqual({ signing: true, trustDomain: 'oc.veil.lab', caFingerprint: expect.stringMatching(/^sha256:/), ttlMs: 60_000 });
  });

  it('uses the files as they are after a restart', async () => {
    const again = await client('node-a', { renewBeforeMs: 1_000 }).ensure();
    expect(again.source).toBe('existing');
    expect(again.event).toBeNull();
    expect(again.state.certificate.fingerprint).toBe(first.state.certificate.fingerprint);
  });

  it('drops a replayed request and leaves the answer alone', async () => {
    const before = (await store.get(issuedKey('node-a')))!;
    const replays = await refusedCount('replayed');
    await putValue(store, requestKey('node-a'), captured[0]!);
    await eventually(async () => (await refusedCount('replayed')) === replays + 1, { what: 'the replay to be refused' });
    await eventually(async () => (await store.get(requestKey('node-a'))) === null, { what: 'the replayed request to be deleted' });
    const after = (await store.get(issuedKey('node-a')))!;
    expect(after.modRevision).toBe(before.modRevision);
  });

  it('refuses a used token, naming the node and the fix but never the token', async () => {
    // The same token again (say, copied off the node before it was used): a new request with it.
    const token = newToken();
    await registerBootstrapToken(store, 'node-b', token, { ttlMs: 600_000 });
    await writeBootstrapTokenFile(files('node-b').bootstrapToken, token);
    await client('node-b').ensure();
    await rm(files('node-b').nodeCert);
    await writeBootstrapTokenFile(files('node-b').bootstrapToken, token);
    const err = await client('node-b').ensure().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CertificateRequestRefusedError);
    expect((err as CertificateRequestRefusedError).reason).toBe('no-token');
    expect((err as Error).message).toBe('Refusing the certificate request of node "node-b": no bootstrap token is registered for it (never registered, or used already); provision a new token for the node');
    expect((err as Error).message).not.toContain(token.slice(18));
  });

  it('refuses a node claiming another node\'s name', async () => {
    // node-c's token used to ask for node-b: the proof does not verify with node-b's registration.
    const tokenB = await provision('node-b');
    const tokenC = newToken();
    await registerBootstrapToken(store, 'node-c', tokenC, { ttlMs: 600_000 });
    await writeBootstrapTokenFile(files('node-b').bootstrapToken, tokenC);
    const err = await client('node-b').ensure().catch((e: unknown) => e);
    expect((err as CertificateRequestRefusedError).reason).toBe('bad-proof');
    expect(await store.get(bootstrapKey('node-b'))).not.toBeNull(); // node-b's own token still works

    // node-b's own token, but a CSR naming node-c: refused by the CA's CSR check.
    const csr = await createNodeCsr({ nodeName: 'node-c' });
    const base = { node: 'node-b', requestId: 'ee'.repeat(16), createdAt: new Date(), csrPem: csr.csrPem };
    await putValue(store, requestKey('node-b'), encodeRequest({ ...base, proof: { kind: 'bootstrap-token', signature: sign(null, requestSigningData(base, 'bootstrap-token'), tokenSigningKey(tokenB)) } }));
    const resp = await eventually(async () => {
      const kv = await store.get(issuedKey('node-b'));
      const r = kv && parseResponse(kv, 'node-b');
      return r && r.requestId === base.requestId ? r : undefined;
    }, { what: 'the answer to the forged CSR' });
    expect(resp).toMatchObject({ status: 'refused', reason: 'bad-csr' });
    expect(resp.status === 'refused' && resp.message).toMatch(/asks for subject "CN=node-c", expected exactly "CN=node-b"/);
    expect(await store.get(bootstrapKey('node-b'))).not.toBeNull(); // not consumed by a refused request

    // A name the cluster does not know.
    await writeBootstrapTokenFile(files('node-x').bootstrapToken, newToken());
    const unknown = await client('node-x').ensure().catch((e: unknown) => e);
    expect((unknown as CertificateRequestRefusedError).reason).toBe('unknown-node');
  });

  it('renews at start when the certificate is due, proved with the current certificate', async () => {
    const before = await readFile(files('node-a').nodeKey, 'utf8');
    const r = await client('node-a', { renewBeforeMs: 59_500 }).ensure();
    expect(r.source).toBe('renewed');
    expect(validateAuditEvent(r.event)).toMatchObject({ event: 'certificate.renewed', previousFingerprint: first.state.certificate.fingerprint });
    expect(await readFile(files('node-a').nodeKey, 'utf8')).not.toBe(before);
    expect(opensslVerify(files('node-a').nodeCert)).toMatch(/: OK$/);
    const issued = await operator.metrics.nodeCertificatesIssued.get();
    expect(issued.values.find((v) => v.labels.proof === 'node-certificate')?.value).toBeGreaterThanOrEqual(1);
  });

  it('renews while running, before expiry', async () => {
    const c = client('node-a', { renewBeforeMs: 55_000 });
    const start = await c.ensure();
    const renewed: EnsureResult[] = [];
    c.startRenewal({ onRenewed: (r) => void renewed.push(r) });
    await eventually(() => renewed.length >= 1, { timeoutMs: 20_000, what: 'a renewal' });
    const r = renewed[0]!;
    expect(r.event).toMatchObject({ event: 'certificate.renewed', previousFingerprint: start.state.certificate.fingerprint });
    expect(r.state.certificate.notAfter.getTime()).toBeGreaterThan(start.state.certificate.notAfter.getTime());
    expect(r.state.renewAt.getTime()).toBeLessThan(r.state.certificate.notAfter.getTime());
    expect(opensslVerify(files('node-a').nodeCert)).toMatch(/: OK$/);
    expect((await readFile(files('node-a').nodeCert, 'utf8')).trim()).toBe(r.state.certificate.pem.trim());
    await c.stop();
  }, 30_000);

  it('"veil certs bootstrap-token" provisions a node: token file 0600, registration in the store, usable by the agent', async () => {
    await registerNode('node-cli', 8);
    const f = files('node-cli');
    const write = process.stdout.write;
    let printed = '';
    process.stdout.write = ((chunk: string) => ((printed += chunk), true)) as typeof process.stdout.write;
    try {
      expect(await certsCommand.run(['bootstrap-token', '--node', 'node-cli', '--store', etcd.clientUrl, '--out', f.bootstrapToken, '--ttl', '10m'])).toBe(0);
    } finally {
      process.stdout.write = write;
    }
    expect(printed).toMatch(/^Registered a bootstrap token for node "node-cli" \(valid until .*, usable once\)/);
    expect(printed).not.toContain((await readFile(f.bootstrapToken, 'utf8')).trim().slice(18));
    expect((await stat(f.bootstrapToken)).mode & 0o777).toBe(0o600);
    expect(await store.get(bootstrapKey('node-cli'))).not.toBeNull();
    await expect(certsCommand.run(['bootstrap-token', '--node', 'node-cli', '--store', etcd.clientUrl, '--out', f.bootstrapToken])).rejects.toThrow(/exists: a bootstrap token is never overwritten/);
    expect((await client('node-cli').ensure()).source).toBe('issued');
  });

  it('collects the records of a node removed from the cluster model', async () => {
    await registerNode('node-gone', 9);
    await provision('node-gone');
    await client('node-gone').ensure();
    expect(await store.get(issuedKey('node-gone'))).not.toBeNull();
    await cluster.delete('nodes', 'node-gone');
    await eventually(async () => (await store.get(issuedKey('node-gone'))) === null, { timeoutMs: 10_000, what: 'the records to be collected' });
    expect(await store.get(issuedKey('node-a'))).not.toBeNull();
  }, 20_000);

  it('logs no token, no private key and no proof signature', () => {
    expect(logLines.join('')).toMatch(/Issued a node certificate/);
    expect(logLines.join('')).toMatch(/Refused a node certificate request/);
    for (const line of logLines) {
      for (const t of tokens) expect(line).not.toContain(t.slice(18));
      expect(line).not.toMatch(/PRIVATE KEY|"signature"/);
    }
  });
});
