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
/** The words a description uses to name each side (alerts.yml's conventions). */
const SIDE_WORDS: Record<string, RegExp> = {
  app: /the app's side|The fault is in the app/,
  upstream: /the destination's side/,
  synfin: /synfin's side/,
};
const runbooks = readRepoFile('docs', 'runbooks.md');
/** GitHub's anchor of a markdown heading: lower case, spaces to dashes, punctuation dropped. */
const anchorOf = (heading: string): string => heading.trim().toLowerCase().replace(/[^\w\- ]/g, '').replace(/ /g, '-');
const runbookAnchors = new Set([...runbooks.matchAll(/^#{1,6} (.+)$/gm)].map((m) => anchorOf(m[1]!)));
/** The dashboards grafana/generate.mjs writes, by uid. */
const dashboardUids = new Set(fs.readdirSync(repoPath('grafana', 'dashboards')).map((f) => f.replace(/\.json$/, '')));

let catalogue: Catalogue;
beforeAll(async () => {
  catalogue = await metricCatalogue();
});

describe('alert rules: shape', () => {
  it('alerts file has only alerting rules', () => {
    expect(alerts.length).toBeGreaterThanOrEqual(10);
    for (const r of alerts) expect(r.alert, r.expr).toMatch(/^Synfin[A-Za-z]+$/);
  });

  it('alerts every rule has for severity and annotations', () => {
    for (const r of alerts) {
      expect(r.for, r.alert).toMatch(/^\d+[smh]$/);
      expect(['warning', 'critical'], r.alert).toContain(r.labels?.severity);
      expect(r.annotations?.summary ?? '', r.alert).toMatch(/\S/);
      expect(r.annotations?.description ?? '', r.alert).toMatch(/\S/);
    }
  });

  it('alerts every description says what to do', () => {
    for (const r of alerts) expect(r.annotations?.description, r.alert).toMatch(/What to do( now)?:/);
  });

  it('alerts every description names the side at fault', () => {
    for (const r of alerts) {
      expect(r.annotations?.description, r.alert).toMatch(/fault|the app's side|the destination's side|synfin's side|at fault|Cause:/);
    }
  });

  it('alerts leak alerts label the side at fault', () => {
    expect(alerts.find((r) => r.alert === 'SynfinAppNotClosingSockets')?.labels?.side).toBe('app');
    expect(alerts.find((r) => r.alert === 'SynfinAppSocketStuckInCloseWait')?.labels?.side).toBe('app');
    expect(alerts.find((r) => r.alert === 'SynfinUpstreamNotClosing')?.labels?.side).toBe('upstream');
    expect(alerts.find((r) => r.alert === 'SynfinUpstreamHalfClosedTooLong')?.labels?.side).toBe('upstream');
    // Port exhaustion comes from the app's churn (it closes first), which its text blames.
    for (const r of alerts.filter((x) => x.alert === 'SynfinUpstreamTimeWaitNearPortExhaustion')) expect(r.labels?.side).toBe('app');
  });

  it('alerts side label agrees with the description', () => {
    for (const r of alerts) {
      const side = r.labels?.side;
      const text = r.annotations?.description ?? '';
      if (side === undefined) {
        // No label: the cause can lie on more than one side, and the text says how to tell.
        const named = Object.values(SIDE_WORDS).filter((re) => re.test(text)).length;
        expect(named, `${r.alert} names the sides it may be`).toBeGreaterThanOrEqual(2);
        continue;
      }
      expect(Object.keys(SIDE_WORDS), r.alert).toContain(side);
      expect(text, `${r.alert} side=${side}`).toMatch(SIDE_WORDS[side]!);
      // ...and does not put the fault on another side.
      for (const [other, re] of Object.entries(SIDE_WORDS)) {
        if (other !== side) expect(text, `${r.alert} side=${side} but the text blames ${other}`).not.toMatch(new RegExp(`fault is (on|in) ${re.source}`));
      }
    }
  });

  it('alerts reset alert keeps the direction', () => {
    const r = alerts.find((x) => x.alert === 'SynfinResetRateHigh')!;
    expect(r.expr).toMatch(/sum without \(reason\) \(rate\(synfin_tcp_resets_total\[5m\]\)\)/);
    expect(r.annotations?.summary).toContain('{{ $labels.direction }}');
  });

  it('alerts summaries name namespace and pod where they exist else the instance', () => {
    const where = '{{ if $labels.pod }}{{ $labels.namespace }}/{{ $labels.pod }}{{ else }}{{ $labels.instance }}{{ end }}';
    for (const r of alerts) {
      expect(r.annotations?.summary, r.alert).toContain(where);
      // Never the bare instance (a pod IP in Kubernetes).
      expect(r.annotations?.summary?.replace(where, ''), r.alert).not.toContain('$labels.instance');
    }
  });

  it('alerts app leak alerts say which service', () => {
    for (const name of ['SynfinAppNotClosingSockets', 'SynfinAppSocketStuckInCloseWait']) {
      const r = alerts.find((x) => x.alert === name)!;
      expect(r.expr, name).toMatch(/synfin_service_(connections_waiting|oldest_waiting_seconds)\{on="app"\}/);
      expect(r.annotations?.summary, name).toContain('$labels.service');
      expect(r.annotations?.description, name).toContain('/api/connections?waitingOn=app');
      expect(r.annotations?.description, name).toContain('service={{ $labels.service }}');
      expect(r.annotations?.dashboard_url, name).toContain('var-service={{ $labels.service }}');
    }
  });

  it('alerts every rule has a runbook section and a dashboard', () => {
    for (const r of alerts) {
      const url = new URL(r.annotations?.runbook_url ?? '');
      expect(url.pathname, r.alert).toMatch(/\/docs\/runbooks\.md$/);
      const anchor = url.hash.slice(1);
      expect(anchor, r.alert).toBe(r.alert!.toLowerCase());
      expect(runbookAnchors, `${r.alert}: docs/runbooks.md#${anchor}`).toContain(anchor);
      // The section says what it means, how to confirm it with the API, and what to do.
      const section = runbooks.split(/^## /m).find((x) => x.startsWith(`${r.alert}\n`)) ?? '';
      for (const part of ['**Means.**', '**Confirm.**', '**Do.**']) expect(section, `${r.alert} ${part}`).toContain(part);
      expect(section, `${r.alert} confirms with the API or kubectl`).toMatch(/\/api\/|kubectl|ip -s link|ip link/);
      const dash = new URL(r.annotations?.dashboard_url?.replace(/\{\{[^}]*\}\}/g, 'x') ?? '');
      expect(dashboardUids, `${r.alert}: ${dash.pathname}`).toContain(dash.pathname.replace(/^\/d\//, ''));
      for (const v of ['namespace', 'pod', 'instance']) expect(dash.searchParams.has(`var-${v}`), `${r.alert} var-${v}`).toBe(true);
    }
  });

  it('alerts new rules cover syn cookies limit fds and restarts', () => {
    const expr = (name: string) => alerts.find((r) => r.alert === name)?.expr ?? '';
    expect(expr('SynfinSynCookiesEngaged')).toContain('synfin_tcp_syn_cookies_total{result="sent"}');
    expect(expr('SynfinConnectionsRefusedAtLimit')).toContain('synfin_tcp_dropped_segments_total{reason="syn_limit"}');
    expect(expr('SynfinFileDescriptorsNearLimit')).toMatch(/process_open_fds\{job="synfin"\} \/ process_max_fds\{job="synfin"\}/);
    expect(expr('SynfinRestartingOften')).toContain('changes(process_start_time_seconds{job="synfin"}');
  });

  it('alerts cover the issues list', () => {
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

  it('alerts port exhaustion is a share of the namespaces ephemeral ports', () => {
    const port = alerts.filter((r) => r.alert === 'SynfinUpstreamTimeWaitNearPortExhaustion');
    expect(port.map((r) => r.labels?.severity).sort()).toEqual(['critical', 'warning']);
    for (const r of port) {
      expect(r.expr).toMatch(/^synfin_upstream_sockets\{state="TIME_WAIT"\} > ignoring \(state\) 0\.\d+ \* synfin_ephemeral_ports$/);
      expect(r.expr).not.toMatch(/28232/);
    }
  });
});

describe('alert rules: expressions against synfin', () => {
  it('alerts every metric and label value is exported', () => {
    const problems = alerts.flatMap((r) => selectors(r.expr).flatMap((s) => selectorProblems(s, catalogue, EXTERNAL_METRICS).map((p) => `${r.alert}: ${p}`)));
    expect(problems).toEqual([]);
  });

  it('alerts series shared with other programs select a scraped job', () => {
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

  it('alerts aggregations keep target labels', () => {
    // `by (...)` would drop job, instance, namespace, pod: the rules aggregate with `without`.
    for (const r of alerts) expect(r.expr, r.alert).not.toMatch(/\bby\s*\(/);
  });
});

describe('alert rules: unit tests cover every alert', () => {
  const cases = unitTests.tests.flatMap((t) => t.alert_rule_test ?? []);

  it('unitTests: load the alert rules', () => {
    expect(unitTests.rule_files).toEqual(['alerts.yml']);
  });

  it('unitTests: every alert fires in some test', () => {
    const fired = new Set(cases.filter((c) => (c.exp_alerts ?? []).length > 0).map((c) => c.alertname));
    for (const name of new Set(alerts.map((r) => r.alert!))) expect(fired, name).toContain(name);
  });

  it('unitTests: every alert also stays silent in some test', () => {
    for (const name of new Set(alerts.map((r) => r.alert!))) {
      expect(cases.some((c) => c.alertname === name && (c.exp_alerts ?? []).length > 0), `${name} fires`).toBe(true);
      expect(cases.some((c) => c.alertname === name && (c.exp_alerts ?? []).length === 0), `${name} silent`).toBe(true);
    }
  });
});

describe('scrape configuration', () => {
  it('prometheusYml: loads the alert rules', () => {
    expect(composeConfig.rule_files).toEqual(['alerts.yml']);
    expect(fs.existsSync(repoPath('deploy', 'prometheus', composeConfig.rule_files[0]!))).toBe(true);
  });

  it('prometheusYml: scrapes synfin on its port and metrics path', () => {
    const job = composeConfig.scrape_configs.find((s) => s.job_name === 'synfin');
    expect(job?.metrics_path).toBe('/metrics');
    expect(job?.static_configs?.[0]?.targets).toEqual([`synfin:${DEFAULT_CONFIG.listenPort}`]);
  });

  it('scrapeConfigs: need no readiness probe synfin ready comes with the scrape', () => {
    // SynfinNotReady watches synfin_ready from the synfin job: no blackbox exporter, no probe job.
    expect(alerts.find((r) => r.alert === 'SynfinNotReady')?.expr).toBe('synfin_ready{job="synfin"} == 0');
    expect(composeConfig.scrape_configs.map((s) => s.job_name).sort()).toEqual(['prometheus', 'synfin']);
    expect(k8sConfig.scrape_configs.map((s) => s.job_name)).toEqual(['synfin']);
    for (const s of [...composeConfig.scrape_configs, ...k8sConfig.scrape_configs]) expect(s.metrics_path ?? '/metrics', s.job_name).toBe('/metrics');
  });

  it('kubernetesYml: keeps only annotated pods on synfins port', () => {
    const job = k8sConfig.scrape_configs.find((s) => s.job_name === 'synfin');
    const keeps = (job?.relabel_configs ?? []).filter((r) => r.action === 'keep').map((r) => [r.source_labels, r.regex]);
    expect(keeps).toEqual([
      [['__meta_kubernetes_pod_annotation_prometheus_io_scrape'], 'true'],
      [['__meta_kubernetes_pod_container_port_name'], 'synfin-metrics'],
    ]);
  });

  it('synfinReady: on the scraped page agrees with readyz', async () => {
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

  it('scrapedPaths: are served by synfin', async () => {
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

  it('promtool check rules alerts yml', () => {
    const r = runPromtool(['check', 'rules', ALERTS], repoPath());
    expect(r.output).toContain(`SUCCESS: ${alerts.length} rules found`);
    expect(r.code).toBe(0);
  });

  it('promtool check config prometheus yml', () => {
    const r = runPromtool(['check', 'config', 'deploy/prometheus/prometheus.yml'], repoPath());
    expect(r.output).toContain('is valid prometheus config file syntax');
    expect(r.code).toBe(0);
  });

  it('promtool check config kubernetes yml with static targets', () => {
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

  it('promtool test rules alerts test yml', () => {
    const r = runPromtool(['test', 'rules', 'deploy/prometheus/alerts.test.yml'], repoPath());
    expect(r.output).toContain('SUCCESS');
    expect(r.output).not.toContain('FAILED');
    expect(r.code).toBe(0);
  });
});
