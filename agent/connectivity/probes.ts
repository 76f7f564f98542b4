/**
 * Traffic and capture for the connectivity test, run inside the lab's namespaces through the
 * project's `veil-netns-exec` (≈ `ip netns exec NS ...`). The connectivity test is a test tool:
 * it spawns `ping` and `tcpdump` (Debian packages iputils-ping and tcpdump, installed by
 * scripts/setup.sh) to make and watch real packets; the agent itself never does.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { MissingDependencyError } from '../errors.js';
import { netnsExecPath } from '../lab/launcher.js';
import { findProgram } from '../lab/programs.js';

function launcher(): string {
  const exec = netnsExecPath();
  if (!existsSync(exec)) throw new MissingDependencyError(`Launcher "${exec}" is not built: run "npm run build" in the checkout`);
  return exec;
}

function program(name: string, pkg: string): string {
  const p = findProgram(name);
  if (!p) throw new MissingDependencyError(`The connectivity test needs "${name}": install the Debian package "${pkg}" (bash scripts/setup.sh)`);
  return p;
}

export interface PingResult {
  sent: number;
  received: number;
  /** The last lines of ping's output (for failure explanations). */
  output: string;
}

/** `ping -c COUNT -i INTERVAL -W TIMEOUT TARGET` inside `netns`. */
export async function ping(netns: string, target: string, opts: { count?: number; intervalS?: number; timeoutS?: number } = {}): Promise<PingResult> {
  const count = opts.count ?? 3;
  const args = ['--netns', netns, '--', program('ping', 'iputils-ping'), '-n', '-c', String(count), '-i', String(opts.intervalS ?? 0.2), '-W', String(opts.timeoutS ?? 1), target];
  const output = await new Promise<string>((resolve, reject) => {
    const child = spawn(launcher(), args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    child.once('error', reject);
    child.once('close', () => resolve(out));
  });
  const m = /(\d+) packets transmitted, (\d+) (?:packets )?received/.exec(output);
  return { sent: m ? Number(m[1]) : 0, received: m ? Number(m[2]) : 0, output: output.trim().split('\n').slice(-3).join(' | ') };
}

export interface WireCount {
  /** Packets with a pod address as source or destination: plaintext pod traffic on the wire. */
  plaintext: number;
  /** Encrypted packets: WireGuard (UDP to or from a channel port) or ESP, by the lab's mode. */
  encrypted: number;
  other: number;
  /** A few plaintext lines, for the explanation. */
  samples: string[];
}

/** A running `tcpdump -n -l -i IFACE` inside `netns`; stop() returns the classified counts. */
export class WireCapture {
  #child: ChildProcess;
  #lines: string[] = [];
  #partial = '';
  #ready: Promise<void>;

  private constructor(child: ChildProcess) {
    this.#child = child;
    this.#ready = new Promise((resolve, reject) => {
      let err = '';
      child.stderr!.on('data', (d: Buffer) => {
        err += d.toString();
        // tcpdump says "listening on IFACE" once the capture is open.
        if (err.includes('listening on')) resolve();
      });
      child.once('error', reject);
      child.once('close', (code) => reject(new Error(`tcpdump exited with status ${code}: ${err.trim().slice(0, 300)}`)));
    });
    child.stdout!.on('data', (d: Buffer) => {
      const text = this.#partial + d.toString();
      const parts = text.split('\n');
      this.#partial = parts.pop() ?? '';
      this.#lines.push(...parts);
    });
  }

  static async start(netns: string, iface: string): Promise<WireCapture> {
    const child = spawn(launcher(), ['--netns', netns, '--', program('tcpdump', 'tcpdump'), '-n', '-l', '-i', iface, 'ip or ip6'], { stdio: ['ignore', 'pipe', 'pipe'] });
    const c = new WireCapture(child);
    await c.#ready;
    return c;
  }

  /**
   * Stops the capture and classifies what it saw: plaintext pod packets (a pod address in the
   * outer header: checked first, so a pod packet to a WireGuard port is never taken for
   * ciphertext; Veil's tunnels carry node addresses outside), encrypted (`isEncrypted`), other.
   */
  async stop(isPodAddress: (ip: string) => boolean, isEncrypted: EncryptedPacketTest): Promise<WireCount> {
    // Give the last packets time to be printed.
    await new Promise((r) => setTimeout(r, 300));
    const closed = new Promise((r) => this.#child.once('close', r));
    this.#child.kill('SIGINT');
    await closed;
    if (this.#partial) this.#lines.push(this.#partial);
    return classifyCapture(this.#lines, isPodAddress, isEncrypted);
  }
}

/** Classifies `tcpdump -n` lines: see WireCapture.stop(). */
export function classifyCapture(lines: readonly string[], isPodAddress: (ip: string) => boolean, isEncrypted: EncryptedPacketTest): WireCount {
  const count: WireCount = { plaintext: 0, encrypted: 0, other: 0, samples: [] };
  for (const line of lines) {
    const m = /\bIP6? (\S+) > (\S+?):/.exec(line);
    if (!m) continue;
    const [src, sport] = splitEndpoint(m[1]!);
    const [dst, dport] = splitEndpoint(m[2]!);
    if (isPodAddress(src) || isPodAddress(dst)) {
      count.plaintext++;
      if (count.samples.length < 3) count.samples.push(line.slice(0, 160));
    } else if (isEncrypted(line, sport, dport)) {
      count.encrypted++;
    } else {
      count.other++;
    }
  }
  return count;
}

/** Is this tcpdump line (with its parsed ports) an encrypted packet of the lab's mode? */
export type EncryptedPacketTest = (line: string, sport: number, dport: number) => boolean;

/** WireGuard mode: UDP to or from one of the agents' channel ports. */
export function wireguardPackets(ports: readonly number[]): EncryptedPacketTest {
  return (line, sport, dport) => /\bUDP\b/.test(line) && (ports.includes(sport) || ports.includes(dport));
}

/** IPsec mode: ESP, which tcpdump prints as "ESP(spi=0x…,seq=0x…)". */
export function espPackets(): EncryptedPacketTest {
  return (line) => /: ESP\(spi=0x[0-9a-f]+/i.test(line);
}

/** tcpdump prints "ADDR.PORT" (or only ADDR for ICMP); returns [address, port or 0]. */
export function splitEndpoint(text: string): [string, number] {
  const v4 = /^(\d+\.\d+\.\d+\.\d+)(?:\.(\d+))?$/.exec(text);
  if (v4) return [v4[1]!, v4[2] ? Number(v4[2]) : 0];
  const v6 = /^([0-9a-fA-F:]+)(?:\.(\d+))?$/.exec(text);
  if (v6) return [v6[1]!, v6[2] ? Number(v6[2]) : 0];
  return [text, 0];
}
