/**
 * The typed-array counters and histograms render exactly what prom-client's own Counter and
 * Histogram render for the same events (prom-client is the oracle), in both formats, and keep
 * their names through OpenMetrics scrapes.
 */
import { MetricLabelsError } from '../../src/errors.js';
import fc from 'fast-check';
import client from 'prom-client';
import { describe, expect, it } from 'vitest';
import { CounterFamily, HistogramFamily } from '../../src/observability/metric-families.js';

const BUCKETS = [0.00005, 0.001, 0.25, 1, 10];
const RESULTS = ['ok', 'reset', 'timeout'];

function registries(): { text: client.Registry; open: client.Registry } {
  const text = new client.Registry();
  const open = new client.Registry();
  open.setContentType(client.Registry.OPENMETRICS_CONTENT_TYPE as never);
  return { text, open };
}

describe('metric families', () => {
  it('render as prom-client renders the same observations, text and OpenMetrics', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.tuple(fc.integer({ min: 0, max: 2 }), fc.oneof(fc.double({ min: 0, max: 20, noNaN: true }), fc.constantFrom(...BUCKETS))), { maxLength: 60, size: 'max' }),
        fc.array(fc.tuple(fc.integer({ min: 0, max: 3 }), fc.integer({ min: 1, max: 5 })), { maxLength: 20, size: 'max' }),
        async (observations, increments) => {
          const ours = registries();
          const theirs = registries();
          const regsOurs = [ours.text, ours.open];
          const regsTheirs = [theirs.text, theirs.open];
          const h = new HistogramFamily('x_seconds', 'help x', 'result', RESULTS, BUCKETS, regsOurs);
          const hp = new client.Histogram({ name: 'x_seconds', help: 'help x', labelNames: ['result'], buckets: BUCKETS, registers: regsTheirs });
          for (const r of RESULTS) hp.zero({ result: r });
          const u = new HistogramFamily('y_seconds', 'help y', null, [], BUCKETS, regsOurs);
          const up = new client.Histogram({ name: 'y_seconds', help: 'help y', buckets: BUCKETS, registers: regsTheirs });
          const kinds = [['a', 'x'], ['a', 'y'], ['b', 'x']];
          const c = new CounterFamily('z_total', 'help z', ['k', 'j'], kinds, regsOurs);
          const cp = new client.Counter({ name: 'z_total', help: 'help z', labelNames: ['k', 'j'], registers: regsTheirs });
          for (const [k, j] of kinds) cp.inc({ k: k!, j: j! }, 0);
          for (const [i, v] of observations) {
            h.observe(i, v);
            hp.observe({ result: RESULTS[i]! }, v);
            u.observe(0, v);
            up.observe(v);
          }
          for (const [i, n] of increments) {
            // Index 3 is a series created on first use.
            const [k, j] = i < 3 ? kinds[i]! : ['c', 'z'];
            c.add(c.indexOf(k!, j!), n);
            cp.inc({ k: k!, j: j! }, n);
          }
          // The OpenMetrics scrape first: it must not change what the text scrape says after it.
          expect(await ours.open.metrics()).toBe(await theirs.open.metrics());
          // (prom-client's own shared Counter loses its _total in text after an OpenMetrics
          // scrape, so its text is taken from a registry that never rendered OpenMetrics.)
          const fresh = new client.Registry();
          const cp2 = new client.Counter({ name: 'z_total', help: 'help z', labelNames: ['k', 'j'], registers: [fresh] });
          for (const [k, j] of kinds) cp2.inc({ k: k!, j: j! }, 0);
          for (const [i, n] of increments) {
            const [k, j] = i < 3 ? kinds[i]! : ['c', 'z'];
            cp2.inc({ k: k!, j: j! }, n);
          }
          fresh.registerMetric(hp as unknown as client.Metric);
          fresh.registerMetric(up as unknown as client.Metric);
          const sections = (text: string): string[] => text.trim().split('\n\n').sort();
          expect(sections(await ours.text.metrics())).toEqual(sections(await fresh.metrics()));
        },
      ),
      { numRuns: 60, seed: 11 },
    );
  });

  it('keeps _total in the text format after OpenMetrics scrapes', async () => {
    const { text, open } = registries();
    const c = new CounterFamily('synfin_things_total', 'things', ['kind'], [['a']], [text, open]);
    c.add(0, 3);
    for (let i = 0; i < 2; i++) {
      expect(await open.metrics()).toContain('synfin_things_total{kind="a"} 3');
      const t = await text.metrics();
      expect(t).toContain('# TYPE synfin_things_total counter');
      expect(t).toContain('synfin_things_total{kind="a"} 3');
    }
  });

  it('counts a value equal to a bound in that bucket (le), and ignores non-finite values', async () => {
    const { text } = registries();
    const h = new HistogramFamily('h_seconds', 'h', null, [], [1, 2], [text]);
    h.observe(0, 1);
    h.observe(0, 2.5);
    h.observe(0, Number.NaN);
    h.observe(0, Number.POSITIVE_INFINITY);
    const t = await text.metrics();
    expect(t).toContain('h_seconds_bucket{le="1"} 1');
    expect(t).toContain('h_seconds_bucket{le="2"} 1');
    expect(t).toContain('h_seconds_bucket{le="+Inf"} 2');
    expect(t).toContain('h_seconds_sum 3.5');
    expect(t).toContain('h_seconds_count 2');
    expect(h.count(0)).toBe(2);
  });

  it('a counter fed from elsewhere reads its totals when rendered, and label arity is checked', async () => {
    const { text } = registries();
    let seen = 0;
    const c = new CounterFamily('fed_total', 'fed', ['d'], [['in'], ['out']], [text], (f) => {
      seen++;
      f.set(0, 10 * seen);
      f.set(1, 7);
    });
    expect(await text.metrics()).toContain('fed_total{d="in"} 10');
    expect(await text.metrics()).toContain('fed_total{d="in"} 20');
    expect(c.value(1)).toBe(7);
    expect(() => c.indexOf('in', 'extra')).toThrow(MetricLabelsError);
  });

  it('indexOfOne finds the series indexOf finds for one label value, and makes a new one the same way', async () => {
    const { text } = registries();
    const c = new CounterFamily('one_total', 'one', ['reason'], [['a'], ['b']], [text]);
    expect(c.indexOfOne('b')).toBe(c.indexOf('b'));
    const fresh = c.indexOfOne('c');
    expect(fresh).toBe(2);
    expect(c.indexOf('c')).toBe(fresh);
    c.add(c.indexOfOne('c'), 3);
    expect(await text.metrics()).toContain('one_total{reason="c"} 3');
  });
});
