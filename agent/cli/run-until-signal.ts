/**
 * The long-running subcommands (`veil agent`, `veil operator`): start, then wait for SIGTERM or
 * SIGINT and stop in reverse order. A signal during start aborts the start (what started is
 * stopped again). A second signal while stopping exits at once with status 130.
 */
import type { Logger } from '../log/logger.js';

export async function runUntilSignal(log: Logger, start: (signal: AbortSignal) => Promise<{ stop(): Promise<void> }>): Promise<number> {
  const abort = new AbortController();
  let stopping = false;
  const onSignal = (sig: NodeJS.Signals): void => {
    if (stopping) {
      log.warn({ signal: sig }, 'Second signal while stopping: exiting at once');
      process.exit(130);
    }
    stopping = true;
    log.info({ signal: sig }, 'Stopping');
    abort.abort(new Error(`${sig} received`));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    const running = await start(abort.signal);
    if (!abort.signal.aborted) await new Promise((resolve) => abort.signal.addEventListener('abort', resolve, { once: true }));
    await running.stop();
    log.info('Stopped');
    return 0;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
