/**
 * Flag parsing for `veil` subcommands (node:util parseArgs, strict), with errors in house style
 * that name the command and point at its --help.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { ConfigError } from '../errors.js';

export type CliOptions = NonNullable<ParseArgsConfig['options']>;

/** Parses `args` of "veil <command>"; at most `positionals` positional arguments. */
export function parseCommandArgs<T extends CliOptions>(command: string, args: string[], options: T, positionals = 0) {
  const help = `run "veil ${command.split(' ')[0]} --help"`;
  let parsed;
  try {
    parsed = parseArgs({ args, options, strict: true as const, allowPositionals: positionals > 0 });
  } catch (err) {
    const msg = (err as Error).message;
    const name = /'([^']+)'/.exec(msg)?.[1];
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') throw new ConfigError(`Unknown option "${name ?? msg}" for "veil ${command}": ${help}`);
    if (code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL') throw new ConfigError(`Unexpected argument "${name ?? msg}" for "veil ${command}": ${help}`);
    throw new ConfigError(`Invalid options for "veil ${command}": ${msg.split('.')[0]}`, { cause: err });
  }
  if (parsed.positionals.length > positionals) {
    throw new ConfigError(`Unexpected argument "${parsed.positionals[positionals]}" for "veil ${command}": ${help}`);
  }
  return parsed;
}

/** The value of a required string flag. */
export function requiredFlag(values: Record<string, unknown>, name: string, command: string): string {
  const v = values[name];
  if (typeof v !== 'string' || v === '') throw new ConfigError(`"veil ${command}" needs --${name}: run "veil ${command.split(' ')[0]} --help"`);
  return v;
}
