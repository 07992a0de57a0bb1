/**
 * The pipe under --memory-limit: what it reads from the destination is charged to the budget until
 * the app acknowledges it (a pooled read buffer costs all of it), and near the limit a connection
 * holding CONN_FLOOR or more stops reading its destination until memory frees.
 */
import { describe, expect, it } from 'vitest';
import { Pipe, READ_BUFFERS } from '../../src/proxy/pipe.js';
import type { UpstreamSocket } from '../../src/proxy/upstream.js';
import { CONN_FLOOR, MemoryBudget, MemoryKind } from '../../src/tcp/memory-budget.js';
import type { Stack } from '../../src/stack/stack.js';
import type { TcpConn } from '../../src/tcp/conn.js';

const MiB = 1024 * 1024;

function setup(limit = 8 * MiB) {
  const budget = new MemoryBudget(limit);
  const stack = {
    linkHoldsNoViews: true,
    tcp: { sndBufBytes: MiB },
    runAfterFlush() {},
    wake() {},
    flushSoon() {},
  } as unknown as Stack;
  const calls: string[] = [];
  const socket = {
    handler: null,
    destroyed: false,
    pause() {
      calls.push('pause');
    },
    resume() {
      calls.push('resume');
    },
    destroy() {},
  } as unknown as UpstreamSocket;
  // The connection's send buffer: chunks kept until "acknowledged" (released to the pipe).
  const held: Buffer[] = [];
  const conn = {
    get sendBuffered() {
      return held.reduce((n, c) => n + c.length, 0);
    },
    write(chunk: Buffer) {
      held.push(chunk);
      return this.sendBuffered < MiB;
    },
  };
  const pipe = new Pipe(socket, { stack, clock: { now: () => 0 }, budget });
  pipe.conn = conn as unknown as TcpConn;
  calls.length = 0;
  const ack = (): void => {
    for (const c of held.splice(0)) pipe.onChunkReleased(c);
  };
  return { budget, pipe, calls, held, ack };
}

describe('Pipe: upstream bytes charged to the budget', () => {
  it('a copied read costs its length, a pooled read buffer all of it, until acknowledged', () => {
    const { budget, pipe, ack } = setup();
    pipe.onUpstreamData(Buffer.alloc(1000));
    expect(budget.usedBy(MemoryKind.SEND)).toBe(1000);
    const pooled = READ_BUFFERS.take();
    pipe.onUpstreamData(pooled.subarray(0, 20_000));
    expect(budget.usedBy(MemoryKind.SEND)).toBe(1000 + pooled.buffer.byteLength);
    ack();
    expect(budget.used).toBe(0);
  });

  it('under pressure a connection holding CONN_FLOOR stops reading, and reads again once memory frees', () => {
    const { budget, pipe, calls, ack } = setup();
    budget.charge(MemoryKind.REASSEMBLY, budget.softMark);
    pipe.onUpstreamData(Buffer.alloc(CONN_FLOOR - 1));
    expect(calls).toEqual([]);
    pipe.onUpstreamData(Buffer.alloc(10));
    expect(calls).toEqual(['pause']);
    // Memory freeing below the resume mark ends the pause...
    budget.release(MemoryKind.REASSEMBLY, budget.softMark);
    expect(calls).toEqual(['pause', 'resume']);
    // ...and so does the app acknowledging enough of the connection's own bytes.
    budget.charge(MemoryKind.REASSEMBLY, budget.softMark);
    pipe.onUpstreamData(Buffer.alloc(10));
    expect(calls).toEqual(['pause', 'resume', 'pause']);
    ack();
    expect(calls).toEqual(['pause', 'resume', 'pause', 'resume']);
    // Relief that comes later finds nobody waiting.
    budget.release(MemoryKind.REASSEMBLY, budget.softMark);
    expect(calls).toHaveLength(4);
  });

  it('at the limit even a small holder stops reading past the per-connection minimum', () => {
    const { budget, pipe, calls } = setup();
    budget.charge(MemoryKind.REASSEMBLY, budget.limit);
    pipe.onUpstreamData(Buffer.alloc(20_000));
    expect(calls).toEqual(['pause']);
  });

  it('what is still charged when the pipe finishes is given back', () => {
    const { budget, pipe } = setup();
    pipe.onUpstreamData(Buffer.alloc(5000));
    expect(budget.used).toBe(5000);
    pipe.conn = null;
    (pipe.socket as { destroyed: boolean }).destroyed = true;
    pipe.onUpstreamClose();
    expect(budget.used).toBe(0);
  });
});
