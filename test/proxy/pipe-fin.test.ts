/**
 * The app's FIN toward the destination (pipe.ts onFin): passed on after the batch's flush, behind
 * the data delivered before it, so that the segments the batch made due (a new connection's
 * SYN-ACK among them) do not wait for the upstream shutdown(2) or close(2).
 */
import { describe, expect, it } from 'vitest';
import { standInUpstream } from '../helpers/stand-in-upstream.js';
import { Pipe } from '../../src/proxy/pipe.js';
import type { AfterFlush, Stack } from '../../src/stack/stack.js';
import type { TcpConn } from '../../src/tcp/conn.js';

function setup() {
  const log: string[] = [];
  const queued: AfterFlush[] = [];
  const stack = {
    linkHoldsNoViews: true,
    runAfterFlush(p: AfterFlush) {
      if (p.afterFlushQueued) return;
      p.afterFlushQueued = true;
      queued.push(p);
    },
    wake() {},
    flushSoon() {},
  } as unknown as Stack;
  /** What the stack's flush does once the batch's segments are on the link. */
  const flush = (): void => {
    log.push('flush');
    for (const p of queued.splice(0)) {
      p.afterFlushQueued = false;
      p.afterFlush();
    }
  };
  const socket = standInUpstream((c) => log.push(c.how === 'end' ? 'end' : `write ${c.bytes}`));
  const conn = { consume: () => false } as unknown as TcpConn;
  const pipe = new Pipe(socket, { stack, clock: { now: () => 0 } });
  pipe.conn = conn;
  return { pipe, conn, socket, log, flush };
}

describe("Pipe: the app's FIN toward the destination", () => {
  it("ends the upstream socket after the batch's flush, behind the data the batch delivered before the FIN", () => {
    const { pipe, conn, log, flush } = setup();
    pipe.onData(conn, Buffer.from('last'));
    pipe.onFin(conn);
    expect(log).toEqual([]);
    flush();
    expect(log).toEqual(['flush', 'write 4', 'end']);
  });

  it('does not end a socket that was destroyed before the flush (an abort in the same batch)', () => {
    const { pipe, conn, socket, log, flush } = setup();
    pipe.onFin(conn);
    (socket as unknown as { destroyed: boolean }).destroyed = true;
    flush();
    expect(log).toEqual(['flush']);
  });
});
