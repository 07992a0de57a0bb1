import { describe, expect, it } from 'vitest';
import { CloseWaveCollector } from '../src/runtime.js';

describe('CloseWaveCollector', () => {
  it('collects once after 10,000 connections close, and not while they open or hold', () => {
    const w = new CloseWaveCollector(1024);
    for (const live of [0, 2000, 6000, 10_000, 10_000, 9990]) expect(w.sample(live)).toBe(false);
    expect(w.sample(0)).toBe(true);
    expect(w.sample(0)).toBe(false);
  });

  it('does not collect under steady churn or a drop smaller than minDrop or than half', () => {
    const w = new CloseWaveCollector(1024);
    for (let i = 0; i < 50; i++) expect(w.sample(3000 + (i % 2) * 200)).toBe(false);
    expect(w.sample(2000)).toBe(false);
    const small = new CloseWaveCollector(1024);
    small.sample(1000);
    expect(small.sample(0)).toBe(false);
  });

  it('a wave seen half-way collects again when the rest closes', () => {
    const w = new CloseWaveCollector(1024);
    w.sample(10_000);
    expect(w.sample(4000)).toBe(true);
    expect(w.sample(3900)).toBe(false);
    expect(w.sample(0)).toBe(true);
  });
});
