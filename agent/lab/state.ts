/**
 * The lab's state file, /run/veil/lab/<name>/state.json (0600, in a 0700 directory): everything
 * `up` created, so that `down` removes exactly that, in reverse, even after a crash half-way.
 *
 * `journal` is written ahead: a namespace is recorded before it is created and a process right
 * after it is spawned, so an interrupted `up` leaves nothing that the file does not name (`down`
 * tolerates entries whose object never came to exist). The file is input like any other: it is
 * validated when read, and `down` only ever touches namespaces whose name carries this lab's
 * prefix and processes whose start time still matches (no stranger that reused the pid).
 */
import { mkdir, open, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { quote } from '../net/ip.js';
import { checkRecord } from '../cluster/records.js';
import { checkLabName } from './address-plan.js';
import { LabError, LAB_EXISTS, LAB_NOT_FOUND, LAB_STATE } from './errors.js';
import type { ProcessRecord } from './launcher.js';

export const DEFAULT_LAB_ROOT = '/run/veil/lab';
export const STATE_VERSION = 1;
const MAX_STATE_BYTES = 4 * 1024 * 1024;

export type LabMode = 'wireguard' | 'ipsec';
export const LAB_MODES: readonly LabMode[] = ['wireguard', 'ipsec'];

export type JournalEntry = { kind: 'netns'; name: string } | ({ kind: 'process' } & ProcessRecord);

export interface LabNodeState {
  name: string;
  index: number;
  netns: string;
  underlayAddresses: string[];
  podCidrs: string[];
  /** Where the agent writes the certificate and key it obtains from the operator. */
  cert: string;
  key: string;
  /** The node's one-time bootstrap token (0600; removed by the agent once used). */
  bootstrapToken: string;
}

export interface LabPodState {
  name: string;
  namespace: string;
  labels: Record<string, string>;
  serviceAccount: string;
  node: string;
  netns: string;
  host: number;
  hostIface: string;
  addresses: string[];
}

export interface LabState {
  v: typeof STATE_VERSION;
  name: string;
  mode: LabMode;
  /** "creating" until `up` finished; "ready" after. */
  phase: 'creating' | 'ready';
  createdAt: string;
  underlay: { netns: string; bridge: string; addresses: string[] };
  etcd: { url: string; socket: string; dataDir: string; log: string } | null;
  pki: { dir: string; caCert: string } | null;
  nodes: LabNodeState[];
  pods: LabPodState[];
  /** Audit logs of the lab's agents (none until agents run). */
  auditLogs: string[];
  journal: JournalEntry[];
}

/** Paths of one lab. Always derived from the root and the (validated) name, never from the file. */
export function labPaths(name: string, root = DEFAULT_LAB_ROOT): { dir: string; state: string; logs: string; pki: string; etcdData: string } {
  const dir = join(root, checkLabName(name));
  return { dir, state: join(dir, 'state.json'), logs: join(dir, 'logs'), pki: join(dir, 'pki'), etcdData: join(dir, 'etcd') };
}

/**
 * Claims the lab name by creating its directory (0700). A second `up` with the same name fails
 * here, before it touches anything.
 */
export async function claimLabDir(name: string, root = DEFAULT_LAB_ROOT): Promise<void> {
  const p = labPaths(name, root);
  await mkdir(root, { recursive: true, mode: 0o755 });
  try {
    await mkdir(p.dir, { mode: 0o700 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
      throw new LabError(LAB_EXISTS, `Lab ${quote(name)} already exists (${quote(p.dir)}): run "veil lab down --name ${name}" first, or choose another --name`);
    }
    throw err;
  }
}

/** Writes the state atomically (temporary file 0600, fsync, rename). */
export async function writeLabState(state: LabState, root = DEFAULT_LAB_ROOT): Promise<void> {
  const p = labPaths(state.name, root);
  const tmp = `${p.state}.tmp`;
  const fh = await open(tmp, 'w', 0o600);
  try {
    await fh.writeFile(`${JSON.stringify(state, null, 2)}\n`);
    await fh.chmod(0o600);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, p.state);
}

/** Reads and validates the state of lab `name`; LabError LAB_NOT_FOUND when there is none. */
export async function readLabState(name: string, root = DEFAULT_LAB_ROOT): Promise<LabState> {
  const p = labPaths(name, root);
  let raw: Buffer;
  try {
    raw = await readFile(p.state);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new LabError(LAB_NOT_FOUND, `No lab named ${quote(name)} (no ${quote(p.state)}): start one with "veil lab up --name ${name}"`);
    }
    throw err;
  }
  if (raw.length > MAX_STATE_BYTES) throw bad(p.state, `it is ${raw.length} bytes`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw.toString('utf8'));
  } catch {
    throw bad(p.state, 'it is not JSON');
  }
  return parseLabState(parsed, name, p.state);
}

/** Removes the lab directory (state file, PKI, etcd data, logs). */
export async function removeLabDir(name: string, root = DEFAULT_LAB_ROOT): Promise<void> {
  await rm(labPaths(name, root).dir, { recursive: true, force: true });
}

function bad(path: string, why: string): LabError {
  return new LabError(LAB_STATE, `Lab state ${quote(path)} is damaged: ${why}; remove the lab's namespaces ("ip netns list | grep veil-") and the file by hand`);
}

type O = Record<string, unknown>;

