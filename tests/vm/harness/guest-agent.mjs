// The VM tier's guest-side RPC agent. Started by the initramfs's /init (tests/vm/harness/guest-init.sh)
// with the host's own node, chrooted into the host's root mounted over 9p. It serves JSON lines on
// the virtio-serial port "veil.rpc" (the host side is a unix socket of qemu):
//
//   request  {"id":1,"op":"exec","command":"ip link","cwd":"/work/x","timeoutMs":120000,"stdin":"…"}
//   response {"id":1,"ok":true,"result":{"code":0,"signal":null,"stdout":"…","stderr":"…",
//            "timedOut":false,"truncated":false,"durationMs":12}}
//   request  {"id":2,"op":"ping"}      → result {"kernelRelease","nodeVersion","uptimeS"}
//   request  {"id":3,"op":"poweroff"}  → replies, then exits; /init powers the guest off
//
// Requests run concurrently; each response carries its request's id. Plain JavaScript (no build
// step): the guest runs it straight from the checkout.
import { spawn } from 'node:child_process';
import { open, readdir, readFile } from 'node:fs/promises';
import { release } from 'node:os';
import { StringDecoder } from 'node:string_decoder';
import { setTimeout as sleep } from 'node:timers/promises';

const PORT_NAME = 'veil.rpc';
const MAX_OUTPUT_BYTES = 16 * 1024 * 1024;
const DEFAULT_TIMEOUT_MS = 120_000;
// A command's exit is final; output still open after this (a daemon that kept the pipe) is cut.
const DRAIN_AFTER_EXIT_MS = 250;

/** udev is absent: find /dev/vportNpM through the port names in sysfs. */
async function findPort() {
  for (let attempt = 0; attempt < 100; attempt++) {
    const entries = await readdir('/sys/class/virtio-ports').catch(() => []);
    for (const entry of entries) {
      const name = await readFile(`/sys/class/virtio-ports/${entry}/name`, 'utf8').catch(() => '');
      if (name.trim() === PORT_NAME) return `/dev/${entry}`;
    }
    await sleep(100);
  }
  throw new Error(`No virtio-serial port named "${PORT_NAME}" in /sys/class/virtio-ports: is qemu started with -device virtserialport,name=${PORT_NAME}?`);
}

const portPath = await findPort();
const port = await open(portPath, 'r+');

// Writes go out one message at a time (a port write takes at most 32 KiB, so loop on partial
// writes); while the host side is disconnected they fail and the message is dropped.
let writeChain = Promise.resolve();
function send(message) {
  const bytes = Buffer.from(`${JSON.stringify(message)}\n`, 'utf8');
  writeChain = writeChain.then(async () => {
    let offset = 0;
    while (offset < bytes.length) {
      const { bytesWritten } = await port.write(bytes, offset, bytes.length - offset);
      offset += bytesWritten;
    }
  }).catch((err) => {
    process.stderr.write(`veil-vm agent: dropped a reply (${err.code ?? err.message})\n`);
  });
  return writeChain;
}

function collect(stream, sink) {
  stream.on('data', (chunk) => {
    if (sink.bytes >= MAX_OUTPUT_BYTES) {
      sink.truncated = true;
      return;
    }
    const room = MAX_OUTPUT_BYTES - sink.bytes;
    const part = chunk.length > room ? chunk.subarray(0, room) : chunk;
    if (part.length < chunk.length) sink.truncated = true;
    sink.chunks.push(part);
    sink.bytes += part.length;
  });
}

function exec({ command, cwd, timeoutMs, stdin }) {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    // Own process group, so a timeout kills the command's children too.
    const child = spawn('/bin/sh', ['-c', command], {
      cwd: cwd ?? process.env.VEIL_CHECKOUT ?? '/',
      env: process.env,
      detached: true,
      stdio: [stdin === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    });
    const out = { chunks: [], bytes: 0, truncated: false };
    const err = { chunks: [], bytes: 0, truncated: false };
    collect(child.stdout, out);
    collect(child.stderr, err);
    if (stdin !== undefined) {
      child.stdin.on('error', () => {});
      child.stdin.end(stdin);
    }
    let timedOut = false;
    let settled = false;
    let exit = null;
    const timer = setTimeout(() => {
      timedOut = true;
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        child.kill('SIGKILL');
      }
    }, timeoutMs ?? DEFAULT_TIMEOUT_MS);
    const finish = () => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      child.stdout.destroy();
      child.stderr.destroy();
      resolve({
        code: exit?.code ?? null,
        signal: exit?.signal ?? null,
        stdout: Buffer.concat(out.chunks).toString('utf8'),
        stderr: Buffer.concat(err.chunks).toString('utf8'),
        timedOut,
        truncated: out.truncated || err.truncated,
        durationMs: Date.now() - started,
      });
    };
    child.on('error', (e) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      reject(e);
    });
    child.on('exit', (code, signal) => {
      exit = { code, signal };
      setTimeout(finish, DRAIN_AFTER_EXIT_MS);
    });
    child.on('close', (code, signal) => {
      exit ??= { code, signal };
      finish();
    });
  });
}

async function handle(request) {
  const { id, op } = request;
  try {
    if (op === 'exec') {
      if (typeof request.command !== 'string') throw new Error('Field "command" must be a string');
      send({ id, ok: true, result: await exec(request) });
    } else if (op === 'ping') {
      const uptime = await readFile('/proc/uptime', 'utf8');
      send({
        id,
        ok: true,
        result: { kernelRelease: release(), nodeVersion: process.version, uptimeS: Number(uptime.split(' ')[0]) },
      });
    } else if (op === 'poweroff') {
      await send({ id, ok: true, result: {} });
      // /init (PID 1, outside the chroot) syncs and powers off once this process is gone. Not
      // process.exit(): it joins libuv's thread pool, where a read of the port blocks for good.
      process.kill(process.pid, 'SIGKILL');
    } else {
      throw new Error(`Unknown op "${op}": expected "exec", "ping" or "poweroff"`);
    }
  } catch (e) {
    send({ id, ok: false, error: e instanceof Error ? e.message : String(e) });
  }
}

process.stderr.write(`veil-vm agent: serving ${portPath} (node ${process.version})\n`);

// A read returns 0 bytes while no host client is connected: wait and read again, and forget any
// half line from the previous client.
const buffer = Buffer.alloc(1 << 16);
let decoder = new StringDecoder('utf8');
let pending = '';
for (;;) {
  const { bytesRead } = await port.read(buffer, 0, buffer.length, null);
  if (bytesRead === 0) {
    pending = '';
    decoder = new StringDecoder('utf8');
    await sleep(50);
    continue;
  }
  pending += decoder.write(buffer.subarray(0, bytesRead));
  let newline;
  while ((newline = pending.indexOf('\n')) >= 0) {
    const line = pending.slice(0, newline);
    pending = pending.slice(newline + 1);
    if (!line.trim()) continue;
    let request;
    try {
      request = JSON.parse(line);
    } catch {
      process.stderr.write(`veil-vm agent: ignored a line that is not JSON (${line.length} bytes)\n`);
      continue;
    }
    void handle(request);
  }
}
