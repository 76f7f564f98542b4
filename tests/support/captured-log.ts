/**
 * A real pino logger (agent/log/logger.ts, debug level) whose lines are kept in memory, so a
 * test can assert what was logged — and above all what was not: no key material in any line.
 */
import { Writable } from 'node:stream';
import { createRootLogger, type Logger } from '../../agent/log/logger.js';

export interface CapturedLog {
  log: Logger;
  /** Every line written so far. */
  lines: string[];
  /** All lines as one string. */
  text(): string;
}

export function capturedLog(): CapturedLog {
  const lines: string[] = [];
  const log = createRootLogger({
    level: 'debug',
    destination: new Writable({
      write(chunk, _e, cb) {
        lines.push(String(chunk));
        cb();
      },
    }),
  });
  return { log, lines, text: () => lines.join('') };
}
