/**
 * A `veil` command made of subcommands (`veil certs init`, `veil lab up`, ...): prints its usage
 * for no argument (exit 2) or --help (exit 0), and refuses an unknown subcommand with a
 * ConfigError that points at --help.
 */
import { ConfigError } from '../errors.js';
import type { Command } from './commands.js';

export type Subcommand = (args: string[]) => Promise<number>;

export function commandGroup(o: { name: string; summary: string; usage: string; subcommands: Record<string, Subcommand> }): Command {
  return {
    name: o.name,
    summary: o.summary,
    async run(args: string[]): Promise<number> {
      const [sub, ...rest] = args;
      if (sub === undefined || sub === '--help' || sub === '-h' || sub === 'help') {
        process.stdout.write(o.usage);
        return sub === undefined ? 2 : 0;
      }
      const fn = Object.hasOwn(o.subcommands, sub) ? o.subcommands[sub] : undefined;
      if (!fn) throw new ConfigError(`Unknown command "veil ${o.name} ${sub}": run "veil ${o.name} --help" for the list`);
      return fn(rest);
    },
  };
}
