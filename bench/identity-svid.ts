/**
 * SVID issuance per second: `issueSvid()` (a fresh P-256 key and an X.509 SVID signed by the
 * node certificate, in process) against `openssl`, the tool an operator would otherwise script:
 * per SVID one `openssl req -new` (fresh P-256 key + CSR) piped into `openssl x509 -req` signing
 * with the same node certificate and key, with the same extensions (one SPIFFE URI SAN,
 * keyUsage digitalSignature, EKU serverAuth+clientAuth, CA:FALSE, 1 h). The openssl loop is timed
 * as one bash process, so its cost is the tools' own, not Node's spawn overhead.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createClusterCa, createNodeCsr, issueNodeCertificate, issueSvid, nodeCredentials, privateKeyToPem } from '../certs/index.js';
import { compare, round, seconds, type ComparisonCase } from './lib/report.js';

export interface SvidOptions {
  reps: number;
}

const COUNT = 200;
const TRUST_DOMAIN = 'cluster.local';

export async function svidCase(o: SvidOptions): Promise<ComparisonCase> {
  const ca = await createClusterCa({ trustDomain: TRUST_DOMAIN });
  const { csrPem, privateKey } = await createNodeCsr({ nodeName: 'bench-node' });
  const cert = await issueNodeCertificate(ca, { csrPem, nodeName: 'bench-node' });
  const node = nodeCredentials(cert, privateKey);

  const dir = mkdtempSync(join(tmpdir(), 'veil-bench-svid-'));
  try {
    writeFileSync(join(dir, 'node.pem'), cert.pem);
    writeFileSync(join(dir, 'node.key'), privateKeyToPem(privateKey), { mode: 0o600 });
    writeFileSync(
      join(dir, 'ext.cnf'),
      [
        '[svid]',
        'basicConstraints=critical,CA:FALSE',
        'keyUsage=critical,digitalSignature',
        'extendedKeyUsage=serverAuth,clientAuth',
        'subjectAltName=URI:${ENV::SVID_URI}',
        '',
      ].join('\n'),
    );
    const script = [
      'set -e',
      `cd ${dir}`,
      `for i in $(seq ${COUNT}); do`,
      `  export SVID_URI=spiffe://${TRUST_DOMAIN}/ns/bench/sa/sa-$i`,
      '  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout svid.key -subj "/O=veil" 2>/dev/null |',
      '    openssl x509 -req -CA node.pem -CAkey node.key -set_serial 0x$(openssl rand -hex 16) -days 1 -sha256 \\',
      '      -extfile ext.cnf -extensions svid -out svid.pem 2>/dev/null',
      'done',
    ].join('\n');

    const ours: number[] = [];
    const base: number[] = [];
    for (let rep = 0; rep <= o.reps; rep++) {
      const runOurs = () =>
        seconds(async () => {
          for (let i = 0; i < COUNT; i++) await issueSvid(node, { namespace: 'bench', serviceAccount: `sa-${i}` });
        });
      const runBase = () =>
        seconds(async () => {
          const r = spawnSync('bash', ['-c', script], { encoding: 'utf8' });
          if (r.status !== 0) throw new Error(`openssl SVID loop failed: ${r.stderr}`);
        });
      // Alternate the order; repetition 0 is a warm-up and left out of the medians.
      if (rep % 2 === 0) {
        ours.push(await runOurs());
        base.push(await runBase());
      } else {
        base.push(await runBase());
        ours.push(await runOurs());
      }
    }
    const c = compare('SVID issuance (key + certificate)', COUNT, 'openssl req | openssl x509 per SVID', ours.slice(1), base.slice(1));
    c.load_1m = round(loadavg()[0]!, 2);
    c.note = `${round(COUNT / c.ours_s, 0)} SVIDs/s ours, ${round(COUNT / c.baseline_s, 0)} SVIDs/s openssl`;
    return c;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
