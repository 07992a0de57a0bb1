#!/usr/bin/env node
// Generates synfin's Grafana dashboards, so every panel is built the same way:
//   node grafana/generate.mjs           writes grafana/dashboards/*.json
//   node grafana/generate.mjs --check   exits 1 if the committed JSON differs from what it would write
//
// Every panel and query uses the `datasource` template variable; every PromQL selector selects
// job=~"$job", namespace=~"$namespace", pod=~"$pod" and instance=~"$instance" (variables filled
// from synfin_build_info). namespace and pod are the labels a Kubernetes scrape adds (the
// PodMonitor, prometheus-kubernetes.yml); under a plain Prometheus they have no values, "All"
// is .*, which also matches a missing label, and job and instance select the targets. Metric
// names and label values are synfin's product contract (src/observability/metrics.ts,
// CONTRACT.md); test/deploy checks them.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const outDir = path.join(here, 'dashboards');

const DS = { type: 'prometheus', uid: '${datasource}' };
/**
 * synfin's own API, read through the Infinity data source plugin (yesoreyeram-infinity-datasource):
 * what metrics cannot carry (pids, fds, addresses: CONTRACT.md keeps labels bounded). Grafana's
 * server fetches `http://$instance/...`, the scrape address Prometheus uses (compose: synfin:9477,
 * Kubernetes: the pod's IP:9477).
 */
export const INFINITY = 'yesoreyeram-infinity-datasource';
const API_DS = { type: INFINITY, uid: '${api}' };
const TARGET_LABELS = 'job=~"$job",namespace=~"$namespace",pod=~"$pod",instance=~"$instance"';
const RI = '$__rate_interval';

/** `metric{job=~"$job",instance=~"$instance",<matchers>}` */
function sel(metric, matchers = '') {
  return `${metric}{${TARGET_LABELS}${matchers === '' ? '' : `,${matchers}`}}`;
}
function rate(metric, matchers = '') {
  return `rate(${sel(metric, matchers)}[${RI}])`;
}
/** histogram_quantile over the rate of a histogram's buckets, by le (plus `by`). */
function quantile(q, histogram, matchers = '', by = []) {
  return `histogram_quantile(${q}, sum by (${['le', ...by].join(', ')}) (${rate(`${histogram}_bucket`, matchers)}))`;
}

function target(expr, legendFormat, extra = {}) {
  return { datasource: DS, editorMode: 'code', expr, legendFormat, range: true, ...extra };
}

// ------------------------------------------------------------------------------ panels

function fieldConfig(unit, { min, max, thresholds, decimals, stack, fill, noValue } = {}) {
  const defaults = {
    unit,
    color: { mode: thresholds === undefined ? 'palette-classic' : 'thresholds' },
    custom: {
      drawStyle: 'line',
      lineWidth: 1,
      fillOpacity: fill ?? (stack ? 30 : 10),
      showPoints: 'never',
      spanNulls: false,
      stacking: { mode: stack ? 'normal' : 'none', group: 'A' },
      axisSoftMin: 0,
    },
    thresholds: {
      mode: 'absolute',
      steps: thresholds ?? [{ color: 'green', value: null }],
    },
  };
  if (min !== undefined) defaults.min = min;
  if (max !== undefined) defaults.max = max;
  if (decimals !== undefined) defaults.decimals = decimals;
  if (noValue !== undefined) defaults.noValue = noValue;
  return { defaults, overrides: [] };
}

function timeseries({ title, description, unit, targets, stack = false, ...opts }) {
  return {
    type: 'timeseries',
    title,
    description,
    datasource: DS,
    fieldConfig: fieldConfig(unit, { stack, ...opts }),
    options: {
      legend: { displayMode: 'table', placement: 'bottom', showLegend: true, calcs: ['lastNotNull', 'max'] },
      tooltip: { mode: 'multi', sort: 'desc' },
    },
    targets,
    w: 12,
    h: 8,
  };
}

function stat({ title, description, unit, targets, thresholds, ...opts }) {
  const fc = fieldConfig(unit, { thresholds, ...opts });
  delete fc.defaults.custom;
  return {
    type: 'stat',
    title,
    description,
    datasource: DS,
    fieldConfig: fc,
    options: {
      reduceOptions: { calcs: ['lastNotNull'], fields: '', values: false },
      colorMode: 'background',
      graphMode: 'area',
      justifyMode: 'auto',
      textMode: 'auto',
    },
    targets,
    w: 6,
    h: 4,
  };
}

function gauge({ title, description, unit, targets, thresholds, min, max }) {
  const fc = fieldConfig(unit, { thresholds, min, max });
  delete fc.defaults.custom;
  return {
    type: 'gauge',
    title,
    description,
    datasource: DS,
    fieldConfig: fc,
    options: {
      reduceOptions: { calcs: ['lastNotNull'], fields: '', values: false },
      showThresholdLabels: false,
      showThresholdMarkers: true,
    },
    targets,
    w: 6,
    h: 8,
  };
}

function heatmap({ title, description, unit, targets }) {
  return {
    type: 'heatmap',
    title,
    description,
    datasource: DS,
    fieldConfig: { defaults: { unit, custom: { hideFrom: { legend: false, tooltip: false, viz: false } } }, overrides: [] },
    options: {
      calculate: false,
      cellGap: 1,
      color: { mode: 'scheme', scheme: 'Oranges', scale: 'exponential', exponent: 0.5, steps: 64, fill: 'dark-orange', reverse: false },
      exemplars: { color: 'rgba(255,0,255,0.7)' },
      filterValues: { le: 1e-9 },
      legend: { show: true },
      rowsFrame: { layout: 'auto' },
      tooltip: { mode: 'single', showColorScale: false, yHistogram: true },
      yAxis: { axisPlacement: 'left', reverse: false, unit },
    },
    targets,
    w: 12,
    h: 8,
  };
}

/**
 * A table of instant queries, one row per target (namespace, pod, instance): the queries are
 * merged on those labels, each value column named by `columns` (in target order).
 */
function table({ title, description, unit, targets, columns, hidden = [], links = [], overrides = [], w = 24, h = 8, sortBy }) {
  const renames = Object.fromEntries(columns.map((c, i) => [columns.length === 1 ? 'Value' : `Value #${String.fromCharCode(65 + i)}`, c]));
  return {
    type: 'table',
    title,
    description,
    datasource: DS,
    fieldConfig: {
      defaults: { unit, links, custom: { align: 'auto', cellOptions: { type: 'auto' }, inspect: false }, thresholds: { mode: 'absolute', steps: [{ color: 'green', value: null }] } },
      overrides,
    },
    options: { showHeader: true, cellHeight: 'sm', footer: { show: false, reducer: ['sum'], countRows: false, fields: '' }, sortBy: sortBy === undefined ? [] : [{ displayName: sortBy, desc: true }] },
    transformations: [
      { id: 'merge', options: {} },
      { id: 'organize', options: { excludeByName: Object.fromEntries(['Time', ...hidden].map((c) => [c, true])), renameByName: renames } },
    ],
    targets: targets.map((t) => ({ ...t, format: 'table', instant: true, range: false })),
    w,
    h,
  };
}

