import { sign } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { createClusterCa } from '../../../certs/cluster-ca.js';
import { createNodeCsr } from '../../../certs/node-csr.js';
import { issueNodeCertificate } from '../../../certs/node-certificate.js';
import { createBootstrapToken, tokenPublicKeyDer, tokenSigningKey } from '../../../agent/node-cert/bootstrap-token.js';
import { CertificateRequestRefusedError } from '../../../agent/node-cert/errors.js';
import { requestSigningData, type CertificateRequest } from '../../../agent/node-cert/records.js';
import { checkCertificateRequest, type RequestCheckContext } from '../../../agent/operator/certificate-request-check.js';

const now = new Date();
const ca = await createClusterCa({ trustDomain: 'oc.veil.lab' });
const otherCa = await createClusterCa({ trustDomain: 'oc.veil.lab' });
const token = createBootstrapToken();
const csr = await createNodeCsr({ nodeName: 'node-a' });

function tokenRequest(opts: { node?: string; token?: string; createdAt?: Date } = {}): CertificateRequest {
  const base = { node: opts.node ?? 'node-a', requestId: 'ab'.repeat(16), createdAt: opts.createdAt ?? now, csrPem: csr.csrPem };
  return { ...base, proof: { kind: 'bootstrap-token', signature: sign(null, requestSigningData(base, 'bootstrap-token'), tokenSigningKey(opts.token ?? token)) } };
}

async function renewalRequest(issuer = ca, certNode = 'node-a', node = 'node-a', signWith?: 'other-key'): Promise<CertificateRequest> {
  const current = await createNodeCsr({ nodeName: certNode });
  const cert = await issueNodeCertificate(issuer, { csrPem: current.csrPem, nodeName: certNode });
  const base = { node, requestId: 'cd'.repeat(16), createdAt: now, csrPem: csr.csrPem };
  const key = signWith === 'other-key' ? (await createNodeCsr({ nodeName: certNode })).privateKey : current.privateKey;
  return { ...base, proof: { kind: 'node-certificate', certificatePem: cert.pem, signature: sign('sha256', requestSigningData(base, 'node-certificate'), key) } };
}

const ctx = (over: Partial<RequestCheckContext> = {}): RequestCheckContext => ({
  ca,
  answered: [],
  nodeExists: true,
  registration: { node: 'node-a', publicKey: tokenPublicKeyDer(token), expiresAt: new Date(now.getTime() + 3_600_000) },
  now,
  maxAgeMs: 600_000,
  clockSkewMs: 60_000,
  ...over,
});

async function refusal(p: Promise<void>): Promise<CertificateRequestRefusedError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(CertificateRequestRefusedError);
    const e = err as CertificateRequestRefusedError;
    expect(e.message).toMatch(/^Refusing the (certificate|renewal) request of node "node-a": /);
    expect(e.message).not.toContain(token.slice(18));
    return e;
  }
  throw new Error('expected a refusal');
}

describe('checkCertificateRequest()', () => {
  it('accepts a bootstrap request signed with the registered token', async () => {
    await expect(checkCertificateRequest(tokenRequest(), ctx())).resolves.toBeUndefined();
  });

  it('accepts a renewal proved with the node\'s current certificate', async () => {
    await expect(checkCertificateRequest(await renewalRequest(), ctx({ registration: null }))).resolves.toBeUndefined();
  });

  it('refuses a replayed request id', async () => {
    expect((await refusal(checkCertificateRequest(tokenRequest(), ctx({ answered: ['ab'.repeat(16)] })))).reason).toBe('replayed');
  });

  it('refuses stale and future requests', async () => {
    expect((await refusal(checkCertificateRequest(tokenRequest({ createdAt: new Date(now.getTime() - 700_000) }), ctx()))).reason).toBe('stale');
    expect((await refusal(checkCertificateRequest(tokenRequest({ createdAt: new Date(now.getTime() + 120_000) }), ctx()))).reason).toBe('stale');
  });

  it('refuses a node that is not in the cluster model', async () => {
    expect((await refusal(checkCertificateRequest(tokenRequest(), ctx({ nodeExists: false })))).reason).toBe('unknown-node');
  });

  it('refuses a used, expired or wrong token', async () => {
    const e = await refusal(checkCertificateRequest(tokenRequest(), ctx({ registration: null })));
    expect(e.reason).toBe('no-token');
    expect(e.message).toMatch(/provision a new token for the node$/);
    const expired = ctx({ registration: { node: 'node-a', publicKey: tokenPublicKeyDer(token), expiresAt: new Date(now.getTime() - 1) } });
    expect((await refusal(checkCertificateRequest(tokenRequest(), expired))).reason).toBe('token-expired');
    expect((await refusal(checkCertificateRequest(tokenRequest({ token: createBootstrapToken() }), ctx()))).reason).toBe('bad-proof');
  });

  it('refuses a proof moved to another node\'s request', async () => {
    // node-b's token signed a request; someone re-labels it as node-a's (node-a's registration).
    const r = tokenRequest();
    const moved = { ...r, node: 'node-a' };
    const forB = tokenRequest({ node: 'node-b' });
    expect((await refusal(checkCertificateRequest({ ...moved, proof: forB.proof }, ctx()))).reason).toBe('bad-proof');
  });

  it('refuses renewals with another CA\'s, another node\'s or an unproved certificate', async () => {
    expect((await refusal(checkCertificateRequest(await renewalRequest(otherCa), ctx()))).reason).toBe('untrusted-certificate');
    const e = await refusal(checkCertificateRequest(await renewalRequest(ca, 'node-b', 'node-a'), ctx()));
    expect(e.reason).toBe('untrusted-certificate');
    expect(e.message).toContain('names node "node-b"; a node may only renew its own certificate');
    expect((await refusal(checkCertificateRequest(await renewalRequest(ca, 'node-a', 'node-a', 'other-key'), ctx()))).reason).toBe('bad-proof');
  });

  it('refuses an expired certificate as renewal proof', async () => {
    const r = await renewalRequest();
    const later = new Date(now.getTime() + 8 * 86_400_000);
    const e = await refusal(checkCertificateRequest({ ...r, createdAt: later }, ctx({ now: later })));
    expect(e.reason).toBe('untrusted-certificate');
    expect(e.message).toMatch(/the node needs a new bootstrap token$/);
  });
});
