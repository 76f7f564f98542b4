/**
 * A throwaway PKI made with the real `openssl` tool for tests that must not trust our own
 * certificate code (audit checkpoints, node records): CAs and node certificates (ECDSA P-256 or
 * Ed25519, subject CN=<node>), including certificates that expired or are not yet valid
 * (`openssl ca -startdate/-enddate`). Fails saying what to install when openssl is missing.
 */
import { execFileSync } from 'node:child_process';
import { createPrivateKey, type KeyObject } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export type KeyAlg = 'p256' | 'ed25519';

export interface Issued {
  certPem: string;
  certPath: string;
  keyPem: string;
  keyPath: string;
  key: KeyObject;
}

export interface TestCa {
  name: string;
  certPath: string;
  certPem: string;
  keyPath: string;
  dir: string;
}

/** Runs openssl and returns its standard output. */
export function openssl(args: string[], cwd?: string): string {
  try {
    return execFileSync('openssl', args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: string };
    if (e.code === 'ENOENT') throw new Error('openssl is not installed: run "apt-get install -y openssl"');
    throw new Error(`openssl ${args.join(' ')} failed: ${e.stderr ?? e.message}`);
  }
}

function genKey(alg: KeyAlg, path: string): void {
  if (alg === 'p256') openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', path]);
  else openssl(['genpkey', '-algorithm', 'ED25519', '-out', path]);
}

/** openssl time format for `openssl ca -startdate/-enddate`. */
function asn1Time(d: Date): string {
  return `${d.toISOString().replace(/[-:T]/g, '').slice(0, 14)}Z`;
}

export class OpensslPki {
  readonly root: string;
  private n = 0;

  constructor() {
    this.root = mkdtempSync(join(tmpdir(), 'veil-audit-pki-'));
  }

  cleanup(): void {
    rmSync(this.root, { recursive: true, force: true });
  }

  createCa(name: string, alg: KeyAlg): TestCa {
    // Two CAs may share a name (a rogue CA impersonating the real one): each gets its own dir.
    const dir = join(this.root, `${name}-${++this.n}`);
    mkdirSync(dir, { recursive: true });
    const keyPath = join(dir, 'ca.key');
    const certPath = join(dir, 'ca.pem');
    genKey(alg, keyPath);
    const req = ['req', '-x509', '-new', '-key', keyPath, '-out', certPath, '-days', '30', '-subj', `/CN=${name}`];
    req.push('-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign');
    if (alg === 'p256') req.push('-sha256');
    openssl(req);
    writeFileSync(join(dir, 'index.txt'), '');
    writeFileSync(join(dir, 'serial'), '1000\n');
    writeFileSync(
      join(dir, 'ca.cnf'),
      [
        '[ca]',
        'default_ca = test_ca',
        '[test_ca]',
        `dir = ${dir}`,
        'database = $dir/index.txt',
        'serial = $dir/serial',
        'new_certs_dir = $dir',
        `certificate = ${certPath}`,
        `private_key = ${keyPath}`,
        `default_md = ${alg === 'p256' ? 'sha256' : 'default'}`,
        'policy = anything',
        'unique_subject = no',
        'copy_extensions = none',
        'x509_extensions = node_ext',
        '[anything]',
        'commonName = supplied',
        '[node_ext]',
        'basicConstraints = critical,CA:FALSE',
        'keyUsage = critical,digitalSignature',
        'subjectAltName = $ENV::VEIL_TEST_SAN',
        '',
      ].join('\n'),
    );
    return { name, certPath, certPem: readFileSync(certPath, 'utf8'), keyPath, dir };
  }

  /** A node certificate for `node` issued by `ca`, valid from `notBefore` to `notAfter` (default: now-1h .. now+1d). */
  issueNode(ca: TestCa, node: string, alg: KeyAlg, validity?: { notBefore: Date; notAfter: Date }): Issued {
    const id = `${node}-${++this.n}`;
    const keyPath = join(ca.dir, `${id}.key`);
    const csrPath = join(ca.dir, `${id}.csr`);
    const certPath = join(ca.dir, `${id}.pem`);
    genKey(alg, keyPath);
    openssl(['req', '-new', '-key', keyPath, '-out', csrPath, '-subj', `/CN=${node}`]);
    const now = Date.now();
    const notBefore = validity?.notBefore ?? new Date(now - 3600_000);
    const notAfter = validity?.notAfter ?? new Date(now + 86400_000);
    execFileSync(
      'openssl',
      ['ca', '-batch', '-config', join(ca.dir, 'ca.cnf'), '-in', csrPath, '-out', certPath, '-notext', '-startdate', asn1Time(notBefore), '-enddate', asn1Time(notAfter)],
      { env: { ...process.env, VEIL_TEST_SAN: `DNS:${node}` }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const keyPem = readFileSync(keyPath, 'utf8');
    return { certPem: readFileSync(certPath, 'utf8'), certPath, keyPem, keyPath, key: createPrivateKey(keyPem) };
  }
}