/** A field override: the column `name` in `unit` (its other settings from the table). */
function columnUnit(name, unit, extra = []) {
  return { matcher: { id: 'byName', options: name }, properties: [{ id: 'unit', value: unit }, ...extra] };
}

/**
 * A table of rows of synfin's API (one panel per instance: Infinity reads one URL per query, so
 * the panel repeats over $instance). `columns`: [selector, column name, Infinity type]; the
 * column names are identifiers, so `computed` expressions (govaluate, Infinity's computed
 * columns) can name them.
 */
function apiTable({ title, description, url, rootSelector, columns, computed = [], overrides = [], w = 24, h = 10, sortBy }) {
  return {
    type: 'table',
    title,
    description,
    datasource: API_DS,
    repeat: 'instance',
    repeatDirection: 'v',
    fieldConfig: {
      defaults: { unit: 'none', custom: { align: 'auto', cellOptions: { type: 'auto' }, inspect: false }, thresholds: { mode: 'absolute', steps: [{ color: 'green', value: null }] } },
      overrides,
    },
    options: { showHeader: true, cellHeight: 'sm', footer: { show: false, reducer: ['sum'], countRows: false, fields: '' }, sortBy: sortBy === undefined ? [] : [{ displayName: sortBy, desc: true }] },
    targets: [
      {
        datasource: API_DS,
        type: 'json',
        source: 'url',
        format: 'table',
        parser: 'backend',
        url,
        url_options: { method: 'GET', data: '' },
        root_selector: rootSelector,
        columns: columns.map(([selector, text, type]) => ({ selector, text, type })),
        computed_columns: computed.map(([selector, text, type]) => ({ selector, text, type })),
        filters: [],
      },
    ],
    w,
    h,
  };
}

/**
 * Connections waiting on the app with the process holding each (its pid, command and fd, from the
 * app's fd table: README "Which process holds the app's socket"), for one instance.
 */
function waitingByProcessTable() {
  return apiTable({
    title: 'Connections waiting on the app, by process: $instance',
    description:
      "Each connection the app has not closed (its socket in CLOSE_WAIT), and which process holds it: \"held by pid 4242 python3, fd 7\" (synfin reads the app's fd table; appProcessSource says why none is named: not_visible, not_permitted, no_socket, inferred). " +
      'Read from synfin\'s API (/api/connections?waitingOn=app) through the Infinity data source, one table per instance: Grafana must reach $instance (port 9477). The same rows are on the live page.',
    url: 'http://${instance}/api/connections?waitingOn=app&limit=1000',
    rootSelector: 'connections',
    columns: [
      ['service', 'service', 'string'],
      ['appProcess.pid', 'pid', 'number'],
      ['appProcess.command', 'command', 'string'],
      ['appProcess.fd', 'fd', 'number'],
      ['appProcessSource', 'appProcessSource', 'string'],
      ['waitingSeconds', 'waitingSeconds', 'number'],
      ['destination', 'destination', 'string'],
      ['id', 'id', 'number'],
    ],
    // The live page's words; `kernel` is the one source with a process.
    computed: [["appProcessSource == 'kernel' ? 'held by pid ' + pid + ' ' + command + ', fd ' + fd : 'no process: ' + appProcessSource", 'heldBy', 'string']],
    overrides: [columnUnit('waitingSeconds', 's')],
    sortBy: 'waitingSeconds',
  });
}

function row(title) {
  return { type: 'row', title, collapsed: false, panels: [], w: 24, h: 1 };
}

/** Places panels left to right, top to bottom, and numbers them. */
function layout(panels) {
  let x = 0;
  let y = 0;
  let rowHeight = 0;
  return panels.map((p, i) => {
    const { w, h, ...rest } = p;
    if (p.type === 'row' || x + w > 24) {
      y += rowHeight;
      x = 0;
      rowHeight = 0;
    }
    const placed = { id: i + 1, gridPos: { h, w, x, y }, ...rest };
    if (Array.isArray(placed.targets)) {
      placed.targets = placed.targets.map((t, j) => ({ ...t, refId: String.fromCharCode(65 + j) }));
    }
    x += w;
    rowHeight = Math.max(rowHeight, h);
    if (p.type === 'row') {
      y += h;
      x = 0;
      rowHeight = 0;
    }
    return placed;
  });
}

// ------------------------------------------------------------------------------ variables

const datasourceVariable = {
  type: 'datasource',
  name: 'datasource',
  label: 'Data source',
  query: 'prometheus',
  current: {},
  hide: 0,
  includeAll: false,
  multi: false,
  options: [],
  refresh: 1,
  regex: '',
  skipUrlSync: false,
};

/** The Infinity data source that reads synfin's API (grafana/provisioning/datasources/synfin-api.yaml). */
const apiDatasourceVariable = { ...datasourceVariable, name: 'api', label: 'synfin API', query: INFINITY };

function queryVariable(name, label, query, allValue = null) {
  // No allValue for job and instance: "All" expands to the list of values found, so the
  // selectors never reach beyond synfin's targets (process_* and nodejs_* exist in every Node.js
  // program). namespace, pod and service take .* (the job still bounds them), which also
  // matches series without the label: a plain Prometheus has no namespace or pod.
  return {
    type: 'query',
    name,
    label,
    datasource: DS,
    query,
    definition: query,
    current: { selected: true, text: ['All'], value: ['$__all'] },
    hide: 0,
    includeAll: true,
    multi: true,
    allValue,
    options: [],
    refresh: 2,
    regex: '',
    skipUrlSync: false,
    sort: 1,
  };
}

const jobVariable = queryVariable('job', 'Job', 'label_values(synfin_build_info, job)');
const namespaceVariable = queryVariable('namespace', 'Namespace', 'label_values(synfin_build_info{job=~"$job"}, namespace)', '.*');
const podVariable = queryVariable('pod', 'Pod', 'label_values(synfin_build_info{job=~"$job",namespace=~"$namespace"}, pod)', '.*');
const instanceVariable = queryVariable(
  'instance',
  'Instance',
  'label_values(synfin_build_info{job=~"$job",namespace=~"$namespace",pod=~"$pod"}, instance)',
);
const serviceVariable = queryVariable('service', 'Service', `label_values(${sel('synfin_service_connections')}, service)`, '.*');
const TARGET_VARIABLES = [datasourceVariable, jobVariable, namespaceVariable, podVariable, instanceVariable];

function dashboard({ uid, title, description, tags, panels, variables, links }) {
  const usesApi = variables.includes(apiDatasourceVariable);
  return {
    __requires: [
      { type: 'grafana', id: 'grafana', name: 'Grafana', version: '10.4.0' },
      { type: 'datasource', id: 'prometheus', name: 'Prometheus', version: '1.0.0' },
      ...(usesApi ? [{ type: 'datasource', id: INFINITY, name: 'Infinity', version: '2.0.0' }] : []),
    ],
    annotations: { list: [] },
    description,
    editable: true,
    fiscalYearStartMonth: 0,
    graphTooltip: 1,
    id: null,
    links,
    panels: layout(panels),
    refresh: '30s',
    schemaVersion: 39,
    tags,
    templating: { list: variables },
    time: { from: 'now-1h', to: 'now' },
    timepicker: {},
    timezone: 'browser',
    title,
    uid,
    version: 1,
    weekStart: '',
  };
}

