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
      fc.property(fc.array(fc.tuple(fc.nat(50), fc.integer({ min: 0, max: 10_000 })), { maxLength: 300 }), (ops) => {
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
});
