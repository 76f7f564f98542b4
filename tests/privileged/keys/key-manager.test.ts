/**
 * Three key managers (nodes "ky-a", "ky-b", "ky-c"), each with its own etcd client, state
 * directory and audit log, on one real etcd: initial keys, an on-demand node-key rotation asked
 * through `veil keys rotate`, an identity-key rotation, a restart that resumes without a new key,
 * and a rotation that is abandoned because one peer never acknowledges. Every audit log then
 * passes `veil audit verify` and carries no key material.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { PassThrough } from 'node:stream';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openAuditLog, type AuditLog } from '../../../agent/audit/audit-log.js';
import { keyObjectSigner } from '../../../agent/audit/signer.js';
import type { LocalKey, PeerKey, KernelKeyHooks } from '../../../agent/keys/kernel-key-hooks.js';
import { IdentityAllocator } from '../../../agent/identity/allocator.js';
import { storeIdentityHosting } from '../../../agent/identity/hosting.js';
import { canonicalLabelSet } from '../../../agent/identity/labels.js';
import { IdentityReferences } from '../../../agent/identity/references.js';
import { KeyManager, type KeyManagerOptions } from '../../../agent/keys/key-manager.js';
import { KeyStorePaths, type SlotRef } from '../../../agent/keys/key-store-paths.js';
import { readPrivateKeyFile } from '../../../agent/keys/key-file.js';
import { createRootLogger, moduleLogger } from '../../../agent/log/logger.js';
import type { NodeRecord } from '../../../agent/keys/node-record.js';
import { serializeSignedNodeRecord, signNodeRecord } from '../../../agent/keys/node-record-sign.js';
import { X25519PrivateKey } from '../../../agent/keys/x25519.js';
import { projectRoot } from '../../../agent/project-root.js';
import { openEtcdStore, type EtcdStore } from '../../../agent/store/etcd-store.js';
import { EtcdServer } from '../../support/etcd.js';
import { eventually } from '../../support/netns.js';
import { OpensslPki, type Issued, type TestCa } from '../../support/openssl-pki.js';

const NODES = ['ky-a', 'ky-b', 'ky-c', 'ky-d'] as const;
type NodeName = (typeof NODES)[number];
const NODE_KEY: SlotRef = { kind: 'node', identity: 0 };
/** Identity of service account default/web, hosted by ky-a and ky-b (allocated in beforeAll). */
let ID_WEB: SlotRef;
/** Identity of default/db, hosted by ky-b only. */
let ID_DB: number;
const ACK_TIMEOUT_MS = 3_000;
const paths = new KeyStorePaths();

/** Kernel hooks that record their calls in order (one shared log for all three nodes). */
function recordingHooks(node: string, calls: string[]): KernelKeyHooks {
  const local = (verb: string) => async (k: SlotRef & { generation: number }) => void calls.push(`${node} ${verb} ${k.kind}/${k.identity}/${k.generation}`);
  const peer = (verb: string) => async (k: SlotRef & { node: string; generation: number }) => void calls.push(`${node} ${verb} ${k.node}:${k.kind}/${k.identity}/${k.generation}`);
  return {
    installLocalKey: local('installLocal') as (k: LocalKey) => Promise<void>,
    activateLocalKey: local('activateLocal') as (k: LocalKey) => Promise<void>,
    retireLocalKey: local('retireLocal'),
    installPeerKey: peer('installPeer') as (k: PeerKey) => Promise<void>,
    usePeerKey: peer('usePeer') as (k: PeerKey) => Promise<void>,
    removePeerKey: peer('removePeer'),
  };
}

interface Node {
  name: NodeName;
  dir: string;
  auditPath: string;
  audit: AuditLog;
  store: EtcdStore;
  cert: Issued;
  manager: KeyManager;
}

