/**
 * --idle-timeout on a pipe: bytes the app sends count as activity (they reach the upstream socket
 * with a writev(2) straight from the TUN batch, upstream.ts UpstreamSocket.write); a connection
 * silent both ways is reaped.
 */
import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { Pipe } from '../../src/proxy/pipe.js';
import { UpstreamSockets } from '../../src/proxy/upstream.js';
import { dial } from './upstream-harness.js';
import type { Stack } from '../../src/stack/stack.js';
import type { TcpConn } from '../../src/tcp/conn.js';

const IDLE_MS = 200;

function recordingConn(): { conn: TcpConn; aborted: string[] } {
  const aborted: string[] = [];
  const conn = {
    write: () => true,
    close() {},
    abort(reason: string) {
      aborted.push(reason);
    },
    consume() {},
    closeReason: null,
  } as unknown as TcpConn;
  return { conn, aborted };
}

async function withPipe(fn: (pipe: Pipe, conn: TcpConn, aborted: string[], received: () => number) => Promise<void>): Promise<void> {
  let receivedBytes = 0;
  // A destination that reads everything and never answers.
  const server = net.createServer((s) => s.on('data', (d) => (receivedBytes += d.length)));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  const sockets = new UpstreamSockets({ clock: { now: () => Date.now() }, idleTimeoutMs: IDLE_MS });
  const socket = await dial(sockets, port);
  // The stack runs the pipe's after-flush work at once, as a flush would.
  const stack = { wake() {}, flushSoon() {}, runAfterFlush: (p: Pipe) => p.afterFlush() } as unknown as Stack;
  const pipe = new Pipe(socket, { stack, clock: { now: () => Date.now() } });
  const { conn, aborted } = recordingConn();
  pipe.conn = conn;
  try {
    pipe.onEstablished(conn);
    await fn(pipe, conn, aborted, () => receivedBytes);
  } finally {
    socket.destroy();
    sockets.close();
    await new Promise((r) => server.close(r));
  }
}

describe('pipe idle timer', () => {
  it('app → upstream bytes keep a connection open past --idle-timeout', async () => {
    await withPipe(async (pipe, conn, aborted, received) => {
      // One small write every quarter of the timeout, for three timeouts.
      const chunk = Buffer.alloc(100, 7);
      const until = Date.now() + 3 * IDLE_MS;
      let sent = 0;
      while (Date.now() < until) {
        pipe.onData(conn, chunk);
        sent += chunk.length;
        await new Promise((r) => setTimeout(r, IDLE_MS / 4));
      }
      expect(aborted).toEqual([]);
      await new Promise((r) => setTimeout(r, 50));
      expect(received()).toBe(sent);
    });
  });

  it('a connection silent both ways is reaped with reason idle_timeout', async () => {
    await withPipe(async (pipe, conn, aborted) => {
      pipe.onData(conn, Buffer.alloc(10));
      await new Promise((r) => setTimeout(r, IDLE_MS * 2.5));
      expect(aborted).toEqual(['idle_timeout']);
    });
  });
});
