/**
 * One writer per audit log: a lock file "<log>.lock" created exclusively, holding the writer's
 * pid. A lock left by a process that no longer exists is taken over; a live holder (including
 * another AuditLog in this process) makes opening fail. Two writers would interleave two chains.
 */
import { closeSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import { AuditLogError } from './errors.js';

export interface FileLock {
  release(): void;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export function lockFile(path: string): FileLock {
  const lockPath = `${path}.lock`;
  for (let attempt = 0; attempt < 2; attempt++) {
    let fd: number;
    try {
      fd = openSync(lockPath, 'wx', 0o600);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') {
        throw new AuditLogError(`Cannot lock audit log "${path}": ${(err as Error).message}`, { cause: err });
      }
      const pid = Number.parseInt(readFileSync(lockPath, 'utf8').trim(), 10);
      if (Number.isSafeInteger(pid) && pid > 0 && alive(pid)) {
        throw new AuditLogError(`Cannot open audit log "${path}": process ${pid} is writing it (lock "${lockPath}"); stop that writer first`);
      }
      unlinkSync(lockPath);
      continue;
    }
    writeSync(fd, `${process.pid}\n`);
    closeSync(fd);
    let released = false;
    return {
      release() {
        if (released) return;
        released = true;
        try {
          unlinkSync(lockPath);
        } catch {
          // Already gone.
        }
      },
    };
  }
  throw new AuditLogError(`Cannot lock audit log "${path}": lock "${lockPath}" keeps reappearing; another writer is starting`);
}
