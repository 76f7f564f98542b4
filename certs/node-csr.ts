/**
 * The node's half of node certificate issuance: the node makes its own ECDSA P-256 key and a
 * PKCS#10 request signed with it; the private key never leaves the node.
 * (`openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -subj /CN=<node> -nodes` makes
 * an equivalent request.)
 */
import { webcrypto, type KeyObject } from 'node:crypto';
import { Pkcs10CertificateRequest, Pkcs10CertificateRequestGenerator } from './x509.js';
import { checkDerSequence } from './der.js';
import { CertificateParseError } from './errors.js';
import { generateKeyPair, signingProfile, toSigningCryptoKey, spkiDer } from './keys.js';
import { validateNodeName } from './names.js';
import { decodeSinglePem, encodePem } from './pem.js';

export interface NodeCsr {
  csrPem: string;
  /** The node's certificate key. Never logged; written only to a 0600 file. */
  privateKey: KeyObject;
}

const crypto = webcrypto as unknown as Crypto;

/** Creates the node key and a CSR with subject CN=<node name> and no attributes. */
export async function createNodeCsr(opts: { nodeName: string }): Promise<NodeCsr> {
  const nodeName = validateNodeName(opts.nodeName, 'nodeName');
  const { privateKey, publicKey } = await generateKeyPair();
  const profile = signingProfile(privateKey, 'node key', ['ECDSA P-256']);
  const signingKey = await toSigningCryptoKey(privateKey, profile);
  const publicCryptoKey = await webcrypto.subtle.importKey('spki', spkiDer(publicKey), profile.importParams, true, ['verify']);
  const csr = await Pkcs10CertificateRequestGenerator.create(
    {
      name: [{ CN: [nodeName] }],
      keys: { privateKey: signingKey, publicKey: publicCryptoKey } as CryptoKeyPair,
      signingAlgorithm: profile.signParams,
    },
    crypto,
  );
  return { csrPem: encodePem('CERTIFICATE REQUEST', new Uint8Array(csr.rawData)), privateKey };
}

/** Parses a PEM CSR ("CERTIFICATE REQUEST" or the legacy "NEW CERTIFICATE REQUEST"). */
export function readCsrPem(pem: string | Buffer, what: string): Pkcs10CertificateRequest {
  const block = decodeSinglePem(pem, { what, labels: ['CERTIFICATE REQUEST', 'NEW CERTIFICATE REQUEST'], maxBlocks: 1 });
  checkDerSequence(block.der, what);
  try {
    return new Pkcs10CertificateRequest(new Uint8Array(block.der));
  } catch (err) {
    throw new CertificateParseError(`Cannot parse ${what}: not a DER PKCS#10 certificate request`, { cause: err });
  }
}
