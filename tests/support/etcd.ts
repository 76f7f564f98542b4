/**
 * A real etcd for one test: Debian's etcd-server started on free loopback ports with its own
 * data directory, and removed afterwards. It can be killed and restarted on the same data
 * directory and ports (the store "goes away mid-watch"), paused and resumed (a hung etcd), and
 * compacted.
 *
 *   const etcd = await EtcdServer.start();
 *   afterAll(() => etcd.cleanup());
 *   const store = new EtcdStore({ endpoints: [etcd.clientUrl] });
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import etcd3 from 'etcd3';

const running = new Set<ChildProcess>();
process.once('exit', () => {
  for (const c of running) c.kill('SIGKILL');
});

/** A TCP port on 127.0.0.1 that was free a moment ago. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

export class EtcdServer {
  private child: ChildProcess | undefined;
  private output = '';

  private constructor(
    readonly dataDir: string,
    readonly clientPort: number,
    readonly peerPort: number,
  ) {}

  /** The client URL to give the store, e.g. "http://127.0.0.1:40123". */
  get clientUrl(): string {
    return `http://127.0.0.1:${this.clientPort}`;
  }

  /** Starts a fresh single-member etcd and waits until it is healthy. */
  static async start(): Promise<EtcdServer> {
    const dir = await mkdtemp(join(tmpdir(), 'veil-etcd-'));
    const server = new EtcdServer(dir, await freePort(), await freePort());
    try {
      await server.launch();
    } catch (err) {
      await server.cleanup();
      throw err;
    }
    return server;
  }

  /** Kills etcd at once (SIGKILL, like a crash) and waits for it to exit. */
  async kill(): Promise<void> {
    const c = this.child;
    if (!c) return;
    this.child = undefined;
    if (c.exitCode === null && c.signalCode === null) {
      const exited = new Promise((r) => c.once('exit', r));
      c.kill('SIGCONT');
      c.kill('SIGKILL');
      await exited;
    }
    running.delete(c);
  }

  /** Starts etcd again on the same data directory and ports. */
  async restart(): Promise<void> {
    await this.kill();
    await this.launch();
  }

  /**
   * Freezes etcd (SIGSTOP): connections stay open but nothing answers. Resolves once the kernel
   * reports the process stopped (a signal is delivered asynchronously; until then etcd answers).
   */
  async pause(): Promise<void> {
    const c = this.child;
    if (!c?.pid) throw new Error('etcd is not running: cannot pause it');
    c.kill('SIGSTOP');
    const deadline = Date.now() + 5_000;
    for (;;) {
      const stat = await readFile(`/proc/${c.pid}/stat`, 'utf8');
      // Field 3, after the parenthesised command name: T (stopped) or t (traced).
      const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
      if (state === 'T' || state === 't') return;
      if (Date.now() > deadline) throw new Error(`etcd (pid ${c.pid}) did not stop after SIGSTOP (state "${state}")`);
      await new Promise((r) => setTimeout(r, 5));
    }
  }

  resume(): void {
    this.child?.kill('SIGCONT');
  }

  /** A short-lived etcd3 client for test-side operations the Store does not offer. */
  async withClient<T>(fn: (client: etcd3.Etcd3) => Promise<T>): Promise<T> {
    const client = new etcd3.Etcd3({ hosts: this.clientUrl });
    try {
      return await fn(client);
    } finally {
      client.close();
    }
  }

  /** The current store revision. */
  async revision(): Promise<string> {
    return this.withClient(async (c) => (await c.kv.range({ key: Buffer.from('/'), count_only: true })).header.revision);
  }

  /** Compacts history before `revision` (physically, so it is gone when this returns). */
  async compact(revision: string): Promise<void> {
    await this.withClient((c) => c.kv.compact({ revision, physical: true }));
  }

  /** What etcd printed (for failure messages). */
  logTail(): string {
    return this.output.slice(-4000);
  }

  /** Kills etcd and removes its data directory. */
  async cleanup(): Promise<void> {
    await this.kill();
    await rm(this.dataDir, { recursive: true, force: true });
  }

  private async launch(): Promise<void> {
    const peer = `http://127.0.0.1:${this.peerPort}`;
    const args = [
      '--name', 'veil-test',
      '--data-dir', this.dataDir,
      '--listen-client-urls', this.clientUrl,
      '--advertise-client-urls', this.clientUrl,
      '--listen-peer-urls', peer,
      '--initial-advertise-peer-urls', peer,
      '--initial-cluster', `veil-test=${peer}`,
      '--initial-cluster-state', 'new',
      '--heartbeat-interval', '50',
      '--election-timeout', '500',
      '--logger', 'zap',
      '--log-level', 'warn',
    ];
    const child = spawn('etcd', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    running.add(child);
    const spawnError = new Promise<Error>((resolve) => child.once('error', resolve));
    child.stdout?.on('data', (d: Buffer) => (this.output += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (this.output += d.toString()));
    const exited = new Promise<string>((resolve) => child.once('exit', (code, sig) => resolve(`exited (code ${code}, signal ${sig})`)));

    const deadline = Date.now() + 20_000;
    for (;;) {
      const early = await Promise.race([
        spawnError.then((e) => e),
        exited.then((s) => new Error(`etcd ${s} before it became healthy:\n${this.logTail()}`)),
        this.healthy().then((ok) => (ok ? null : undefined)),
      ]);
      if (early === null) return;
      if (early instanceof Error) {
        running.delete(child);
        this.child = undefined;
        if ((early as NodeJS.ErrnoException).code === 'ENOENT') {
          throw new Error('etcd is not installed: run "bash scripts/setup.sh" (Debian package etcd-server)');
        }
        throw early;
      }
      if (Date.now() > deadline) {
        throw new Error(`etcd on ${this.clientUrl} did not become healthy within 20 s:\n${this.logTail()}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  private async healthy(): Promise<boolean> {
    try {
      const res = await fetch(`${this.clientUrl}/health`, { signal: AbortSignal.timeout(1000) });
      const body = (await res.json()) as { health?: string };
      return res.ok && body.health === 'true';
    } catch {
      return false;
    }
  }
}
