/**
 * `veil audit verify FILE --ca CA.pem [--ca CA2.pem] [--json]`: checks an audit log's hash chain,
 * sequence, schema and checkpoint signatures against the given CAs.
 * Exit codes: 0 intact (every line signed), 1 tampered (first bad line printed), 3 unverified
 * (chain intact but the tail after the last checkpoint is unsigned, or the last line is torn),
 * 2 usage error (missing file or option). An unusable CA file is a VeilError (exit 1 via main).
 */
import { readFileSync, statSync } from 'node:fs';
import { createCaVerifier } from '../audit/ca-verifier.js';
import { verifyAuditFile, type AuditSummary, type AuditVerifyResult } from '../audit/verify.js';
import type { Command } from './commands.js';

const USAGE = 'Usage: veil audit verify FILE --ca CA.pem [--ca CA2.pem] [--json]\n';

interface VerifyArgs {
  file: string;
  cas: string[];
  json: boolean;
}

function parseArgs(args: string[]): VerifyArgs | string {
  const cas: string[] = [];
  let file: string | undefined;
  let json = false;
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--ca') {
      const v = args[++i];
      if (!v) return 'Option "--ca" needs a file: --ca CA.pem';
      cas.push(v);
    } else if (a.startsWith('--ca=')) {
      cas.push(a.slice(5));
    } else if (a === '--json') {
      json = true;
    } else if (a.startsWith('-')) {
      return `Unknown option "${a}"`;
    } else if (file === undefined) {
      file = a;
    } else {
      return `Unexpected argument "${a}": give one audit log file`;
    }
  }
  if (!file) return 'Missing the audit log FILE';
  if (cas.length === 0) return 'Missing "--ca CA.pem": checkpoints are verified against the cluster CA';
  return { file, cas, json };
}

function summaryText(s: AuditSummary): string {
  const lines = [
    `  lines: ${s.lines} (events ${s.events}, checkpoints ${s.checkpoints}, recovered torn fragments ${s.recoveredFragments})`,
    `  nodes: ${s.nodes.length ? s.nodes.join(', ') : '(none verified)'}`,
    `  signed by: ${s.signers.length ? s.signers.join('; ') : '(none)'}`,
    `  first: ${s.firstTime ?? '-'}  last: ${s.lastTime ?? '-'}`,
  ];
  if (s.checkpoints > 0) {
    lines.push(
      s.closedCleanly
        ? `  ends with the final checkpoint of a clean close (seq ${s.lastCheckpointSeq})`
        : `  ends with a periodic checkpoint (seq ${s.lastCheckpointSeq}): the writer did not close cleanly, or lines after it were removed (not detectable)`,
    );
  }
  return `${lines.join('\n')}\n`;
}

function report(file: string, r: AuditVerifyResult, json: boolean): number {
  const code = r.status === 'intact' ? 0 : r.status === 'tampered' ? 1 : 3;
  if (json) {
    process.stdout.write(`${JSON.stringify({ file, ...r })}\n`);
    return code;
  }
  if (r.status === 'intact') {
    process.stdout.write(`Audit log "${file}" is intact: every line is chained and signed\n${summaryText(r.summary)}`);
  } else if (r.status === 'tampered') {
    process.stderr.write(`Audit log "${file}" is NOT intact: first bad line ${r.line}: ${r.reason}\n`);
    process.stdout.write(summaryText(r.summary));
  } else {
    process.stderr.write(`Audit log "${file}" is UNVERIFIED from line ${r.line}: ${r.reason}\n`);
    process.stdout.write(summaryText(r.summary));
  }
  return code;
}

export const auditCommand: Command = {
  name: 'audit',
  summary: 'Verify a tamper-evident audit log: veil audit verify FILE --ca CA.pem',
  async run(args: string[]): Promise<number> {
    const [sub, ...rest] = args;
    if (sub !== 'verify') {
      process.stderr.write(sub ? `Unknown audit subcommand "${sub}"\n${USAGE}` : USAGE);
      return 2;
    }
    const parsed = parseArgs(rest);
    if (typeof parsed === 'string') {
      process.stderr.write(`${parsed}\n${USAGE}`);
      return 2;
    }
    const missing = parsed.cas.find((path) => statSync(path, { throwIfNoEntry: false })?.isFile() !== true);
    if (missing) {
      process.stderr.write(`CA file "${missing}" does not exist or is not a file\n`);
      return 2;
    }
    const caPems = parsed.cas.map((path) => readFileSync(path, 'utf8'));
    if (statSync(parsed.file, { throwIfNoEntry: false })?.isFile() !== true) {
      process.stderr.write(`Audit log "${parsed.file}" does not exist or is not a file\n`);
      return 2;
    }
    const verifier = createCaVerifier(caPems);
    return report(parsed.file, verifyAuditFile(parsed.file, verifier), parsed.json);
  },
};
