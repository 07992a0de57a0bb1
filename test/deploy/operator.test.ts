/**
 * deploy/kubernetes/monitoring: the PodMonitor, the PrometheusRule and the dashboard ConfigMaps
 * that deploy/generate.mjs writes. They must be what the generator writes today (no drift from
 * alerts.yml or the dashboards), have the shape of the Prometheus Operator's CRDs
 * (monitoring.coreos.com/v1, the fields used here, checked against a schema written from the
 * CRDs' OpenAPI: no network to fetch them), pass promtool, and fit the kustomize component.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, parseAllDocuments, stringify } from 'yaml';
import { readRepoFile, repoPath } from './code.js';
import { describeIfKubectl, kustomize } from './kubectl.js';
import { describeIfPromtool, runPromtool } from './promtool.js';

// ------------------------------------------------------------------------------ a small schema

/**
 * The subset of the CRDs' OpenAPI schema this repository uses: object properties (anything else
 * is an unknown field, which the API server would prune or reject), required ones, and the
 * types and patterns of leaves.
 */
type Schema =
  | { type: 'object'; properties: Record<string, Schema>; required?: string[] }
  | { type: 'map' } // additionalProperties: string
  | { type: 'array'; items: Schema; minItems?: number }
  | { type: 'string'; pattern?: RegExp; enum?: string[] }
  | { type: 'boolean' };

/** monitoring.coreos.com/v1 Duration: "^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$" */
const DURATION = /^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$/;
const str = (extra: { pattern?: RegExp; enum?: string[] } = {}): Schema => ({ type: 'string', ...extra });
const obj = (properties: Record<string, Schema>, required: string[] = []): Schema => ({ type: 'object', properties, required });
const METADATA = obj({ name: str({ pattern: /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/ }), namespace: str(), labels: { type: 'map' }, annotations: { type: 'map' } }, ['name']);