/** A link to the live page of one pod, through `kubectl port-forward` (its tooltip says how). */
const livePageLink = {
  title: 'Live page of a pod (port-forward)',
  type: 'link',
  url: 'http://127.0.0.1:9477/',
  icon: 'external link',
  includeVars: false,
  keepTime: false,
  asDropdown: false,
  targetBlank: true,
  tags: [],
  tooltip: 'First run: kubectl -n $namespace port-forward pod/$pod 9477:9477   (one pod; outside Kubernetes open the --listen address of $instance)',
};

function dashboardLink(title, uid) {
  return {
    title,
    type: 'link',
    url: `/d/${uid}`,
    icon: 'dashboard',
    includeVars: true,
    keepTime: true,
    asDropdown: false,
    targetBlank: false,
    tags: [],
    tooltip: '',
  };
}

// ------------------------------------------------------------------------------ overview

const q = (n) => `p${Math.round(n * 100)}`;
const QUANTILES = [0.5, 0.9, 0.99];

function overview() {
  const panels = [
    row('Connections'),
    timeseries({
      title: 'Connections by state',
      unit: 'short',
      stack: true,
      description:
        "Connections of synfin's userspace stack in each RFC 9293 state; this is the app leg and mirrors the app's sockets (LISTEN, always 1, left out). " +
        'ESTABLISHED follows the load. A growing FIN_WAIT_2 band: destinations closed and the app has not, so its sockets sit in CLOSE_WAIT (the app is at fault: see the leaks dashboard). ' +
        'A growing CLOSE_WAIT band: the app closed and destinations have not (the destination side). ' +
        'TIME_WAIT follows destination-first closes and costs synfin only memory.',
      targets: [target(`sum by (state) (${sel('synfin_tcp_connections', 'state!="LISTEN"')})`, '{{state}}')],
    }),
    timeseries({
      title: 'State transitions per second',
      unit: 'cps',
      noValue: '0',
      description:
        'Transitions of the userspace stack per second, by from → to (series at zero are hidden). ' +
        'LISTEN → SYN_RECEIVED is the rate of accepted SYNs. ESTABLISHED → CLOSE_WAIT: the app closed first; ESTABLISHED → FIN_WAIT_1: the destination closed first. ' +
        'Transitions to CLOSED from ESTABLISHED or SYN_RECEIVED are resets and aborts: if they rise, check the resets panel for which side.',
      targets: [target(`sum by (from, to) (${rate('synfin_tcp_state_transitions_total')}) > 0`, '{{from}} → {{to}}')],
    }),
    timeseries({
      title: 'Connections opened and closed per second',
      unit: 'cps',
      description:
        'New connections (SYNs accepted for dialling) by address family, and closes by reason. Opened staying above closed means connections accumulate: check the leaks dashboard. ' +
        'fin = a clean close; reset_received = the app reset; reset_sent = synfin reset the app (the destination reset or refused, or policy); ' +
        'idle_timeout / retransmit_timeout = synfin gave up on the connection; upstream_failed = the destination could not be reached.',
      targets: [
        target(`sum by (family) (${rate('synfin_tcp_connections_opened_total')})`, 'opened {{family}}'),
        target(`sum by (reason) (${rate('synfin_tcp_connections_closed_total')})`, 'closed: {{reason}}'),
      ],
    }),
    timeseries({
      title: 'Connection duration',
      unit: 's',
      description:
        'How long connections live, SYN to CLOSED (50th, 90th and 99th percentile of those that closed). ' +
        'A p99 that keeps climbing while the app is expected to use short connections means some connections are held open: the leaks dashboard shows by whom.',
      targets: QUANTILES.map((n) => target(quantile(n, 'synfin_tcp_connection_duration_seconds'), q(n))),
    }),

    row('Handshake and upstream connect'),
    timeseries({
      title: 'Handshake latency (app side)',
      unit: 's',
      description:
        "From the app's SYN to the handshake's final ACK, for handshakes that completed (50th, 90th, 99th percentile). " +
        'synfin answers a SYN only once its upstream connect succeeded, so this is the upstream connect time plus synfin\'s own delay. ' +
        'If it tracks the upstream connect latency, the destination or the network toward it sets the pace; a gap between the two is synfin\'s own delay (event-loop lag, SYN cookies). Alert SynfinHandshakeSlow: p99 above 1 s.',
      targets: QUANTILES.map((n) => target(quantile(n, 'synfin_tcp_handshake_duration_seconds', 'result="ok"'), q(n))),
    }),
    heatmap({
      title: 'Handshake latency heatmap',
      unit: 's',
      description:
        'Distribution of completed handshake times over time, by histogram bucket. A second band higher up is a slow subset (some destinations, or a slow path); ' +
        'the whole distribution moving up points at synfin itself or the network as a whole.',
      targets: [
        target(`sum by (le) (${rate('synfin_tcp_handshake_duration_seconds_bucket', 'result="ok"')})`, '{{le}}', { format: 'heatmap' }),
      ],
    }),
    timeseries({
      title: 'Handshake outcomes per second',
      unit: 'cps',
      description:
        'Handshakes by result. ok is normal. upstream_refused / upstream_timeout / upstream_unreachable: the destination refused or could not be reached and the app was told so (RST or ICMP): the destination\'s side. ' +
        'timeout: the app never completed the handshake (the app\'s side); reset: the app reset during the handshake.',
      targets: [target(`sum by (result) (${rate('synfin_tcp_handshake_duration_seconds_count')})`, '{{result}}')],
    }),
    timeseries({
      title: 'Upstream connect latency',
      unit: 's',
      description:
        "Time for synfin's kernel socket to connect to the destination (successful connects; 50th, 90th, 99th percentile). " +
        'High values belong to the destination or the network toward it: a kernel connect has no synfin code in it. Compare with the handshake latency.',
      targets: QUANTILES.map((n) => target(quantile(n, 'synfin_upstream_connect_duration_seconds', 'result="ok"'), q(n))),
    }),
    timeseries({
      title: 'Upstream connect failures per second',
      unit: 'cps',
      description:
        'Failed upstream connects by result. refused: nothing listens at the destination (a wrong target in the app, or the service is down). ' +
        'timeout / unreachable: the network, a firewall or routing toward the destination. error: local to synfin\'s host (ephemeral ports exhausted, see TIME-WAIT on upstream sockets, or a bad --upstream-bind). ' +
        'Alert SynfinUpstreamConnectFailures: more than 10% failing for 10 minutes.',
      targets: [target(`sum by (result) (${rate('synfin_upstream_connect_duration_seconds_count', 'result!="ok"')})`, '{{result}}')],
    }),
    timeseries({
      title: 'Upstream connect failure ratio',
      unit: 'percentunit',
      min: 0,
      max: 1,
      description:
        'Share of upstream connects that fail. Near 0 is healthy; a step up on every destination points at the network or synfin\'s host, a step up for some at those destinations (the failures panel and /api/events tell which). ' +
        'Alert SynfinUpstreamConnectFailures fires above 10% for 10 minutes.',
      targets: [
        target(
          `sum(${rate('synfin_upstream_connect_duration_seconds_count', 'result!="ok"')}) / sum(${rate('synfin_upstream_connect_duration_seconds_count')})`,
          'failing',
        ),
      ],
    }),

    row('TIME-WAIT'),
    timeseries({
      title: "TIME-WAIT in synfin's stack (app leg)",
      unit: 'short',
      description:
        'Connections synfin holds in TIME-WAIT after destination-first closes (synfin closed first toward the app). Each lasts 2×MSL (60 s by default), costs a small record in synfin\'s memory and ties up no port. ' +
        'It follows the rate of destination-first closes and is harmless unless memory is short.',
      targets: [target(`sum by (instance) (${sel('synfin_tcp_connections', 'state="TIME_WAIT"')})`, '{{instance}}')],
    }),
    timeseries({
      title: 'TIME-WAIT on upstream sockets (ephemeral ports)',
      unit: 'short',
      description:
        "synfin's kernel sockets toward destinations in TIME_WAIT, after app-first closes (synfin then closes its upstream socket first). Each holds a local ephemeral port toward its destination for 60 s. " +
        'Rising toward the ephemeral port range (28232 by default) means connects to the busiest destinations will start failing: the app opens and closes too many short connections (use keep-alive or pools). ' +
        'The leaks dashboard shows the share of the port range.',
      targets: [target(`sum by (instance) (${sel('synfin_upstream_sockets', 'state="TIME_WAIT"')})`, '{{instance}}')],
    }),
    timeseries({
      title: 'Upstream sockets by kernel state',
      unit: 'short',
      stack: true,
      description:
        "synfin's kernel sockets toward destinations, by kernel TCP state. ESTABLISHED follows the stack's ESTABLISHED. " +
        'CLOSE_WAIT here: the destination closed and synfin keeps the socket until the app closes too (waiting on the app; growing = the app leaks). ' +
        'FIN_WAIT_2: the app closed, synfin passed it on and the destination has not closed yet (waiting on the upstream).',
      targets: [target(`sum by (state) (${sel('synfin_upstream_sockets')})`, '{{state}}')],
    }),

    row('Resets and retransmissions'),
    timeseries({
      title: 'Resets per second by direction and reason',
      unit: 'cps',
      noValue: '0',
      description:
        'Resets on the app leg (series at zero hidden). received: the app sent RST (the app aborted: SO_LINGER 0, a crash, a timeout in the app). ' +
        'sent: synfin reset the app\'s connection. abort = the destination reset the upstream leg; upstream_refused = the destination refused; no_connection = segments for connections synfin does not know (often right after a synfin restart); ' +
        'data_after_close = the app sent data after its side was closed; idle_timeout / retransmit_timeout / shutdown = synfin\'s own decisions. Alert SynfinResetRateHigh compares resets with new connections.',
      targets: [target(`sum by (direction, reason) (${rate('synfin_tcp_resets_total')}) > 0`, '{{direction}} {{reason}}')],
    }),
    timeseries({
      title: 'Dropped segments per second',
      unit: 'pps',
      noValue: '0',
      description:
        'Segments from the app the stack dropped, by reason (series at zero hidden). syn_limit: more connections than --max-connections (synfin\'s capacity). ' +
        'checksum / malformed: damaged packets on the TUN path. out_of_window / paws / time_wait: old or duplicate segments, normal in small numbers. bad_cookie: forged or stale SYN-cookie ACKs (a SYN flood).',
      targets: [target(`sum by (reason) (${rate('synfin_tcp_dropped_segments_total')}) > 0`, '{{reason}}')],
    }),
    timeseries({
      title: 'Retransmissions per second by kind',
      unit: 'pps',
      description:
        'Segments synfin retransmitted toward the app. rto: a retransmission timeout fired; fast: duplicate ACKs or SACK showed a loss; probe: zero-window probes, the app is not reading (its receive window is closed, the app\'s side). ' +
        'On a local TUN device rto and fast should be near zero.',
      targets: [target(`sum by (kind) (${rate('synfin_tcp_retransmitted_segments_total')})`, '{{kind}}')],
    }),
    timeseries({
      title: 'Retransmission ratio',
      unit: 'percentunit',
      min: 0,
      description:
        'Retransmitted segments as a share of all segments synfin sends to the app. The app leg is a local device, so anything above a fraction of a percent means segments are lost between synfin and the app: ' +
        'a full TUN transmit queue, a firewall or rp_filter in the app\'s namespace, or late timers from event-loop lag (synfin\'s side). Alert SynfinRetransmissionRatioHigh: above 5% for 10 minutes.',
      targets: [
        target(
          `sum(${rate('synfin_tcp_retransmitted_segments_total')}) / sum(${rate('synfin_tcp_segments_total', 'direction="out"')})`,
          'retransmitted / sent',
        ),
      ],
    }),
    timeseries({
      title: 'RTT toward the app',
      unit: 's',
      description:
        'Smoothed round-trip time samples of the userspace stack toward the app (RFC 6298; 50th, 90th, 99th percentile). Over a local TUN device this is the app\'s and synfin\'s scheduling delay: ' +
        'a rise with event-loop lag is synfin\'s side; a rise alone means the app is slow to read and acknowledge.',
      targets: QUANTILES.map((n) => target(quantile(n, 'synfin_tcp_rtt_seconds'), q(n))),
    }),
    timeseries({
      title: 'Slow-start exits per second by reason',
      unit: 'cps',
      noValue: '0',
      description:
        "How connections' initial slow start toward the app ended, once per connection (series at zero hidden). delay: HyStart++ saw the RTT rise (RFC 9406), the usual end of a long transfer; " +
        "loss: duplicate ACKs or SACK showed a loss; timeout: a retransmission timeout, the handshake's included. Short and request/response connections never leave slow start and are not counted. " +
        'Over a local TUN device loss and timeout should be rare: with retransmissions they point at drops between synfin and the app.',
      targets: [target(`sum by (reason) (${rate('synfin_tcp_slow_start_exits_total')}) > 0`, '{{reason}}')],
    }),

    row('Throughput'),
    timeseries({
      title: 'Bytes per second by direction',
      unit: 'Bps',
      description:
        'Payload proxied, counted as it flows. client_to_upstream: what the app sends to destinations; upstream_to_client: what destinations send back. ' +
        'A direction falling to zero while connections stay ESTABLISHED means one side stopped sending: check idle connections on the leaks dashboard.',
      targets: [target(`sum by (direction) (${rate('synfin_tcp_bytes_total')})`, '{{direction}}')],
    }),
    timeseries({
      title: 'TUN packets per second',
      unit: 'pps',
      description:
        'Packets through the TUN device: rx from the kernel (the app\'s segments), tx to it (synfin\'s segments). A GSO super-packet counts once. ' +
        'rx without tx means synfin is not answering (check readiness and event-loop lag).',
      targets: [target(`sum by (direction) (${rate('synfin_tun_packets_total')})`, '{{direction}}')],
    }),
    timeseries({
      title: 'Segments per second',
      unit: 'pps',
      description:
        'TCP segments of the userspace stack: in from the app, out to the app. Their ratio to TUN packets shows how much GSO/TSO batching saves; out is the denominator of the retransmission ratio.',
      targets: [target(`sum by (direction) (${rate('synfin_tcp_segments_total')})`, '{{direction}}')],
    }),

    row('Process'),
    timeseries({
      title: 'Event-loop lag',
      unit: 's',
      description:
        "How late synfin's single event loop runs (prom-client's sampled lag and its 99th percentile). Every packet and timer waits this long, so a rise shows up as slower handshakes, higher RTT and spurious retransmissions: " +
        "synfin's side (CPU starved or throttled, or too much load for one instance). Alert SynfinEventLoopLagging: p99 above 100 ms for 10 minutes.",
      targets: [
        target(sel('nodejs_eventloop_lag_p99_seconds'), 'p99 {{instance}}'),
        target(sel('nodejs_eventloop_lag_seconds'), 'sampled {{instance}}'),
      ],
    }),
    timeseries({
      title: 'Resident memory',
      unit: 'bytes',
      description:
        "synfin's resident set size. It grows with open connections and their buffers; growth that follows connections waiting on the app is the app's leak showing up in synfin, " +
        'growth with a flat connection count is synfin\'s own.',
      targets: [target(sel('process_resident_memory_bytes'), '{{instance}}')],
    }),
  ];
  return dashboard({
    uid: 'synfin-overview',
    title: 'synfin overview',
    description: "synfin's TCP lifecycle: connections by state, handshakes, upstream connects, TIME-WAIT, resets, retransmissions, throughput and the process.",
    tags: ['synfin', 'tcp'],
    panels,
    variables: TARGET_VARIABLES,
    links: [dashboardLink('synfin fleet', 'synfin-fleet'), dashboardLink('synfin connection leaks', 'synfin-leaks'), dashboardLink('synfin by service', 'synfin-services'), livePageLink],
  });
}