let etcd: EtcdServer;
let identityStore: EtcdStore;
let pki: OpensslPki;
let ca: TestCa;
let work: string;
const calls: string[] = [];
/** Every log line the managers write (debug and up), checked for key material at the end. */
const logLines: string[] = [];
const logSink = new PassThrough();
logSink.on('data', (chunk: Buffer) => logLines.push(chunk.toString('utf8')));
const rootLog = createRootLogger({ level: 'debug', destination: logSink });
const nodes = new Map<NodeName, Node>();
const cli = join(projectRoot(), 'dist/agent/cli/main.js');

function options(n: Omit<Node, 'manager'>, identities: number[]): KeyManagerOptions {
  const i = NODES.indexOf(n.name);
  return {
    node: n.name,
    stateDir: n.dir,
    store: n.store,
    audit: n.audit,
    nodeCertificatePem: n.cert.certPem,
    nodePrivateKey: n.cert.key,
    trustAnchors: [ca.certPem],
    addresses: [`192.0.2.${10 + i}`],
    podCidrs: [`10.244.${i}.0/24`],
    bootId: `0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f${i}`,
    identities,
    rotationIntervalMs: 3_600_000,
    acknowledgeTimeoutMs: ACK_TIMEOUT_MS,
    tickMs: 100,
    hooks: recordingHooks(n.name, calls),
    identityHosted: storeIdentityHosting(n.store),
    log: moduleLogger(rootLog, 'keys').child({ node: n.name }),
  };
}

async function startNode(name: NodeName, identities: number[], over: Partial<KeyManagerOptions> = {}): Promise<Node> {
  const prev = nodes.get(name);
  const base = prev ?? {
    name,
    dir: join(work, name),
    auditPath: join(work, `${name}.audit.jsonl`),
    cert: pki.issueNode(ca, name, 'p256'),
  };
  const store = await openEtcdStore({ endpoints: [etcd.clientUrl], requestTimeoutMs: 10_000 });
  const audit = openAuditLog({ path: base.auditPath, node: name, signer: keyObjectSigner(base.cert.key, base.cert.certPem), mirror: null, checkpointIntervalMs: 0 });
  const partial = { ...base, store, audit };
  const manager = await KeyManager.open({ ...options(partial, identities), ...over });
  await manager.start();
  const node = { ...partial, manager };
  nodes.set(name, node);
  return node;
}

async function stopNode(name: NodeName): Promise<void> {
  const n = nodes.get(name)!;
  await n.manager.stop();
  await n.audit.close();
  await n.store.close();
}

function slot(name: NodeName, ref: SlotRef) {
  return nodes.get(name)!.manager.status().find((s) => s.kind === ref.kind && s.identity === ref.identity)!;
}

/** The generations of the slot, as "generation:phase". */
function phases(name: NodeName, ref: SlotRef): string[] {
  return slot(name, ref).generations.map((g) => `${g.generation}:${g.phase}`);
}

async function storedRecord(name: NodeName): Promise<NodeRecord> {
  const kv = await nodes.get('ky-b')!.store.get(paths.record(name));
  return (JSON.parse(kv!.value.toString('utf8')) as { record: NodeRecord }).record;
}

