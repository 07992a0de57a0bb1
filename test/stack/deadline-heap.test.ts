import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DeadlineHeap, type Schedulable } from '../../src/stack/deadline-heap.js';

class Item implements Schedulable {
  heapAt = Infinity;
  fired: number[] = [];
  constructor(readonly name: string) {}
}

describe('DeadlineHeap', () => {
  it('fires items in deadline order', () => {
    const heap = new DeadlineHeap<Item>(2);
    const a = new Item('a');
    const b = new Item('b');
    const c = new Item('c');
    heap.schedule(b, 20);
    heap.schedule(a, 10);
    heap.schedule(c, 30);
    const order: string[] = [];
    heap.popDue(25, (i) => order.push(i.name));
    expect(order).toEqual(['a', 'b']);
    expect(heap.peekTime()).toBe(30);
  });

  it('re-arming later keeps the early entry (orphaned) and fires once at the early time', () => {
    const heap = new DeadlineHeap<Item>();
    const a = new Item('a');
    heap.schedule(a, 10);
    heap.schedule(a, 50); // later: no new entry
    expect(heap.size).toBe(1);
    const fired: string[] = [];
    heap.popDue(10, (i) => fired.push(i.name));
    expect(fired).toEqual(['a']); // the owner finds nothing due and re-arms
    expect(a.heapAt).toBe(Infinity);
  });

  it('re-arming earlier fires at the earlier time and discards the stale entry', () => {
    const heap = new DeadlineHeap<Item>();
    const a = new Item('a');
    heap.schedule(a, 50);
    heap.schedule(a, 10);
    const fired: number[] = [];
    heap.popDue(100, () => fired.push(1));
    expect(fired).toEqual([1]);
    expect(heap.size).toBe(0);
  });

  it('cancel makes every entry stale', () => {
    const heap = new DeadlineHeap<Item>();
    const a = new Item('a');
    heap.schedule(a, 10);
    heap.cancel(a);
    let n = 0;
    heap.popDue(100, () => n++);
    expect(n).toBe(0);
  });

  it('property: popDue yields every live item exactly once, in non-decreasing deadline order', () => {
    fc.assert(
      // size 'max': fast-check's default draws ~10 operations whatever maxLength says.
      fc.property(fc.array(fc.tuple(fc.nat(50), fc.integer({ min: 0, max: 10_000 })), { maxLength: 300, size: 'max' }), (ops) => {
        const heap = new DeadlineHeap<Item>(4);
        const items = Array.from({ length: 51 }, (_, i) => new Item(String(i)));
        const want = new Map<Item, number>();
        for (const [idx, at] of ops) {
          const item = items[idx]!;
          heap.schedule(item, at);
          want.set(item, Math.min(want.get(item) ?? Infinity, at));
        }
        const seen: Array<[Item, number]> = [];
        heap.popDue(Infinity, (i) => seen.push([i, 0]));
        expect(seen.length).toBe(want.size);
        expect(new Set(seen.map(([i]) => i)).size).toBe(want.size);
        // Order: by each item's earliest deadline.
        const deadlines = seen.map(([i]) => want.get(i)!);
        for (let k = 1; k < deadlines.length; k++) expect(deadlines[k]!).toBeGreaterThanOrEqual(deadlines[k - 1]!);
      }),
    );
  });

  it('property: with schedule, cancel and popDue interleaved it fires what a model says, and stale entries stay bounded', () => {
    // Compaction (stale entries > live + 64) needs runs of hundreds of operations: count the runs
    // that reach it, so the property cannot silently go back to inputs too small to compact.
    const ITEMS = 32;
    let runs = 0;
    let runsCompacting = 0;
    let compactions = 0;
    fc.assert(
      fc.property(
        fc.array(
          // Mostly schedules (up to a minute ahead, RTOs and keepalives) and cancels, the clock
          // moving on in small steps and rarely a long one: stale entries pile up as a server's do.
          fc.oneof(
            { weight: 4, arbitrary: fc.record({ op: fc.constant('schedule' as const), idx: fc.nat(ITEMS - 1), in: fc.integer({ min: 0, max: 60_000 }) }) },
            { weight: 3, arbitrary: fc.record({ op: fc.constant('cancel' as const), idx: fc.nat(ITEMS - 1) }) },
            {
              weight: 1,
              arbitrary: fc.record({ op: fc.constant('pop' as const), advance: fc.oneof({ weight: 60, arbitrary: fc.integer({ min: 0, max: 200 }) }, { weight: 1, arbitrary: fc.integer({ min: 0, max: 100_000 }) }) }),
            },
          ),
          // size 'max' (else ~10 operations, never a compaction).
          { maxLength: 1000, size: 'max' },
        ),
        (ops) => {
          const heap = new DeadlineHeap<Item>(4);
          const items = Array.from({ length: ITEMS }, (_, i) => new Item(String(i)));
          const model = new Map<Item, number>();
          let now = 0;
          let compacted = 0;
          for (const o of ops) {
            // A schedule adds at most one entry and a cancel none: fewer entries after either
            // means the heap compacted.
            const sizeBefore = heap.size;
            if (o.op === 'schedule') {
              const item = items[o.idx]!;
              // Deadlines are never in the past of the last popDue.
              const at = now + o.in;
              heap.schedule(item, at);
              model.set(item, Math.min(model.get(item) ?? Infinity, at));
              if (heap.size < sizeBefore) compacted++;
            } else if (o.op === 'cancel') {
              heap.cancel(items[o.idx]!);
              model.delete(items[o.idx]!);
              if (heap.size < sizeBefore) compacted++;
            } else {
              now += o.advance;
              const fired: Item[] = [];
              heap.popDue(now, (i) => fired.push(i));
              const due = [...model].filter(([, at]) => at <= now);
              expect(new Set(fired)).toEqual(new Set(due.map(([i]) => i)));
              expect(fired.length).toBe(due.length);
              for (let k = 1; k < fired.length; k++) expect(model.get(fired[k]!)!).toBeGreaterThanOrEqual(model.get(fired[k - 1]!)!);
              for (const [i] of due) model.delete(i);
            }
            // Checked after every operation, so plain comparisons (expect() is slow at this rate).
            if (heap.liveCount !== model.size) throw new Error(`liveCount ${heap.liveCount}, model ${model.size}`);
            // Every operation, no-op schedules and cancels included, leaves stale entries at most
            // live + 64: schedule() and cancel() compact past that, and so does popDue() once it
            // has fired (firing removes live entries and leaves others' stale ones behind).
            const stale = heap.size - heap.liveCount;
            if (stale > heap.liveCount + 64) throw new Error(`${stale} stale entries for ${heap.liveCount} live after ${o.op}`);
            if (o.op === 'pop' && heap.size > sizeBefore) throw new Error(`popDue added entries: ${sizeBefore} → ${heap.size}`);
            let earliest = Infinity;
            for (const at of model.values()) if (at < earliest) earliest = at;
            if (heap.peekTime() > earliest) throw new Error(`peekTime ${heap.peekTime()} after the earliest deadline ${earliest}`);
          }
          runs++;
          if (compacted > 0) runsCompacting++;
          compactions += compacted;
        },
      ),
      // endOnFailure: shrinking runs of 1,000 operations takes minutes of synchronous work that no
      // test timeout interrupts; the seed and path in the report replay the failure.
      { numRuns: 200, endOnFailure: true },
    );
    expect(runs).toBe(200);
    expect(compactions).toBeGreaterThan(50);
    expect(runsCompacting).toBeGreaterThan(20);
  });

  it('a cancelled item is let go of once stale entries pile up, long before its deadline', () => {
    const heap = new DeadlineHeap<Item>();
    const keep = new Item('keep');
    heap.schedule(keep, 1_000_000);
    // 1,000 short-lived items, each cancelled with a deadline far away (a closed connection's RTO).
    for (let i = 0; i < 1000; i++) {
      const gone = new Item(`gone${i}`);
      heap.schedule(gone, 500_000 + i);
      heap.cancel(gone);
    }
    expect(heap.liveCount).toBe(1);
    expect(heap.size).toBeLessThanOrEqual(1 + 65);
    const fired: string[] = [];
    heap.popDue(Infinity, (i) => fired.push(i.name));
    expect(fired).toEqual(['keep']);
  });
});