// ------------------------------------------------------------------------------ leaks

const TIME_WAIT_SHARE_THRESHOLDS = [
  { color: 'green', value: null },
  { color: 'orange', value: 0.5 },
  { color: 'red', value: 0.8 },
];

function leaks() {
  const upstreamTimeWait = sel('synfin_upstream_sockets', 'state="TIME_WAIT"');
  const panels = [
    row('Who is holding connections open'),
    stat({
      title: 'Waiting on the app',
      unit: 'short',
      thresholds: [
        { color: 'green', value: null },
        { color: 'orange', value: 10 },
        { color: 'red', value: 100 },
      ],
      description:
        'Connections the destination closed and the app has not: the app\'s sockets sit in CLOSE_WAIT. A few at any moment are normal; a number that keeps rising means the app is not closing sockets after the server closed them (the app is at fault).',
      targets: [target(`sum(${sel('synfin_connections_waiting', 'on="app"')})`, 'waiting on the app')],
    }),
    stat({
      title: 'Oldest waiting on the app',
      unit: 's',
      thresholds: [
        { color: 'green', value: null },
        { color: 'orange', value: 60 },
        { color: 'red', value: 600 },
      ],
      description:
        'How long the oldest of those connections has waited for the app to close it. Minutes or more: the app forgot a socket in CLOSE_WAIT (the app is at fault). Alert SynfinAppSocketStuckInCloseWait: over 10 minutes.',
      targets: [target(`max(${sel('synfin_connections_oldest_waiting_seconds', 'on="app"')})`, 'oldest')],
    }),
    stat({
      title: 'Waiting on the upstream',
      unit: 'short',
      thresholds: [
        { color: 'green', value: null },
        { color: 'orange', value: 10 },
        { color: 'red', value: 100 },
      ],
      description:
        'Connections the app closed and the destination has not (synfin sits in CLOSE_WAIT on the app leg). Rising: destinations are not closing after the app closed (the destination\'s side), or long responses still stream after the app\'s half-close.',
      targets: [target(`sum(${sel('synfin_connections_waiting', 'on="upstream"')})`, 'waiting on the upstream')],
    }),
    stat({
      title: 'Oldest waiting on the upstream',
      unit: 's',
      thresholds: [
        { color: 'green', value: null },
        { color: 'orange', value: 60 },
        { color: 'red', value: 600 },
      ],
      description:
        'How long the oldest connection has waited for its destination to close after the app closed. Minutes with no bytes moving: the destination ignores the app\'s FIN (the destination\'s side). Alert SynfinUpstreamHalfClosedTooLong: over 10 minutes.',
      targets: [target(`max(${sel('synfin_connections_oldest_waiting_seconds', 'on="upstream"')})`, 'oldest')],
    }),
    timeseries({
      title: 'Connections waiting on the app (CLOSE_WAIT in the app)',
      unit: 'short',
      description:
        'Rising: the app is not closing sockets after the server closed them (they sit in CLOSE_WAIT in the app). The app is at fault; find them with /api/connections?waitingOn=app (the client column is the app\'s address:port) and `ss -tnp state close-wait` on the app\'s host. ' +
        'A flat low line is normal. Alert SynfinAppNotClosingSockets: more than 10 new in 30 minutes.',
      targets: [target(`sum by (instance) (${sel('synfin_connections_waiting', 'on="app"')})`, '{{instance}}')],
    }),
    timeseries({
      title: 'Oldest connection waiting on the app',
      unit: 's',
      description:
        'Age of the oldest connection waiting on the app. A sawtooth that drops back is the app closing late but closing; a line climbing at one second per second is a socket the app will never close (the app is at fault).',
      targets: [target(`max by (instance) (${sel('synfin_connections_oldest_waiting_seconds', 'on="app"')})`, '{{instance}}')],
    }),
    timeseries({
      title: 'Connections waiting on the upstream',
      unit: 'short',
      description:
        'Connections the app closed (it sent FIN) and the destination has not. Rising: destinations do not close after the client\'s FIN (the destination\'s side); find them with /api/connections?waitingOn=upstream. ' +
        '--idle-timeout makes synfin reclaim those that stopped moving bytes.',
      targets: [target(`sum by (instance) (${sel('synfin_connections_waiting', 'on="upstream"')})`, '{{instance}}')],
    }),
    timeseries({
      title: 'Oldest connection waiting on the upstream',
      unit: 's',
      description:
        'Age of the oldest connection waiting on its destination. Climbing steadily: a destination keeps a connection half-open that the app has finished with (the destination\'s side), unless it is a long response still streaming.',
      targets: [target(`max by (instance) (${sel('synfin_connections_oldest_waiting_seconds', 'on="upstream"')})`, '{{instance}}')],
    }),

    waitingByProcessTable(),

    row('States over time'),
    timeseries({
      title: 'Connections by state',
      unit: 'short',
      stack: true,
      description:
        "The userspace stack's connections by state (LISTEN left out). FIN_WAIT_2 growing is the app's leak seen from synfin (the app's socket is in CLOSE_WAIT); CLOSE_WAIT growing is synfin waiting for destinations; " +
        'ESTABLISHED growing without more traffic means idle connections pile up (see below).',
      targets: [target(`sum by (state) (${sel('synfin_tcp_connections', 'state!="LISTEN"')})`, '{{state}}')],
    }),
    timeseries({
      title: 'Oldest connection by state',
      unit: 's',
      noValue: '0',
      description:
        'Age of the oldest connection in each state (states with none hidden). TIME_WAIT never exceeds 2×MSL. An age that climbs steadily in FIN_WAIT_2 is a socket the app never closes; in CLOSE_WAIT, a destination that never closes; ' +
        'in ESTABLISHED, a long-lived connection, which is a leak only if it is also idle.',
      targets: [target(`max by (state) (${sel('synfin_tcp_oldest_connection_age_seconds', 'state!="LISTEN"')}) > 0`, '{{state}}')],
    }),
    timeseries({
      title: 'Time spent in a state (p99)',
      unit: 's',
      noValue: '0',
      description:
        '99th percentile of the time connections spent in each state before leaving it (observed on leaving). High FIN_WAIT_2 times: the app closes late after destinations close; high CLOSE_WAIT times: destinations close late after the app. ' +
        'Connections still stuck show in the oldest-connection panel instead.',
      targets: [target(`${quantile(0.99, 'synfin_tcp_state_duration_seconds', 'state!="LISTEN"', ['state'])} > 0`, '{{state}}')],
    }),

    row('Idle connections and closes'),
    timeseries({
      title: 'ESTABLISHED connections',
      unit: 'short',
      description:
        'Open connections. Rising while bytes per second stay flat means connections are opened and left idle, typically a pool that never closes what it no longer uses (the app\'s side); compare with the oldest idle time.',
      targets: [target(`sum by (instance) (${sel('synfin_tcp_connections', 'state="ESTABLISHED"')})`, '{{instance}}')],
    }),
    timeseries({
      title: 'Oldest idle ESTABLISHED connection',
      unit: 's',
      description:
        'Longest time any ESTABLISHED connection has gone without moving a byte. Long-lived idle pools are normal up to their idle timeout; a line that climbs forever is a connection nobody will use again. ' +
        '/api/connections?minIdle=SECONDS lists them; --idle-timeout lets synfin close them.',
      targets: [target(`max by (instance) (${sel('synfin_connections_oldest_idle_seconds')})`, '{{instance}}')],
    }),
    timeseries({
      title: 'Closes per second by reason',
      unit: 'cps',
      description:
        'How connections end. fin: clean. reset_received: the app reset; reset_sent: synfin reset the app (the destination reset or refused). idle_timeout: synfin reclaimed an idle connection; retransmit_timeout: the app stopped acknowledging; ' +
        'upstream_failed: the destination was unreachable; shutdown: synfin stopping. A falling close rate while opens continue means connections are piling up.',
      targets: [target(`sum by (reason) (${rate('synfin_tcp_connections_closed_total')})`, '{{reason}}')],
    }),
    timeseries({
      title: 'Idle timeouts per second',
      unit: 'cps',
      description:
        'Connections synfin closed because they moved no byte for --idle-timeout seconds. Each one is a connection the app or the destination left open and unused; a steady rate points at a pool or client that never closes idle connections.',
      targets: [target(`sum(${rate('synfin_tcp_connections_closed_total', 'reason="idle_timeout"')})`, 'idle timeouts')],
    }),

    row('Upstream TIME-WAIT and the ephemeral port range'),
    timeseries({
      title: 'Upstream TIME-WAIT against the ephemeral port range',
      unit: 'short',
      min: 0,
      description:
        "synfin's upstream sockets in TIME_WAIT (after app-first closes) against the size of the ephemeral port range of synfin's namespace (synfin_ephemeral_ports, from net.ipv4.ip_local_port_range). " +
        'Nearing the range: new connects to the busiest destinations will fail with upstream error. The app churns short connections: make it reuse them (keep-alive, pools), or widen the port range.',
      targets: [
        target(`sum by (instance) (${upstreamTimeWait})`, 'TIME_WAIT {{instance}}'),
        target(`max by (instance) (${sel('synfin_ephemeral_ports')})`, 'port range {{instance}}'),
      ],
    }),
    gauge({
      title: 'Share of the ephemeral port range in TIME-WAIT',
      unit: 'percentunit',
      min: 0,
      max: 1,
      thresholds: TIME_WAIT_SHARE_THRESHOLDS,
      description:
        'Upstream TIME_WAIT sockets divided by the ephemeral port range (the busiest instance). Orange from 50%, red from 80%, where alert SynfinUpstreamTimeWaitNearPortExhaustion turns critical. ' +
        'Ports run out per destination, so this is an upper bound across all destinations; a high share means the app opens and closes too many short connections.',
      targets: [target(`max(${upstreamTimeWait} / ignoring (state) ${sel('synfin_ephemeral_ports')})`, 'share')],
    }),
    timeseries({
      title: 'Upstream sockets in CLOSE_WAIT and FIN_WAIT_2',
      unit: 'short',
      description:
        "The kernel side of the two waits. CLOSE_WAIT: destinations closed, synfin keeps the upstream socket until the app closes (the app's leak). FIN_WAIT_2: the app closed, synfin closed upstream, the destination has not (the destination's side).",
      targets: [target(`sum by (state) (${sel('synfin_upstream_sockets', 'state=~"CLOSE_WAIT|FIN_WAIT_2"')})`, '{{state}}')],
    }),
  ];
  // The last panel shares a row with the gauge: narrower.
  panels[panels.length - 1].w = 6;
  return dashboard({
    uid: 'synfin-leaks',
    title: 'synfin connection leaks',
    description:
      'Who is holding connections open: the app (sockets left in CLOSE_WAIT), the destination (not closing after the app closed), idle connections, and ephemeral ports tied up in TIME-WAIT.',
    tags: ['synfin', 'tcp', 'leaks'],
    panels,
    variables: [...TARGET_VARIABLES, apiDatasourceVariable],
    links: [dashboardLink('synfin fleet', 'synfin-fleet'), dashboardLink('synfin overview', 'synfin-overview'), dashboardLink('synfin by service', 'synfin-services'), livePageLink],
  });
}


