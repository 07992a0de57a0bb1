/**
 * synfin's Prometheus metrics (names and labels per the product contract), on an own registry.
 *
 * Counters and histograms are fed from the stack's one event stream (src/stack/events.ts); gauges
 * are computed at scrape time in collect() from the connection table, so they are exact at the
 * moment of the scrape and cost nothing between scrapes. Every series of a bounded label set is
 * created at zero up front, so rate() and alerts work before the first event.
 * No label ever carries an address or port: per-connection detail is /api/connections.
 */
import client from 'prom-client';
import { CounterFamily, HistogramFamily } from './metric-families.js';
import { registerProcessMetrics } from './process-metrics.js';
import type { Clock } from '../stack/clock.js';
import type { EventHub } from '../stack/events.js';
import {
  SLOW_START_EXIT_REASONS,
  type CloseReason,
  type ConnIdentity,
  type DropReason,
  type HandshakeResult,
  type ResetDirection,
  type ResetReason,
  type RetransmitKind,
  type SlowStartExitReason,
} from '../tcp/events.js';
import { State, STATE_NAMES, type StateName } from '../tcp/state.js';

export const DROP_REASONS: readonly DropReason[] = [
  'checksum',
  'malformed',
  'out_of_window',
  'no_connection',
  'syn_limit',
  'paws',
  'bad_ack',
  'rst_invalid',
  'syn_in_window',
  'time_wait',
  'unsupported',
  'rcv_buffer_full',
  'challenge_ack_limit',
  'bad_cookie',
  'loop',
  'memory_limit',
];
export const RESET_REASONS: readonly ResetReason[] = [
  'peer',
  'no_connection',
  'bad_ack',
  'abort',
  'upstream_refused',
  'loop',
  'upstream_reset',
  'retransmit_timeout',
  'idle_timeout',
  'data_after_close',
  'shutdown',
];
export const CLOSE_REASONS: readonly CloseReason[] = [
  'fin',
  'reset_received',
  'reset_sent',
  'idle_timeout',
  'retransmit_timeout',
  'upstream_failed',
  'shutdown',
];
export const HANDSHAKE_RESULTS: readonly HandshakeResult[] = [
  'ok',
  'reset',
  'timeout',
  'upstream_refused',
  'upstream_timeout',
  'upstream_unreachable',
];
export const UPSTREAM_RESULTS = ['ok', 'refused', 'timeout', 'unreachable', 'error'] as const;
export type UpstreamResultLabel = (typeof UPSTREAM_RESULTS)[number];
/** Kernel TCP states of upstream sockets, spelled like the userspace states (RFC 9293 names), in include/net/tcp_states.h order (1 = ESTABLISHED). */
export const KERNEL_TCP_STATES = [
  'ESTABLISHED',
  'SYN_SENT',
  'SYN_RECEIVED',
  'FIN_WAIT_1',
  'FIN_WAIT_2',
  'TIME_WAIT',
  'CLOSED',
  'CLOSE_WAIT',
  'LAST_ACK',
  'LISTEN',
  'CLOSING',
] as const;

/**
 * The edges of RFC 9293 Figure 5 as the stack reports them, plus the reset and abort edges to
 * CLOSED from every state (§3.10.7). Pre-created so every transition series exists at zero.
 */
export const TRANSITIONS: ReadonlyArray<readonly [StateName, StateName]> = [
  ['LISTEN', 'SYN_RECEIVED'],
  ['CLOSED', 'SYN_SENT'],
  ['SYN_SENT', 'SYN_RECEIVED'],
  ['SYN_SENT', 'ESTABLISHED'],
  ['SYN_RECEIVED', 'ESTABLISHED'],
  ['SYN_RECEIVED', 'FIN_WAIT_1'],
  ['SYN_RECEIVED', 'CLOSE_WAIT'],
  ['SYN_RECEIVED', 'LISTEN'],
  ['ESTABLISHED', 'FIN_WAIT_1'],
  ['ESTABLISHED', 'CLOSE_WAIT'],
  ['FIN_WAIT_1', 'FIN_WAIT_2'],
  ['FIN_WAIT_1', 'CLOSING'],
  ['FIN_WAIT_1', 'TIME_WAIT'],
  ['FIN_WAIT_2', 'TIME_WAIT'],
  ['CLOSING', 'TIME_WAIT'],
  ['CLOSE_WAIT', 'LAST_ACK'],
  ['LAST_ACK', 'CLOSED'],
  ['TIME_WAIT', 'CLOSED'],
  ['SYN_SENT', 'CLOSED'],
  ['SYN_RECEIVED', 'CLOSED'],
  ['ESTABLISHED', 'CLOSED'],
  ['FIN_WAIT_1', 'CLOSED'],
  ['FIN_WAIT_2', 'CLOSED'],
  ['CLOSE_WAIT', 'CLOSED'],
  ['CLOSING', 'CLOSED'],
];

