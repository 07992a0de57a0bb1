/**
 * The pipe after an upstream write (pipe.ts reportFlushed): the bytes left the socket's queue, so
 * the app's connection consumes them; it is dispatched again only when that made a segment due
 * (a window update worth sending, RFC 9293 §3.8.6.2.2), not after every request.
 */
import { describe, expect, it } from 'vitest';
import { standInUpstream } from '../helpers/stand-in-upstream.js';
import { Pipe } from '../../src/proxy/pipe.js';
import type { Stack } from '../../src/stack/stack.js';
import type { TcpConn } from '../../src/tcp/conn.js';

function setup(updateDue: boolean) {
  const woken: string[] = [];
  const stack = {
    linkHoldsNoViews: true,
    runAfterFlush: (p: Pipe) => p.afterFlush(),
    wake: () => woken.push('wake'),
    flushSoon: () => woken.push('flushSoon'),
  } as unknown as Stack;
  const written: number[] = [];
  const socket = standInUpstream((c) => {
    if (c.how !== 'end') written.push(c.bytes);
  });
  const consumed: number[] = [];
  const conn = {
    consume(n: number) {
      consumed.push(n);
      return updateDue;
    },
  } as unknown as TcpConn;
  const pipe = new Pipe(socket, { stack, clock: { now: () => 0 } });
  pipe.conn = conn;
  return { pipe, conn, woken, written, consumed };
}

describe('Pipe: the window after an upstream write', () => {
  it('bytes written upstream are consumed, and the connection is not dispatched again when no window update is due', () => {
    const { pipe, conn, woken, written, consumed } = setup(false);
    pipe.onData(conn, Buffer.from('GET / HTTP/1.1\r\n\r\n'));
    expect(written).toEqual([18]);
    expect(consumed).toEqual([18]);
    expect(woken).toEqual([]);
  });

  it('a window update made due by the write gets the connection dispatched', () => {
    const { pipe, conn, woken, consumed } = setup(true);
    pipe.onData(conn, Buffer.from('x'));
    expect(consumed).toEqual([1]);
    expect(woken).toEqual(['wake', 'flushSoon']);
  });
});
