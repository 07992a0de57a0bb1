import { describe, expect, it } from 'vitest';
import { IdMap } from '../../src/observability/id-map.js';

describe('IdMap', () => {
  it('finds, replaces and deletes entries by id, and says so for ids it does not hold', () => {
    const m = new IdMap<string>();
    m.set(1, 'a');
    m.set(2, 'b');
    m.set(1, 'A');
    expect(m.size).toBe(2);
    expect(m.get(1)).toBe('A');
    expect(m.get(2)).toBe('b');
    expect(m.get(3)).toBeUndefined();
    expect(m.has(2)).toBe(true);
    expect(m.delete(2)).toBe(true);
    expect(m.delete(2)).toBe(false);
    expect(m.has(2)).toBe(false);
    expect(m.size).toBe(1);
    // -1 is what an empty slot holds: never found there, kept beside the slots like any odd id.
    expect(m.has(-1)).toBe(false);
    expect(m.get(-1)).toBeUndefined();
    m.set(-1, 'neg');
    expect(m.get(-1)).toBe('neg');
    expect(m.delete(-1)).toBe(true);
    expect(m.has(-1)).toBe(false);
    expect(m.size).toBe(1);
  });

  it('keeps ids that share a slot apart: a long-lived id and the one that comes round to its slot', () => {
    const m = new IdMap<number>();
    const slots = m.slots;
    m.set(5, 50);
    // The same slot, taken: the newcomer goes beside the slots.
    m.set(5 + slots, 51);
    m.set(5 + 2 * slots, 52);
    expect(m.overflowSize).toBe(2);
    expect([m.get(5), m.get(5 + slots), m.get(5 + 2 * slots)]).toEqual([50, 51, 52]);
    expect(m.size).toBe(3);
    // The slot's holder leaves; an id kept beside it is still found, replaced and removed there.
    expect(m.delete(5)).toBe(true);
    expect(m.get(5 + slots)).toBe(51);
    m.set(5 + slots, 61);
    expect(m.get(5 + slots)).toBe(61);
    expect(m.size).toBe(2);
    expect(m.delete(5 + slots)).toBe(true);
    expect(m.get(5 + slots)).toBeUndefined();
    expect(m.get(5 + 2 * slots)).toBe(52);
    expect(m.size).toBe(1);
  });

  it('grows past half full and shrinks when nearly empty, every entry still found, as a Map would hold them', () => {
    const m = new IdMap<number>();
    const ref = new Map<number, number>();
    const start = m.slots;
    // Connections opening in id order and closing out of order, with a few long-lived ones.
    let next = 1;
    for (let round = 0; round < 50; round++) {
      for (let k = 0; k < 2000; k++) {
        m.set(next, next * 2);
        ref.set(next, next * 2);
        next++;
      }
      for (const id of [...ref.keys()]) {
        if (id % 7 === 0) continue; // outlives the rest
        if ((id * 2654435761) % 3 !== 0 || round % 2 === 1) {
          expect(m.delete(id)).toBe(true);
          ref.delete(id);
        }
      }
      expect(m.size).toBe(ref.size);
    }
    expect(m.slots).toBeGreaterThan(start);
    for (const [id, v] of ref) expect(m.get(id)).toBe(v);
    for (let id = 1; id < next; id += 13) expect(m.get(id)).toBe(ref.get(id));
    for (const id of [...ref.keys()]) m.delete(id);
    expect(m.size).toBe(0);
    expect(m.slots).toBe(start);
    expect(m.overflowSize).toBe(0);
  });
});