// ------------------------------------------------------------------------------ fleet

/** Labels that name one target: Kubernetes' namespace and pod, and the scrape address. */
const BY_TARGET = 'namespace, pod, instance';
const POD_LINK_VARS = 'var-namespace=${__data.fields.namespace}&var-pod=${__data.fields.pod}&var-instance=${__data.fields.instance}&${__url_time_range}';

function fleet() {
  const panels = [
    row('Status'),
    stat({
      title: 'Ready',
      unit: 'short',
      thresholds: [{ color: 'green', value: null }],
      description:
        'synfin instances answering /readyz (synfin_ready = 1) out of those scraped. Fewer ready than scraped: a synfin lost or has not attached its TUN device, and its pod\'s TCP is not answered (alert SynfinNotReady).',
      targets: [target(`sum(${sel('synfin_ready')})`, 'ready'), target(`count(${sel('synfin_ready')})`, 'scraped')],
    }),
    stat({
      title: 'Versions',
      unit: 'short',
      description: 'How many synfin instances run each version (synfin_build_info). More than one version means a rollout is under way or stalled.',
      targets: [target(`count by (version) (${sel('synfin_build_info')})`, '{{version}}')],
    }),
    stat({
      title: 'Restarts in the time range',
      unit: 'short',
      thresholds: [
        { color: 'green', value: null },
        { color: 'orange', value: 1 },
        { color: 'red', value: 3 },
      ],
      description:
        'synfin restarts across the selected pods in the dashboard\'s time range (changes of process_start_time_seconds). Each restart drops every proxied connection of its pod (alert SynfinRestartingOften).',
      targets: [target(`sum(changes(${sel('process_start_time_seconds')}[$__range]))`, 'restarts')],
    }),
    stat({
      title: 'Youngest uptime',
      unit: 's',
      description:
        'Time since the most recent synfin start among the selected pods (now − process_start_time_seconds). Minutes while nothing was deployed: something restarts synfin; see the table below for which pod.',
      targets: [target(`min(time() - ${sel('process_start_time_seconds')})`, 'uptime')],
    }),
    gauge({
      title: 'Open fds against the limit (highest)',
      unit: 'percentunit',
      min: 0,
      max: 1,
      thresholds: [
        { color: 'green', value: null },
        { color: 'orange', value: 0.6 },
        { color: 'red', value: 0.8 },
      ],
      description:
        'The highest share of its file descriptor limit any synfin has open (process_open_fds / process_max_fds). At the limit, upstream connects fail with EMFILE (alert SynfinFileDescriptorsNearLimit from 80%).',
      targets: [target(`max(${sel('process_open_fds')} / ${sel('process_max_fds')})`, 'highest')],
    }),
    stat({
      title: 'SYN cookies sent',
      unit: 'ops',
      noValue: '0',
      thresholds: [
        { color: 'green', value: null },
        { color: 'orange', value: 0.001 },
      ],
      description:
        'SYNs answered statelessly with SYN cookies per second, all selected pods: above zero, some synfin has --syn-backlog half-open connections (slow destinations or a SYN burst; alert SynfinSynCookiesEngaged).',
      targets: [target(`sum(${rate('synfin_tcp_syn_cookies_total', 'result="sent"')})`, 'cookies sent')],
    }),
    stat({
      title: 'Refused at --max-connections',
      unit: 'ops',
      noValue: '0',
      thresholds: [
        { color: 'green', value: null },
        { color: 'red', value: 0.001 },
      ],
      description:
        'New connections refused per second because a synfin holds --max-connections (dropped SYNs, reason syn_limit): the app sees ECONNREFUSED. Often the app\'s own leak filling the table (alert SynfinConnectionsRefusedAtLimit).',
      targets: [target(`sum(${rate('synfin_tcp_dropped_segments_total', 'reason="syn_limit"')})`, 'refused')],
    }),
    stat({
      title: 'Waiting on the app (all pods)',
      unit: 'short',
      thresholds: [
        { color: 'green', value: null },
        { color: 'orange', value: 10 },
        { color: 'red', value: 100 },
      ],
      description:
        'Connections the destination closed and the app has not, across the selected pods: sockets left in CLOSE_WAIT by the apps. The table below says which pods; the by-service dashboard which services.',
      targets: [target(`sum(${sel('synfin_connections_waiting', 'on="app"')})`, 'waiting on the app')],
    }),
    table({
      title: 'Pods',
      unit: 'short',
      description:
        'One row per synfin: ready (1/0), version, uptime, restarts in the time range, open fds against the limit, SYN cookies and refusals at --max-connections per second. Click a pod for its dashboard; the live page needs `kubectl port-forward` (link at the top).',
      // The build-info query's value is always 1: its version label is the column.
      columns: ['ready', 'build info', 'uptime', 'restarts', 'fds used', 'cookies/s', 'refused/s'],
      hidden: ['Value #B'],
      overrides: [
        columnUnit('uptime', 's'),
        columnUnit('fds used', 'percentunit'),
        columnUnit('cookies/s', 'ops'),
        columnUnit('refused/s', 'ops'),
      ],
      links: [{ title: 'synfin overview of this pod', url: `/d/synfin-overview?${POD_LINK_VARS}` }],
      targets: [
        target(`max by (${BY_TARGET}) (${sel('synfin_ready')})`, ''),
        target(`max by (${BY_TARGET}, version) (${sel('synfin_build_info')})`, ''),
        target(`max by (${BY_TARGET}) (time() - ${sel('process_start_time_seconds')})`, ''),
        target(`max by (${BY_TARGET}) (changes(${sel('process_start_time_seconds')}[$__range]))`, ''),
        target(`max by (${BY_TARGET}) (${sel('process_open_fds')} / ${sel('process_max_fds')})`, ''),
        target(`sum by (${BY_TARGET}) (${rate('synfin_tcp_syn_cookies_total', 'result="sent"')})`, ''),
        target(`sum by (${BY_TARGET}) (${rate('synfin_tcp_dropped_segments_total', 'reason="syn_limit"')})`, ''),
      ],
    }),

    row('Who is leaking'),
    table({
      title: 'Top pods by connections the app never closed',
      unit: 'short',
      w: 12,
      sortBy: 'waiting on the app',
      description:
        'The ten pods with the most connections waiting on the app (the destination closed, the app\'s socket is in CLOSE_WAIT) and the age of the oldest. Click a row for that pod\'s leaks dashboard; /api/connections?waitingOn=app on the pod names the process and fd.',
      columns: ['waiting on the app', 'oldest waiting'],
      overrides: [columnUnit('oldest waiting', 's')],
      links: [{ title: 'Connection leaks of this pod', url: `/d/synfin-leaks?${POD_LINK_VARS}` }],
      targets: [
        target(`topk(10, sum by (${BY_TARGET}) (${sel('synfin_connections_waiting', 'on="app"')}))`, ''),
        target(`max by (${BY_TARGET}) (${sel('synfin_connections_oldest_waiting_seconds', 'on="app"')})`, ''),
      ],
    }),
    timeseries({
      title: 'Connections waiting on the app by pod',
      unit: 'short',
      w: 12,
      description:
        'Connections waiting on the app per pod over time. A line that only rises is a pod whose app never closes sockets after the server closed them (the app is at fault); alert SynfinAppNotClosingSockets names the service.',
      targets: [target(`sum by (namespace, pod, instance) (${sel('synfin_connections_waiting', 'on="app"')})`, '{{namespace}}/{{pod}} {{instance}}')],
    }),

    row('Load'),
    timeseries({
      title: 'Open connections by pod',
      unit: 'short',
      description: 'ESTABLISHED connections of each synfin. Compare with its --max-connections: near it, new connections are refused (the status row counts the refusals).',
      targets: [target(`sum by (namespace, pod, instance) (${sel('synfin_tcp_connections', 'state="ESTABLISHED"')})`, '{{namespace}}/{{pod}} {{instance}}')],
    }),
    timeseries({
      title: 'Connections opened per second by pod',
      unit: 'cps',
      description: 'New connections per second through each synfin. A pod far above the others churns short connections (watch its upstream TIME-WAIT on the leaks dashboard).',
      targets: [target(`sum by (namespace, pod, instance) (${rate('synfin_tcp_connections_opened_total')})`, '{{namespace}}/{{pod}} {{instance}}')],
    }),
  ];
  return dashboard({
    uid: 'synfin-fleet',
    title: 'synfin fleet',
    description: 'Every synfin sidecar at once: readiness, versions, restarts, file descriptors, SYN cookies, refusals, and which pods leak connections.',
    tags: ['synfin', 'tcp', 'fleet'],
    panels,
    variables: TARGET_VARIABLES,
    links: [dashboardLink('synfin overview', 'synfin-overview'), dashboardLink('synfin connection leaks', 'synfin-leaks'), dashboardLink('synfin by service', 'synfin-services'), livePageLink],
  });
}

