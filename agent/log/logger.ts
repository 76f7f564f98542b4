import { pino, type Logger, type LoggerOptions } from 'pino';

/**
 * Field names that may carry key material anywhere in a log object. pino's redaction replaces
 * them before serialisation, so a careless `log.info({ device })` cannot leak a private key.
 */
export const REDACTED_FIELDS = ['privateKey', 'presharedKey', 'secret', 'key', 'encKey', 'authKey', 'aeadKey'];

function redactPaths(): string[] {
  const paths: string[] = [];
  for (const f of REDACTED_FIELDS) {
    paths.push(f, `*.${f}`, `*.*.${f}`, `*.*.*.${f}`, `*[*].${f}`, `*.*[*].${f}`);
  }
  return paths;
}

export interface RootLoggerOptions {
  level?: string;
  /** Destination stream (defaults to stdout). Tests pass a buffer. */
  destination?: NodeJS.WritableStream;
}

/** Creates the process's one root logger; modules take children of it. */
export function createRootLogger(opts: RootLoggerOptions = {}): Logger {
  const options: LoggerOptions = {
    level: opts.level ?? process.env.VEIL_LOG_LEVEL ?? 'info',
    base: { pid: process.pid },
    redact: { paths: redactPaths(), censor: '[redacted]' },
    serializers: { err: pino.stdSerializers.err },
  };
  return opts.destination ? pino(options, opts.destination as pino.DestinationStream) : pino(options);
}

/** A child logger for one module: `moduleLogger(root, 'netlink')`. */
export function moduleLogger(root: Logger, module: string): Logger {
  return root.child({ module });
}

export type { Logger };
