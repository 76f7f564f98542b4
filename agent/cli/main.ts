#!/usr/bin/env node
/**
 * The `veil` program: agent, operator and CLI are subcommands of this one entry point. This file
 * only parses the command line and dispatches; each subcommand lives in its own module.
 */
import { VeilError } from '../errors.js';
import { commands } from './commands.js';

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(usage());
    return name ? 0 : 2;
  }
  const cmd = commands.find((c) => c.name === name);
  if (!cmd) {
    process.stderr.write(`Unknown command "${name}": run "veil --help" for the list of commands\n`);
    return 2;
  }
  try {
    return await cmd.run(rest);
  } catch (err) {
    if (err instanceof VeilError) {
      process.stderr.write(`veil ${name}: ${err.message} [${err.code}]\n`);
      return 1;
    }
    throw err;
  }
}

function usage(): string {
  const width = Math.max(...commands.map((c) => c.name.length));
  const lines = commands.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`);
  return `Usage: veil <command> [options]\n\nCommands:\n${lines.join('\n')}\n`;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`veil: unexpected failure: ${(err as Error)?.stack ?? String(err)}\n`);
    process.exitCode = 70;
  },
);
