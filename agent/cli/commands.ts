import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { projectRoot } from '../project-root.js';
import { agentCommand } from './agent-command.js';
import { auditCommand } from './audit-command.js';
import { certsCommand } from './certs-command.js';
import { connectivityCommand } from './connectivity-command.js';
import { eventsCommand } from './events-command.js';
import { keysCommand } from './keys-command.js';
import { labCommand } from './lab-command.js';
import { operatorCommand } from './operator-command.js';

/** One `veil` subcommand. */
export interface Command {
  name: string;
  summary: string;
  run(args: string[]): Promise<number>;
}

const version: Command = {
  name: 'version',
  summary: 'Print the Veil version',
  async run() {
    const pkg = JSON.parse(readFileSync(join(projectRoot(), 'package.json'), 'utf8')) as { version: string };
    process.stdout.write(`veil ${pkg.version}\n`);
    return 0;
  },
};

/** Every subcommand, in the order `veil --help` lists them. */
export const commands: Command[] = [version, certsCommand, auditCommand, keysCommand, labCommand, agentCommand, operatorCommand, connectivityCommand, eventsCommand];
