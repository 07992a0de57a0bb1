import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CONN_FLOOR, CONN_MINIMUM, MemoryBudget, MemoryKind } from '../../src/tcp/memory-budget.js';
import { RcvFlag, REASSEMBLY_BLOCK, Receiver } from '../../src/tcp/rcv.js';
import { seqAdd } from '../../src/tcp/seq.js';

/** IRS just below the wrap, as in rcv.test.ts. */
const IRS = 0xfffff800;
const n = (k: number): number => seqAdd(IRS, 1 + k);
const MiB = 1024 * 1024;

function receiver(bufBytes = MiB, shift = 5, budget: MemoryBudget | null = null): Receiver {
  const r = new Receiver(bufBytes, 1460, budget);
  r.init(IRS, shift);
  r.commitSynWindow(r.synWindow());
  r.commitWindow(r.selectWindow());
  return r;
}

describe('Receiver: reassembly memory follows the bytes held, not the window', () => {
  it('one out-of-order byte in a 1 MiB window costs one block', () => {
    const r = receiver();
    expect(r.window).toBeGreaterThan(1_000_000);
    expect(r.ingest(n(1), Buffer.from('x'), false)).toBe(RcvFlag.OUT_OF_ORDER);
    expect(r.oooBytes).toBe(1);
    expect(r.reassemblyBytes).toBe(REASSEMBLY_BLOCK);
  });

  it('bytes far apart cost one block each; the blocks behind RCV.NXT are given back as it passes them', () => {
    const r = receiver();
    r.ingest(n(1), Buffer.from('a'), false);
    r.ingest(n(500_000), Buffer.from('b'), false);
    r.ingest(n(900_000), Buffer.from('c'), false);
    expect(r.reassemblyBytes).toBe(3 * REASSEMBLY_BLOCK);
    // Fill up to just past the second byte: the first two blocks are behind RCV.NXT now.
    const fill = Buffer.alloc(500_010, 7);
    fill[1] = 'a'.charCodeAt(0);
    expect(r.ingest(n(0), fill, false) & RcvFlag.DATA).toBeTruthy();
    expect(r.delivered!.length).toBe(500_010);
    expect(r.delivered![1]).toBe('a'.charCodeAt(0));
    expect(r.reassemblyBytes).toBe(REASSEMBLY_BLOCK);
    expect(r.oooBytes).toBe(1);
  });

  it('a full-sized segment spans at most two blocks', () => {
    const r = receiver();
    r.ingest(n(4000), Buffer.alloc(1460, 1), false);
    expect(r.reassemblyBytes).toBe(2 * REASSEMBLY_BLOCK);
  });

  // fast-check draws arrays of ~10 elements unless told: up to 60 operations here, payloads up to 3000.
  it('what is delivered is the stream, byte for byte, for any arrival order (property)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ at: fc.nat(60_000), len: fc.integer({ min: 1, max: 3000 }) }), { minLength: 1, maxLength: 60, size: 'max' }),
        (segs) => {
          const stream = Buffer.alloc(70_000);
          for (let i = 0; i < stream.length; i++) stream[i] = (i * 131 + 7) & 0xff;
          const budget = new MemoryBudget(64 * MiB);
          const r = receiver(MiB, 5, budget);
          const got: Buffer[] = [];
          let gotLen = 0;
          const put = (at: number, len: number): void => {
            const f = r.ingest(n(at), stream.subarray(at, at + len), false);
            if (f & RcvFlag.DATA) {
              got.push(Buffer.from(r.delivered!));
              gotLen += r.delivered!.length;
            }
          };
          for (const s of segs) put(s.at, s.len);
          put(0, 63_000);
          const all = Buffer.concat(got);
          expect(all.equals(stream.subarray(0, gotLen))).toBe(true);
          // The budget saw exactly what the receiver holds.
          expect(budget.used).toBe(r.heldBytes);
          expect(budget.usedBy(MemoryKind.REASSEMBLY)).toBe(r.reassemblyBytes);
          // Everything up to 63,000 is in order now, so no block is behind RCV.NXT.
          expect(r.reassemblyBytes).toBeLessThanOrEqual(Math.ceil(r.oooBytes / REASSEMBLY_BLOCK + 32) * REASSEMBLY_BLOCK);
          r.consume(gotLen);
          r.reset();
          expect(budget.used).toBe(0);
        },
      ),
      { numRuns: 200 },
    );
  });
});

