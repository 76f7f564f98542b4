/**
 * Cross-checks with the real openssl: it accepts the chains Veil issues (API and `veil certs`
 * CLI), rejects tampered certificates and what a node must not be able to sign, and the CLI
 * writes private keys with mode 0600.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { issueSvid } from '../../../certs/svid.js';
import { KeyUsageFlags } from '@peculiar/asn1-x509';
import { BasicConstraintsExtension, KeyUsagesExtension } from '../../../certs/x509.js';
import { makePki, signWithNode, signWithNodeKeepKey, svidExtensions } from '../../unit/certs/pki-fixture.js';

const root = join(import.meta.dirname, '..', '..', '..');
const work = mkdtempSync(join(tmpdir(), 'veil-certs-openssl-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

function openssl(args: string[]): { status: number; out: string } {
  const r = spawnSync('openssl', args, { encoding: 'utf8' });
  if (r.error) throw new Error(`openssl is needed for these tests and could not run (${r.error.message}): apt-get install openssl`);
  return { status: r.status ?? -1, out: `${r.stdout}${r.stderr}` };
}

function veil(args: string[]): { status: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [join(root, 'dist/agent/cli/main.js'), ...args], { encoding: 'utf8', cwd: work });
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

function file(name: string, content: string | Buffer): string {
  const p = join(work, name);
  writeFileSync(p, content);
  return p;
}

function verify(ca: string, untrusted: string | undefined, cert: string, extra: string[] = []) {
  return openssl(['verify', '-x509_strict', ...extra, '-CAfile', ca, ...(untrusted ? ['-untrusted', untrusted] : []), cert]);
}

beforeAll(() => {
  openssl(['version']);
  // The CLI runs from dist/: compile the TypeScript (the TS half of scripts/build.sh) so it is current.
  const tsc = spawnSync(join(root, 'node_modules/.bin/tsc'), ['-p', join(root, 'tsconfig.json')], { encoding: 'utf8' });
  if (tsc.status !== 0) throw new Error(`tsc failed; run "bash scripts/build.sh":\n${tsc.stdout}${tsc.stderr}`);
});

describe('openssl and certificates issued through the API', () => {
  it('openssl verify accepts CA -> node -> SVID, for TLS client and server purposes', async () => {
    const pki = await makePki();
    const ca = file('api-ca.pem', pki.ca.certificate.pem);
    const node = file('api-node.pem', pki.node.certificate.pem);
    const svid = file('api-svid.pem', pki.svid.certificate.pem);
    expect(verify(ca, undefined, node)).toMatchObject({ status: 0 });
    expect(verify(ca, node, svid)).toMatchObject({ status: 0 });
    expect(verify(ca, node, svid, ['-purpose', 'sslclient'])).toMatchObject({ status: 0 });
    expect(verify(ca, node, svid, ['-purpose', 'sslserver'])).toMatchObject({ status: 0 });
    const text = openssl(['x509', '-in', svid, '-noout', '-ext', 'subjectAltName,keyUsage,basicConstraints']).out;
    expect(text).toContain('URI:spiffe://cluster.local/ns/default/sa/web');
    expect(text).toMatch(/Key Usage: critical\s+Digital Signature/);
    expect(text).toMatch(/Basic Constraints: critical\s+CA:FALSE/);
  });

  it('openssl verify rejects an SVID with a flipped signature byte or a flipped TBS byte', async () => {
    const pki = await makePki();
    const ca = file('t-ca.pem', pki.ca.certificate.pem);
    const node = file('t-node.pem', pki.node.certificate.pem);
    const der = pki.svid.certificate.der;
    const sig = Buffer.from(der);
    sig[sig.length - 5] = (sig[sig.length - 5] as number) ^ 0x01;
    const tbs = Buffer.from(der);
    const at = der.indexOf(Buffer.from(pki.svid.certificate.serialNumber.slice(0, 8), 'hex'));
    tbs[at] = (tbs[at] as number) ^ 0x01;
    for (const [name, bytes] of [['sig', sig], ['tbs', tbs]] as const) {
      const p = file(`t-${name}.der`, bytes);
      const pem = file(`t-${name}.pem`, openssl(['x509', '-inform', 'DER', '-in', p]).out);
      const r = verify(ca, node, pem);
      expect(r.status).not.toBe(0);
      expect(r.out).toMatch(/signature failure/);
    }
  });

  it('openssl enforces the node certificate limits: no SVID for another trust domain, no sub-CA', async () => {
    const pki = await makePki();
    const ca = file('c-ca.pem', pki.ca.certificate.pem);
    const node = file('c-node.pem', pki.node.certificate.pem);
    const foreign = file('c-foreign.pem', (await signWithNode(pki.node, svidExtensions(['spiffe://other.org/ns/default/sa/web']))).pem);
    const r = verify(ca, node, foreign);
    expect(r.status).not.toBe(0);
    expect(r.out).toMatch(/permitted subtree violation/);
    const sub = await signWithNodeKeepKey(pki.node, [new BasicConstraintsExtension(true, undefined, true), new KeyUsagesExtension(KeyUsageFlags.keyCertSign, true)], {
      subject: [{ CN: ['rogue-ca'] }],
    });
    const leaf = file('c-leaf.pem', (await signWithNode(sub, svidExtensions(['spiffe://cluster.local/ns/default/sa/web']))).pem);
    const chain = file('c-chain.pem', sub.certificate.pem + pki.node.certificate.pem);
    const p = verify(ca, chain, leaf);
    expect(p.status).not.toBe(0);
    expect(p.out).toMatch(/path length constraint exceeded/);
  });

  it('issueSvid() refuses to issue outside the node certificate\'s validity', async () => {
    const pki = await makePki();
    const past = new Date(Date.now() - 3 * 3_600_000);
    const old = await issueSvid(pki.node, { namespace: 'default', serviceAccount: 'old', now: past, ttlMs: 3_600_000 }).catch((e: unknown) => e);
    // The node certificate itself starts now, so an SVID from the past cannot be issued: Veil refuses.
    expect(String(old)).toMatch(/not valid before/);
  });
});

describe('veil certs CLI and openssl', () => {
  it('init, issue-node and issue-svid write files openssl accepts, keys with mode 0600', () => {
    const d = 'pki';
    expect(veil(['certs', 'init', '--dir', d, '--trust-domain', 'example.org'])).toMatchObject({ status: 0 });
    expect(veil(['certs', 'issue-node', '--dir', d, '--node', 'worker-1'])).toMatchObject({ status: 0 });
    const r = veil(['certs', 'issue-svid', '--dir', d, '--node', 'worker-1', '--namespace', 'shop', '--service-account', 'cart']);
    expect(r.stderr).toBe('');
    expect(r.stdout).toContain('Issued SVID "spiffe://example.org/ns/shop/sa/cart" on node "worker-1"');
    const dir = join(work, d);
    const svidDir = join(dir, 'nodes/worker-1/svids/shop/cart');
    for (const key of ['ca-key.pem', 'nodes/worker-1/node-key.pem', 'nodes/worker-1/svids/shop/cart/svid-key.pem']) {
      expect(statSync(join(dir, key)).mode & 0o777, key).toBe(0o600);
      expect(openssl(['pkey', '-in', join(dir, key), '-noout']).status, key).toBe(0);
    }
    for (const pub of ['ca.pem', 'bundle.pem', 'nodes/worker-1/node.pem', 'nodes/worker-1/svids/shop/cart/svid.pem']) {
      expect(statSync(join(dir, pub)).mode & 0o777, pub).toBe(0o644);
    }
    expect(verify(join(dir, 'bundle.pem'), undefined, join(dir, 'nodes/worker-1/node.pem'))).toMatchObject({ status: 0 });
    expect(verify(join(dir, 'bundle.pem'), join(svidDir, 'chain.pem'), join(svidDir, 'svid.pem'))).toMatchObject({ status: 0 });
    const v = veil(['certs', 'verify', '--ca', join(dir, 'bundle.pem'), join(svidDir, 'svid.pem'), '--chain', join(svidDir, 'chain.pem')]);
    expect(v).toMatchObject({ status: 0 });
    expect(v.stdout).toContain('OK: SVID "spiffe://example.org/ns/shop/sa/cart" issued by node "worker-1"');
    expect(veil(['certs', 'init', '--dir', d, '--trust-domain', 'example.org']).stderr).toMatch(/already exists/);
  });

  it('issue-node signs a CSR that openssl made on the node; the key never reaches the CA directory', () => {
    const d = 'csrpki';
    expect(veil(['certs', 'init', '--dir', d, '--trust-domain', 'example.org'])).toMatchObject({ status: 0 });
    const key = join(work, 'node-x.key');
    const csr = join(work, 'node-x.csr');
    const req = openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj', '/CN=node-x', '-keyout', key, '-out', csr]);
    expect(req.status, req.out).toBe(0);
    expect(veil(['certs', 'issue-node', '--dir', d, '--node', 'node-x', '--csr', csr])).toMatchObject({ status: 0 });
    const dir = join(work, d);
    expect(verify(join(dir, 'bundle.pem'), undefined, join(dir, 'nodes/node-x/node.pem'))).toMatchObject({ status: 0 });
    expect(() => statSync(join(dir, 'nodes/node-x/node-key.pem'))).toThrow();
    const wrong = veil(['certs', 'issue-node', '--dir', d, '--node', 'node-y', '--csr', csr]);
    expect(wrong.status).toBe(1);
    expect(wrong.stderr).toMatch(/asks for subject "CN=node-x", expected exactly "CN=node-y" \[VEIL_CSR_REJECTED\]/);
  });

  it('reports malformed PEM, wrong key types, unknown flags and missing files clearly, without echoing keys', () => {
    const d = 'badpki';
    expect(veil(['certs', 'init', '--dir', d, '--trust-domain', 'example.org'])).toMatchObject({ status: 0 });
    const dir = join(work, d);
    const keyPem = readFileSync(join(dir, 'ca-key.pem'), 'utf8');
    const keyLines = keyPem.split('\n').filter((l) => l && !l.startsWith('-----'));
    // Corrupt the CA key: still PEM, no longer a key.
    writeFileSync(join(dir, 'ca-key.pem'), keyPem.replace(keyLines[1] as string, (keyLines[1] as string).split('').reverse().join('')), { mode: 0o600 });
    const bad = veil(['certs', 'issue-node', '--dir', d, '--node', 'n1']);
    expect(bad.status).toBe(1);
    expect(bad.stderr).toMatch(/^veil certs: Cannot read CA private key ".*ca-key.pem": .* \[VEIL_KEY\]\n$/);
    for (const l of keyLines) expect(bad.stderr + bad.stdout).not.toContain(l);
    // A CA key of the wrong type.
    const ed = openssl(['genpkey', '-algorithm', 'ed25519']).out;
    writeFileSync(join(dir, 'ca-key.pem'), ed, { mode: 0o600 });
    const edr = veil(['certs', 'issue-node', '--dir', d, '--node', 'n1']);
    expect(edr.stderr).toMatch(/it is a Ed25519 key; use one of/);
    expect(edr.stderr).not.toContain(ed.split('\n')[1] as string);
    // Malformed PEM as a certificate to verify.
    const junk = file('junk.pem', '-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n');
    const j = veil(['certs', 'verify', '--ca', join(dir, 'bundle.pem'), junk]);
    expect(j.status).toBe(1);
    expect(j.stderr).toMatch(/not valid base64 \[VEIL_PEM\]/);
    const u = veil(['certs', 'issue-svid', '--dir', d, '--nodes', 'n1']);
    expect(u.status).toBe(1);
    expect(u.stderr).toMatch(/Unknown option "--nodes" for "veil certs issue-svid"/);
    const m = veil(['certs', 'issue-svid', '--dir', d, '--node', 'nope', '--namespace', 'a', '--service-account', 'b']);
    expect(m.stderr).toMatch(/no such file; run "veil certs issue-node --dir badpki --node nope" first/);
  });

  it('veil certs verify reports an expired and a not-yet-valid certificate', async () => {
    const past = new Date(Date.now() - 30 * 86_400_000);
    const oldPki = await makePki({ now: past });
    const ca = file('e-ca.pem', oldPki.ca.certificate.pem);
    const node = file('e-node.pem', oldPki.node.certificate.pem);
    const svid = file('e-svid.pem', oldPki.svid.certificate.pem);
    const r = veil(['certs', 'verify', '--ca', ca, svid, '--chain', node]);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/expired at .* \[VEIL_CERT_EXPIRED\]/);
    expect(verify(ca, node, svid).out).toMatch(/certificate has expired/);
    const future = await makePki({ now: new Date(Date.now() + 86_400_000) });
    const f = veil(['certs', 'verify', '--ca', file('f-ca.pem', future.ca.certificate.pem), file('f-node.pem', future.node.certificate.pem)]);
    expect(f.stderr).toMatch(/is not valid before .* \[VEIL_CERT_NOT_YET_VALID\]/);
  });
});
