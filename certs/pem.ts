/**
 * Strict, bounded PEM (RFC 7468) reading and writing. Only the armour lines and their labels are
 * ever quoted in errors: never the base64 body, which for a private key is key material.
 */
import { PemError } from './errors.js';

/** Largest PEM text accepted: a bundle of a few certificates is a few KiB. */
export const MAX_PEM_BYTES = 256 * 1024;
/** Most PEM blocks accepted in one input (a leaf, its chain, two CAs, with room to spare). */
export const MAX_PEM_BLOCKS = 16;

export interface PemBlock {
  label: string;
  der: Buffer;
}

export interface DecodePemOptions {
  /** What the input is, for messages: `CA certificate "ca.pem"`. */
  what: string;
  /** Labels accepted; any other label is an error naming the expected ones. */
  labels: readonly string[];
  /** At most this many blocks (default MAX_PEM_BLOCKS). */
  maxBlocks?: number;
}

const BEGIN = /^-----BEGIN ([A-Z0-9 ]{1,64})-----$/;
const END = /^-----END ([A-Z0-9 ]{1,64})-----$/;
const BASE64_LINE = /^[A-Za-z0-9+/]*={0,2}$/;

/**
 * Decodes every PEM block in `input`. Text outside blocks is allowed (as openssl writes it);
 * headers inside a block (legacy encrypted keys) are refused, as are bad base64, a missing END
 * line and labels other than `opts.labels`.
 */
export function decodePem(input: string | Buffer, opts: DecodePemOptions): PemBlock[] {
  const size = typeof input === 'string' ? Buffer.byteLength(input) : input.length;
  if (size > MAX_PEM_BYTES) {
    throw new PemError(`Cannot read ${opts.what}: ${size} bytes is more than the ${MAX_PEM_BYTES} a PEM file may have`);
  }
  const text = typeof input === 'string' ? input : input.toString('latin1');
  const maxBlocks = opts.maxBlocks ?? MAX_PEM_BLOCKS;
  const lines = text.split(/\r?\n/);
  const blocks: PemBlock[] = [];
  let label: string | undefined;
  let startLine = 0;
  let body: string[] = [];
  for (let i = 0; i < lines.length; i++) {
    const line = (lines[i] ?? '').trim();
    if (label === undefined) {
      const m = BEGIN.exec(line);
      if (!m) {
        if (line.startsWith('-----END')) {
          throw new PemError(`Cannot read ${opts.what}: line ${i + 1} ends a PEM block that was never begun`);
        }
        continue;
      }
      label = m[1] as string;
      startLine = i + 1;
      body = [];
      continue;
    }
    const end = END.exec(line);
    if (end) {
      if (end[1] !== label) {
        throw new PemError(
          `Cannot read ${opts.what}: PEM block "${label}" begun on line ${startLine} ends as "${end[1]}" on line ${i + 1}`,
        );
      }
      blocks.push({ label, der: decodeBody(body, label, startLine, opts.what) });
      if (blocks.length > maxBlocks) {
        throw new PemError(`Cannot read ${opts.what}: more than ${maxBlocks} PEM blocks; pass at most ${maxBlocks}`);
      }
      label = undefined;
      continue;
    }
    if (line.includes(':')) {
      throw new PemError(
        `Cannot read ${opts.what}: PEM block "${label}" has headers (line ${i + 1}), as legacy encrypted keys do; ` +
          'decrypt it first (openssl pkey -in FILE -out FILE.plain)',
      );
    }
    if (line.startsWith('-----')) {
      throw new PemError(`Cannot read ${opts.what}: PEM block "${label}" begun on line ${startLine} is not ended`);
    }
    body.push(line);
  }
  if (label !== undefined) {
    throw new PemError(`Cannot read ${opts.what}: PEM block "${label}" begun on line ${startLine} has no END line (truncated?)`);
  }
  if (blocks.length === 0) {
    throw new PemError(`Cannot read ${opts.what}: no PEM block found; expected "-----BEGIN ${opts.labels[0] ?? ''}-----"`);
  }
  for (const b of blocks) {
    if (!opts.labels.includes(b.label)) {
      const expected = opts.labels.map((l) => `"${l}"`).join(' or ');
      throw new PemError(`Cannot read ${opts.what}: found a PEM block "${b.label}" where ${expected} was expected`);
    }
  }
  return blocks;
}

function decodeBody(lines: string[], label: string, startLine: number, what: string): Buffer {
  const joined = lines.join('');
  if (joined.length === 0 || joined.length % 4 !== 0 || !BASE64_LINE.test(joined)) {
    throw new PemError(`Cannot read ${what}: the body of PEM block "${label}" (line ${startLine}) is not valid base64`);
  }
  return Buffer.from(joined, 'base64');
}

/** Decodes exactly one PEM block with one of `labels`. */
export function decodeSinglePem(input: string | Buffer, opts: DecodePemOptions): PemBlock {
  const blocks = decodePem(input, { ...opts, maxBlocks: opts.maxBlocks ?? MAX_PEM_BLOCKS });
  if (blocks.length !== 1) {
    throw new PemError(`Cannot read ${opts.what}: found ${blocks.length} PEM blocks where exactly one was expected`);
  }
  return blocks[0] as PemBlock;
}

/** Encodes DER as PEM with 64-character lines and a trailing newline. */
export function encodePem(label: string, der: Uint8Array): string {
  const b64 = Buffer.from(der).toString('base64');
  const lines: string[] = [];
  for (let i = 0; i < b64.length; i += 64) lines.push(b64.slice(i, i + 64));
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}
