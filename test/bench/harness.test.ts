/**
 * The benchmark's bookkeeping (bench/lib): medians and spreads over rounds, ratios of medians,
 * the rotation of the paths, the event-loop delay read from a scrape, and targets judged on the
 * medians. The measurements themselves need root and the whole machine (`npm run bench`).
 */
import { describe, expect, it } from 'vitest';

interface PathSummary {
  median: number;
  min: number;
  max: number;
  n: number;
  cpuUsPerUnit: { median: number; min: number; max: number } | null;
  loopMs: { p99: number; max: number; mean: number } | null;
}
interface Row {
  id: string;
  paths: Record<string, PathSummary>;
  ratioKernel: number | null;
  ratioHaproxy: number | null;
  pairedKernel: { byRound: number[]; median: number } | null;
  pairedHaproxy: { byRound: number[]; median: number } | null;
  lost: number;
}
interface Sample {
  round: number;
  value: number;
  lost?: number;
  cpuUsPerUnit?: number;
  loop?: { p99: number; max: number; mean: number } | null;
}
interface ResultsModule {
  median(xs: number[]): number;
  Results: new () => {
    add(id: string, meta: Record<string, unknown>, path: string, sample: Sample): void;
    rows(): Row[];
  };
}
interface ReportModule {
  judge(rows: Row[], failures?: unknown[]): { id: string; status: string; value: string }[];
  fmt(x: number): string;
  markdownPaired(rows: Row[]): string;
}
interface RelaysModule {
  PATHS: string[];
  pathOrder(round: number, paths?: string[]): string[];
}
interface SynfinModule {
  parseLoopDelay(body: string): Record<string, number> | null;
  LOOP_RESOLUTION_MS: number;
}

// JavaScript modules without type declarations: imported by URL, typed here.
const load = async <T>(rel: string): Promise<T> => (await import(new URL(rel, import.meta.url).href)) as T;
const { median, Results } = await load<ResultsModule>('../../bench/lib/results.js');
const { judge, fmt, markdownPaired } = await load<ReportModule>('../../bench/lib/report.js');
const { PATHS, pathOrder } = await load<RelaysModule>('../../bench/lib/relays.js');
const { parseLoopDelay, LOOP_RESOLUTION_MS } = await load<SynfinModule>('../../bench/lib/synfin.js');

const META = { workload: 'w', unit: 'u', better: 'higher' };

function rowsOf(samples: Record<string, Record<string, number[]>>): Row[] {
  const r = new Results();
  for (const [id, byPath] of Object.entries(samples)) {
    for (const [path, values] of Object.entries(byPath)) {
      values.forEach((value, round) => r.add(id, META, path, { round, value, lost: 0 }));
    }
  }
  return r.rows();
}

function status(rows: Row[], id: string): string | undefined {
  return judge(rows, []).find((t) => t.id === id)?.status;
}