/** What one connection looks like to the scrape-time gauges. */
export interface ConnectionSample {
  state: State;
  createdAt: number;
  /** ms of the last payload byte in either direction. */
  lastActivityAt: number;
  /** 'app' | 'upstream' | null, and since when (ms). */
  waitingOn: 'app' | 'upstream' | null;
  waitingSince: number;
  /** The connection's service index (src/observability/services.ts; 0 = `other`). */
  service?: number;
}

export interface MetricsSources {
  clock: Clock;
  /** Visit every connection (TIME-WAIT records included) once per scrape. */
  forEachConnection(visit: (c: ConnectionSample) => void): void;
  /** Cumulative counters kept as plain numbers on the hot path. */
  counters(): {
    segmentsIn: number;
    segmentsOut: number;
    bytesClientToUpstream: number;
    bytesUpstreamToClient: number;
    tunRxPackets: number;
    tunRxBytes: number;
    tunTxPackets: number;
    tunTxBytes: number;
  };
  /** SYN cookies (RFC 4987) sent and accepted so far, as plain counts kept by the stack. */
  synCookies?(): { sent: number; accepted: number };
  /** Connections that skipped TIME-WAIT for --max-time-wait, as the stack counts them. */
  timeWaitOverflows?(): number;
  /** Kernel states of synfin's upstream sockets (TIME_WAIT included), by kernel state name. */
  upstreamSockets?(): Partial<Record<(typeof KERNEL_TCP_STATES)[number], number>>;
  /** Whether synfin is ready (the TUN device attached, the stack running, not shutting down). */
  ready?(): boolean;
  /** Connection buffers charged to --memory-limit now, and the limit (synfin_memory_bytes). */
  memory?(): { used: number; limit: number };
  /** Ports in net.ipv4.ip_local_port_range of synfin's namespace, null when unknown (synfin_ephemeral_ports). */
  ephemeralPorts?(): number | null;
}

const HANDSHAKE_BUCKETS = [
  0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
];
const DURATION_BUCKETS = [0.001, 0.01, 0.1, 0.5, 1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 43200, 86400];
const RTT_BUCKETS = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];

export interface Metrics {
  registry: client.Registry;
  openMetricsRegistry: client.Registry<client.OpenMetricsContentType>;
  /** Stop feeding from the event hub. */
  close(): void;
}