/** Validates a parsed state file for lab `name`. Exported for unit tests. */
export function parseLabState(v: unknown, name: string, path = 'state.json'): LabState {
  const fail = (why: string) => bad(path, why);
  const obj = (x: unknown, what: string): O => {
    if (x === null || typeof x !== 'object' || Array.isArray(x)) throw fail(`${what} is not an object`);
    return x as O;
  };
  const str = (x: unknown, what: string, max = 4096): string => {
    if (typeof x !== 'string' || x.length === 0 || x.length > max || x.includes('\0')) throw fail(`${what} is not a string`);
    return x;
  };
  const int = (x: unknown, what: string, min: number, max: number): number => {
    if (typeof x !== 'number' || !Number.isInteger(x) || x < min || x > max) throw fail(`${what} ${quote(x)} is out of range`);
    return x;
  };
  const arr = (x: unknown, what: string, max = 10_000): unknown[] => {
    if (!Array.isArray(x) || x.length > max) throw fail(`${what} is not a list`);
    return x;
  };
  const strs = (x: unknown, what: string): string[] => arr(x, what, 64).map((s, i) => str(s, `${what}[${i}]`));
  const prefix = `veil-${name}-`;
  const ownNetns = (x: unknown, what: string): string => {
    const n = str(x, what, 255);
    if (!n.startsWith(prefix) || n.includes('/')) throw fail(`${what} ${quote(n)} is not a namespace of lab ${quote(name)}`);
    return n;
  };

  const o = obj(v, 'the file');
  if (o.v !== STATE_VERSION) throw fail(`version ${quote(o.v)} is not ${STATE_VERSION}`);
  if (o.name !== name) throw fail(`it names lab ${quote(o.name)}`);
  if (!LAB_MODES.includes(o.mode as LabMode)) throw fail(`mode ${quote(o.mode)} is unknown`);
  if (o.phase !== 'creating' && o.phase !== 'ready') throw fail(`phase ${quote(o.phase)} is unknown`);
  const u = obj(o.underlay, 'underlay');
  const etcd = o.etcd === null ? null : obj(o.etcd, 'etcd');
  const pki = o.pki === null ? null : obj(o.pki, 'pki');
  const journal: JournalEntry[] = arr(o.journal, 'journal').map((e, i) => {
    const j = obj(e, `journal[${i}]`);
    if (j.kind === 'netns') return { kind: 'netns', name: ownNetns(j.name, `journal[${i}].name`) };
    if (j.kind === 'process') {
      return {
        kind: 'process',
        name: str(j.name, `journal[${i}].name`, 64),
        pid: int(j.pid, `journal[${i}].pid`, 2, 2 ** 22),
        startTime: str(j.startTime, `journal[${i}].startTime`, 32),
        log: str(j.log, `journal[${i}].log`),
        ...(j.netns !== undefined ? { netns: ownNetns(j.netns, `journal[${i}].netns`) } : {}),
      };
    }
    throw fail(`journal[${i}] has unknown kind ${quote(j.kind)}`);
  });
  const nodes: LabNodeState[] = arr(o.nodes, 'nodes').map((x, i) => {
    const n = obj(x, `nodes[${i}]`);
    return {
      name: str(n.name, `nodes[${i}].name`, 253),
      index: int(n.index, `nodes[${i}].index`, 1, 1000),
      netns: ownNetns(n.netns, `nodes[${i}].netns`),
      underlayAddresses: strs(n.underlayAddresses, `nodes[${i}].underlayAddresses`),
      podCidrs: strs(n.podCidrs, `nodes[${i}].podCidrs`),
      cert: str(n.cert, `nodes[${i}].cert`),
      key: str(n.key, `nodes[${i}].key`),
      bootstrapToken: str(n.bootstrapToken, `nodes[${i}].bootstrapToken`),
    };
  });
  const pods: LabPodState[] = arr(o.pods, 'pods').map((x, i) => {
    const p = obj(x, `pods[${i}]`);
    let checked;
    try {
      checked = checkRecord('pods', { name: p.name, namespace: p.namespace, labels: p.labels, serviceAccount: p.serviceAccount, node: p.node, addresses: p.addresses });
    } catch (err) {
      throw fail(`pods[${i}]: ${(err as Error).message}`);
    }
    return {
      ...checked,
      netns: ownNetns(p.netns, `pods[${i}].netns`),
      host: int(p.host, `pods[${i}].host`, 2, 254),
      hostIface: str(p.hostIface, `pods[${i}].hostIface`, 15),
    };
  });
  return {
    v: STATE_VERSION,
    name,
    mode: o.mode as LabMode,
    phase: o.phase,
    createdAt: str(o.createdAt, 'createdAt', 64),
    underlay: { netns: ownNetns(u.netns, 'underlay.netns'), bridge: str(u.bridge, 'underlay.bridge', 15), addresses: strs(u.addresses, 'underlay.addresses') },
    etcd: etcd && {
      url: str(etcd.url, 'etcd.url'),
      socket: str(etcd.socket, 'etcd.socket'),
      dataDir: str(etcd.dataDir, 'etcd.dataDir'),
      log: str(etcd.log, 'etcd.log'),
    },
    pki: pki && { dir: str(pki.dir, 'pki.dir'), caCert: str(pki.caCert, 'pki.caCert') },
    nodes,
    pods,
    auditLogs: strs(o.auditLogs, 'auditLogs'),
    journal,
  };
}
