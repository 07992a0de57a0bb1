import { describe, expect, it } from 'vitest';
import { metricCatalogue, selectorProblems } from './code.js';
import { labelValuesQuery, PromQLScanError, selectors } from './promql.js';

describe('selectors: finding series selectors in PromQL', () => {
  it('selectors_metricWithMatchers_returnsNameAndMatchers', () => {
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

  it('selectors_functionsAndAggregations_areNotMetrics', () => {
    const found = selectors('histogram_quantile(0.99, sum by (le) (rate(a_bucket[5m])))');
    expect(found.map((s) => s.metric)).toEqual(['a_bucket']);
  });

  it('selectors_groupingLabelLists_areNotMetrics', () => {
    const found = selectors('sum without (kind) (rate(a[5m])) / on (job, instance) group_left (version) b');
    expect(found.map((s) => s.metric)).toEqual(['a', 'b']);
  });

  it('selectors_aggregationWithTrailingBy_findsTheArgument', () => {
    expect(selectors('sum(rate(a[1m])) by (state)').map((s) => s.metric)).toEqual(['a']);
  });

  it('selectors_binaryOperatorsAndKeywords_areSkipped', () => {
    const found = selectors('a > bool 0.5 * 28232 and b unless c or d offset 5m');
    expect(found.map((s) => s.metric)).toEqual(['a', 'b', 'c', 'd']);
  });

  it('selectors_grafanaVariables_areSkipped', () => {
    const found = selectors('max(a{job=~"$job"}) / $ephemeral_ports + ${scale} * rate(b[$__rate_interval])');
    expect(found.map((s) => s.metric)).toEqual(['a', 'b']);
  });

  it('selectors_bracesInsideStrings_doNotOpenSelectors', () => {
    const found = selectors('label_replace(a, "dst", "{x}", "src", "(.*)")');
    expect(found.map((s) => s.metric)).toEqual(['a']);
  });

  it('selectors_bareSelectorWithName_usesName', () => {
    expect(selectors('{__name__="a", state="x"}')).toEqual([{ metric: 'a', matchers: [{ name: 'state', op: '=', value: 'x' }] }]);
  });

  it('selectors_exponentNumbers_areNotMetrics', () => {
    expect(selectors('a > 1e-9 and b < 2.5E+3').map((s) => s.metric)).toEqual(['a', 'b']);
  });

  it('selectors_unknownFunction_throws', () => {
    expect(() => selectors('histogram_quantil(0.9, a)')).toThrow(PromQLScanError);
  });

  it('selectors_unterminatedSelector_throws', () => {
    expect(() => selectors('a{job="x"')).toThrow(PromQLScanError);
  });
});

describe('labelValuesQuery: Grafana variable queries', () => {
  it('labelValuesQuery_withSelector_returnsLabelAndSelector', () => {
    const q = labelValuesQuery('label_values(synfin_build_info{job=~"$job"}, instance)');
    expect(q?.label).toBe('instance');
    expect(q?.selectors.map((s) => s.metric)).toEqual(['synfin_build_info']);
  });

  it('labelValuesQuery_otherQuery_returnsNull', () => {
    expect(labelValuesQuery('query_result(up)')).toBeNull();
  });
});

describe('selectorProblems: checking selectors against the metrics synfin exports', () => {
  it('selectorProblems_unknownMetric_isReported', async () => {
    const catalogue = await metricCatalogue();
    expect(selectorProblems({ metric: 'synfin_tcp_conections', matchers: [] }, catalogue)).toEqual([
      'unknown metric synfin_tcp_conections',
    ]);
  });

  it('selectorProblems_unknownLabelValue_isReported', async () => {
    const catalogue = await metricCatalogue();
    const sel = selectors('synfin_tcp_connections{state="TIME-WAIT"}')[0]!;
    expect(selectorProblems(sel, catalogue)).toEqual(['synfin_tcp_connections{state} never takes the value "TIME-WAIT"']);
  });

  it('selectorProblems_unknownLabel_isReported', async () => {
    const catalogue = await metricCatalogue();
    const sel = selectors('synfin_connections_waiting{side="app"}')[0]!;
    expect(selectorProblems(sel, catalogue)).toEqual(['synfin_connections_waiting has no label side']);
  });

  it('selectorProblems_histogramSeriesAndDefaultMetrics_areKnown', async () => {
    const catalogue = await metricCatalogue();
    const found = selectors(
      'synfin_tcp_handshake_duration_seconds_bucket{result="upstream_refused",le="+Inf"} + synfin_tcp_rtt_seconds_count + process_resident_memory_bytes + nodejs_eventloop_lag_p99_seconds',
    );
    expect(found.flatMap((s) => selectorProblems(s, catalogue))).toEqual([]);
  });

  it('selectorProblems_alternationInRegex_checksEveryAlternative', async () => {
    const catalogue = await metricCatalogue();
    const ok = selectors('synfin_upstream_sockets{state=~"CLOSE_WAIT|TIME_WAIT"}')[0]!;
    const wrong = selectors('synfin_upstream_sockets{state=~"CLOSE_WAIT|TIME-WAIT"}')[0]!;
    expect(selectorProblems(ok, catalogue)).toEqual([]);
    expect(selectorProblems(wrong, catalogue)).toHaveLength(1);
  });
});
