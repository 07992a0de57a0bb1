/**
 * deploy/prometheus: the alert rules (promtool check and unit tests, and their expressions against
 * the metrics synfin exports) and the scrape configurations (promtool, and against synfin's
 * listen port and HTTP paths).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { DEFAULT_CONFIG } from '../../src/config.js';
import { httpApp, metricCatalogue, readRepoFile, repoPath, selectorProblems, type Catalogue } from './code.js';
import { selectors } from './promql.js';
import { describeIfPromtool, runPromtool } from './promtool.js';

interface Rule {
  alert?: string;
  record?: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
interface RuleFile {
  groups: Array<{ name: string; rules: Rule[] }>;
}
interface UnitTests {
  rule_files: string[];
  tests: Array<{
    name?: string;
    alert_rule_test?: Array<{ alertname: string; eval_time: string; exp_alerts?: Array<{ exp_labels?: Record<string, string> }> }>;
  }>;
}
interface ScrapeConfig {
  job_name: string;
  metrics_path?: string;
  static_configs?: Array<{ targets: string[] }>;
  kubernetes_sd_configs?: unknown[];
  relabel_configs?: Array<Record<string, unknown>>;
  params?: Record<string, string[]>;
}
interface PromConfig {
  rule_files: string[];
  scrape_configs: ScrapeConfig[];
}

const ALERTS = 'deploy/prometheus/alerts.yml';
const alertFile = parse(readRepoFile(ALERTS)) as RuleFile;
const alerts = alertFile.groups.flatMap((g) => g.rules);
const unitTests = parse(readRepoFile('deploy/prometheus/alerts.test.yml')) as UnitTests;
const composeConfig = parse(readRepoFile('deploy/prometheus/prometheus.yml')) as PromConfig;
const k8sConfig = parse(readRepoFile('deploy/prometheus/prometheus-kubernetes.yml')) as PromConfig;

/** Metrics the rules use that synfin itself does not export: Prometheus' own. */
const EXTERNAL_METRICS = new Set(['up']);
/** The leak alerts: each needs a unit test where it fires and one where it stays silent. */
const LEAK_ALERTS = ['SynfinAppNotClosingSockets', 'SynfinAppSocketStuckInCloseWait', 'SynfinUpstreamNotClosing', 'SynfinUpstreamHalfClosedTooLong'];
/** Linux's default net.ipv4.ip_local_port_range: 32768-60999. */
const LINUX_EPHEMERAL_PORTS = 60999 - 32768 + 1;

let catalogue: Catalogue;
beforeAll(async () => {
  catalogue = await metricCatalogue();
});

