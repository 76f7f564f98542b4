import { mkdtempSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadAgentConfig } from '../../../agent/config/agent-config.js';
import { loadOperatorConfig } from '../../../agent/config/operator-config.js';
import { labAgentProcess, labOperatorProcess, labPinRoot } from '../../../agent/lab/lab-processes.js';
import { STATE_VERSION, type LabState } from '../../../agent/lab/state.js';

const root = mkdtempSync(join(tmpdir(), 'veil-lab-procs-'));

function state(): LabState {
  return {
    v: STATE_VERSION,
    name: 'demo',
    mode: 'wireguard',
    phase: 'creating',
    createdAt: new Date(0).toISOString(),
    underlay: { netns: 'veil-demo-underlay', bridge: 'br0', addresses: ['10.77.0.1/24'] },
    etcd: { url: 'http://10.77.0.1:2379', socket: join(root, 'demo', 'etcd.sock:0'), dataDir: join(root, 'demo', 'etcd'), log: join(root, 'demo', 'logs', 'etcd.log') },
    pki: { dir: join(root, 'demo', 'pki'), caCert: join(root, 'demo', 'pki', 'ca.pem') },
    nodes: [{ name: 'node-1', index: 1, netns: 'veil-demo-node-1', underlayAddresses: ['10.77.0.11/24'], podCidrs: ['10.78.1.0/24'], cert: '/x/node-1.pem', key: '/x/node-1-key.pem', bootstrapToken: '/x/bootstrap-token' }],
    pods: [],
    auditLogs: [],
    journal: [],
  };
}

describe('lab processes', () => {
  it('writes an agent config (0600) that veil agent accepts, and records the audit log once', async () => {
    const s = state();
    const spec = await labAgentProcess(s.nodes[0]!, s, root);
    const file = spec.args[spec.args.indexOf('--config') + 1]!;
    expect(spec.args.slice(-3)).toEqual(['agent', '--config', file]);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const c = loadAgentConfig(['--config', file], {});
    expect(c).toMatchObject({
      nodeName: 'node-1',
      stateDir: join(root, 'demo', 'nodes', 'node-1'),
      store: { endpoints: ['http://10.77.0.1:2379'] },
      encryption: { type: 'wireguard', strictMode: true },
      datapath: { pinDir: `${labPinRoot('demo')}/node-1`, uplink: 'eth0' },
      pki: { nodeCert: '/x/node-1.pem', nodeKey: '/x/node-1-key.pem', bootstrapToken: '/x/bootstrap-token' },
      status: { host: '127.0.0.1', port: 9876 },
    });
    expect(s.auditLogs).toEqual([c.audit.file]);
    await labAgentProcess(s.nodes[0]!, s, root);
    expect(s.auditLogs).toHaveLength(1);
  });

  it('starts the operator against the lab etcd with options veil operator accepts', () => {
    const spec = labOperatorProcess(state(), root);
    const args = spec.args.slice(spec.args.indexOf('operator') + 1);
    const c = loadOperatorConfig(args, {});
    expect(c).toMatchObject({ id: 'demo-operator', store: { endpoints: ['http://10.77.0.1:2379'] }, status: { port: 9877 }, caDir: join(root, 'demo', 'pki') });
  });
});