describe('bench bookkeeping', () => {
  it('takes the median of an odd count, the mean of the middle two of an even one, and skips non-numbers', () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(median([5, Number.NaN, 1, 3])).toBe(3);
    expect(median([])).toBeNaN();
  });

  it('summarizes each path by its median and min–max, and compares the medians', () => {
    const r = new Results();
    const add = (path: string, value: number, cpu?: number, loopMax?: number) =>
      r.add('x', META, path, { round: 0, value, lost: 1, cpuUsPerUnit: cpu, loop: loopMax === undefined ? null : { p99: loopMax / 2, max: loopMax, mean: 0 } });
    [10, 30, 20].forEach((v) => add('kernel', v));
    [5, 15, 10].forEach((v) => add('haproxy', v, v));
    [8, 2, 5].forEach((v, i) => add('synfin', v, v * 3, [4, 9, 1][i]));
    const [row] = r.rows();
    expect(row?.paths.kernel).toMatchObject({ median: 20, min: 10, max: 30, n: 3, cpuUsPerUnit: null, loopMs: null });
    expect(row?.paths.synfin).toMatchObject({ median: 5, min: 2, max: 8, n: 3 });
    expect(row?.paths.synfin?.cpuUsPerUnit).toMatchObject({ median: 15, min: 6, max: 24 });
    // The median of the rounds' p99 and the largest delay of any round.
    expect(row?.paths.synfin?.loopMs).toMatchObject({ p99: 2, max: 9 });
    expect(row?.ratioKernel).toBe(5 / 20);
    expect(row?.ratioHaproxy).toBe(5 / 10);
    expect(row?.lost).toBe(9);
  });

  it('pairs synfin with each path round by round, beside the ratio of the medians', () => {
    // A slow round (2) for both relays: the medians' ratio compares synfin's slow round with
    // haproxy's fast one; round by round synfin is ahead in every round.
    const [row] = rowsOf({ x: { kernel: [100, 100, 50], haproxy: [50, 48, 20], synfin: [55, 25, 22] } });
    expect(row?.ratioHaproxy).toBeCloseTo(25 / 48, 10);
    expect(row?.pairedHaproxy?.byRound.map((x) => +x.toFixed(4))).toEqual([1.1, 0.5208, 1.1]);
    expect(row?.pairedHaproxy?.median).toBeCloseTo(1.1, 10);
    expect(row?.pairedKernel?.byRound).toEqual([0.55, 0.25, 0.44]);
    const md = markdownPaired(rowsOf({ x: { kernel: [100, 100, 50], haproxy: [50, 48, 20], synfin: [55, 25, 22] } }));
    expect(md).toContain('| w | 1.10, 0.52, 1.10 | 1.10 | 0.55, 0.25, 0.44 | 0.44 |');
  });

  it('pairs only the rounds both paths measured, and not at all with fewer than two', () => {
    const r = new Results();
    r.add('x', META, 'haproxy', { round: 0, value: 10 });
    r.add('x', META, 'haproxy', { round: 2, value: 20 });
    r.add('x', META, 'synfin', { round: 0, value: 12 });
    r.add('x', META, 'synfin', { round: 1, value: 99 });
    r.add('x', META, 'synfin', { round: 2, value: 10 });
    r.add('x', META, 'kernel', { round: 1, value: 50 });
    const [row] = r.rows();
    expect(row?.pairedHaproxy).toEqual({ byRound: [1.2, 0.5], median: 0.85 });
    expect(row?.pairedKernel).toBeNull();
    expect(markdownPaired(rowsOf({ x: { haproxy: [10], synfin: [12] } }))).toBe('');
  });

  it('rotates the paths so that each runs first once in three rounds', () => {
    expect(PATHS).toEqual(['kernel', 'haproxy', 'synfin']);
    const firsts = [0, 1, 2].map((round) => pathOrder(round)[0]);
    expect(new Set(firsts).size).toBe(3);
    for (let round = 0; round < 6; round++) expect([...pathOrder(round)].sort()).toEqual([...PATHS].sort());
    expect(pathOrder(1, ['kernel', 'synfin'])).toEqual(['synfin', 'kernel']);
  });

  it('reads the event-loop delay beyond the sampling interval from a scrape, or nothing', () => {
    const body = ['min', 'mean', 'p50', 'p90', 'p99', 'max'].map((k, i) => `nodejs_eventloop_lag_${k}_seconds ${(LOOP_RESOLUTION_MS + i) / 1000}`).join('\n');
    const d = parseLoopDelay(`# HELP x\n${body}\nother 1\n`);
    expect(d?.min).toBeCloseTo(0, 9);
    expect(d?.p99).toBeCloseTo(4, 9);
    expect(d?.max).toBeCloseTo(5, 9);
    expect(parseLoopDelay('nodejs_eventloop_lag_seconds 0.01\n')).toBeNull();
  });

  it('judges issue 24 targets on the medians, not on the best round', () => {
    // synfin's rounds 0.9, 0.7, 0.75 of haproxy's 1000: best 0.9 (≥ 0.8), median 0.75 (< 0.8).
    const rows = rowsOf({ short_close: { haproxy: [1000, 1000, 1000], synfin: [900, 700, 750] } });
    expect(status(rows, 'short_close')).toBe('NOT met');
    const better = rowsOf({ short_close: { haproxy: [1000, 1000, 1000], synfin: [900, 700, 850] } });
    expect(status(better, 'short_close')).toBe('met');
  });

  it('says "not measured" when a target needs a path that was left out', () => {
    const rows = rowsOf({ short_close: { kernel: [1000], synfin: [900] }, http_keepalive: { kernel: [100], synfin: [60] } });
    expect(status(rows, 'short_close')).toBe('not measured');
    expect(status(rows, 'http_keepalive')).toBe('met');
    expect(status(rows, 'http_keepalive_haproxy')).toBe('not measured');
    expect(status(rows, 'reqresp')).toBe('not measured');
  });

  it('needs both depths for the request/response target and both bounds for first byte', () => {
    const one = rowsOf({ reqresp_d1: { haproxy: [100], synfin: [120] } });
    expect(status(one, 'reqresp')).toBe('NOT met');
    const both = rowsOf({ reqresp_d1: { haproxy: [100], synfin: [120] }, reqresp_d16: { haproxy: [100], synfin: [100] } });
    expect(status(both, 'reqresp')).toBe('met');
    const fb = rowsOf({ fb_p50_seq: { haproxy: [100], synfin: [150] }, fb_p99_seq: { haproxy: [100], synfin: [201] } });
    expect(status(fb, 'first_byte')).toBe('NOT met');
    const fbOk = rowsOf({ fb_p50_seq: { haproxy: [100], synfin: [150] }, fb_p99_seq: { haproxy: [100], synfin: [200] } });
    expect(status(fbOk, 'first_byte')).toBe('met');
  });

  it('prints integers whole and small figures with two significant digits', () => {
    expect(fmt(12345)).toBe('12,345');
    expect(fmt(0.0123)).toBe('0.012');
    expect(fmt(3.5)).toBe('3.50');
    expect(fmt(Number.NaN)).toBe('—');
  });
});
