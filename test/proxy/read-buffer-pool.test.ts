/**
 * The upstream read buffer pool (src/proxy/read-buffer-pool.ts) and the pipe's rule for giving
 * buffers back: only chunks its connection released, only after the flush, and only when the link
 * holds no packet that points into them.
 */
import { describe, expect, it } from 'vitest';
import { ReadBufferPool } from '../../src/proxy/read-buffer-pool.js';
import { Pipe, READ_BUFFERS } from '../../src/proxy/pipe.js';
import type { Stack } from '../../src/stack/stack.js';
import type { UpstreamSocket } from '../../src/proxy/upstream.js';

describe('ReadBufferPool', () => {
  it('lends buffers of its size and reuses the ones given back', () => {
    const pool = new ReadBufferPool(1024, 4);
    const a = pool.take();
    expect(a.length).toBe(1024);
    expect(pool.isLent(a)).toBe(true);
    // A view of part of it (a short read handed over) brings the whole buffer back.
    pool.give(a.subarray(0, 100));
    expect(pool.isLent(a)).toBe(false);
    expect(pool.available).toBe(1);
    const b = pool.take();
    expect(b.buffer).toBe(a.buffer);
    expect(b.length).toBe(1024);
    expect(pool.available).toBe(0);
  });

  it('ignores foreign memory and a second return of the same buffer', () => {
    const pool = new ReadBufferPool(1024, 4);
    const foreign = Buffer.allocUnsafeSlow(1024);
    expect(pool.isLent(foreign)).toBe(false);
    pool.give(foreign);
    expect(pool.available).toBe(0);
    const a = pool.take();
    pool.give(a);
    pool.give(a);
    expect(pool.available).toBe(1);
    // Two takes must not hand out the same memory twice.
    const x = pool.take();
    const y = pool.take();
    expect(x.buffer).not.toBe(y.buffer);
  });

  it('keeps at most maxFree buffers', () => {
    const pool = new ReadBufferPool(64, 2);
    const lent = [pool.take(), pool.take(), pool.take(), pool.take()];
    for (const b of lent) pool.give(b);
    expect(pool.available).toBe(2);
  });
});

describe('Pipe: giving released read buffers back', () => {
  function pipeWith(linkHoldsNoViews: boolean): { pipe: Pipe; flushes: () => void } {
    const queued: Pipe[] = [];
    const stack = {
      linkHoldsNoViews,
      runAfterFlush(p: Pipe) {
        if (!p.afterFlushQueued) {
          p.afterFlushQueued = true;
          queued.push(p);
        }
      },
      wake() {},
      flushSoon() {},
    } as unknown as Stack;
    // The pipe only needs a socket to take over here: these tests never touch the upstream leg.
    const socket = { handler: null, destroyed: false, pause() {}, destroy() {} } as unknown as UpstreamSocket;
    const pipe = new Pipe(socket, { stack, clock: { now: () => 0 } });
    const flushes = (): void => {
      for (const p of queued.splice(0)) {
        p.afterFlushQueued = false;
        p.afterFlush();
      }
    };
    return { pipe, flushes };
  }

  it('returns a released pooled chunk only after the flush that ends the batch', () => {
    const { pipe, flushes } = pipeWith(true);
    const buf = READ_BUFFERS.take();
    const before = READ_BUFFERS.available;
    pipe.onChunkReleased(buf.subarray(0, 30_000));
    // Still in the batch: a packet built from it may not be written yet.
    expect(READ_BUFFERS.isLent(buf)).toBe(true);
    flushes();
    expect(READ_BUFFERS.isLent(buf)).toBe(false);
    expect(READ_BUFFERS.available).toBe(Math.min(before + 1, READ_BUFFERS.maxFree));
    pipe.socket.destroy();
  });

  it('leaves it to the garbage collector when the link still holds packets after the flush', () => {
    const { pipe, flushes } = pipeWith(false);
    const buf = READ_BUFFERS.take();
    const before = READ_BUFFERS.available;
    pipe.onChunkReleased(buf);
    flushes();
    expect(READ_BUFFERS.available).toBe(before);
    // Never given back: a later take cannot hand out this memory.
    expect(READ_BUFFERS.isLent(buf)).toBe(true);
    pipe.socket.destroy();
  });

  it("ignores chunks that are not the pool's (small reads are copies)", () => {
    const { pipe, flushes } = pipeWith(true);
    const before = READ_BUFFERS.available;
    pipe.onChunkReleased(Buffer.from('copied small read'));
    flushes();
    expect(READ_BUFFERS.available).toBe(before);
    pipe.socket.destroy();
  });
});
