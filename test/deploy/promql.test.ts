import { describe, expect, it } from 'vitest';
import { metricCatalogue, selectorProblems } from './code.js';
import { labelValuesQuery, PromQLScanError, selectors } from './promql.js';

describe('selectors: finding series selectors in PromQL', () => {
  it('selectors metric with matchers returns name and matchers', () => {
    expect(selectors('x_total{job=~"$job",result!="ok"}')).toEqual([
      {
        metric: 'x_total',
        matchers: [
          { name: 'job', op: '=~', value: '$job' },
          { name: 'result', op: '!=', value: 'ok' },
        ],
      },
    ]);
  });

  it('selectors functions and aggregations are not metrics', () => {
    const found = selectors('histogram_quantile(0.99, sum by (le) (rate(a_bucket[5m])))');
    expect(found.map((s) => s.metric)).toEqual(['a_bucket']);
  });

  it('selectors grouping label lists are not metrics', () => {
    const found = selectors('sum without (kind) (rate(a[5m])) / on (job, instance) group_left (version) b');
    expect(found.map((s) => s.metric)).toEqual(['a', 'b']);
  });

  it('selectors aggregation with trailing by finds the argument', () => {
    expect(selectors('sum(rate(a[1m])) by (state)').map((s) => s.metric)).toEqual(['a']);
  });

  it('selectors binary operators and keywords are skipped', () => {
    const found = selectors('a > bool 0.5 * 28232 and b unless c or d offset 5m');
    expect(found.map((s) => s.metric)).toEqual(['a', 'b', 'c', 'd']);
  });

  it('selectors grafana variables are skipped', () => {
    const found = selectors('max(a{job=~"$job"}) / $ephemeral_ports + ${scale} * rate(b[$__rate_interval])');
    expect(found.map((s) => s.metric)).toEqual(['a', 'b']);
  });

  it('selectors braces inside strings do not open selectors', () => {
    const found = selectors('label_replace(a, "dst", "{x}", "src", "(.*)")');
    expect(found.map((s) => s.metric)).toEqual(['a']);
  });

  it('selectors bare selector with name uses name', () => {
    expect(selectors('{__name__="a", state="x"}')).toEqual([{ metric: 'a', matchers: [{ name: 'state', op: '=', value: 'x' }] }]);
  });

  it('selectors exponent numbers are not metrics', () => {
    expect(selectors('a > 1e-9 and b < 2.5E+3').map((s) => s.metric)).toEqual(['a', 'b']);
  });

  it('selectors unknown function throws', () => {
    expect(() => selectors('histogram_quantil(0.9, a)')).toThrow(PromQLScanError);
  });

  it('selectors unterminated selector throws', () => {
    expect(() => selectors('a{job="x"')).toThrow(PromQLScanError);
  });
});

describe('labelValuesQuery: Grafana variable queries', () => {
  it('labelValuesQuery: with selector returns label and selector', () => {
    const q = labelValuesQuery('label_values(synfin_build_info{job=~"$job"}, instance)');
    expect(q?.label).toBe('instance');
    expect(q?.selectors.map((s) => s.metric)).toEqual(['synfin_build_info']);
  });

  it('labelValuesQuery: other query returns null', () => {
    expect(labelValuesQuery('query_result(up)')).toBeNull();
  });
});

describe('selectorProblems: checking selectors against the metrics synfin exports', () => {
  it('selectorProblems: unknown metric is reported', async () => {
    const catalogue = await metricCatalogue();
    expect(selectorProblems({ metric: 'synfin_tcp_conections', matchers: [] }, catalogue)).toEqual([
      'unknown metric synfin_tcp_conections',
    ]);
  });

  it('selectorProblems: unknown label value is reported', async () => {
    const catalogue = await metricCatalogue();
    const sel = selectors('synfin_tcp_connections{state="TIME-WAIT"}')[0]!;
    expect(selectorProblems(sel, catalogue)).toEqual(['synfin_tcp_connections{state} never takes the value "TIME-WAIT"']);
  });

  it('selectorProblems: unknown label is reported', async () => {
    const catalogue = await metricCatalogue();
    const sel = selectors('synfin_connections_waiting{side="app"}')[0]!;
    expect(selectorProblems(sel, catalogue)).toEqual(['synfin_connections_waiting has no label side']);
  });

  it('selectorProblems: histogram series and default metrics are known', async () => {
    const catalogue = await metricCatalogue();
    const found = selectors(
      'synfin_tcp_handshake_duration_seconds_bucket{result="upstream_refused",le="+Inf"} + synfin_tcp_rtt_seconds_count + process_resident_memory_bytes + nodejs_eventloop_lag_p99_seconds',
    );
    expect(found.flatMap((s) => selectorProblems(s, catalogue))).toEqual([]);
  });

  it('selectorProblems: alternation in regex checks every alternative', async () => {
    const catalogue = await metricCatalogue();
    const ok = selectors('synfin_upstream_sockets{state=~"CLOSE_WAIT|TIME_WAIT"}')[0]!;
    const wrong = selectors('synfin_upstream_sockets{state=~"CLOSE_WAIT|TIME-WAIT"}')[0]!;
    expect(selectorProblems(ok, catalogue)).toEqual([]);
    expect(selectorProblems(wrong, catalogue)).toHaveLength(1);
  });
});