/** PodMonitor (podmonitors.monitoring.coreos.com), the fields used. */
const POD_MONITOR: Schema = obj(
  {
    apiVersion: str({ enum: ['monitoring.coreos.com/v1'] }),
    kind: str({ enum: ['PodMonitor'] }),
    metadata: METADATA,
    spec: obj(
      {
        jobLabel: str(),
        selector: obj({ matchLabels: { type: 'map' } }),
        namespaceSelector: obj({ any: { type: 'boolean' }, matchNames: { type: 'array', items: str() } }),
        podMetricsEndpoints: {
          type: 'array',
          minItems: 1,
          items: obj({
            port: str(),
            path: str({ pattern: /^\// }),
            interval: str({ pattern: DURATION }),
            scrapeTimeout: str({ pattern: DURATION }),
            relabelings: {
              type: 'array',
              items: obj({
                action: str({ enum: ['replace', 'Replace', 'keep', 'Keep', 'drop', 'Drop', 'labelmap', 'LabelMap', 'labeldrop', 'LabelDrop', 'labelkeep', 'LabelKeep'] }),
                sourceLabels: { type: 'array', items: str({ pattern: /^[a-zA-Z_][a-zA-Z0-9_]*$/ }) },
                targetLabel: str(),
                replacement: str(),
                regex: str(),
              }),
            },
          }),
        },
      },
      ['selector'],
    ),
  },
  ['apiVersion', 'kind', 'metadata', 'spec'],
);

/** PrometheusRule (prometheusrules.monitoring.coreos.com), the fields used. */
const PROMETHEUS_RULE: Schema = obj(
  {
    apiVersion: str({ enum: ['monitoring.coreos.com/v1'] }),
    kind: str({ enum: ['PrometheusRule'] }),
    metadata: METADATA,
    spec: obj({
      groups: {
        type: 'array',
        items: obj(
          {
            name: str({ pattern: /^.+$/ }),
            interval: str({ pattern: DURATION }),
            rules: {
              type: 'array',
              items: obj(
                {
                  alert: str(),
                  record: str(),
                  // IntOrString in the CRD; always a string here.
                  expr: str({ pattern: /\S/ }),
                  for: str({ pattern: DURATION }),
                  labels: { type: 'map' },
                  annotations: { type: 'map' },
                },
                ['expr'],
              ),
            },
          },
          ['name', 'rules'],
        ),
      },
    }),
  },
  ['apiVersion', 'kind', 'metadata', 'spec'],
);

/** Every violation of the schema in `value`, with its path. */
function violations(schema: Schema, value: unknown, at = '$'): string[] {
  switch (schema.type) {
    case 'object': {
      if (value === null || typeof value !== 'object' || Array.isArray(value)) return [`${at}: not an object`];
      const v = value as Record<string, unknown>;
      const out = Object.keys(v)
        .filter((k) => !(k in schema.properties))
        .map((k) => `${at}.${k}: unknown field`);
      for (const r of schema.required ?? []) if (!(r in v)) out.push(`${at}.${r}: required`);
      for (const [k, s] of Object.entries(schema.properties)) if (k in v) out.push(...violations(s, v[k], `${at}.${k}`));
      return out;
    }
    case 'map':
      if (value === null || typeof value !== 'object' || Array.isArray(value)) return [`${at}: not a map`];
      return Object.entries(value as Record<string, unknown>).filter(([, x]) => typeof x !== 'string').map(([k]) => `${at}.${k}: not a string`);
    case 'array':
      if (!Array.isArray(value)) return [`${at}: not an array`];
      if (value.length < (schema.minItems ?? 0)) return [`${at}: fewer than ${schema.minItems} items`];
      return value.flatMap((x, i) => violations(schema.items, x, `${at}[${i}]`));
    case 'string':
      if (typeof value !== 'string') return [`${at}: not a string`];
      if (schema.pattern !== undefined && !schema.pattern.test(value)) return [`${at}: "${value}" does not match ${schema.pattern}`];
      if (schema.enum !== undefined && !schema.enum.includes(value)) return [`${at}: "${value}" not one of ${schema.enum.join(', ')}`];
      return [];
    case 'boolean':
      return typeof value === 'boolean' ? [] : [`${at}: not a boolean`];
  }
}

// ------------------------------------------------------------------------------ the files

interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  spec?: Record<string, unknown>;
  data?: Record<string, string>;
}
interface RuleGroup {
  name: string;
  rules: Array<{ alert: string; expr: string; for: string; labels: Record<string, string>; annotations: Record<string, string> }>;
}

const DIR = ['deploy', 'kubernetes', 'monitoring'];
const load = (file: string): K8sObject[] => parseAllDocuments(readRepoFile(...DIR, file)).map((d) => d.toJS() as K8sObject);
const rule = load('prometheusrule.yaml');
const monitor = load('podmonitor.yaml');
const dashboards = load('grafana-dashboards.yaml');
const groups = (rule[0]!.spec as { groups: RuleGroup[] }).groups;

function generate(args: string[]) {
  return spawnSync(process.execPath, [repoPath('deploy', 'generate.mjs'), ...args], { encoding: 'utf8', timeout: 60_000 });
}

describe('deploy/kubernetes/monitoring: generated', () => {
  it('generated committed files are what the generator writes', () => {
    const r = generate(['--check']);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
  });

  it('generated drift is reported', () => {
    // The check compares for real: a copy with one changed threshold is stale.
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'synfin-gen-'));
    try {
      expect(generate(['--out', dir]).status).toBe(0);
      const file = path.join(dir, 'prometheusrule.yaml');
      fs.writeFileSync(file, fs.readFileSync(file, 'utf8').replace('> 600', '> 601'));
      const r = generate(['--check', '--out', dir]);
      expect(r.status).toBe(1);
      expect(r.stderr).toMatch(/prometheusrule\.yaml is not what deploy\/generate\.mjs writes/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('prometheusRule: groups are alerts yml', () => {
    const source = parse(readRepoFile('deploy', 'prometheus', 'alerts.yml')) as { groups: RuleGroup[] };
    expect(groups).toEqual(source.groups);
  });

  it('dashboards are one config map per dashboard labelled for grafanas sidecar', () => {
    const files = fs.readdirSync(repoPath('grafana', 'dashboards')).sort();
    expect(dashboards.map((d) => Object.keys(d.data ?? {})[0]).sort()).toEqual(files);
    for (const cm of dashboards) {
      expect(`${cm.apiVersion}/${cm.kind}`).toBe('v1/ConfigMap');
      expect(cm.metadata.labels?.grafana_dashboard).toBe('1');
      const [file, json] = Object.entries(cm.data!)[0]!;
      expect(json, file).toBe(readRepoFile('grafana', 'dashboards', file));
    }
  });

});

describeIfKubectl('deploy/kubernetes/monitoring: with kubectl kustomize', () => {
  it('kustomization renders every object', () => {
    const kinds = kustomize<K8sObject>(...DIR).map((d) => d.kind);
    expect(kinds.sort()).toEqual([...dashboards.map(() => 'ConfigMap'), 'PodMonitor', 'PrometheusRule'].sort());
  });

  it('podMonitor: selects the pods of the component on its metrics port', () => {
    const dep = kustomize<{ kind: string; spec: { template: { metadata: { labels: Record<string, string> }; spec: { initContainers: Array<{ name: string; ports?: Array<{ name: string }> }> } } } }>(
      'deploy',
      'kubernetes',
      'example',
    ).find((d) => d.kind === 'Deployment')!;
    const spec = monitor[0]!.spec as {
      selector: { matchLabels: Record<string, string> };
      namespaceSelector: { any: boolean };
      podMetricsEndpoints: Array<{ port: string; path: string; relabelings: Array<{ targetLabel: string; replacement: string }> }>;
    };
    for (const [k, v] of Object.entries(spec.selector.matchLabels)) expect(dep.spec.template.metadata.labels[k], k).toBe(v);
    expect(spec.namespaceSelector.any).toBe(true);
    const ports = dep.spec.template.spec.initContainers.flatMap((c) => (c.ports ?? []).map((p) => p.name));
    expect(ports).toContain(spec.podMetricsEndpoints[0]!.port);
    expect(spec.podMetricsEndpoints[0]!.path).toBe('/metrics');
    // The job the rules select (job="synfin" on up, process_*, nodejs_*).
    expect(spec.podMetricsEndpoints[0]!.relabelings).toContainEqual({ action: 'replace', targetLabel: 'job', replacement: 'synfin' });
    expect(groups.flatMap((g) => g.rules).some((r) => r.expr.includes('job="synfin"'))).toBe(true);
  });
});

describe('deploy/kubernetes/monitoring: the Prometheus Operator CRDs', () => {
  it('podMonitor: has the crd shape', () => {
    expect(monitor).toHaveLength(1);
    expect(violations(POD_MONITOR, monitor[0])).toEqual([]);
  });

  it('prometheusRule: has the crd shape', () => {
    expect(rule).toHaveLength(1);
    expect(violations(PROMETHEUS_RULE, rule[0])).toEqual([]);
    expect(groups.flatMap((g) => g.rules).length).toBeGreaterThanOrEqual(15);
  });

  it('schema catches what the api server would not accept', () => {
    // The checker itself: an unknown field, a bad duration, a wrong kind, a missing selector.
    const bad = structuredClone(monitor[0]!) as K8sObject & { spec: Record<string, unknown> };
    bad.kind = 'ServiceMonitor';
    (bad.spec.podMetricsEndpoints as Array<Record<string, unknown>>)[0]!.interval = '15 seconds';
    (bad.spec.podMetricsEndpoints as Array<Record<string, unknown>>)[0]!.targetPort = 9477;
    delete bad.spec.selector;
    expect(violations(POD_MONITOR, bad)).toEqual([
      '$.kind: "ServiceMonitor" not one of PodMonitor',
      '$.spec.selector: required',
      '$.spec.podMetricsEndpoints[0].targetPort: unknown field',
      '$.spec.podMetricsEndpoints[0].interval: "15 seconds" does not match ' + String(DURATION),
    ]);
  });

});

describe('deploy/generate.mjs options', () => {
  let dir: string;
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'synfin-gen-'));
  });
  afterAll(() => {
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('options job runbook grafana and labels reach every rule and the pod monitor', () => {
    const r = generate(['--out', dir, '--job', 'kube/synfin', '--runbook-url', 'https://wiki.example/synfin.md', '--grafana-url', 'https://grafana.example/', '--label', 'release=kps']);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const [pr] = parseAllDocuments(fs.readFileSync(path.join(dir, 'prometheusrule.yaml'), 'utf8')).map((d) => d.toJS() as K8sObject);
    const [pm] = parseAllDocuments(fs.readFileSync(path.join(dir, 'podmonitor.yaml'), 'utf8')).map((d) => d.toJS() as K8sObject);
    const rules = (pr!.spec as { groups: RuleGroup[] }).groups.flatMap((g) => g.rules);
    const text = JSON.stringify(rules);
    expect(text).not.toContain('job=\\"synfin\\"');
    expect(text).toContain('job=\\"kube/synfin\\"');
    for (const x of rules) {
      expect(x.annotations.runbook_url).toBe(`https://wiki.example/synfin.md#${x.alert.toLowerCase()}`);
      expect(x.annotations.dashboard_url).toMatch(/^https:\/\/grafana\.example\/d\/synfin-/);
    }
    expect(pr!.metadata.labels?.release).toBe('kps');
    expect(pm!.metadata.labels?.release).toBe('kps');
    expect(JSON.stringify(pm!.spec)).toContain('"replacement":"kube/synfin"');
    expect(violations(PROMETHEUS_RULE, pr)).toEqual([]);
  });

  it('options bad exit2 with one line', () => {
    for (const args of [['--job'], ['--label', 'novalue'], ['--frobnicate']]) {
      const r = generate(['--out', dir, ...args]);
      expect(r.status, args.join(' ')).toBe(2);
      expect(r.stderr.trim().split('\n'), args.join(' ')).toHaveLength(1);
    }
  });
});

describeIfPromtool('deploy/kubernetes/monitoring: promtool', () => {
  it('promtool check rules the prometheus rules groups', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'synfin-pr-'));
    try {
      const file = path.join(dir, 'rules.yml');
      fs.writeFileSync(file, stringify({ groups }));
      const r = runPromtool(['check', 'rules', file]);
      expect(r.output).toContain(`SUCCESS: ${groups.flatMap((g) => g.rules).length} rules found`);
      expect(r.code).toBe(0);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
