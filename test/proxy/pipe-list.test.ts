/**
 * The forwarder's list of open pipes (src/proxy/forwarder.ts PipeList): what a Set of pipes was
 * (add, delete, has, size, iteration that survives deletes), without a hash table per connection.
 */
import { describe, expect, it } from 'vitest';
import { PipeList } from '../../src/proxy/forwarder.js';
import type { Pipe } from '../../src/proxy/pipe.js';

const pipe = (n: number) => ({ n, liveIndex: -1 }) as unknown as Pipe & { n: number };

describe('PipeList', () => {
  it('keeps what a Set keeps through adds and deletes in any order, each pipe once', () => {
    const list = new PipeList();
    const model = new Set<Pipe>();
    const pipes = Array.from({ length: 200 }, (_, i) => pipe(i));
    let seed = 7;
    const rand = (k: number) => ((seed = (seed * 1103515245 + 12345) >>> 0) % k);
    for (let step = 0; step < 5000; step++) {
      const p = pipes[rand(pipes.length)]!;
      if (rand(2) === 0) {
        list.add(p);
        model.add(p);
      } else expect(list.delete(p)).toBe(model.delete(p));
      expect(list.size).toBe(model.size);
      expect(list.has(p)).toBe(model.has(p));
    }
    expect(new Set(list)).toEqual(model);
    expect([...list].length).toBe(model.size);
  });

  it('may be walked while the walk deletes what it visits (a shutdown aborting every pipe)', () => {
    const list = new PipeList();
    const pipes = Array.from({ length: 10 }, (_, i) => pipe(i));
    for (const p of pipes) list.add(p);
    const seen: number[] = [];
    for (const p of list) {
      seen.push((p as Pipe & { n: number }).n);
      list.delete(p);
    }
    expect(seen.sort((a, b) => a - b)).toEqual(pipes.map((p) => p.n));
    expect(list.size).toBe(0);
    expect(pipes.every((p) => p.liveIndex === -1)).toBe(true);
  });
});
