#!/usr/bin/env node
// Generates synfin's Grafana dashboards, so every panel is built the same way:
//   node grafana/generate.mjs           writes grafana/dashboards/*.json
//   node grafana/generate.mjs --check   exits 1 if the committed JSON differs from what it would write
//
// Every panel and query uses the `datasource` template variable; every PromQL selector selects
// job=~"$job" and instance=~"$instance" (variables filled from synfin_build_info). Metric names and
// label values are synfin's product contract (src/observability/metrics.ts); test/deploy checks them.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const outDir = path.join(here, 'dashboards');

const DS = { type: 'prometheus', uid: '${datasource}' };
const TARGET_LABELS = 'job=~"$job",instance=~"$instance"';
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

function queryVariable(name, label, query) {
  // No allValue: "All" expands to the list of values found, so the selectors never reach
  // beyond synfin's targets (process_* and nodejs_* exist in every Node.js program).
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
    options: [],
    refresh: 2,
    regex: '',
    skipUrlSync: false,
    sort: 1,
  };
}

const jobVariable = queryVariable('job', 'Job', 'label_values(synfin_build_info, job)');
const instanceVariable = queryVariable('instance', 'Instance', 'label_values(synfin_build_info{job=~"$job"}, instance)');

const EPHEMERAL_PORTS_DEFAULT = '28232';
const ephemeralPortsVariable = {
  type: 'textbox',
  name: 'ephemeral_ports',
  label: 'Ephemeral ports',
  description:
    "Size of the hosts' ephemeral port range (net.ipv4.ip_local_port_range): 28232 is Linux's default 32768-60999.",
  query: EPHEMERAL_PORTS_DEFAULT,
  current: { selected: false, text: EPHEMERAL_PORTS_DEFAULT, value: EPHEMERAL_PORTS_DEFAULT },
  options: [{ selected: true, text: EPHEMERAL_PORTS_DEFAULT, value: EPHEMERAL_PORTS_DEFAULT }],
  hide: 0,
  skipUrlSync: false,
};

function dashboard({ uid, title, description, tags, panels, variables, links }) {
  return {
    __requires: [
      { type: 'grafana', id: 'grafana', name: 'Grafana', version: '10.4.0' },
      { type: 'datasource', id: 'prometheus', name: 'Prometheus', version: '1.0.0' },
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
    variables: [datasourceVariable, jobVariable, instanceVariable],
    links: [dashboardLink('synfin connection leaks', 'synfin-leaks')],
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
        "synfin's upstream sockets in TIME_WAIT (after app-first closes) against the size of the ephemeral port range ($ephemeral_ports, a dashboard variable). " +
        'Nearing the range: new connects to the busiest destinations will fail with upstream error. The app churns short connections: make it reuse them (keep-alive, pools), or widen the port range.',
      targets: [
        target(`sum by (instance) (${upstreamTimeWait})`, 'TIME_WAIT {{instance}}'),
        target(`max by (instance) (${sel('synfin_build_info')}) * $ephemeral_ports`, 'port range {{instance}}'),
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
      targets: [target(`max(${upstreamTimeWait}) / $ephemeral_ports`, 'share')],
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
    variables: [datasourceVariable, jobVariable, instanceVariable, ephemeralPortsVariable],
    links: [dashboardLink('synfin overview', 'synfin-overview')],
  });
}

// ------------------------------------------------------------------------------ main

export function buildDashboards() {
  return { 'synfin-overview.json': overview(), 'synfin-leaks.json': leaks() };
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
