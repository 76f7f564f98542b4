/**
 * Shared helpers of the guest-side WireGuard scenarios (tests/vm/wireguard-kernel.test.ts runs
 * them with the host's node inside the VM). They import the code under test from the checkout's
 * built dist/, because Node 20 cannot run the TypeScript sources.
 *
 * Every scenario prints exactly one JSON line on stdout: its result, or `{ "error": ... }` with
 * the error's class, code and message (exit code 1). Buffers are printed as base64 and bigints
 * as decimal strings.
 */
import { generateKeyPairSync } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';

const dist = new URL('../../../dist/', import.meta.url);

/** Imports a module of the built agent, e.g. `agent/wireguard/select.js`. */
export function fromDist(path) {
  return import(new URL(path, dist).href);
}

/** A fresh X25519 key pair as raw 32-byte Buffers (test keys, thrown away with the VM). */
export function keyPair() {
  const { publicKey, privateKey } = generateKeyPairSync('x25519');
  return {
    privateKey: privateKey.export({ format: 'der', type: 'pkcs8' }).subarray(-32),
    publicKey: publicKey.export({ format: 'der', type: 'spki' }).subarray(-32),
  };
}

export const b64 = (buf) => Buffer.from(buf).toString('base64');
export const fromB64 = (text) => Buffer.from(text, 'base64');

/** JSON with Buffers as base64 and bigints as strings. */
export function toJson(value) {
  return JSON.stringify(value, function replace(key, v) {
    const raw = this[key];
    if (Buffer.isBuffer(raw) || raw instanceof Uint8Array) return b64(raw);
    if (typeof raw === 'bigint') return raw.toString();
    return v;
  });
}

export function readState(path) {
  return JSON.parse(readFileSync(path, 'utf8'));
}

export function writeState(path, state) {
  writeFileSync(path, JSON.stringify(state, null, 2), { mode: 0o600 });
}

/** What a test needs to know about an error, without its stack noise. */
export function describeError(err) {
  return {
    name: err?.name,
    code: err?.code,
    errno: err?.errno,
    op: err?.op,
    index: err?.index,
    extack: err?.extack,
    message: err?.message,
  };
}

/** Runs a scenario: prints its result as one JSON line, or the error and exits 1. */
export async function runScenario(body) {
  try {
    const result = await body(process.argv.slice(2));
    process.stdout.write(`${toJson(result ?? {})}\n`);
  } catch (err) {
    process.stdout.write(`${toJson({ error: { ...describeError(err), stack: err?.stack } })}\n`);
    process.exitCode = 1;
  }
}
