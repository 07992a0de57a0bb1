import { describe, expect, it } from 'vitest';
import { ImpairedRx, ImpairedTx, parseFaultSpec, SeededRandom, type Timers } from '../../src/stack/fault.js';
import type { LinkRx, LinkTx } from '../../src/wire/link.js';

/** Timers driven by hand: setTimer only records; release() is called by the test. */
function manualTimers(): Timers & { t: number } {
  return { t: 0, now() { return this.t; }, setTimer: () => 1, clearTimer: () => {} };
}

function recordingRx(): LinkRx & { got: number[] } {
  return {
    got: [],
    input(buf, off) { this.got.push(buf[off]!); },
    flush() {},
  };
}

function packet(id: number): Buffer {
  return Buffer.from([id, 1, 2, 3]);
}

describe('fault injector', () => {
  it('the same seed gives the same faults', () => {
    const run = (seed: number) => {
      const timers = manualTimers();
      const sink = recordingRx();
      const rx = new ImpairedRx(sink, { seed, loss: 0.2, duplicate: 0.1, reorder: 0.2, reorderMs: 5, delayMs: 0, jitterMs: 0 }, timers);
      for (let i = 0; i < 200; i++) rx.input(packet(i % 256), 0, 4, false);
      timers.t = 100;
      rx.release(timers.t);
      return sink.got;
    };
    expect(run(7)).toEqual(run(7));
    expect(run(7)).not.toEqual(run(8));
  });

  it('drops about the configured share', () => {
    const timers = manualTimers();
    const sink = recordingRx();
    const rx = new ImpairedRx(sink, { seed: 3, loss: 0.1, duplicate: 0, reorder: 0, reorderMs: 0, delayMs: 0, jitterMs: 0 }, timers);
    for (let i = 0; i < 10_000; i++) rx.input(packet(1), 0, 4, false);
    expect(rx.counters.dropped).toBeGreaterThan(850);
    expect(rx.counters.dropped).toBeLessThan(1150);
    expect(sink.got.length).toBe(10_000 - rx.counters.dropped);
  });

  it('delays hold packets (copied) until due, preserving order with a fixed delay', () => {
    const timers = manualTimers();
    const sink = recordingRx();
    const rx = new ImpairedRx(sink, { seed: 1, loss: 0, duplicate: 0, reorder: 0, reorderMs: 0, delayMs: 50, jitterMs: 0 }, timers);
    const buf = packet(9);
    rx.input(buf, 0, 4, false);
    buf[0] = 99; // the caller reuses its buffer: the held copy must not change
    rx.input(packet(10), 0, 4, false);
    timers.t = 49;
    rx.release(timers.t);
    expect(sink.got).toEqual([]);
    timers.t = 50;
    rx.release(timers.t);
    expect(sink.got).toEqual([9, 10]);
  });

  it('reordering lets later packets overtake', () => {
    const timers = manualTimers();
    const sink = recordingRx();
    const rx = new ImpairedRx(sink, { seed: 11, loss: 0, duplicate: 0, reorder: 0.5, reorderMs: 10, delayMs: 1, jitterMs: 0 }, timers);
    for (let i = 0; i < 50; i++) rx.input(packet(i), 0, 4, false);
    timers.t = 100;
    rx.release(timers.t);
    expect(sink.got.length).toBe(50);
    expect([...sink.got].sort((a, b) => a - b)).toEqual(Array.from({ length: 50 }, (_, i) => i));
    expect(sink.got).not.toEqual(Array.from({ length: 50 }, (_, i) => i));
  });

  it('impairs the transmit side into the inner link', () => {
    const timers = manualTimers();
    const written: number[] = [];
    const inner: LinkTx = {
      vnetHdr: false,
      txBuffer: Buffer.alloc(64 * 4),
      txSlotSize: 64,
      txReserve: () => 0,
      txCommit(offset) { written.push(this.txBuffer[offset]!); },
      txFlush() {},
      onTxDrain() {},
    };
    const tx = new ImpairedTx(inner, { seed: 5, loss: 0, duplicate: 1, reorder: 0, reorderMs: 0, delayMs: 0, jitterMs: 0 }, timers);
    const slot = tx.txReserve();
    tx.txBuffer[slot] = 77;
    tx.txCommit(slot, 4);
    timers.t = 1;
    tx.release(timers.t);
    expect(written).toEqual([77, 77]);
  });

  it('parses a spec string and rejects bad ones', () => {
    expect(parseFaultSpec('loss=0.02,dup=0.01,reorder=0.02,reorder-ms=5,delay=50,jitter=1,seed=7')).toEqual({
      seed: 7, loss: 0.02, duplicate: 0.01, reorder: 0.02, reorderMs: 5, delayMs: 50, jitterMs: 1,
    });
    expect(() => parseFaultSpec('loss=2')).toThrow(/probabilities/);
    expect(() => parseFaultSpec('colour=1')).toThrow(/unknown/);
    // A bad --impair is a usage error (exit 2 with one line), from the catalogue like every other.
    expect(() => parseFaultSpec('loss')).toThrow(expect.objectContaining({ code: 'ERR_CONFIG', message: expect.stringMatching(/^--impair: bad item "loss"/) }));
  });

  it('SeededRandom is uniform enough', () => {
    const r = new SeededRandom(42);
    let sum = 0;
    for (let i = 0; i < 10_000; i++) sum += r.next();
    expect(sum / 10_000).toBeGreaterThan(0.48);
    expect(sum / 10_000).toBeLessThan(0.52);
  });
});