export function createMetrics(hub: EventHub, sources: MetricsSources, version: string): Metrics {
  // The same metric objects in two registries: one renders the Prometheus text format, the other
  // OpenMetrics, so a scrape never has to flip a shared registry's format.
  const registry = new client.Registry();
  const openMetricsRegistry = new client.Registry<client.OpenMetricsContentType>();
  openMetricsRegistry.setContentType(client.Registry.OPENMETRICS_CONTENT_TYPE);
  const regs = [registry, openMetricsRegistry as unknown as client.Registry];
  // prom-client's process and Node.js metrics, unprefixed as dashboards expect them
  // (process_resident_memory_bytes, nodejs_eventloop_lag_seconds, ...).
  registerProcessMetrics(regs);

  new client.Gauge({
    name: 'synfin_build_info',
    help: 'Always 1; labels say which synfin and which Node.js.',
    labelNames: ['version', 'node'] as const,
    registers: regs,
    collect() {
      this.set({ version, node: process.version }, 1);
    },
  });

  new client.Gauge({
    name: 'synfin_ready',
    help: '1 while synfin is ready (as /readyz answers 200): the TUN device attached and the stack running; 0 before, while shutting down, and after the device is lost.',
    registers: regs,
    collect() {
      this.set(sources.ready?.() === false ? 0 : 1);
    },
  });

  new client.Gauge({
    name: 'synfin_memory_bytes',
    help: 'Connection buffers (receive, reassembly, send, upstream reads) charged to --memory-limit: used now, and the limit. From 5/8 of the limit windows stop growing, upstream reads pause and new connections get RST (drop reason memory_limit).',
    labelNames: ['kind'] as const,
    registers: regs,
    collect() {
      const m = sources.memory?.() ?? { used: 0, limit: 0 };
      this.set({ kind: 'used' }, m.used);
      this.set({ kind: 'limit' }, m.limit);
    },
  });

  new client.Gauge({
    name: 'synfin_ephemeral_ports',
    help: "Local ports the kernel picks from for synfin's upstream sockets: the size of net.ipv4.ip_local_port_range in synfin's network namespace, read at each scrape. Upstream sockets to one destination address and port (TIME_WAIT ones included) cannot outnumber it; NaN when it cannot be read.",
    registers: regs,
    collect() {
      this.set(sources.ephemeralPorts?.() ?? Number.NaN);
    },
  });

  // One pass over the table per scrape fills all of the table-derived gauges.
  const perState = new Float64Array(STATE_NAMES.length);
  const oldestPerState = new Float64Array(STATE_NAMES.length);
  const waiting = { app: 0, upstream: 0 };
  const oldestWaiting = { app: Infinity, upstream: Infinity };
  let oldestIdleAt = Infinity;
  // prom-client calls every collect() in one synchronous pass (registry.metrics() maps get() over
  // all metrics before awaiting any): the five table gauges share one walk, invalidated once that
  // pass is over. (A same-millisecond check would rescan for each gauge once a walk of 10,000
  // connections takes longer than a millisecond.)
  let scanFresh = false;
  const scanExpires = (): void => {
    scanFresh = false;
  };
  function scanTable(): void {
    if (scanFresh) return;
    scanFresh = true;
    queueMicrotask(scanExpires);
    perState.fill(0);
    oldestPerState.fill(Infinity);
    waiting.app = 0;
    waiting.upstream = 0;
    oldestWaiting.app = Infinity;
    oldestWaiting.upstream = Infinity;
    oldestIdleAt = Infinity;
    sources.forEachConnection((c) => {
      perState[c.state]! += 1;
      if (c.createdAt < oldestPerState[c.state]!) oldestPerState[c.state] = c.createdAt;
      if (c.waitingOn !== null) {
        waiting[c.waitingOn]++;
        if (c.waitingSince < oldestWaiting[c.waitingOn]) oldestWaiting[c.waitingOn] = c.waitingSince;
      }
      if (c.state === State.ESTABLISHED && c.lastActivityAt < oldestIdleAt) oldestIdleAt = c.lastActivityAt;
    });
    // The stack answers every destination: one wildcard listener, always.
    perState[State.LISTEN] = 1;
  }

  new client.Gauge({
    name: 'synfin_tcp_connections',
    help: 'Connections of the userspace stack in each state now (TIME_WAIT included; LISTEN is the one wildcard listener).',
    labelNames: ['state'] as const,
    registers: regs,
    collect() {
      scanTable();
      for (let s = 0; s < STATE_NAMES.length; s++) this.set({ state: STATE_NAMES[s]! }, perState[s]!);
    },
  });
  new client.Gauge({
    name: 'synfin_tcp_oldest_connection_age_seconds',
    help: 'Age of the oldest connection now in each state (0 when none): a leak shows as an age that keeps growing.',
    labelNames: ['state'] as const,
    registers: regs,
    collect() {
      scanTable();
      const now = sources.clock.now();
      for (let s = 0; s < STATE_NAMES.length; s++) {
        const at = oldestPerState[s]!;
        this.set({ state: STATE_NAMES[s]! }, at === Infinity || s === State.LISTEN ? 0 : (now - at) / 1000);
      }
    },
  });
  new client.Gauge({
    name: 'synfin_connections_waiting',
    help: 'Half-closed connections waiting for one side to close. on="app": the destination closed and the app has not (its socket sits in CLOSE_WAIT); on="upstream": the app closed and the destination has not.',
    labelNames: ['on'] as const,
    registers: regs,
    collect() {
      scanTable();
      this.set({ on: 'app' }, waiting.app);
      this.set({ on: 'upstream' }, waiting.upstream);
    },
  });
  new client.Gauge({
    name: 'synfin_connections_oldest_waiting_seconds',
    help: 'How long the oldest half-closed connection has waited for the other side to close (0 when none).',
    labelNames: ['on'] as const,
    registers: regs,
    collect() {
      scanTable();
      const now = sources.clock.now();
      this.set({ on: 'app' }, oldestWaiting.app === Infinity ? 0 : (now - oldestWaiting.app) / 1000);
      this.set({ on: 'upstream' }, oldestWaiting.upstream === Infinity ? 0 : (now - oldestWaiting.upstream) / 1000);
    },
  });
  new client.Gauge({
    name: 'synfin_connections_oldest_idle_seconds',
    help: 'Longest time since any ESTABLISHED connection moved a byte (0 when none).',
    registers: regs,
    collect() {
      scanTable();
      this.set(oldestIdleAt === Infinity ? 0 : (sources.clock.now() - oldestIdleAt) / 1000);
    },
  });
  const upstreamSockets = new client.Gauge({
    name: 'synfin_upstream_sockets',
    help: "synfin's upstream kernel sockets by kernel TCP state, including those in TIME_WAIT after their close (ephemeral ports held toward destinations).",
    labelNames: ['state'] as const,
    registers: regs,
    collect() {
      // The kernel's table is read before the scrape (AppOptions.beforeScrape), off the event loop.
      const counts = sources.upstreamSockets?.() ?? {};
      for (const s of KERNEL_TCP_STATES) this.set({ state: s }, counts[s] ?? 0);
    },
  });
  void upstreamSockets;

  // Counters kept as plain numbers on the hot path (the stack's, the pipes', the TUN device's):
  // their totals are read when a scrape renders them. Each: name, help, label, and per label value
  // the total it reads (undefined: the source does not exist, the series keeps its last value).
  type Totals = ReturnType<MetricsSources['counters']>;
  const keptElsewhere: Array<[string, string, string, Array<[string, (c: Totals) => number | undefined]>]> = [
    [
      'synfin_tcp_segments_total',
      'TCP segments of the userspace stack (in = from the app, out = to the app; a TSO super-segment counts once).',
      'direction',
      [['in', (c) => c.segmentsIn], ['out', (c) => c.segmentsOut]],
    ],
    [
      'synfin_tcp_bytes_total',
      'Payload bytes proxied, counted as they flow.',
      'direction',
      [['client_to_upstream', (c) => c.bytesClientToUpstream], ['upstream_to_client', (c) => c.bytesUpstreamToClient]],
    ],
    [
      'synfin_tun_packets_total',
      'Packets through the TUN device (rx = from the kernel, tx = to it; a GSO packet counts once).',
      'direction',
      [['rx', (c) => c.tunRxPackets], ['tx', (c) => c.tunTxPackets]],
    ],
    ['synfin_tun_bytes_total', 'Bytes through the TUN device.', 'direction', [['rx', (c) => c.tunRxBytes], ['tx', (c) => c.tunTxBytes]]],
    [
      'synfin_tcp_syn_cookies_total',
      'SYN cookies (RFC 4987): sent = SYNs answered statelessly because half-open connections reached --syn-backlog (a SYN flood); accepted = final ACKs that brought a valid cookie back (a real client got through; only then is the destination dialled).',
      'result',
      [['sent', () => sources.synCookies?.().sent], ['accepted', () => sources.synCookies?.().accepted]],
    ],
  ];
  for (const [name, help, label, series] of keptElsewhere) {
    new CounterFamily(name, help, [label], series.map(([value]) => [value]), regs, (f) => {
      const c = sources.counters();
      series.forEach(([, read], i) => {
        const total = read(c);
        if (total !== undefined) f.set(i, total);
      });
    });
  }

  new CounterFamily(
    'synfin_tcp_time_wait_overflow_total',
    'Connections that skipped TIME-WAIT because --max-time-wait records were held (Linux: "time wait bucket table overflow"): they went to CLOSED after ACKing the FIN.',
    [],
    [],
    regs,
    (f) => f.set(0, sources.timeWaitOverflows?.() ?? 0),
  );

  // ------------------------------------------------------------ event-fed metrics
  // Each event adds to a series found by index (metric-families.ts), not by a label object.
  const transitions = new CounterFamily(
    'synfin_tcp_state_transitions_total',
    'State transitions of the userspace stack (RFC 9293 Figure 5).',
    ['from', 'to'],
    TRANSITIONS,
    regs,
  );
  const transitionIndex = new Int32Array(STATE_NAMES.length * STATE_NAMES.length).fill(-1);
  const stateDuration = new HistogramFamily(
    'synfin_tcp_state_duration_seconds',
    'Time spent in a state, observed when the connection leaves it.',
    'state',
    STATE_NAMES,
    DURATION_BUCKETS,
    regs,
  );
  const handshake = new HistogramFamily(
    'synfin_tcp_handshake_duration_seconds',
    "App side: SYN received to the handshake's final ACK (ok), or to its failure; includes the upstream dial (deferred handshake).",
    'result',
    HANDSHAKE_RESULTS,
    HANDSHAKE_BUCKETS,
    regs,
  );
  const upstreamConnect = new HistogramFamily(
    'synfin_upstream_connect_duration_seconds',
    'Kernel socket connect time to the destination, by result.',
    'result',
    UPSTREAM_RESULTS,
    HANDSHAKE_BUCKETS,
    regs,
  );
  const connDuration = new HistogramFamily('synfin_tcp_connection_duration_seconds', 'SYN received to CLOSED, for every SYN the stack took (failed dials and handshakes included).', null, [], DURATION_BUCKETS, regs);
  const opened = new CounterFamily(
    'synfin_tcp_connections_opened_total',
    'Connections opened (a SYN accepted for dialling).',
    ['family'],
    [['ipv4'], ['ipv6']],
    regs,
  );
  const closed = new CounterFamily('synfin_tcp_connections_closed_total', 'Connections closed, by reason.', ['reason'], CLOSE_REASONS.map((r) => [r]), regs);
  const retransmits = new CounterFamily(
    'synfin_tcp_retransmitted_segments_total',
    'Retransmissions by the userspace stack: rto (timeout), fast (duplicate ACKs / SACK), probe (zero-window probe).',
    ['kind'],
    [['rto'], ['fast'], ['probe']],
    regs,
  );
  const resets = new CounterFamily(
    'synfin_tcp_resets_total',
    'Resets sent to or received from the app side, by reason.',
    ['direction', 'reason'],
    [...RESET_REASONS.map((r) => ['sent', r]), ...RESET_REASONS.map((r) => ['received', r])],
    regs,
  );
  const slowStartExits = new CounterFamily(
    'synfin_tcp_slow_start_exits_total',
    "How connections' initial slow start ended: delay (HyStart++ saw the RTT rise, RFC 9406), loss (duplicate ACKs or SACK), timeout (a retransmission timeout). Connections still in it are not counted.",
    ['reason'],
    SLOW_START_EXIT_REASONS.map((r) => [r]),
    regs,
  );
  const drops = new CounterFamily('synfin_tcp_dropped_segments_total', 'Segments dropped by the userspace stack, by reason.', ['reason'], DROP_REASONS.map((r) => [r]), regs);
  const rtt = new HistogramFamily(
    'synfin_tcp_rtt_seconds',
    'Smoothed RTT samples of the userspace stack toward the app (RFC 6298).',
    null,
    [],
    RTT_BUCKETS,
    regs,
  );
  const handshakeIndex = new Map(HANDSHAKE_RESULTS.map((r, i) => [r, i]));
  const upstreamIndex = new Map(UPSTREAM_RESULTS.map((r, i) => [r as string, i]));

  const unsubscribe = hub.subscribe({
    stateChange(_conn: ConnIdentity, from: State, to: State, now: number, sinceMs: number) {
      const pair = from * STATE_NAMES.length + to;
      let i = transitionIndex[pair]!;
      if (i < 0) i = transitionIndex[pair] = transitions.indexOf(STATE_NAMES[from]!, STATE_NAMES[to]!);
      transitions.add(i);
      stateDuration.observe(from, Math.max(0, now - sinceMs) / 1000);
    },
    handshake(_conn: ConnIdentity, result: HandshakeResult, durationMs: number) {
      handshake.observe(handshakeIndex.get(result)!, Math.max(0, durationMs) / 1000);
    },
    retransmit(_conn: ConnIdentity, kind: RetransmitKind) {
      retransmits.add(retransmits.indexOfOne(kind));
    },
    slowStartExit(_conn: ConnIdentity, reason: SlowStartExitReason) {
      slowStartExits.add(slowStartExits.indexOfOne(reason));
    },
    reset(_conn: ConnIdentity | null, direction: ResetDirection, reason: ResetReason) {
      resets.add(resets.indexOf(direction, reason));
    },
    drop(_conn: ConnIdentity | null, reason: DropReason) {
      drops.add(drops.indexOfOne(reason));
    },
    rtt(_conn: ConnIdentity, srttMs: number) {
      rtt.observe(0, srttMs / 1000);
    },
    closed(conn: ConnIdentity, reason: CloseReason, now: number) {
      closed.add(closed.indexOfOne(reason));
      // SYN received to CLOSED for every connection the stack took a SYN for, a dial that failed
      // (upstream refused, reset before the handshake ended) included: it did go SYN → CLOSED.
      connDuration.observe(0, Math.max(0, now - conn.openedAt) / 1000);
    },
    opened(_conn: ConnIdentity, family: 4 | 6) {
      opened.add(family === 4 ? 0 : 1);
    },
    upstreamConnect(_connId: number, result: UpstreamResultLabel, durationMs: number) {
      upstreamConnect.observe(upstreamIndex.get(result)!, Math.max(0, durationMs) / 1000);
    },
  });

  return {
    registry,
    openMetricsRegistry,
    close: unsubscribe,
  };
}