describe('alert rules: shape', () => {
  it('alerts_file_hasOnlyAlertingRules', () => {
    expect(alerts.length).toBeGreaterThanOrEqual(10);
    for (const r of alerts) expect(r.alert, r.expr).toMatch(/^Synfin[A-Za-z]+$/);
  });

  it('alerts_everyRule_hasForSeverityAndAnnotations', () => {
    for (const r of alerts) {
      expect(r.for, r.alert).toMatch(/^\d+[smh]$/);
      expect(['warning', 'critical'], r.alert).toContain(r.labels?.severity);
      expect(r.annotations?.summary ?? '', r.alert).toMatch(/\S/);
      expect(r.annotations?.description ?? '', r.alert).toMatch(/\S/);
    }
  });

  it('alerts_everyDescription_saysWhatToDo', () => {
    for (const r of alerts) expect(r.annotations?.description, r.alert).toMatch(/What to do( now)?:/);
  });

  it('alerts_everyDescription_namesTheSideAtFault', () => {
    for (const r of alerts) {
      expect(r.annotations?.description, r.alert).toMatch(/fault|the app's side|the destination's side|synfin's side|at fault|Cause:/);
    }
  });

  it('alerts_leakAlerts_labelTheSideAtFault', () => {
    expect(alerts.find((r) => r.alert === 'SynfinAppNotClosingSockets')?.labels?.side).toBe('app');
    expect(alerts.find((r) => r.alert === 'SynfinAppSocketStuckInCloseWait')?.labels?.side).toBe('app');
    expect(alerts.find((r) => r.alert === 'SynfinUpstreamNotClosing')?.labels?.side).toBe('upstream');
    expect(alerts.find((r) => r.alert === 'SynfinUpstreamHalfClosedTooLong')?.labels?.side).toBe('upstream');
  });

  it('alerts_coverTheIssuesList', () => {
    const text = alerts.map((r) => r.expr).join('\n');
    for (const needle of [
      'synfin_connections_waiting{on="app"}',
      'synfin_connections_oldest_waiting_seconds{on="app"}',
      'synfin_connections_waiting{on="upstream"}',
      'synfin_upstream_sockets{state="TIME_WAIT"}',
      'synfin_tcp_handshake_duration_seconds_bucket',
      'synfin_upstream_connect_duration_seconds_count{result!="ok"}',
      'synfin_tcp_resets_total',
      'synfin_tcp_retransmitted_segments_total',
      'up{job="synfin"} == 0',
      'synfin_ready{job="synfin"} == 0',
    ]) {
      expect(text).toContain(needle);
    }
  });

  it('alerts_portExhaustion_isAShareOfLinuxEphemeralRange', () => {
    const port = alerts.filter((r) => r.alert === 'SynfinUpstreamTimeWaitNearPortExhaustion');
    expect(port.map((r) => r.labels?.severity).sort()).toEqual(['critical', 'warning']);
    for (const r of port) expect(r.expr).toMatch(new RegExp(`> 0\\.\\d+ \\* ${LINUX_EPHEMERAL_PORTS}$`));
    // The same range as the leaks dashboard's default.
    const leaks = JSON.parse(readRepoFile('grafana', 'dashboards', 'synfin-leaks.json')) as { templating: { list: Array<{ name: string; query?: unknown }> } };
    expect(leaks.templating.list.find((v) => v.name === 'ephemeral_ports')?.query).toBe(String(LINUX_EPHEMERAL_PORTS));
  });
});

describe('alert rules: expressions against synfin', () => {
  it('alerts_everyMetricAndLabelValue_isExported', () => {
    const problems = alerts.flatMap((r) => selectors(r.expr).flatMap((s) => selectorProblems(s, catalogue, EXTERNAL_METRICS).map((p) => `${r.alert}: ${p}`)));
    expect(problems).toEqual([]);
  });

  it('alerts_seriesSharedWithOtherPrograms_selectAScrapedJob', () => {
    const jobs = new Set(composeConfig.scrape_configs.map((s) => s.job_name));
    const k8sJobs = new Set(k8sConfig.scrape_configs.map((s) => s.job_name));
    for (const r of alerts) {
      for (const s of selectors(r.expr)) {
        if (s.metric.startsWith('synfin_')) continue;
        const job = s.matchers.find((m) => m.name === 'job' && m.op === '=');
        expect(job, `${r.alert}: ${s.metric}`).toBeDefined();
        expect(jobs, `${r.alert}: job ${job?.value} in prometheus.yml`).toContain(job?.value);
        expect(k8sJobs, `${r.alert}: job ${job?.value} in prometheus-kubernetes.yml`).toContain(job?.value);
      }
    }
  });

  it('alerts_aggregations_keepTargetLabels', () => {
    // `by (...)` would drop job, instance, namespace, pod: the rules aggregate with `without`.
    for (const r of alerts) expect(r.expr, r.alert).not.toMatch(/\bby\s*\(/);
  });
});

describe('alert rules: unit tests cover every alert', () => {
  const cases = unitTests.tests.flatMap((t) => t.alert_rule_test ?? []);

  it('unitTests_loadTheAlertRules', () => {
    expect(unitTests.rule_files).toEqual(['alerts.yml']);
  });

  it('unitTests_everyAlert_firesInSomeTest', () => {
    const fired = new Set(cases.filter((c) => (c.exp_alerts ?? []).length > 0).map((c) => c.alertname));
    for (const name of new Set(alerts.map((r) => r.alert!))) expect(fired, name).toContain(name);
  });

  it('unitTests_leakAlerts_alsoStaySilentForCleanSeries', () => {
    for (const name of LEAK_ALERTS) {
      expect(cases.some((c) => c.alertname === name && (c.exp_alerts ?? []).length > 0), `${name} fires`).toBe(true);
      expect(cases.some((c) => c.alertname === name && (c.exp_alerts ?? []).length === 0), `${name} silent`).toBe(true);
    }
  });
});

describe('scrape configuration', () => {
  it('prometheusYml_loadsTheAlertRules', () => {
    expect(composeConfig.rule_files).toEqual(['alerts.yml']);
    expect(fs.existsSync(repoPath('deploy', 'prometheus', composeConfig.rule_files[0]!))).toBe(true);
  });

  it('prometheusYml_scrapesSynfinOnItsPortAndMetricsPath', () => {
    const job = composeConfig.scrape_configs.find((s) => s.job_name === 'synfin');
    expect(job?.metrics_path).toBe('/metrics');
    expect(job?.static_configs?.[0]?.targets).toEqual([`synfin:${DEFAULT_CONFIG.listenPort}`]);
  });

  it('scrapeConfigs_needNoReadinessProbe_synfinReadyComesWithTheScrape', () => {
    // SynfinNotReady watches synfin_ready from the synfin job: no blackbox exporter, no probe job.
    expect(alerts.find((r) => r.alert === 'SynfinNotReady')?.expr).toBe('synfin_ready{job="synfin"} == 0');
    expect(composeConfig.scrape_configs.map((s) => s.job_name).sort()).toEqual(['prometheus', 'synfin']);
    expect(k8sConfig.scrape_configs.map((s) => s.job_name)).toEqual(['synfin']);
    for (const s of [...composeConfig.scrape_configs, ...k8sConfig.scrape_configs]) expect(s.metrics_path ?? '/metrics', s.job_name).toBe('/metrics');
  });

  it('kubernetesYml_keepsOnlyAnnotatedPodsOnSynfinsPort', () => {
    const job = k8sConfig.scrape_configs.find((s) => s.job_name === 'synfin');
    const keeps = (job?.relabel_configs ?? []).filter((r) => r.action === 'keep').map((r) => [r.source_labels, r.regex]);
    expect(keeps).toEqual([
      [['__meta_kubernetes_pod_annotation_prometheus_io_scrape'], 'true'],
      [['__meta_kubernetes_pod_container_port_name'], 'synfin-metrics'],
    ]);
  });

  it('synfinReady_onTheScrapedPage_agreesWithReadyz', async () => {
    // SynfinNotReady relies on it: synfin_ready is 0 exactly when /readyz is not 200.
    for (const ready of [true, false]) {
      const { app, close } = httpApp(ready);
      try {
        const metrics = await app.inject({ method: 'GET', url: '/metrics' });
        expect(metrics.body, `ready=${ready}`).toMatch(new RegExp(`^synfin_ready ${ready ? 1 : 0}$`, 'm'));
        expect((await app.inject({ method: 'GET', url: '/readyz' })).statusCode, `ready=${ready}`).toBe(ready ? 200 : 503);
      } finally {
        await close();
      }
    }
  });

  it('scrapedPaths_areServedBySynfin', async () => {
    const { app, close } = httpApp(true);
    try {
      const metrics = await app.inject({ method: 'GET', url: '/metrics' });
      expect(metrics.statusCode).toBe(200);
      expect(metrics.body).toContain('synfin_build_info');
      expect((await app.inject({ method: 'GET', url: '/readyz' })).statusCode).toBe(200);
    } finally {
      await close();
    }
  });
});

describeIfPromtool('promtool', () => {
  let dir: string;
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'synfin-prom-'));
  });
  afterAll(() => {
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('promtool_checkRules_alertsYml', () => {
    const r = runPromtool(['check', 'rules', ALERTS], repoPath());
    expect(r.output).toContain(`SUCCESS: ${alerts.length} rules found`);
    expect(r.code).toBe(0);
  });

  it('promtool_checkConfig_prometheusYml', () => {
    const r = runPromtool(['check', 'config', 'deploy/prometheus/prometheus.yml'], repoPath());
    expect(r.output).toContain('is valid prometheus config file syntax');
    expect(r.code).toBe(0);
  });

  it('promtool_checkConfig_kubernetesYmlWithStaticTargets', () => {
    // Debian's Prometheus is built without Kubernetes service discovery: check everything else
    // (relabelling, rule files) with the discovery swapped for a static target.
    const cfg = structuredClone(k8sConfig);
    cfg.rule_files = cfg.rule_files.map((f) => repoPath('deploy', 'prometheus', f));
    for (const s of cfg.scrape_configs) {
      expect(s.kubernetes_sd_configs, s.job_name).toBeDefined();
      delete s.kubernetes_sd_configs;
      s.static_configs = [{ targets: ['10.0.0.1:9477'] }];
    }
    const file = path.join(dir, 'prometheus-kubernetes.yml');
    fs.writeFileSync(file, stringify(cfg));
    const r = runPromtool(['check', 'config', file]);
    expect(r.output).toContain('is valid prometheus config file syntax');
    expect(r.code).toBe(0);
  });

  it('promtool_testRules_alertsTestYml', () => {
    const r = runPromtool(['test', 'rules', 'deploy/prometheus/alerts.test.yml'], repoPath());
    expect(r.output).toContain('SUCCESS');
    expect(r.output).not.toContain('FAILED');
    expect(r.code).toBe(0);
  });
});
