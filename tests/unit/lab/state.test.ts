import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { claimLabDir, labPaths, parseLabState, readLabState, removeLabDir, writeLabState, type LabState } from '../../../agent/lab/state.js';

let root: string;
beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'veil-lab-state-'));
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

function sample(): LabState {
  return {
    v: 1,
    name: 'lb1',
    mode: 'wireguard',
    phase: 'ready',
    createdAt: '2026-12-07T18:00:00.000Z',
    underlay: { netns: 'veil-lb1-underlay', bridge: 'br0', addresses: ['10.77.0.1/24', 'fd77::1/64'] },
    etcd: { url: 'http://10.77.0.1:2379', socket: '/run/veil/lab/lb1/etcd.sock:0', dataDir: '/run/veil/lab/lb1/etcd', log: '/run/veil/lab/lb1/logs/etcd.log' },
    pki: { dir: '/run/veil/lab/lb1/pki', caCert: '/run/veil/lab/lb1/pki/ca.pem' },
    nodes: [{ name: 'node-1', index: 1, netns: 'veil-lb1-node-1', underlayAddresses: ['10.77.0.11/24'], podCidrs: ['10.78.1.0/24'], cert: '/c', key: '/k', bootstrapToken: '/t' }],
    pods: [
      { name: 'client-1-0', namespace: 'frontend', labels: { app: 'client' }, serviceAccount: 'client', node: 'node-1', netns: 'veil-lb1-pod-frontend-client-1-0', host: 2, hostIface: 'lxc2', addresses: ['10.78.1.2'] },
    ],
    auditLogs: [],
    journal: [
      { kind: 'netns', name: 'veil-lb1-underlay' },
      { kind: 'process', name: 'etcd', pid: 1234, startTime: '99', log: '/run/veil/lab/lb1/logs/etcd.log', netns: 'veil-lb1-underlay' },
    ],
  };
}

describe('lab state file', () => {
  it('round-trips through a 0600 file in a 0700 directory', async () => {
    await claimLabDir('lb1', root);
    await writeLabState(sample(), root);
    const p = labPaths('lb1', root);
    expect((await stat(p.state)).mode & 0o777).toBe(0o600);
    expect((await stat(p.dir)).mode & 0o777).toBe(0o700);
    expect(await readLabState('lb1', root)).toEqual(sample());
  });

  it('claimLabDir() refuses a second lab of the same name', async () => {
    await claimLabDir('lb1', root);
    await expect(claimLabDir('lb1', root)).rejects.toMatchObject({ code: 'VEIL_LAB_EXISTS', message: expect.stringContaining('veil lab down --name lb1') });
    await removeLabDir('lb1', root);
    await expect(claimLabDir('lb1', root)).resolves.toBeUndefined();
  });

  it('a missing lab is LAB_NOT_FOUND, a damaged file LAB_STATE', async () => {
    await expect(readLabState('lb1', root)).rejects.toMatchObject({ code: 'VEIL_LAB_NOT_FOUND' });
    await claimLabDir('lb1', root);
    await writeFile(labPaths('lb1', root).state, '{not json');
    await expect(readLabState('lb1', root)).rejects.toMatchObject({ code: 'VEIL_LAB_STATE' });
  });

  it('refuses a state that would make down touch what is not the lab’s', () => {
    const foreign = sample();
    foreign.journal.push({ kind: 'netns', name: 'production' });
    expect(() => parseLabState(foreign, 'lb1')).toThrow(/"production" is not a namespace of lab "lb1"/);
    const traversal = sample();
    traversal.journal.push({ kind: 'netns', name: 'veil-lb1-../../x' });
    expect(() => parseLabState(traversal, 'lb1')).toThrow(/not a namespace of lab/);
    const pid1 = sample() as unknown as { journal: Array<Record<string, unknown>> };
    pid1.journal[1]!.pid = 1;
    expect(() => parseLabState(pid1, 'lb1')).toThrow(/pid/);
    expect(() => parseLabState(sample(), 'other')).toThrow(/names lab "lb1"/);
    expect(() => parseLabState({ ...sample(), v: 2 }, 'lb1')).toThrow(/version/);
    expect(() => parseLabState({ ...sample(), journal: [{ kind: 'rm-rf', path: '/' }] }, 'lb1')).toThrow(/unknown kind/);
    const badPod = sample();
    badPod.pods[0]!.labels = { 'bad key': 'x' };
    expect(() => parseLabState(badPod, 'lb1')).toThrow(/pods\[0\]/);
  });

  it('the written file is JSON a human can read', async () => {
    await claimLabDir('lb1', root);
    await writeLabState(sample(), root);
    const text = await readFile(labPaths('lb1', root).state, 'utf8');
    expect(text).toContain('\n  "name": "lb1"');
  });
});
