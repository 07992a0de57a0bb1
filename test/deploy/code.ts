/**
 * What the deployment files are checked against: the metrics synfin really exports (built from
 * src/observability/metrics.ts, prom-client's default metrics included), its HTTP app, its
 * configuration code, and the files of the repository.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from '../../src/http/app.js';
import { CLOSE_REASONS, createMetrics, UPSTREAM_RESULTS } from '../../src/observability/metrics.js';
import { STATE_NAMES } from '../../src/tcp/state.js';
import type { ConnectionSource } from '../../src/observability/table.js';
import { ManualClock } from '../../src/stack/clock.js';
import { EventHub } from '../../src/stack/events.js';
import type { Matcher, Selector } from './promql.js';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

export function repoPath(...parts: string[]): string {
  return path.join(REPO, ...parts);
}

export function readRepoFile(...parts: string[]): string {
  return fs.readFileSync(repoPath(...parts), 'utf8');
}

/** Series name (x, x_bucket, x_sum, x_count) → label name → the values exported. */
export type Catalogue = Map<string, Map<string, Set<string>>>;

function zeroCounters() {
  return {
    segmentsIn: 0,
    segmentsOut: 0,
    bytesClientToUpstream: 0,
    bytesUpstreamToClient: 0,
    tunRxPackets: 0,
    tunRxBytes: 0,
    tunTxPackets: 0,
    tunTxBytes: 0,
  };
}

function emptySource(): ConnectionSource {
  return { rows: () => [], forEachSample: () => {} };
}

/**
 * Families named in the product contract (../shared/CONTRACT.md, the README's metrics table) that
 * dashboards and alert rules use while the code that exports them is still on its way: label →
 * the values the contract gives (an empty list: any value, e.g. service names). Used only for a
 * name the registry does not export; once it does, the registry's own labels are what count.
 */
export const CONTRACT_METRICS: Record<string, Record<string, readonly string[]>> = (() => {
  const service = { service: [] as string[] };
  const histogram = (name: string, labels: Record<string, readonly string[]>) => ({
    [`${name}_bucket`]: { ...labels, le: [] },
    [`${name}_sum`]: labels,
    [`${name}_count`]: labels,
  });
  return {
    synfin_ephemeral_ports: {},
    synfin_service_connections: { ...service, state: STATE_NAMES },
    synfin_service_connections_waiting: { ...service, on: ['app', 'upstream'] },
    synfin_service_oldest_waiting_seconds: { ...service, on: ['app', 'upstream'] },
    ...histogram('synfin_service_connect_duration_seconds', { ...service, result: UPSTREAM_RESULTS }),
    synfin_service_connections_closed_total: { ...service, reason: CLOSE_REASONS },
    synfin_service_bytes_total: { ...service, direction: ['client_to_upstream', 'upstream_to_client'] },
    synfin_service_resets_total: { ...service, direction: ['sent', 'received'] },
  };
})();

/**
 * Every series synfin's registry exports from the start (all bounded label sets at zero), plus,
 * unless `contract` is false, the CONTRACT_METRICS the registry does not export yet.
 */
export async function metricCatalogue(contract = true): Promise<Catalogue> {
  const catalogue = await registryCatalogue();
  if (contract) {
    for (const [name, labels] of Object.entries(CONTRACT_METRICS)) {
      if (catalogue.has(name)) continue;
      catalogue.set(name, new Map(Object.entries(labels).map(([l, values]) => [l, new Set(values.length === 0 ? [ANY_VALUE] : values)])));
    }
  }
  return catalogue;
}

/** A label of CONTRACT_METRICS whose values the contract leaves open. */
const ANY_VALUE = '\u0000any';

async function registryCatalogue(): Promise<Catalogue> {
  const metrics = createMetrics(
    new EventHub(),
    { clock: new ManualClock(1_000), forEachConnection: () => {}, counters: zeroCounters, upstreamSockets: () => ({}) },
    '0.0.0-test',
  );
  try {
    const catalogue: Catalogue = new Map();
    for (const metric of await metrics.registry.getMetricsAsJSON()) {
      // A metric with no sample yet (none here: every series starts at zero) still has a name.
      if (!catalogue.has(metric.name)) catalogue.set(metric.name, new Map());
      for (const sample of metric.values) {
        const name = (sample as { metricName?: string }).metricName ?? metric.name;
        let labels = catalogue.get(name);
        if (labels === undefined) {
          labels = new Map();
          catalogue.set(name, labels);
        }
        for (const [label, value] of Object.entries(sample.labels)) {
          let values = labels.get(label);
          if (values === undefined) {
            values = new Set();
            labels.set(label, values);
          }
          values.add(String(value));
        }
      }
    }
    return catalogue;
  } finally {
    metrics.close();
  }
}

/**
 * Labels Prometheus attaches to every scraped series (never checked against the registry):
 * job and instance always, namespace and pod in Kubernetes (the PodMonitor and
 * prometheus-kubernetes.yml).
 */
export const TARGET_LABELS = new Set(['job', 'instance', 'namespace', 'pod']);

/**
 * Problems of one selector against the catalogue: an unknown metric, an unknown label, or a
 * literal label value the metric never exports (for =, != and plain alternations in =~/!~).
 */
export function selectorProblems(sel: Selector, catalogue: Catalogue, extraMetrics: ReadonlySet<string> = new Set()): string[] {
  if (sel.metric === '') return ['a selector without a metric name'];
  if (extraMetrics.has(sel.metric)) return [];
  const labels = catalogue.get(sel.metric);
  if (labels === undefined) return [`unknown metric ${sel.metric}`];
  const problems: string[] = [];
  for (const m of sel.matchers) {
    if (TARGET_LABELS.has(m.name)) continue;
    const values = labels.get(m.name);
    if (values === undefined) {
      problems.push(`${sel.metric} has no label ${m.name}`);
      continue;
    }
    if (values.has(ANY_VALUE)) continue;
    for (const v of literalValues(m)) {
      if (!values.has(v)) problems.push(`${sel.metric}{${m.name}} never takes the value "${v}"`);
    }
  }
  return problems;
}

/** The literal values a matcher names: the value of = and !=, the alternatives of a|b|c. */
function literalValues(m: Matcher): string[] {
  if (m.op === '=' || m.op === '!=') return [m.value];
  if (m.value.includes('$')) return [];
  // A plain alternation of literals (no other regex syntax): each alternative must exist.
  if (/^[^.*+?()[\]{}^$\\|]+(\|[^.*+?()[\]{}^$\\|]+)*$/.test(m.value)) return m.value.split('|');
  return [];
}

/** synfin's HTTP app with a fixed readiness (/readyz and synfin_ready), for probing the paths the manifests use. */
export function httpApp(ready: boolean) {
  const metrics = createMetrics(
    new EventHub(),
    { clock: new ManualClock(1_000), forEachConnection: () => {}, counters: zeroCounters, ready: () => ready },
    '0.0.0-test',
  );
  const app = build({
    registry: metrics.registry,
    openMetricsRegistry: metrics.openMetricsRegistry,
    connections: emptySource(),
    events: new EventHub(),
    isReady: () => ready,
    describe: () => null,
  });
  return {
    app,
    async close() {
      await app.close();
      metrics.close();
    },
  };
}
