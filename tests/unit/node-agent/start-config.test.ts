import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadAgentConfig } from '../../../agent/config/agent-config.js';
import { createRootLogger } from '../../../agent/log/logger.js';
import { startNodeAgent } from '../../../agent/node-agent/main.js';

describe('startNodeAgent: settings it refuses before touching anything', () => {
  it('refuses ipsec.granularity "node" with a ConfigError that says what to set', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'veil-start-'));
    const file = join(dir, 'agent.json');
    writeFileSync(file, JSON.stringify({ ipsec: { granularity: 'node' } }));
    const config = loadAgentConfig(['--node', 'node-a', '--store', 'http://127.0.0.1:1', '--mode', 'ipsec', '--config', file], {});
    // The store endpoint is never dialled: the check comes first.
    await expect(startNodeAgent(config, { log: createRootLogger({ level: 'silent' }) })).rejects.toMatchObject({
      code: 'VEIL_CONFIG',
      message: expect.stringMatching(/^IPsec granularity "node" is not run by "veil agent".*set "ipsec\.granularity: identity"/),
    });
  });
});