// ------------------------------------------------------------------------------ by service

function services() {
  const svc = (m, matchers = '') => sel(m, `service=~"$service"${matchers === '' ? '' : `,${matchers}`}`);
  const svcRate = (m, matchers = '') => `rate(${svc(m, matchers)}[${RI}])`;
  const panels = [
    row('Who is holding connections open, by service'),
    timeseries({
      title: 'Connections waiting on the app by service',
      unit: 'short',
      description:
        'Connections whose destination (the service) closed and the app has not: the app\'s sockets in CLOSE_WAIT, per --service name. A rising service is where the leak is: open the client or pool the app uses for it; /api/connections?waitingOn=app&service=NAME names the process and fd.',
      targets: [target(`sum by (service) (${svc('synfin_service_connections_waiting', 'on="app"')})`, '{{service}}')],
    }),
    timeseries({
      title: 'Oldest connection waiting on the app by service',
      unit: 's',
      description:
        'Age of the oldest connection waiting on the app, per service. A line climbing one second per second is a socket to that service the app will never close (alert SynfinAppSocketStuckInCloseWait past 10 minutes).',
      targets: [target(`max by (service) (${svc('synfin_service_oldest_waiting_seconds', 'on="app"')})`, '{{service}}')],
    }),
    timeseries({
      title: 'Connections waiting on the upstream by service',
      unit: 'short',
      description:
        'Connections the app closed and the service (the destination) has not. Rising: that service ignores the client\'s FIN or streams long after the app\'s half-close (the destination\'s side).',
      targets: [target(`sum by (service) (${svc('synfin_service_connections_waiting', 'on="upstream"')})`, '{{service}}')],
    }),
    timeseries({
      title: 'Open connections by service',
      unit: 'short',
      description: 'ESTABLISHED connections per service. Growth without more bytes per second is a pool that opens connections to that service and leaves them idle.',
      targets: [target(`sum by (service) (${svc('synfin_service_connections', 'state="ESTABLISHED"')})`, '{{service}}')],
    }),

    waitingByProcessTable(),

    row('Latency and errors by service'),
    timeseries({
      title: 'Upstream connect p99 by service',
      unit: 's',
      description:
        'The 99th percentile of synfin\'s kernel connect to each service (successful connects). The app\'s handshake waits for it, so a slow service here is a slow connect() in the app: the destination\'s side or the path to it.',
      targets: [target(quantile(0.99, 'synfin_service_connect_duration_seconds', 'service=~"$service",result="ok"', ['service']), '{{service}}')],
    }),
    timeseries({
      title: 'Failed upstream connects by service',
      unit: 'cps',
      noValue: '0',
      description:
        'Connects to each service that failed, by result: refused (nothing listens), timeout / unreachable (network or firewall), error (local: ports, --upstream-bind). Series at zero are hidden.',
      targets: [target(`sum by (service, result) (${svcRate('synfin_service_connect_duration_seconds_count', 'result!="ok"')}) > 0`, '{{service}} {{result}}')],
    }),
    timeseries({
      title: 'Closes by reason by service',
      unit: 'cps',
      noValue: '0',
      description:
        'How connections to each service end: fin (clean), reset_received (the app reset), reset_sent (synfin reset the app: the service reset or refused), idle_timeout, retransmit_timeout, upstream_failed, shutdown. Series at zero are hidden.',
      targets: [target(`sum by (service, reason) (${svcRate('synfin_service_connections_closed_total')}) > 0`, '{{service}} {{reason}}')],
    }),
    timeseries({
      title: 'Resets by service',
      unit: 'cps',
      noValue: '0',
      description:
        'Resets on the app leg per service and direction: received = the app reset its connection to the service, sent = synfin reset the app (mostly the service reset or refused). Series at zero are hidden.',
      targets: [target(`sum by (service, direction) (${svcRate('synfin_service_resets_total')}) > 0`, '{{service}} {{direction}}')],
    }),

    row('Traffic by service'),
    timeseries({
      title: 'Bytes per second by service',
      unit: 'Bps',
      description:
        'Payload bytes to and from each service (client_to_upstream = the app sending, upstream_to_client = the service answering). Open connections rising while bytes stay flat: idle connections pile up.',
      targets: [target(`sum by (service, direction) (${svcRate('synfin_service_bytes_total')})`, '{{service}} {{direction}}')],
    }),
  ];
  return dashboard({
    uid: 'synfin-services',
    title: 'synfin by service',
    description: 'The same lifecycle per destination service (--service, --service-file): which service the app leaks connections to, connect latency, closes, resets and bytes.',
    tags: ['synfin', 'tcp', 'services'],
    panels,
    variables: [...TARGET_VARIABLES, serviceVariable, apiDatasourceVariable],
    links: [dashboardLink('synfin fleet', 'synfin-fleet'), dashboardLink('synfin connection leaks', 'synfin-leaks'), dashboardLink('synfin overview', 'synfin-overview'), livePageLink],
  });
}

// ------------------------------------------------------------------------------ main

export function buildDashboards() {
  return {
    'synfin-overview.json': overview(),
    'synfin-leaks.json': leaks(),
    'synfin-fleet.json': fleet(),
    'synfin-services.json': services(),
  };
}

function render(dash) {
  return `${JSON.stringify(dash, null, 2)}\n`;
}

function main(argv) {
  const check = argv.includes('--check');
  let stale = 0;
  for (const [file, dash] of Object.entries(buildDashboards())) {
    const dest = path.join(outDir, file);
    const text = render(dash);
    if (check) {
      const current = fs.existsSync(dest) ? fs.readFileSync(dest, 'utf8') : '';
      if (current !== text) {
        process.stderr.write(`${path.relative(process.cwd(), dest)} is not what grafana/generate.mjs writes: run node grafana/generate.mjs\n`);
        stale++;
      }
    } else {
      fs.mkdirSync(outDir, { recursive: true });
      fs.writeFileSync(dest, text);
      process.stdout.write(`wrote ${path.relative(process.cwd(), dest)}\n`);
    }
  }
  if (stale > 0) process.exitCode = 1;
}

if (process.argv[1] !== undefined && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2));
}
