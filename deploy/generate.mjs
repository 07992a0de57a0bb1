#!/usr/bin/env node
// Generates the Prometheus Operator and Grafana objects for a Kubernetes cluster from the files
// that are the source of truth, so they never drift apart:
//   deploy/prometheus/alerts.yml  →  PrometheusRule  (deploy/kubernetes/monitoring/prometheusrule.yaml)
//   the scrape of the sidecar     →  PodMonitor      (deploy/kubernetes/monitoring/podmonitor.yaml)
//   grafana/generate.mjs          →  one ConfigMap per dashboard, labelled grafana_dashboard: "1"
//                                    (deploy/kubernetes/monitoring/grafana-dashboards.yaml)
//
//   node deploy/generate.mjs                 writes them
//   node deploy/generate.mjs --check         exits 1 if the committed files differ
//   node deploy/generate.mjs --out DIR [--job NAME] [--runbook-url URL] [--grafana-url URL]
//                            [--label KEY=VALUE]...
//     for your cluster: another job name (the alert rules' job selector and the PodMonitor's job
//     label), where your runbooks and Grafana live, and labels your Prometheus' ruleSelector and
//     podMonitorSelector want (kube-prometheus-stack: --label release=NAME).
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse, stringify } from 'yaml';
import { buildDashboards } from '../grafana/generate.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const ALERTS = path.join(here, 'prometheus', 'alerts.yml');

/** What alerts.yml itself uses: replaced when the options ask for something else. */
export const SOURCE_DEFAULTS = {
  job: 'synfin',
  runbookUrl: 'https://github.com/synfin/synfin/blob/main/docs/runbooks.md',
  grafanaUrl: 'http://localhost:3000',
};

/** The label the kustomize component puts on every pod with synfin (deploy/kubernetes/synfin). */
export const SIDECAR_LABEL = { 'synfin.dev/sidecar': 'true' };
/** synfin's metrics port, as the component names it. */
export const METRICS_PORT_NAME = 'synfin-metrics';

function parseArgs(argv) {
  const opts = { check: false, out: path.join(here, 'kubernetes', 'monitoring'), labels: {}, ...SOURCE_DEFAULTS };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => {
      const v = argv[++i];
      if (v === undefined || v === '') usage(`${a} needs a value`);
      return v;
    };
    if (a === '--check') opts.check = true;
    else if (a === '--out') opts.out = path.resolve(value());
    else if (a === '--job') opts.job = value();
    else if (a === '--runbook-url') opts.runbookUrl = value().replace(/#.*$/, '');
    else if (a === '--grafana-url') opts.grafanaUrl = value().replace(/\/+$/, '');
    else if (a === '--label') {
      const v = value();
      const eq = v.indexOf('=');
      if (eq <= 0) usage(`--label: "${v}" is not KEY=VALUE`);
      opts.labels[v.slice(0, eq)] = v.slice(eq + 1);
    } else usage(`unknown argument "${a}"`);
  }
  if (!/^[A-Za-z0-9_.:/-]+$/.test(opts.job)) usage(`--job: "${opts.job}" is not a job name`);
  return opts;
}

function usage(message) {
  process.stderr.write(`deploy/generate.mjs: ${message}\n`);
  process.exit(2);
}

/** alerts.yml's groups with the job selector, runbook and Grafana addresses of the options. */
export function ruleGroups(opts = SOURCE_DEFAULTS) {
  const file = parse(fs.readFileSync(ALERTS, 'utf8'));
  const swap = (text) =>
    text
      .replaceAll(`job="${SOURCE_DEFAULTS.job}"`, `job="${opts.job}"`)
      .replaceAll(SOURCE_DEFAULTS.runbookUrl, opts.runbookUrl)
      .replaceAll(`${SOURCE_DEFAULTS.grafanaUrl}/d/`, `${opts.grafanaUrl}/d/`);
  return file.groups.map((g) => ({
    name: g.name,
    rules: g.rules.map((r) => ({
      alert: r.alert,
      expr: swap(r.expr),
      for: r.for,
      labels: r.labels,
      annotations: Object.fromEntries(Object.entries(r.annotations).map(([k, v]) => [k, swap(v)])),
    })),
  }));
}

