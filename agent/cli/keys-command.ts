/**
 * `veil keys`: what an operator needs to see and steer key rotation on a node.
 *
 *   veil keys status --state-dir DIR [--json]
 *       The node's key slots and their generations, read from DIR/keys/state.json (no store
 *       needed): phase, fingerprint, peers that acknowledged / moved, next scheduled rotation.
 *   veil keys rotate --state-dir DIR --store URLS [--prefix /veil/] (--node-key | --identity N)
 *       Asks the node's running key manager for an on-demand rotation: writes the request key
 *       <prefix>keys/rotate/<node>/node (or .../identity/<N>); the manager starts the rotation as
 *       soon as none of that slot is running and deletes the request.
 */
import { parseArgs } from 'node:util';
import { parseStoreEndpoints } from '../config/agent-config.js';
import { ConfigError } from '../errors.js';
import { KeyStateDir, type KeyManagerState } from '../keys/key-state-dir.js';
import { KeyStorePaths, slotLabel, type SlotRef } from '../keys/key-store-paths.js';
import { requestRotation } from '../keys/rotation-request.js';
import { openEtcdStore } from '../store/etcd-store.js';
import type { Command } from './commands.js';

const USAGE = `Usage: veil keys <command> [options]

Commands:
  status --state-dir DIR [--json]
  rotate --state-dir DIR --store URLS [--prefix /veil/] (--node-key | --identity N)
`;

async function loadState(dir: unknown): Promise<KeyManagerState> {
  if (typeof dir !== 'string' || dir === '') throw new ConfigError('Missing --state-dir: give the agent\'s state directory, e.g. "/var/lib/veil/worker-1"');
  const state = await new KeyStateDir(dir).load();
  if (!state) throw new ConfigError(`No key state in "${dir}/keys": is it the state directory of a node whose agent has started?`);
  return state;
}

function statusText(state: KeyManagerState): string {
  const lines = [`Keys of node "${state.node}" (record sequence ${state.sequence})`];
  for (const s of state.slots) {
    const r = s.rotation;
    const due = s.dueAt === null ? 'not scheduled' : new Date(s.dueAt).toISOString();
    lines.push(`  ${slotLabel(r.slot)}: ${r.peers.length} peers, next rotation ${due}`);
    if (r.generations.length === 0) lines.push('    no key yet');
    for (const g of r.generations) {
      lines.push(
        `    generation ${g.generation}  ${g.phase.padEnd(12)} ${g.fingerprint}  acknowledged ${g.acknowledgedBy.length}/${r.peers.length}` +
          (g.phase === 'active' ? `, moved ${g.movedPeers.length}/${r.peers.length}` : ''),
      );
    }
  }
  return `${lines.join('\n')}\n`;
}

async function status(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { 'state-dir': { type: 'string' }, json: { type: 'boolean' } }, strict: true });
  const state = await loadState(values['state-dir']);
  process.stdout.write(values.json ? `${JSON.stringify(state)}\n` : statusText(state));
  return 0;
}

function slotOf(values: { 'node-key'?: boolean; identity?: string }): SlotRef {
  if (values['node-key'] === true && values.identity !== undefined) throw new ConfigError('Give either --node-key or --identity N, not both');
  if (values['node-key'] === true) return { kind: 'node', identity: 0 };
  if (values.identity === undefined) throw new ConfigError('Missing key to rotate: give --node-key or --identity N');
  const id = /^[1-9][0-9]{0,4}$/.test(values.identity) ? Number(values.identity) : 0;
  if (id < 1 || id > 65535) throw new ConfigError(`Invalid --identity "${values.identity.slice(0, 20)}": use an identity id from 1 to 65535`);
  return { kind: 'identity', identity: id };
}

async function rotate(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: { 'state-dir': { type: 'string' }, store: { type: 'string' }, prefix: { type: 'string' }, 'node-key': { type: 'boolean' }, identity: { type: 'string' } },
    strict: true,
  });
  const slot = slotOf(values);
  const state = await loadState(values['state-dir']);
  if (!state.slots.some((s) => s.rotation.slot.kind === slot.kind && s.rotation.slot.identity === slot.identity)) {
    throw new ConfigError(`Node "${state.node}" has no ${slotLabel(slot)}: run "veil keys status --state-dir ${values['state-dir']}" for its keys`);
  }
  if (values.store === undefined) throw new ConfigError('Missing --store: give the etcd URLs the agents use, e.g. "http://10.0.0.1:2379"');
  const paths = new KeyStorePaths(values.prefix);
  const store = await openEtcdStore({ endpoints: parseStoreEndpoints(values.store, '--store') });
  try {
    const created = await requestRotation(store, paths, state.node, slot);
    const key = paths.rotateRequest(state.node, slot);
    process.stdout.write(
      created
        ? `Requested an on-demand rotation of the ${slotLabel(slot)} of "${state.node}" (store key "${key}"); its agent starts it when no rotation of that key is running\n`
        : `A rotation of the ${slotLabel(slot)} of "${state.node}" is already requested (store key "${key}"); its agent has not started it yet\n`,
    );
  } finally {
    await store.close();
  }
  return 0;
}

const SUBCOMMANDS: Record<string, (args: string[]) => Promise<number>> = { status, rotate };

export const keysCommand: Command = {
  name: 'keys',
  summary: 'Show key generations and request a rotation: veil keys status|rotate',
  async run(args: string[]): Promise<number> {
    const [sub, ...rest] = args;
    const fn = sub === undefined ? undefined : SUBCOMMANDS[sub];
    if (!fn) {
      process.stderr.write(sub ? `Unknown keys subcommand "${sub}"\n${USAGE}` : USAGE);
      return 2;
    }
    try {
      return await fn(rest);
    } catch (err) {
      if ((err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
        process.stderr.write(`${(err as Error).message}\n${USAGE}`);
        return 2;
      }
      throw err;
    }
  },
};
