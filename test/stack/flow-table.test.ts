import { describe, expect, it } from 'vitest';
import { FlowTable, FlowTuple, flowHash, type FlowEntry, type FlowKeyLike } from '../../src/stack/flow-table.js';

function key(family: 4 | 6, src: number[], srcPort: number, dst: number[], dstPort: number): FlowKeyLike {
  return { family, src: Uint32Array.from(src), srcPort, dst: Uint32Array.from(dst), dstPort };
}

class Entry implements FlowEntry {
  nextInBucket: FlowEntry | null = null;
  constructor(readonly flow: FlowTuple) {}
}

describe('FlowTable', () => {
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

  it('hash is stable and 31-bit', () => {
    const k = key(4, [0, 0, 0, 7], 9, [0, 0, 0, 8], 10);
    expect(flowHash(k)).toBe(flowHash(k));
    expect(flowHash(k)).toBeGreaterThanOrEqual(0);
    expect(flowHash(k)).toBeLessThan(2 ** 31);
  });
});