const COMMON_LABELS = { 'app.kubernetes.io/name': 'synfin', 'app.kubernetes.io/component': 'monitoring' };

export function prometheusRule(opts = SOURCE_DEFAULTS) {
  return {
    apiVersion: 'monitoring.coreos.com/v1',
    kind: 'PrometheusRule',
    metadata: { name: 'synfin', labels: { ...COMMON_LABELS, ...(opts.labels ?? {}) } },
    spec: { groups: ruleGroups(opts) },
  };
}

export function podMonitor(opts = SOURCE_DEFAULTS) {
  return {
    apiVersion: 'monitoring.coreos.com/v1',
    kind: 'PodMonitor',
    metadata: { name: 'synfin', labels: { ...COMMON_LABELS, ...(opts.labels ?? {}) } },
    spec: {
      // Every pod the kustomize component gave a synfin sidecar, in every namespace.
      selector: { matchLabels: SIDECAR_LABEL },
      namespaceSelector: { any: true },
      podMetricsEndpoints: [
        {
          port: METRICS_PORT_NAME,
          path: '/metrics',
          interval: '15s',
          // The operator names the job <namespace>/<podmonitor>; the alert rules and dashboards
          // select job="<--job>". namespace and pod come from the operator's own relabelling.
          relabelings: [{ action: 'replace', targetLabel: 'job', replacement: opts.job }],
        },
      ],
    },
  };
}

export function dashboardConfigMaps() {
  return Object.entries(buildDashboards()).map(([file, dash]) => ({
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: {
      name: `${dash.uid}-dashboard`,
      // Grafana's dashboard sidecar (kube-prometheus-stack, the Grafana chart) loads ConfigMaps
      // with this label, into the folder its annotation names.
      labels: { ...COMMON_LABELS, grafana_dashboard: '1' },
      annotations: { grafana_folder: 'synfin' },
    },
    data: { [file]: `${JSON.stringify(dash, null, 2)}\n` },
  }));
}

const HEADER = (what) =>
  `# Generated by deploy/generate.mjs from ${what}: do not edit, run \`node deploy/generate.mjs\`.\n`;

function yamlDocs(objects) {
  return objects.map((o) => stringify(o, { lineWidth: 0 })).join('---\n');
}

export function files(opts = SOURCE_DEFAULTS) {
  return {
    'prometheusrule.yaml': HEADER('deploy/prometheus/alerts.yml') + yamlDocs([prometheusRule(opts)]),
    'podmonitor.yaml': HEADER('the sidecar of deploy/kubernetes/synfin') + yamlDocs([podMonitor(opts)]),
    'grafana-dashboards.yaml': HEADER('grafana/generate.mjs') + yamlDocs(dashboardConfigMaps()),
    'kustomization.yaml':
      HEADER('its own list') +
      stringify({
        apiVersion: 'kustomize.config.k8s.io/v1beta1',
        kind: 'Kustomization',
        resources: ['podmonitor.yaml', 'prometheusrule.yaml', 'grafana-dashboards.yaml'],
      }),
  };
}

function main(argv) {
  const opts = parseArgs(argv);
  let stale = 0;
  for (const [name, text] of Object.entries(files(opts))) {
    const dest = path.join(opts.out, name);
    if (opts.check) {
      const current = fs.existsSync(dest) ? fs.readFileSync(dest, 'utf8') : '';
      if (current !== text) {
        process.stderr.write(`${path.relative(process.cwd(), dest)} is not what deploy/generate.mjs writes: run node deploy/generate.mjs\n`);
        stale++;
      }
    } else {
      fs.mkdirSync(opts.out, { recursive: true });
      fs.writeFileSync(dest, text);
      process.stdout.write(`wrote ${path.relative(process.cwd(), dest)}\n`);
    }
  }
  if (stale > 0) process.exitCode = 1;
}

if (process.argv[1] !== undefined && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2));
}
