/**
 * What one batch delivered goes upstream in one call (pipe.ts writePending): a batch's only chunk
 * (one request in one segment, the common case) by UpstreamSocket.writeOne, a write(2) of the
 * Buffer itself; two or more by one write() of all of them, in the order they arrived.
 */
import { describe, expect, it } from 'vitest';
import { standInUpstream } from '../helpers/stand-in-upstream.js';
import { Pipe } from '../../src/proxy/pipe.js';
import type { AfterFlush, Stack } from '../../src/stack/stack.js';
import type { TcpConn } from '../../src/tcp/conn.js';

function setup() {
  const queued: AfterFlush[] = [];
  const stack = {
    linkHoldsNoViews: true,
    runAfterFlush: (p: AfterFlush) => {
      if (!p.afterFlushQueued) queued.push(p);
      p.afterFlushQueued = true;
    },
  } as unknown as Stack;
  const calls: string[] = [];
  const socket = standInUpstream((c) => {
    if (c.how === 'write') calls.push(`write ${c.chunks.join('|')} (${c.bytes})`);
    else if (c.how === 'writeOne') calls.push(`writeOne ${c.chunks[0]!.toString()}`);
  });
  const conn = { consume: () => false } as unknown as TcpConn;
  const pipe = new Pipe(socket, { stack, clock: { now: () => 0 } });
  pipe.conn = conn;
  const flush = () => {
    for (const p of queued.splice(0)) {
      p.afterFlushQueued = false;
      p.afterFlush();
    }
  };
  return { pipe, conn, calls, flush };
}

describe('Pipe: the upstream write of one batch', () => {
  it("writes a batch's only chunk with writeOne, once per batch", () => {
    const { pipe, conn, calls, flush } = setup();
    pipe.onData(conn, Buffer.from('GET /a'));
    flush();
    pipe.onData(conn, Buffer.from('GET /b'));
    flush();
    flush();
    expect(calls).toEqual(['writeOne GET /a', 'writeOne GET /b']);
  });

  it('writes two or three chunks of one batch with one write, in the order they arrived', () => {
    const { pipe, conn, calls, flush } = setup();
    pipe.onData(conn, Buffer.from('a'));
    pipe.onData(conn, Buffer.from('bb'));
    flush();
    pipe.onData(conn, Buffer.from('c'));
    pipe.onData(conn, Buffer.from('d'));
    pipe.onData(conn, Buffer.from('e'));
    flush();
    pipe.onData(conn, Buffer.from('f'));
    flush();
    expect(calls).toEqual(['write a|bb (3)', 'write c|d|e (3)', 'writeOne f']);
  });
});
