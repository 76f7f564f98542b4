/**
 * The lab's etcd: Debian's etcd-server, run by the launcher inside the underlay namespace with
 * its own data directory under the lab directory.
 *
 * How it is reached (decision, see docs/lab.md):
 * - node namespaces (agents) reach it over the underlay like a real cluster's kvstore:
 *   http://10.77.0.1:2379, the bridge address;
 * - the host (`veil lab status`, `veil lab pods add`, tests) cannot reach an address inside the
 *   underlay namespace, so etcd also listens on a unix socket in the lab directory (a file, so it
 *   is reachable from every namespace of the machine, and only by root: the directory is 0700).
 *   etcd 3.4 names unix listeners "unix://HOST:PORT" and creates the file "HOST:PORT" in its
 *   working directory, so it runs with the lab directory as its working directory.
 * Peer traffic stays on the underlay namespace's loopback.
 */
import { request } from 'node:http';
import { join } from 'node:path';
import { MissingDependencyError } from '../errors.js';
import { quote } from '../net/ip.js';
import { ETCD_CLIENT_PORT, ETCD_PEER_PORT } from './address-plan.js';
import { LabError, LAB_PROCESS } from './errors.js';
import { isRunning, launch, type LaunchSpec, type ProcessRecord } from './launcher.js';
import { readFile } from 'node:fs/promises';
import { findProgram } from './programs.js';

/** The unix socket's file name inside the lab directory (etcd's "unix://HOST:PORT" form). */
export const ETCD_SOCKET_NAME = 'etcd.sock:0';

export interface LabEtcdConfig {
  labDir: string;
  dataDir: string;
  netns: string;
  /** The bridge address etcd listens on for nodes. */
  listenIp: string;
  log: string;
}

export function etcdSocketPath(labDir: string): string {
  return join(labDir, ETCD_SOCKET_NAME);
}

export function labEtcdSpec(c: LabEtcdConfig): LaunchSpec {
  const client = `http://${c.listenIp}:${ETCD_CLIENT_PORT}`;
  const peer = `http://127.0.0.1:${ETCD_PEER_PORT}`;
  return {
    name: 'etcd',
    command: 'etcd',
    netns: c.netns,
    cwd: c.labDir,
    log: c.log,
    args: [
      '--name', 'veil-lab',
      '--data-dir', c.dataDir,
      '--listen-client-urls', `${client},unix://${ETCD_SOCKET_NAME}`,
      '--advertise-client-urls', client,
      '--listen-peer-urls', peer,
      '--initial-advertise-peer-urls', peer,
      '--initial-cluster', `veil-lab=${peer}`,
      '--initial-cluster-state', 'new',
      '--logger', 'zap',
      '--log-level', 'warn',
    ],
  };
}

/** GET /health over the unix socket: true when etcd answers healthy. */
export function etcdHealthy(socket: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request({ socketPath: socket, path: '/health', timeout: 1_000 }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => {
        try {
          resolve(res.statusCode === 200 && (JSON.parse(body) as { health?: string }).health === 'true');
        } catch {
          resolve(false);
        }
      });
    });
    req.on('error', () => resolve(false));
    req.on('timeout', () => req.destroy());
    req.end();
  });
}

/** Starts the lab etcd and waits (up to `timeoutMs`) until it is healthy. */
export async function startLabEtcd(c: LabEtcdConfig, onLaunched: (rec: ProcessRecord) => Promise<void>, timeoutMs = 20_000): Promise<ProcessRecord> {
  if (!findProgram('etcd')) {
    throw new MissingDependencyError('etcd is not installed: run "bash scripts/setup.sh" (Debian package etcd-server)');
  }
  const rec = await launch(labEtcdSpec(c));
  await onLaunched(rec);
  const socket = etcdSocketPath(c.labDir);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await etcdHealthy(socket)) return rec;
    if (!(await isRunning(rec))) {
      const tail = await readFile(c.log, 'utf8').then((t) => t.slice(-1500), () => '');
      throw new LabError(LAB_PROCESS, `The lab etcd exited before it became healthy: see ${quote(c.log)}:\n${tail}`);
    }
    if (Date.now() > deadline) throw new LabError(LAB_PROCESS, `The lab etcd did not become healthy within ${timeoutMs / 1000} s: see ${quote(c.log)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
