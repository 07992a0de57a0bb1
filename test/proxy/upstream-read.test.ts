/**
 * Upstream reads (upstream.ts UpstreamSocket.readAvailable): small reads are copied out of one shared
 * buffer, large ones handed over from buffers of the socket's own. Every chunk the connection
 * keeps must stay intact while other reads, on this socket and others, reuse buffers.
 */
import crypto from 'node:crypto';
import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { Pipe } from '../../src/proxy/pipe.js';
import { UpstreamSockets } from '../../src/proxy/upstream.js';
import { dial, until } from './upstream-harness.js';
import type { Stack } from '../../src/stack/stack.js';
import type { TcpConn } from '../../src/tcp/conn.js';

/** What the pipe needs of a connection to deliver upstream data: write() keeps every chunk. */
function keepingConn(): { conn: TcpConn; chunks: Buffer[] } {
  const chunks: Buffer[] = [];
  const conn = {
    write(chunk: Buffer) {
      chunks.push(chunk);
      return true;
    },
    close() {},
    abort() {},
    consume() {},
    closeReason: 'fin',
  } as unknown as TcpConn;
  return { conn, chunks };
}

const stack = { wake() {}, flushSoon() {}, runAfterFlush() {} } as unknown as Stack;

describe('upstream reads', () => {
  it('keep every chunk intact through small and bulk reads on several sockets at once', async () => {
    // Per socket: small writes with pauses (one read each, through the shared buffer), a 2 MB
    // burst (large reads into buffers of its own), then small writes again.
    const plans = [0, 1, 2].map((i) => {
      const parts: Buffer[] = [];
      for (let k = 0; k < 20; k++) parts.push(crypto.randomBytes(1 + ((k * 37 + i) % 300)));
      parts.push(crypto.randomBytes(2 * 1024 * 1024));
      for (let k = 0; k < 20; k++) parts.push(crypto.randomBytes(1 + ((k * 53 + i) % 900)));
      return parts;
    });
    let accepted = 0;
    const server = net.createServer(async (s) => {
      const parts = plans[accepted++]!;
      for (const p of parts) {
        s.write(p);
        if (p.length < 4096) await new Promise((r) => setTimeout(r, 2));
      }
      s.end();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as net.AddressInfo).port;
    const sockets = new UpstreamSockets({ clock: { now: () => Date.now() }, idleTimeoutMs: 0 });
    try {
      const results = await Promise.all(
        plans.map(async () => {
          const socket = await dial(sockets, port);
          const { conn, chunks } = keepingConn();
          let ended = false;
          (conn as unknown as { close: () => void }).close = () => (ended = true);
          const pipe = new Pipe(socket, { stack, clock: { now: () => 0 } });
          pipe.conn = conn;
          pipe.onEstablished(conn);
          await until('the end of the stream', () => ended, 10_000);
          socket.destroy();
          return chunks;
        }),
      );
      // Connections are accepted in order of arrival, not necessarily of dialling: match by length.
      const expected = plans.map((p) => Buffer.concat(p));
      const got = results.map((chunks) => Buffer.concat(chunks));
      for (const g of got) {
        const match = expected.find((e) => e.length === g.length && e.equals(g));
        expect(match, 'a socket received exactly what one server connection sent').toBeDefined();
      }
      // Both ways of reading were used: small copied chunks and large handed-over ones.
      const sizes = results.flat().map((c) => c.length);
      expect(sizes.some((n) => n < 1024)).toBe(true);
      expect(sizes.some((n) => n >= 16 * 1024)).toBe(true);
    } finally {
      sockets.close();
      await new Promise((r) => server.close(r));
    }
  });
});