describe('Receiver under a MemoryBudget', () => {
  it('delivered bytes are charged until consumed; blocks until joined', () => {
    const budget = new MemoryBudget(64 * MiB);
    const r = receiver(MiB, 5, budget);
    r.ingest(n(10), Buffer.alloc(10), false);
    expect(budget.usedBy(MemoryKind.REASSEMBLY)).toBe(REASSEMBLY_BLOCK);
    r.ingest(n(0), Buffer.alloc(10), false);
    expect(budget.usedBy(MemoryKind.REASSEMBLY)).toBe(0);
    expect(budget.usedBy(MemoryKind.RECEIVE)).toBe(20);
    r.consume(15);
    expect(budget.used).toBe(5);
    r.reset();
    expect(budget.used).toBe(0);
  });

  it('an out-of-order segment the budget refuses is dropped (NO_MEMORY), nothing held', () => {
    const budget = new MemoryBudget(1 * MiB);
    budget.charge(MemoryKind.SEND, budget.limit - 100);
    const r = receiver(MiB, 5, budget);
    expect(r.ingest(n(10), Buffer.alloc(10), false)).toBe(RcvFlag.NO_MEMORY);
    expect(r.oooBytes).toBe(0);
    expect(r.ringAllocated).toBe(false);
    expect(r.sackBlocks(new Uint32Array(8), 4)).toBe(0);
  });

  it('an in-order segment over the limit is dropped without moving RCV.NXT', () => {
    const budget = new MemoryBudget(1 * MiB);
    budget.charge(MemoryKind.SEND, budget.limit - 100);
    const r = receiver(MiB, 5, budget);
    const nxt = r.nxt;
    expect(r.ingest(n(0), Buffer.alloc(20_000), false)).toBe(RcvFlag.NO_MEMORY);
    expect(r.nxt).toBe(nxt);
    // Within the per-connection minimum (CONN_MINIMUM) it is taken, past the limit.
    expect(r.ingest(n(0), Buffer.alloc(CONN_MINIMUM), false)).toBe(RcvFlag.DATA);
    expect(budget.used).toBeGreaterThan(budget.limit);
  });

  it('over budget, what is held out of order is given up so that the hole can fill', () => {
    const budget = new MemoryBudget(4 * MiB);
    const r = receiver(MiB, 5, budget);
    r.ingest(n(100_000), Buffer.alloc(100_000), false);
    expect(r.oooBytes).toBe(100_000);
    budget.charge(MemoryKind.SEND, budget.bulkMark - budget.used - 10);
    // Within the per-connection minimum an in-order segment is always taken, the hole stays...
    expect(r.ingest(n(0), Buffer.alloc(1000), false)).toBe(RcvFlag.DATA | RcvFlag.FILLED);
    expect(r.oooBytes).toBe(100_000);
    r.consume(1000);
    // ...beyond it, what is held out of order goes first.
    expect(r.ingest(n(1000), Buffer.alloc(20_000), false)).toBe(RcvFlag.DATA);
    expect(r.oooBytes).toBe(0);
    expect(r.reassemblyBytes).toBe(0);
  });

  it('RFC 9293 §3.8.6.2.2: under pressure the window stops growing but the advertised edge is not retracted', () => {
    const budget = new MemoryBudget(8 * MiB);
    const r = receiver(MiB, 5, budget);
    // Hold 200 KB (delivered, not consumed).
    r.ingest(n(0), Buffer.alloc(200_000), false);
    r.commitWindow(r.selectWindow());
    const edge = seqAdd(r.nxt, r.advertisedWindow);
    budget.charge(MemoryKind.SEND, budget.softMark);
    expect(budget.pressure).toBe(true);
    r.consume(100_000);
    expect(r.windowUpdateDue()).toBe(false);
    const field = r.selectWindow();
    r.commitWindow(field);
    expect(seqAdd(r.nxt, field * 32)).toBe(edge);
    // Once the connection holds less than the floor, it may grow back to the floor.
    r.consume(100_000);
    expect(r.heldBytes).toBe(0);
    r.ingest(n(200_000), Buffer.alloc(r.advertisedWindow), false);
    r.consume(r.unconsumed);
    r.commitWindow(r.selectWindow());
    expect(r.advertisedWindow).toBeGreaterThan(0);
    expect(r.advertisedWindow).toBeLessThanOrEqual(CONN_FLOOR + 32);
  });
});