function auditEvents(name: NodeName): Record<string, unknown>[] {
  return readFileSync(join(work, `${name}.audit.jsonl`), 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

function keyEvents(name: NodeName, ref: SlotRef, generation: number): string[] {
  return auditEvents(name)
    .filter((e) => e.keyKind === ref.kind && (ref.kind === 'node' ? e.identity === undefined : e.identity === ref.identity) && (e.generation === generation || e.toGeneration === generation))
    .map((e) => `${String(e.event)}${e.peerNode ? ` ${String(e.peerNode)}` : ''}${e.reason ? ` ${String(e.reason)}` : ''}`);
}

beforeAll(async () => {
  execFileSync(join(projectRoot(), 'node_modules/.bin/tsc'), ['-p', join(projectRoot(), 'tsconfig.json')], { stdio: 'pipe' });
  work = mkdtempSync(join(tmpdir(), 'veil-ky-manager-'));
  pki = new OpensslPki();
  ca = pki.createCa('ky-ca', 'p256');
  etcd = await EtcdServer.start();
  // Identities and which node hosts them, as the agents' endpoint handling would record them.
  identityStore = await openEtcdStore({ endpoints: [etcd.clientUrl], requestTimeoutMs: 10_000 });
  const alloc = new IdentityAllocator({ store: identityStore });
  const refs = new IdentityReferences(identityStore);
  const lease = await identityStore.grantLease(600);
  const web = canonicalLabelSet({ namespace: 'default', serviceAccount: 'web' });
  const db = canonicalLabelSet({ namespace: 'default', serviceAccount: 'db' });
  const w = await alloc.allocate(web);
  ID_DB = (await alloc.allocate(db)).id;
  ID_WEB = { kind: 'identity', identity: w.id };
  await refs.addReference(w.id, web, 'ky-a', lease);
  await refs.addReference(w.id, web, 'ky-b', lease);
  await refs.addReference(ID_DB, db, 'ky-b', lease);
  await startNode('ky-a', [w.id]);
  await startNode('ky-b', [w.id, ID_DB]);
  await startNode('ky-c', []);
}, 120_000);

afterAll(async () => {
  for (const n of nodes.values()) {
    await n.manager.stop().catch(() => undefined);
    await n.audit.close().catch(() => undefined);
    await n.store.close().catch(() => undefined);
  }
  await identityStore?.close().catch(() => undefined);
  await etcd?.cleanup();
  pki?.cleanup();
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('key managers on a real etcd', () => {
  it('bring up every slot with an active key, publish signed records and acknowledge each other', async () => {
    await eventually(
      () =>
        [...nodes.values()].every((n) => n.manager.status().every((s) => s.generations.length === 1 && s.generations[0]!.phase === 'active' && s.peers.length === 2)),
      { timeoutMs: 20_000, what: 'an active key in every slot with two peers' },
    );
    const a = await storedRecord('ky-a');
    expect(a.keys.map((k) => `${k.kind}/${k.identity}/${k.generation}/${k.state}`).sort()).toEqual([`identity/${ID_WEB.identity}/1/active`, 'node/0/1/active']);
    // Each peer installed ky-a's keys, and the acknowledgement documents say so.
    await eventually(async () => {
      const ack = await nodes.get('ky-a')!.store.get(paths.ack('ky-a', 'ky-b'));
      const doc = ack && (JSON.parse(ack.value.toString('utf8')) as { installed: unknown[]; using: unknown[] });
      return doc && doc.installed.length === 2 && doc.using.length === 2;
    }, { what: "ky-b's acknowledgement of ky-a's keys" });
    // Keys on disk: directory 0700, one key file 0600 per live generation, matching the record.
    expect(statSync(join(nodes.get('ky-a')!.dir, 'keys')).mode & 0o777).toBe(0o700);
    const file = join(nodes.get('ky-a')!.dir, 'keys', 'node.1.key');
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect((await readPrivateKeyFile(file)).publicKey.base64).toBe(a.keys.find((k) => k.kind === 'node')!.publicKey);
  });

  it('rotates ky-a\'s node key on demand through "veil keys rotate", make-before-break, and destroys the old key', async () => {
    const before = slot('ky-a', NODE_KEY).generations[0]!;
    calls.length = 0;
    const r = spawnSync(process.execPath, [cli, 'keys', 'rotate', '--state-dir', nodes.get('ky-a')!.dir, '--store', etcd.clientUrl, '--node-key'], { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(r.stdout).toContain('Requested an on-demand rotation of the node key of "ky-a" (store key "/veil/keys/rotate/ky-a/node")');
    expect(r.status).toBe(0);

    await eventually(() => phases('ky-a', NODE_KEY).join() === '2:active' && slot('ky-a', NODE_KEY).generations[0]!.movedPeers.length === 2, {
      timeoutMs: 20_000,
      what: 'generation 2 active and every peer moved',
    });
    await eventually(() => keyEvents('ky-a', NODE_KEY, 2).includes('rotation.completed'), { what: 'rotation.completed in the audit log' });
    const after = slot('ky-a', NODE_KEY).generations[0]!;
    expect(after.fingerprint).not.toBe(before.fingerprint);
    expect(after.acknowledgedBy).toEqual(['ky-b', 'ky-c']);
    // The request was consumed; the old key file is gone; the record carries only generation 2.
    expect(await nodes.get('ky-a')!.store.get(paths.rotateRequest('ky-a', NODE_KEY))).toBeNull();
    expect(() => statSync(join(nodes.get('ky-a')!.dir, 'keys', 'node.1.key'))).toThrow(/ENOENT/);
    await eventually(async () => (await storedRecord('ky-a')).keys.filter((k) => k.kind === 'node').map((k) => `${k.generation}/${k.state}`).join() === '2/active');

    // Make-before-break, as the kernel hooks saw it.
    const at = (c: string) => {
      const i = calls.indexOf(c);
      expect(i, `hook call "${c}" in ${JSON.stringify(calls)}`).toBeGreaterThanOrEqual(0);
      return i;
    };
    expect(at('ky-a installLocal node/0/2')).toBeLessThan(at('ky-b installPeer ky-a:node/0/2'));
    for (const peer of ['ky-b', 'ky-c']) {
      expect(at(`${peer} installPeer ky-a:node/0/2`)).toBeLessThan(at('ky-a activateLocal node/0/2'));
      expect(at('ky-a activateLocal node/0/2')).toBeLessThan(at(`${peer} usePeer ky-a:node/0/2`));
      expect(at(`${peer} usePeer ky-a:node/0/2`)).toBeLessThan(at('ky-a retireLocal node/0/1'));
      expect(at('ky-a retireLocal node/0/1')).toBeLessThan(at(`${peer} removePeer ky-a:node/0/1`));
    }

    await eventually(() => keyEvents('ky-a', NODE_KEY, 2).includes('rotation.completed'), { what: 'rotation.completed in the audit log' });
    const events = keyEvents('ky-a', NODE_KEY, 2);
    const byPhase = (x: string, y: string) => order(x) - order(y) || x.localeCompare(y);
    expect([...events].sort(byPhase)).toEqual([
      'key.generated',
      'key.published',
      'key.acknowledged ky-b',
      'key.acknowledged ky-c',
      'key.activated',
      'key.peer_moved ky-b',
      'key.peer_moved ky-c',
      'rotation.completed',
    ]);
    expect(events.map(order)).toEqual(events.map(order).sort((x, y) => x - y));
    expect(keyEvents('ky-a', NODE_KEY, 1).slice(-2)).toEqual(['key.retired on-demand', 'key.destroyed']);

    // What an operator sees.
    const veil = (...args: string[]) => spawnSync(process.execPath, [cli, 'keys', ...args], { encoding: 'utf8' });
    const status = veil('status', '--state-dir', nodes.get('ky-a')!.dir);
    expect(status.status).toBe(0);
    expect(status.stdout).toContain('Keys of node "ky-a"');
    expect(status.stdout).toMatch(new RegExp(`node key: 2 peers, next rotation \\d{4}-`));
    expect(status.stdout).toContain(`generation 2  active       ${after.fingerprint}  acknowledged 2/2, moved 2/2`);
    const both = veil('rotate', '--state-dir', nodes.get('ky-a')!.dir, '--store', etcd.clientUrl, '--node-key', '--identity', '5');
    expect([both.status, both.stderr]).toEqual([1, 'veil keys: Give either --node-key or --identity N, not both [VEIL_CONFIG]\n']);
    const noSlot = veil('rotate', '--state-dir', nodes.get('ky-a')!.dir, '--store', etcd.clientUrl, '--identity', '65000');
    expect(noSlot.stderr).toContain('Node "ky-a" has no identity 65000 key: run "veil keys status --state-dir');
    const noState = veil('status', '--state-dir', join(work, 'nowhere'));
    expect(noState.stderr).toContain(`No key state in "${join(work, 'nowhere')}/keys"`);
  });

  it('rotates an identity key (rotateNow) while the node key stays as it is', async () => {
    const node = slot('ky-a', NODE_KEY).generations[0]!.fingerprint;
    nodes.get('ky-a')!.manager.rotateNow(ID_WEB);
    await eventually(() => phases('ky-a', ID_WEB).join() === '2:active' && slot('ky-a', ID_WEB).generations[0]!.movedPeers.length === 2, {
      timeoutMs: 20_000,
      what: 'the web identity key at generation 2, active',
    });
    await eventually(() => keyEvents('ky-a', ID_WEB, 2).includes('rotation.completed'));
    expect(keyEvents('ky-a', ID_WEB, 1).slice(-2)).toEqual(['key.retired on-demand', 'key.destroyed']);
    expect(slot('ky-a', NODE_KEY).generations[0]!.fingerprint).toBe(node);
    // ky-b, which also hosts the web identity, keeps its own key for it: slots are per node.
    expect(phases('ky-b', ID_WEB)).toEqual(['1:active']);
  });

  it('retires and destroys the key of an identity the node stops hosting', async () => {
    calls.length = 0;
    const b = nodes.get('ky-b')!;
    const db: SlotRef = { kind: 'identity', identity: ID_DB };
    const gen = slot('ky-b', db).generations[0]!;
    b.manager.setIdentities([ID_WEB.identity]);
    await eventually(() => keyEvents('ky-b', db, gen.generation).includes('key.destroyed'), { what: "the db identity's key destroyed" });
    expect(keyEvents('ky-b', db, gen.generation).slice(-2)).toEqual(['key.retired identity-removed', 'key.destroyed']);
    expect(b.manager.status().map((s) => `${s.kind}/${s.identity}`)).toEqual(['node/0', `identity/${ID_WEB.identity}`]);
    expect(() => statSync(join(b.dir, 'keys', `identity-${ID_DB}.${gen.generation}.key`))).toThrow(/ENOENT/);
    expect((await storedRecord('ky-b')).keys.some((k) => k.identity === ID_DB)).toBe(false);
    // Its peers drop it; the record left them first, the local state after.
    for (const peer of ['ky-a', 'ky-c']) {
      await eventually(() => calls.includes(`${peer} removePeer ky-b:identity/${ID_DB}/${gen.generation}`), { what: `${peer} removing the key` });
    }
    expect(calls).toContain(`ky-b retireLocal identity/${ID_DB}/${gen.generation}`);
    b.manager.setIdentities([ID_WEB.identity, ID_DB]);
    await eventually(() => slot('ky-b', db)?.generations[0]?.phase === 'active', { what: 'a new key for the db identity once hosted again' });
    expect(() => b.manager.setIdentities([0])).toThrow('Invalid identity 0: use an identity id from 1 to 65535');
    expect(b.manager.status().some((s) => s.identity === ID_DB)).toBe(true);
  });

  it('resumes after a restart from the state directory and the store without generating a key', async () => {
    const before = nodes.get('ky-a')!.manager.status();
    const generatedBefore = auditEvents('ky-a').filter((e) => e.event === 'key.generated').length;
    await stopNode('ky-a');
    await startNode('ky-a', [ID_WEB.identity]);
    await eventually(() => nodes.get('ky-a')!.manager.status().every((s) => s.peers.length === 2));
    const after = nodes.get('ky-a')!.manager.status();
    expect(after.map((s) => s.generations.map((g) => [g.generation, g.phase, g.fingerprint]))).toEqual(before.map((s) => s.generations.map((g) => [g.generation, g.phase, g.fingerprint])));
    expect(auditEvents('ky-a').filter((e) => e.event === 'key.generated').length).toBe(generatedBefore);
  });

  it('finishes a rotation when etcd goes away in the middle of it and comes back (watches resume)', async () => {
    const before = slot('ky-b', NODE_KEY).generations[0]!;
    calls.length = 0;
    await etcd.kill(); // SIGKILL: every client loses the store
    nodes.get('ky-b')!.manager.rotateNow(NODE_KEY);
    // The new key is generated locally; publishing it fails until the store is back.
    await eventually(() => calls.includes(`ky-b installLocal node/0/${before.generation + 1}`), { what: 'ky-b generating its next key' });
    await eventually(() => nodes.get('ky-b')!.manager.lastError, { timeoutMs: 20_000, what: 'a pass failing while etcd is down' });
    expect(phases('ky-b', NODE_KEY)).toEqual([`${before.generation}:active`, `${before.generation + 1}:generated`]);
    await etcd.restart(); // start again on the same data directory and ports
    await eventually(
      () => phases('ky-b', NODE_KEY).join() === `${before.generation + 1}:active` && slot('ky-b', NODE_KEY).generations[0]!.movedPeers.length === 2,
      { timeoutMs: 30_000, what: "ky-b's rotation completing after the etcd restart" },
    );
    await eventually(() => keyEvents('ky-b', NODE_KEY, before.generation + 1).includes('rotation.completed'));
    // The other managers saw it through their resumed watches: they use and acknowledge the new key.
    for (const peer of ['ky-a', 'ky-c']) expect(calls).toContain(`${peer} usePeer ky-b:node/0/${before.generation + 1}`);
  });

  it('abandons a rotation that a peer never acknowledges, keeping the active key', async () => {
    await stopNode('ky-c'); // its record stays in the store: ky-a keeps waiting for it
    const active = slot('ky-a', NODE_KEY).generations[0]!;
    nodes.get('ky-a')!.manager.rotateNow(NODE_KEY);
    await eventually(() => phases('ky-a', NODE_KEY).join() === '2:active,3:published', { what: 'generation 3 published' });
    await eventually(() => slot('ky-a', NODE_KEY).generations[1]?.acknowledgedBy.includes('ky-b'), { what: "ky-b's acknowledgement" });
    await eventually(() => auditEvents('ky-a').some((e) => e.event === 'key.abandoned'), { timeoutMs: ACK_TIMEOUT_MS + 10_000, what: 'generation 3 abandoned' });
    expect(phases('ky-a', NODE_KEY)).toEqual(['2:active']);
    expect(slot('ky-a', NODE_KEY).generations[0]!.fingerprint).toBe(active.fingerprint);
    expect(() => statSync(join(nodes.get('ky-a')!.dir, 'keys', 'node.3.key'))).toThrow(/ENOENT/);
    const abandoned = auditEvents('ky-a').find((e) => e.event === 'key.abandoned');
    expect(abandoned).toMatchObject({ keyKind: 'node', generation: 3, reason: 'not-acknowledged', missingPeers: 1 });
    await eventually(async () => (await storedRecord('ky-a')).keys.filter((k) => k.kind === 'node').map((k) => `${k.generation}/${k.state}`).join() === '2/active');
    // ky-b had installed generation 3 and removes it again when it leaves the record.
    await eventually(() => calls.includes('ky-b removePeer ky-a:node/0/3'), { what: 'ky-b removing generation 3' });
    expect(calls.indexOf('ky-b installPeer ky-a:node/0/3')).toBeLessThan(calls.indexOf('ky-b removePeer ky-a:node/0/3'));
  });

  it('rejects a record with a key of an identity its node does not host, and installs none of its keys', async () => {
    calls.length = 0;
    await startNode('ky-d', [ID_DB]); // ky-d has no reference to the db identity: only ky-b hosts it
    await eventually(() => auditEvents('ky-a').some((e) => e.event === 'record.rejected' && e.peerNode === 'ky-d'), { what: "ky-a's rejection of ky-d's record" });
    const rejected = auditEvents('ky-a').find((e) => e.event === 'record.rejected' && e.peerNode === 'ky-d');
    expect(rejected).toMatchObject({ reason: 'identity-not-hosted', detail: expect.stringContaining(String(ID_DB)) });
    // ky-d's first record (its node key alone) was valid and stands; none of its records with the
    // identity key was accepted, so no peer installed that key.
    expect(calls.filter((c) => c.includes('ky-d:identity/') && !c.startsWith('ky-d'))).toEqual([]);
    expect(calls.some((c) => c.startsWith('ky-a installPeer ky-d:node/'))).toBe(true);
  });

  it('accepts that record once the reference appears after it (references are written after the record when an agent restarts)', async () => {
    const db = canonicalLabelSet({ namespace: 'default', serviceAccount: 'db' });
    const lease = await identityStore.grantLease(600);
    await new IdentityReferences(identityStore).addReference(ID_DB, db, 'ky-d', lease);
    await eventually(() => calls.some((c) => c.startsWith(`ky-a installPeer ky-d:identity/${ID_DB}/`)), { what: "ky-a installing ky-d's identity key" });
    // Audited once per record revision, not at every pass while it waited.
    const rejections = auditEvents('ky-a').filter((e) => e.event === 'record.rejected' && e.peerNode === 'ky-d');
    expect(new Set(rejections.map((e) => e.detail)).size).toBe(rejections.length);
  });

  it('installs nothing from records that are unsigned, tampered, from an unknown CA or with an expired certificate', async () => {
    calls.length = 0;
    const store = nodes.get('ky-a')!.store;
    const record = (name: string): NodeRecord => ({
      version: 1,
      name,
      addresses: ['192.0.2.99'],
      podCidrs: ['10.244.99.0/24'],
      bootId: '0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f9',
      keys: [{ kind: 'node', identity: 0, generation: 1, publicKey: X25519PrivateKey.generate().publicKey.base64, state: 'active' }],
      issuedAt: Date.now(),
      sequence: 1,
    });
    const signedBy = (issued: Issued, name: string) => signNodeRecord(record(name), { privateKey: issued.key, certificate: issued.certPem });
    const otherCa = pki.createCa('ky-other-ca', 'p256');
    const hour = 3_600_000;
    const forged: [string, string, string][] = [
      ['ky-x1', serializeSignedNodeRecord(signedBy(pki.issueNode(otherCa, 'ky-x1', 'p256'), 'ky-x1')), 'untrusted-certificate'],
      ['ky-x2', JSON.stringify({ ...signedBy(pki.issueNode(ca, 'ky-x2', 'p256'), 'ky-x2'), signature: '' }), 'unsigned'],
      ['ky-x3', (() => {
        const env = signedBy(pki.issueNode(ca, 'ky-x3', 'p256'), 'ky-x3');
        return JSON.stringify({ ...env, record: { ...env.record, podCidrs: ['10.0.0.0/8'] } });
      })(), 'bad-signature'],
      ['ky-x4', serializeSignedNodeRecord(signedBy(pki.issueNode(ca, 'ky-x4', 'p256', { notBefore: new Date(Date.now() - 48 * hour), notAfter: new Date(Date.now() - 24 * hour) }), 'ky-x4')), 'expired-certificate'],
      ['ky-x5', '{"record":', 'malformed'],
    ];
    for (const [name, wire] of forged) await store.create(paths.record(name), Buffer.from(wire));
    // An acknowledgement that claims to be from another peer than its key says.
    await store.create(paths.ack('ky-a', 'ky-x6'), Buffer.from(JSON.stringify({ v: 1, owner: 'ky-a', peer: 'ky-b', installed: [], using: [] })));
    await eventually(() => forged.every(([name]) => auditEvents('ky-a').some((e) => e.event === 'record.rejected' && e.peerNode === name)), {
      what: "ky-a's rejection of every forged record",
    });
    await eventually(() => auditEvents('ky-a').some((e) => e.event === 'record.rejected' && e.peerNode === 'ky-x6'), { what: 'the forged acknowledgement rejected' });
    const reasons = Object.fromEntries(auditEvents('ky-a').filter((e) => e.event === 'record.rejected').map((e) => [e.peerNode, e.reason]));
    for (const [name, , reason] of forged) expect(reasons[name], name).toBe(reason);
    expect(reasons['ky-x6']).toBe('malformed');
    expect(calls.filter((c) => /ky-x\d:/.test(c))).toEqual([]);
    expect(slot('ky-a', NODE_KEY).peers).toEqual(['ky-b', 'ky-c', 'ky-d']);
  });

  it('stops waiting for a node that left the cluster, and rotates on schedule', async () => {
    calls.length = 0;
    await nodes.get('ky-a')!.store.delete(paths.record('ky-c'));
    await eventually(() => !slot('ky-a', NODE_KEY).peers.includes('ky-c'), { what: 'ky-c no longer a peer of ky-a' });
    await eventually(() => calls.includes('ky-a removePeer ky-c:node/0/1'), { what: "ky-a removing ky-c's key" });
    await eventually(async () => (await nodes.get('ky-a')!.store.get(paths.ack('ky-c', 'ky-a'))) === null, { what: "ky-a's acknowledgement of ky-c deleted" });

    // A shorter interval takes effect at restart; the rotation then starts by itself.
    const gen = slot('ky-b', NODE_KEY).generations[0]!.generation;
    await stopNode('ky-b');
    await startNode('ky-b', [ID_WEB.identity, ID_DB], { rotationIntervalMs: 2_000 });
    await eventually(() => keyEvents('ky-b', NODE_KEY, gen + 1).includes('rotation.completed'), { timeoutMs: 30_000, what: "ky-b's scheduled node-key rotation" });
    expect(keyEvents('ky-b', NODE_KEY, gen).slice(-2)).toEqual(['key.retired rotation', 'key.destroyed']);
    await eventually(() => auditEvents('ky-b').some((e) => e.event === 'rotation.completed' && e.identity === ID_DB), { timeoutMs: 30_000, what: "ky-b's scheduled identity-key rotation" });
    await stopNode('ky-b');
    await startNode('ky-b', [ID_WEB.identity, ID_DB]);
  });

  it('leaves audit logs that pass "veil audit verify" and hold no key material', async () => {
    const live = [...nodes.get('ky-a')!.manager.status()];
    const keyFiles = live.flatMap((s) => s.generations.map((g) => join(nodes.get('ky-a')!.dir, 'keys', `${s.kind === 'node' ? 'node' : `identity-${s.identity}`}.${g.generation}.key`)));
    const secrets = await Promise.all(keyFiles.map(async (f) => (await readPrivateKeyFile(f)).exportRaw()));
    for (const name of ['ky-a', 'ky-b', 'ky-d'] as const) await stopNode(name);
    nodes.clear();
    for (const name of NODES) {
      const path = join(work, `${name}.audit.jsonl`);
      const r = spawnSync(process.execPath, [cli, 'audit', 'verify', path, '--ca', ca.certPath], { encoding: 'utf8' });
      expect(r.status, `${r.stdout}${r.stderr}`).toBe(0);
      expect(r.stdout).toContain(`Audit log "${path}" is intact`);
      const text = readFileSync(path, 'utf8') + logLines.join('');
      for (const s of secrets) {
        for (const form of [s.toString('base64'), s.toString('hex'), s.toString('base64url')]) expect(text).not.toContain(form);
      }
    }
    // ky-b's log holds its own keys' steps (three initial keys, rotations) and the records it
    // refused: ky-d's with the identity it does not host, and the forged ones.
    // The managers did log (store outages, rejected records, the abandoned rotation).
    expect(logLines.join('')).toContain('Abandoned a key generation that peers did not acknowledge in time');
    expect(logLines.join('')).toContain('"msg":"Key lifecycle: rotation.completed"');
    const b = auditEvents('ky-b');
    expect(b.filter((e) => e.event === 'key.activated').length).toBeGreaterThanOrEqual(6);
    const rejected = new Set(b.filter((e) => e.event === 'record.rejected').map((e) => String(e.peerNode)));
    expect(rejected).toEqual(new Set(['ky-d', 'ky-x1', 'ky-x2', 'ky-x3', 'ky-x4', 'ky-x5']));
  });
});

/** Position of an audit event in a rotation, for comparing event lists. */
function order(e: string): number {
  return ['key.generated', 'key.published', 'key.acknowledged', 'key.activated', 'key.peer_moved', 'rotation.completed'].findIndex((p) => e.startsWith(p));
}
