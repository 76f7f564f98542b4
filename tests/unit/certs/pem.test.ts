import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { VeilError } from '../../../agent/errors.js';
import { readCertificatePem, readCertificatesPem, parseCertificateDer } from '../../../certs/certificate.js';
import { CertificateParseError, KeyError, PemError } from '../../../certs/errors.js';
import { generateKeyPair, privateKeyToPem, readPrivateKeyPem } from '../../../certs/keys.js';
import { readCsrPem } from '../../../certs/node-csr.js';
import { decodePem, encodePem, MAX_PEM_BYTES } from '../../../certs/pem.js';
import { makePki } from './pki-fixture.js';

const pki = await makePki();
const certDer = pki.svid.certificate.der;

function keyBody(pem: string): string[] {
  // The base64 lines of a PEM body: none of them may appear in any error.
  return pem.split('\n').filter((l) => l.length > 0 && !l.startsWith('-----'));
}

describe('PEM and DER input', () => {
  it('round-trips a certificate through encodePem() and readCertificatePem()', () => {
    const cert = readCertificatePem(encodePem('CERTIFICATE', certDer), 'svid.pem');
    expect(cert.fingerprint).toBe(pki.svid.certificate.fingerprint);
    expect(cert.uriSans).toEqual(['spiffe://cluster.local/ns/default/sa/web']);
  });

  it.each([
    ['empty input', '', /no PEM block found/],
    ['no END line', '-----BEGIN CERTIFICATE-----\nMIIB\n', /has no END line/],
    ['mismatched END', '-----BEGIN CERTIFICATE-----\nAAAA\n-----END PRIVATE KEY-----\n', /ends as "PRIVATE KEY"/],
    ['bad base64', '-----BEGIN CERTIFICATE-----\nA*AA\n-----END CERTIFICATE-----\n', /not valid base64/],
    ['wrong label', '-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n', /"PUBLIC KEY" where "CERTIFICATE"/],
    ['stray END', '-----END CERTIFICATE-----\n', /never begun/],
    ['headers', '-----BEGIN CERTIFICATE-----\nProc-Type: 4,ENCRYPTED\nAAAA\n-----END CERTIFICATE-----\n', /has headers/],
  ])('rejects malformed PEM: %s', (_name, input, message) => {
    expect(() => readCertificatesPem(input, 'cert.pem')).toThrow(PemError);
    expect(() => readCertificatesPem(input, 'cert.pem')).toThrow(message);
  });

  it('rejects oversized PEM before parsing it', () => {
    expect(() => decodePem('x'.repeat(MAX_PEM_BYTES + 1), { what: 'big.pem', labels: ['CERTIFICATE'] })).toThrow(/more than the/);
  });

  it('rejects truncated DER at every length with CertificateParseError', () => {
    for (let n = 0; n < certDer.length; n++) {
      expect(() => parseCertificateDer(certDer.subarray(0, n), 'svid')).toThrow(CertificateParseError);
    }
  });

  it('rejects DER with trailing bytes', () => {
    expect(() => parseCertificateDer(Buffer.concat([certDer, Buffer.from([0])]), 'svid')).toThrow(/1 bytes follow/);
  });

  it('never throws anything but a typed Veil error on random or mutated input', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), (bytes) => {
        for (const f of [() => parseCertificateDer(bytes, 'x'), () => readCertificatesPem(Buffer.from(bytes), 'x')]) {
          try {
            f();
          } catch (err) {
            if (!(err instanceof VeilError)) throw err;
          }
        }
      }),
    );
    fc.assert(
      fc.property(fc.integer({ min: 0, max: certDer.length - 1 }), fc.integer({ min: 0, max: 255 }), (i, b) => {
        const mutated = Buffer.from(certDer);
        mutated[i] = b;
        try {
          parseCertificateDer(mutated, 'x');
        } catch (err) {
          if (!(err instanceof VeilError)) throw err;
        }
      }),
      { numRuns: 500 },
    );
  });

  it('parses a CSR and refuses a certificate in its place', () => {
    expect(() => readCsrPem(pki.svid.certificate.pem, 'node.csr')).toThrow(/"CERTIFICATE" where "CERTIFICATE REQUEST"/);
  });
});

describe('private key input', () => {
  it('reads PKCS#8 and SEC1 keys', async () => {
    const { privateKey } = await generateKeyPair();
    expect(readPrivateKeyPem(privateKeyToPem(privateKey), 'k').asymmetricKeyType).toBe('ec');
    const sec1 = privateKey.export({ format: 'pem', type: 'sec1' }) as string;
    expect(readPrivateKeyPem(sec1, 'k').asymmetricKeyDetails?.namedCurve).toBe('prime256v1');
  });

  it('a bad key PEM fails with KeyError and the error never echoes the key', async () => {
    const { privateKey } = await generateKeyPair();
    const pem = privateKeyToPem(privateKey);
    const lines = keyBody(pem);
    // Corrupt the body (still valid base64), truncate it, and swap the label.
    const corrupt = pem.replace(lines[1] as string, (lines[1] as string).split('').reverse().join(''));
    const truncated = `${pem.split('\n').slice(0, 2).join('\n')}\n-----END PRIVATE KEY-----\n`;
    const wrongLabel = pem.replaceAll('PRIVATE KEY', 'PUBLIC KEY');
    const unterminated = pem.split('\n').slice(0, 3).join('\n');
    for (const bad of [corrupt, truncated, wrongLabel, unterminated]) {
      let caught: unknown;
      try {
        readPrivateKeyPem(bad, 'key "k.pem"');
      } catch (err) {
        caught = err;
      }
      expect(caught).toBeInstanceOf(KeyError);
      const e = caught as KeyError;
      const text = `${e.message}\n${e.stack}\n${String(e.cause ?? '')}\n${JSON.stringify(e)}`;
      for (const line of lines) expect(text).not.toContain(line);
      for (const line of keyBody(bad)) expect(text).not.toContain(line);
    }
  });

  it('refuses an encrypted key with a hint to decrypt it', () => {
    expect(() => readPrivateKeyPem('-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n', 'k')).toThrow(
      /encrypted; decrypt it first/,
    );
  });
});
