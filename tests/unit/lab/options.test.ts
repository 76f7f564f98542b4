import { describe, expect, it } from 'vitest';
import { labCommand } from '../../../agent/cli/lab-command.js';
import { ConfigError } from '../../../agent/errors.js';
import { parseLabelsArg } from '../../../agent/lab/labels-arg.js';
import { resolveLabUpOptions } from '../../../agent/lab/options.js';

describe('lab options', () => {
  it('defaults to 3 nodes, 2 pods per node, WireGuard, lab "veil"', () => {
    expect(resolveLabUpOptions({})).toEqual({ name: 'veil', nodes: 3, podsPerNode: 2, mode: 'wireguard' });
    expect(resolveLabUpOptions({ name: 'x', nodes: '5', podsPerNode: '0', mode: 'ipsec' })).toEqual({ name: 'x', nodes: 5, podsPerNode: 0, mode: 'ipsec' });
  });

  it('refuses bad counts, modes and names with the flag in the message', () => {
    expect(() => resolveLabUpOptions({ nodes: '0' })).toThrow(/Invalid --nodes "0": use a whole number from 1 to 64/);
    expect(() => resolveLabUpOptions({ nodes: '1.5' })).toThrow(/--nodes/);
    expect(() => resolveLabUpOptions({ nodes: '65' })).toThrow(/--nodes/);
    expect(() => resolveLabUpOptions({ podsPerNode: '-1' })).toThrow(/--pods-per-node/);
    expect(() => resolveLabUpOptions({ mode: 'gre' })).toThrow(/Invalid --mode "gre": use one of wireguard, ipsec/);
    expect(() => resolveLabUpOptions({ name: 'Bad Name' })).toThrow(ConfigError);
  });

  it('parses --labels into a map and refuses malformed or repeated labels', () => {
    expect(parseLabelsArg(undefined)).toEqual({});
    expect(parseLabelsArg('app=web,tier=front,empty=')).toEqual({ app: 'web', tier: 'front', empty: '' });
    expect(() => parseLabelsArg('app')).toThrow(/KEY=VALUE/);
    expect(() => parseLabelsArg('=x')).toThrow(/KEY=VALUE/);
    expect(() => parseLabelsArg('app=a,app=b')).toThrow(/given twice/);
    expect(() => parseLabelsArg('app=bad value')).toThrow(/Invalid --labels/);
  });

  it('the CLI rejects unknown subcommands and flags before touching anything', async () => {
    await expect(labCommand.run(['fly'])).rejects.toThrow(/Unknown command "veil lab fly"/);
    await expect(labCommand.run(['up', '--nodez', '2'])).rejects.toThrow(/Unknown option "--nodez" for "veil lab up"/);
    await expect(labCommand.run(['up', '--nodes', 'many'])).rejects.toThrow(/Invalid --nodes "many"/);
    await expect(labCommand.run(['pods', 'add', '--node', 'node-1'])).rejects.toThrow(/needs --pod/);
    await expect(labCommand.run(['pods', 'move'])).rejects.toThrow(/use "add" or "delete"/);
  });
});
