import type { Socket } from 'node:net';
import { StringDecoder } from 'node:string_decoder';

/**
 * Splits a stream socket into JSON values, one per line. Lines that are not JSON are reported to
 * `onBadLine` and skipped (a stale half line after a reconnect must not kill the link).
 */
export function readJsonLines(
  socket: Socket,
  onValue: (value: unknown) => void,
  onBadLine: (line: string) => void = () => {},
): void {
  const decoder = new StringDecoder('utf8');
  let pending = '';
  socket.on('data', (chunk: Buffer) => {
    pending += decoder.write(chunk);
    let newline: number;
    while ((newline = pending.indexOf('\n')) >= 0) {
      const line = pending.slice(0, newline);
      pending = pending.slice(newline + 1);
      if (!line.trim()) continue;
      let value: unknown;
      try {
        value = JSON.parse(line);
      } catch {
        onBadLine(line);
        continue;
      }
      onValue(value);
    }
  });
}

export function writeJsonLine(socket: Socket, value: unknown): void {
  socket.write(`${JSON.stringify(value)}\n`);
}
