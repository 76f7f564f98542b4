/**
 * A throwaway PKI made with the real `openssl` binary for the node-record tests: CAs and node
 * certificates (ECDSA P-256 or Ed25519) in a temporary directory. Fails, saying what to
 * install, when openssl is missing.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export function openssl(args: string[], input?: Buffer | string): Buffer {
  try {
    return execFileSync('openssl', args, { input, stdio: ['pipe', 'pipe', 'pipe'] });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new Error('openssl is not installed: run "apt-get install openssl"');
    const e = err as { stderr?: Buffer; status?: number };
    throw new Error(`openssl ${args.join(' ')} failed (${e.status}): ${e.stderr?.toString() ?? ''}`);
  }
}

export interface Issued {
  keyPem: string;
  certPem: string;
  keyPath: string;
  certPath: string;
}

export type KeyType = 'p256' | 'ed25519';

const newKey = (t: KeyType) => (t === 'p256' ? ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'] : ['-newkey', 'ed25519']);

export class TestPki {
  readonly dir = mkdtempSync(join(tmpdir(), 'veil-pki-'));
  private n = 0;

  ca(cn: string, type: KeyType = 'p256'): Issued {
    const base = join(this.dir, `ca-${++this.n}`);
    openssl(['req', '-x509', ...newKey(type), '-nodes', '-keyout', `${base}.key`, '-out', `${base}.pem`, '-days', '30', '-subj', `/CN=${cn}`,
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
    return this.read(base);
  }

  /** A node certificate with subject CN=<cn>, issued by `ca`. */
  node(ca: Issued, cn: string, type: KeyType = 'p256', days = 2): Issued {
    const base = join(this.dir, `node-${++this.n}`);
    openssl(['req', '-new', ...newKey(type), '-nodes', '-keyout', `${base}.key`, '-out', `${base}.csr`, '-subj', `/CN=${cn}`]);
    writeFileSync(`${base}.ext`, 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth,serverAuth\n');
    openssl(['x509', '-req', '-in', `${base}.csr`, '-CA', ca.certPath, '-CAkey', ca.keyPath, '-CAcreateserial', '-days', String(days),
      '-extfile', `${base}.ext`, '-out', `${base}.pem`]);
    return this.read(base);
  }

  private read(base: string): Issued {
    return { keyPath: `${base}.key`, certPath: `${base}.pem`, keyPem: readFileSync(`${base}.key`, 'utf8'), certPem: readFileSync(`${base}.pem`, 'utf8') };
  }

  cleanup(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}
