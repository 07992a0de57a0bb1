import { describe, expect, it } from 'vitest';
import { FlowHasher, FlowTable, FlowTuple, SlotColumns, type FlowEntry, type FlowKeyLike } from '../../src/stack/flow-table.js';

function key(family: 4 | 6, src: number[], srcPort: number, dst: number[], dstPort: number): FlowKeyLike {
  return { family, src: Uint32Array.from(src), srcPort, dst: Uint32Array.from(dst), dstPort };
}

class Entry implements FlowEntry {
  nextInBucket: FlowEntry | null = null;
  slotInTable = -1;
  constructor(readonly flow: FlowTuple) {}
  writeRow(columns: SlotColumns, slot: number): void {
    columns.code[slot] = this.flow.remotePort & 0xff;
    columns.values[slot * 2] = this.flow.remotePort;
    columns.values[slot * 2 + 1] = -this.flow.remotePort;
  }
}

describe('FlowTable', () => {
  it('tuples of the same addresses share their address words and still match only their own ports', () => {
    const a = new FlowTuple(key(4, [0, 0, 0, 0xc6120001], 40000, [0, 0, 0, 0xc6120102], 80));
    const b = new FlowTuple(key(4, [0, 0, 0, 0xc6120001], 40001, [0, 0, 0, 0xc6120102], 80));
    expect(b.remote).toBe(a.remote);
    expect(b.local).toBe(a.local);
    expect(a.matches(key(4, [0, 0, 0, 0xc6120001], 40000, [0, 0, 0, 0xc6120102], 80))).toBe(true);
    expect(a.matches(key(4, [0, 0, 0, 0xc6120001], 40001, [0, 0, 0, 0xc6120102], 80))).toBe(false);
    expect(b.matches(key(4, [0, 0, 0, 0xc6120001], 40001, [0, 0, 0, 0xc6120102], 80))).toBe(true);
  });

  it('finds an entry by its 4-tuple and not by the reversed tuple', () => {
    const t = new FlowTable<Entry>();
    const k = key(4, [0, 0, 0, 0xc6120001], 40000, [0, 0, 0, 0xc6120102], 80);
    const e = new Entry(new FlowTuple(k));
    t.insert(e);
    expect(t.get(k)).toBe(e);
    expect(t.get(key(4, [0, 0, 0, 0xc6120102], 80, [0, 0, 0, 0xc6120001], 40000))).toBeUndefined();
    expect(t.get(key(4, [0, 0, 0, 0xc6120001], 40001, [0, 0, 0, 0xc6120102], 80))).toBeUndefined();
  });

  it('keeps IPv4 and IPv6 tuples with equal low words apart', () => {
    const t = new FlowTable<Entry>();
    const v4 = key(4, [0, 0, 0, 1], 1, [0, 0, 0, 2], 2);
    const v6 = key(6, [0, 0, 0, 1], 1, [0, 0, 0, 2], 2);
    const e4 = new Entry(new FlowTuple(v4));
    const e6 = new Entry(new FlowTuple(v6));
    t.insert(e4);
    t.insert(e6);
    expect(t.get(v4)).toBe(e4);
    expect(t.get(v6)).toBe(e6);
  });

  it('chains colliding entries and removes each exactly', () => {
    const t = new FlowTable<Entry>();
    const entries: Entry[] = [];
    for (let p = 1; p <= 2000; p++) {
      const e = new Entry(new FlowTuple(key(4, [0, 0, 0, 0x0a000001], p, [0, 0, 0, 0x0a000002], 443)));
      entries.push(e);
      t.insert(e);
    }
    expect(t.size).toBe(2000);
    for (const e of entries.filter((_, i) => i % 2 === 0)) expect(t.remove(e)).toBe(true);
    expect(t.size).toBe(1000);
    for (const [i, e] of entries.entries()) {
      const k = key(4, [0, 0, 0, 0x0a000001], i + 1, [0, 0, 0, 0x0a000002], 443);
      expect(t.get(k)).toBe(i % 2 === 0 ? undefined : e);
    }
    expect([...t.values()].length).toBe(1000);
  });

  it('walks every entry once, through removals in any order, and lets a walk remove the entry it visits', () => {
    const t = new FlowTable<Entry>(new SlotColumns(2, 4));
    const entries: Entry[] = [];
    // Rows must follow their entries through every swap (and through the columns' growth from 4 slots).
    const checkRows = (): void => {
      const { code, values } = t.columns!;
      for (let slot = 0; slot < t.size; slot++) {
        const e = t.entryAt(slot);
        expect(e.slotInTable).toBe(slot);
        expect([code[slot], values[slot * 2], values[slot * 2 + 1]]).toEqual([e.flow.remotePort & 0xff, e.flow.remotePort, -e.flow.remotePort]);
      }
    };
    for (let p = 1; p <= 500; p++) {
      const e = new Entry(new FlowTuple(key(4, [0, 0, 0, 0x0a000001], p, [0, 0, 0, 0x0a000002], 443)));
      entries.push(e);
      t.insert(e);
    }
    // Remove a scattered third, so that swaps move entries around the dense array.
    const removed = new Set(entries.filter((_, i) => i % 3 === 1 || i === 499 || i === 0));
    checkRows();
    for (const e of removed) t.remove(e);
    checkRows();
    expect(removed.has(entries[0]!)).toBe(true);
    const live = entries.filter((e) => !removed.has(e));
    const seen: Entry[] = [];
    for (const e of t.values()) seen.push(e);
    expect(new Set(seen)).toEqual(new Set(live));
    expect(seen.length).toBe(live.length);
    for (const e of removed) expect(e.slotInTable).toBe(-1);
    // A walk that removes every other entry it visits: each live entry is visited exactly once.
    const visits = new Map<Entry, number>();
    let n = 0;
    for (const e of t.values()) {
      visits.set(e, (visits.get(e) ?? 0) + 1);
      if (n++ % 2 === 0) t.remove(e);
    }
    expect([...visits.values()].every((v) => v === 1)).toBe(true);
    expect(visits.size).toBe(live.length);
    expect(t.size).toBe(live.length - Math.ceil(live.length / 2));
    checkRows();
    const left = [...t.values()];
    expect(left.length).toBe(t.size);
    for (const e of left) expect(t.get(key(4, [0, 0, 0, 0x0a000001], e.flow.remotePort, [0, 0, 0, 0x0a000002], 443))).toBe(e);
    // Emptying the table through values() as well.
    for (const e of t.values()) t.remove(e);
    expect(t.size).toBe(0);
  });

  it('replace swaps the entry for the same tuple', () => {
    const t = new FlowTable<Entry>();
    const k = key(6, [0x20010db8, 0, 0, 1], 5, [0x20010db8, 0, 0, 2], 6);
    const a = new Entry(new FlowTuple(k));
    const b = new Entry(new FlowTuple(k));
    t.insert(a);
    t.replace(a, b);
    expect(t.get(k)).toBe(b);
    expect(t.size).toBe(1);
  });

  it('replace with the same tuple object does not hash it again and leaves every other entry in its slot', () => {
    class CountingHasher extends FlowHasher {
      tuples = 0;
      override ofTuple(t: FlowTuple): number {
        this.tuples++;
        return super.ofTuple(t);
      }
    }
    const hasher = new CountingHasher();
    const t = new FlowTable<Entry>(new SlotColumns(2, 4), hasher);
    const entries: Entry[] = [];
    for (let p = 1; p <= 5; p++) {
      const e = new Entry(new FlowTuple(key(4, [0, 0, 0, 0x0a000001], p, [0, 0, 0, 0x0a000002], 443)));
      entries.push(e);
      t.insert(e);
    }
    expect(hasher.tuples).toBe(5);
    const old = entries[1]!;
    const next = new Entry(old.flow);
    t.replace(old, next);
    // A pending SYN → connection → TIME-WAIT record keeps the hash its tuple was inserted with.
    expect(hasher.tuples).toBe(5);
    expect(next.slotInTable).toBe(1);
    expect(old.slotInTable).toBe(-1);
    expect(old.nextInBucket).toBeNull();
    expect(t.entryAt(1)).toBe(next);
    expect(t.size).toBe(5);
    expect(t.columns!.values[1 * 2]).toBe(2);
    for (const [i, e] of entries.entries()) {
      const k = key(4, [0, 0, 0, 0x0a000001], i + 1, [0, 0, 0, 0x0a000002], 443);
      expect(t.get(k)).toBe(i === 1 ? next : e);
      expect(e.slotInTable).toBe(i === 1 ? -1 : i);
    }
    expect(t.remove(old)).toBe(false);
    expect(t.remove(next)).toBe(true);
    expect(t.size).toBe(4);
  });

  it('replaces an entry in the middle of a chain of entries with one hash', () => {
    // Every tuple hashes alike: one chain, and the replaced entry is neither its head nor its tail.
    class OneHash extends FlowHasher {
      override hash(): number {
        return 7;
      }
    }
    const t = new FlowTable<Entry>(null, new OneHash());
    const entries: Entry[] = [];
    for (let p = 1; p <= 3; p++) {
      const e = new Entry(new FlowTuple(key(4, [0, 0, 0, 1], p, [0, 0, 0, 2], 443)));
      entries.push(e);
      t.insert(e);
    }
    const next = new Entry(entries[1]!.flow);
    t.replace(entries[1]!, next);
    expect(t.chainStats()).toEqual({ chains: 1, longest: 3 });
    for (let p = 1; p <= 3; p++) expect(t.get(key(4, [0, 0, 0, 1], p, [0, 0, 0, 2], 443))).toBe(p === 2 ? next : entries[p - 1]);
  });

  it('grows its chain heads with the table and gives them back when it empties, every entry still found', () => {
    const t = new FlowTable<Entry>();
    const start = t.bucketCount;
    const entries: Entry[] = [];
    const k = (p: number): FlowKeyLike => key(4, [0, 0, 0, 0x0a000001 + (p >>> 16)], p & 0xffff, [0, 0, 0, 0x0a000002], 443);
    for (let p = 0; p < 20_000; p++) {
      const e = new Entry(new FlowTuple(k(p)));
      entries.push(e);
      t.insert(e);
    }
    expect(t.bucketCount).toBeGreaterThanOrEqual(20_000);
    for (let p = 0; p < 20_000; p += 997) expect(t.get(k(p))).toBe(entries[p]);
    for (let p = 0; p < 19_990; p++) t.remove(entries[p]!);
    expect(t.bucketCount).toBeLessThanOrEqual(start * 2);
    for (let p = 19_990; p < 20_000; p++) expect(t.get(k(p))).toBe(entries[p]);
    expect(t.get(k(5))).toBeUndefined();
  });

  it('hash is stable and 31-bit', () => {
    const k = key(4, [0, 0, 0, 7], 9, [0, 0, 0, 8], 10);
    const h = new FlowHasher();
    expect(h.ofKey(k)).toBe(h.ofKey(k));
    expect(h.ofKey(k)).toBeGreaterThanOrEqual(0);
    expect(h.ofKey(k)).toBeLessThan(2 ** 31);
  });
});
