/**
 * Runs the built `veil` CLI (dist/agent/cli/main.js) as a child process, the way an operator
 * runs it, and collects its exit code and output. One helper for every host test that drives
 * the CLI; the child is killed after `timeoutMs`.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { projectRoot } from '../../agent/project-root.js';

export const VEIL_CLI = join(projectRoot(), 'dist', 'agent', 'cli', 'main.js');

export interface VeilRun {
  code: number;
  stdout: string;
  stderr: string;
}

export interface VeilRunOptions {
  /** Kill the child after this long (default 120 s). */
  timeoutMs?: number;
  /** Extra environment; VEIL_LOG_LEVEL defaults to "warn". */
  env?: NodeJS.ProcessEnv;
}

export function runVeil(args: readonly string[], opts: VeilRunOptions = {}): Promise<VeilRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [VEIL_CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, VEIL_LOG_LEVEL: 'warn', ...opts.env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 120_000);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, stdout, stderr });
    });
  });
}
