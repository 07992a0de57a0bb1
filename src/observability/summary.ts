/**
 * The live page's summary (GET /api/summary): what the state diagram, the two legs and the
 * handshake chart need, in one compact JSON object, at a bounded cost per call.
 *
 * - Transitions are counted per edge from the event hub into one Float64Array indexed by
 *   from × 11 + to: an event costs one increment and allocates nothing. Counts are cumulative;
 *   the page derives rates from two successive snapshots (like Prometheus' rate()).
 * - Handshake latencies go into a ring of per-second slots (count, failures, sum, max and a
 *   fixed-bucket histogram for the quantiles) covering the last `windowSeconds`; a slot is reset
 *   when its second comes round again, so memory is fixed and nothing is ever pruned.
 * - Per-state counts, the two waiting legs and TIME-WAIT come from one pass over the connection
 *   table (`forEachSample`, no row objects), reused for `minIntervalMs` so that many open pages
 *   cost one pass between them.
 *
 * The verdict names the side that holds connections open, per "Two legs" in the product
 * contract: waiting on the app = the destination closed and the app's socket sits in CLOSE_WAIT;
 * waiting on the upstream = the app closed and the destination has not.
 */
import type { Clock } from '../stack/clock.js';
import type { EventHub } from '../stack/events.js';
import type { ConnIdentity, HandshakeResult } from '../tcp/events.js';
import { State, STATE_COUNT, STATE_NAMES, type StateName } from '../tcp/state.js';
import type { ConnectionSample } from './metrics.js';
import type { ConnectionSource } from './table.js';

/** Upper bounds (ms) of the per-second handshake latency buckets; the last one is open. */
export const HANDSHAKE_BUCKETS_MS: readonly number[] = [
  0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, Infinity,
];
const NB = HANDSHAKE_BUCKETS_MS.length;

/** Names of the columns of each handshake point, in order. */
export const HANDSHAKE_FIELDS = ['second', 'ok', 'failed', 'meanMs', 'p50Ms', 'p90Ms', 'p99Ms', 'maxMs'] as const;

export interface SummaryOptions {
  /** How far back the handshake series goes (seconds; default 600 = 10 minutes). */
  windowSeconds?: number;
  /** A snapshot's table pass is reused for this long (ms; default 500). */
  minIntervalMs?: number;
  /** synfin's upstream kernel sockets now in TIME_WAIT (e.g. from /proc/net/tcp); omitted = unknown. */
  upstreamTimeWait?: () => number;
  /** A waiting leg is a pile-up once its oldest connection has waited this long (seconds; default 5). */
  waitingAlertSeconds?: number;
  /** TIME-WAIT in the stack or on upstream sockets is worth a verdict from this many (default 1000). */
  timeWaitAlert?: number;
}

export type IssueKind = 'waiting_app' | 'waiting_upstream' | 'time_wait_stack' | 'time_wait_upstream';

export interface Issue {
  kind: IssueKind;
  count: number;
  text: string;
}

export interface WaitingLeg {
  count: number;
  /** How long the oldest of them has waited (seconds; 0 when none). */
  oldestSeconds: number;
}

export interface SummarySnapshot {
  /** Clock time of the snapshot (ms, monotonic): rates are Δtransitions / Δat. */
  at: number;
  /** Connections of the userspace stack in each state now; LISTEN is the one wildcard listener. */
  states: Record<StateName, number>;
  /** Age of the oldest connection in each state (seconds; 0 when none). */
  oldestSeconds: Record<StateName, number>;
  /** Cumulative transitions per edge "FROM>TO" since start; edges never taken are left out. */
  transitions: Record<string, number>;
  waiting: { app: WaitingLeg; upstream: WaitingLeg };
  /** TIME-WAIT in the stack (destination-first closes) and on upstream sockets (app-first closes; null = unknown). */
  timeWait: { stack: number; upstream: number | null };
  handshakes: {
    resolutionSeconds: 1;
    windowSeconds: number;
    /** The current (incomplete) second; points cover completed seconds `from`..`to`. */
    nowSecond: number;
    from: number;
    to: number;
    fields: typeof HANDSHAKE_FIELDS;
    /** Only seconds with at least one handshake; the others had none. */
    points: number[][];
  };
  verdict: { level: 'ok' | 'warn'; text: string; issues: Issue[] };
}

/**
 * One stack's summary before it is shaped for the page: what merging the stacks of `--workers N`
 * needs (summaryOf), as plain numbers a worker can post to the main thread.
 */
export interface SummaryParts {
  /** Clock time of the parts (ms). */
  at: number;
  windowSeconds: number;
  /** Connections per state (index: State); LISTEN is 1. */
  perState: number[];
  /** Age of the oldest connection per state (seconds; 0 when none). */
  oldestSeconds: number[];
  /** The edges taken since start, as pairs: from × STATE_COUNT + to, then the count. */
  edges: number[];
  waiting: { app: WaitingLeg; upstream: WaitingLeg };
  /** synfin's upstream sockets in TIME_WAIT (null = unknown). */
  upstreamTimeWait: number | null;
  /** Completed seconds with a handshake: [second, ok, failed, sum ms, max ms, then one count per HANDSHAKE_BUCKETS_MS]. */
  seconds: number[][];
}

export interface Summary {
  /** The parts of the summary now (handshake seconds after `sinceSecond` only), for summaryOf. */
  parts(sinceSecond?: number): SummaryParts;
  /**
   * The summary now. `sinceSecond`: a handshake second the caller already has; only later
   * points are returned (a page polling every second gets one or two points per call).
   */
  snapshot(sinceSecond?: number): SummarySnapshot;
  /** Stop counting events. */
  close(): void;
}

export function createSummary(hub: EventHub, source: ConnectionSource, clock: Clock, opts: SummaryOptions = {}): Summary {
  const windowSeconds = Math.max(1, Math.floor(opts.windowSeconds ?? 600));
  const minIntervalMs = opts.minIntervalMs ?? 500;
  const waitingAlertSeconds = opts.waitingAlertSeconds ?? 5;
  const timeWaitAlert = opts.timeWaitAlert ?? 1000;

  const edges = new Float64Array(STATE_COUNT * STATE_COUNT);

  // The handshake ring: slot = second mod windowSeconds; slotSecond says which second a slot holds.
  const slotSecond = new Float64Array(windowSeconds).fill(-1);
  const okCount = new Float64Array(windowSeconds);
  const failCount = new Float64Array(windowSeconds);
  const sumMs = new Float64Array(windowSeconds);
  const maxMs = new Float64Array(windowSeconds);
  const buckets = new Float64Array(windowSeconds * NB);

  function slotFor(second: number): number {
    const slot = second % windowSeconds;
    if (slotSecond[slot] !== second) {
      slotSecond[slot] = second;
      okCount[slot] = 0;
      failCount[slot] = 0;
      sumMs[slot] = 0;
      maxMs[slot] = 0;
      buckets.fill(0, slot * NB, slot * NB + NB);
    }
    return slot;
  }

  const unsubscribe = hub.subscribe({
    stateChange(_conn: ConnIdentity, from: State, to: State) {
      edges[from * STATE_COUNT + to]! += 1;
    },
    handshake(_conn: ConnIdentity, result: HandshakeResult, durationMs: number) {
      const slot = slotFor(Math.floor(clock.now() / 1000));
      // Only completed handshakes have a latency worth charting; failures are counted beside them.
      if (result !== 'ok') {
        failCount[slot]! += 1;
        return;
      }
      const ms = durationMs > 0 ? durationMs : 0;
      okCount[slot]! += 1;
      sumMs[slot]! += ms;
      if (ms > maxMs[slot]!) maxMs[slot] = ms;
      let b = 0;
      while (ms > HANDSHAKE_BUCKETS_MS[b]!) b++;
      buckets[slot * NB + b]! += 1;
    },
  });

  // The table pass, reused for minIntervalMs.
  const perState = new Float64Array(STATE_COUNT);
  const oldestAt = new Float64Array(STATE_COUNT);
  const waitCount = { app: 0, upstream: 0 };
  const waitSince = { app: Infinity, upstream: Infinity };
  let upstreamTimeWait: number | null = null;
  let scannedAt = -Infinity;
  const visit = (c: ConnectionSample): void => {
    perState[c.state]! += 1;
    if (c.createdAt < oldestAt[c.state]!) oldestAt[c.state] = c.createdAt;
    if (c.waitingOn !== null) {
      waitCount[c.waitingOn]++;
      if (c.waitingSince < waitSince[c.waitingOn]) waitSince[c.waitingOn] = c.waitingSince;
    }
  };
  function scan(now: number): void {
    if (now - scannedAt < minIntervalMs && now >= scannedAt) return;
    scannedAt = now;
    perState.fill(0);
    oldestAt.fill(Infinity);
    waitCount.app = 0;
    waitCount.upstream = 0;
    waitSince.app = Infinity;
    waitSince.upstream = Infinity;
    source.forEachSample(visit);
    // The stack answers every destination: one wildcard listener, always (as synfin_tcp_connections).
    perState[State.LISTEN] = 1;
    oldestAt[State.LISTEN] = Infinity;
    upstreamTimeWait = opts.upstreamTimeWait === undefined ? null : opts.upstreamTimeWait();
  }

  function ageSeconds(now: number, since: number): number {
    return since === Infinity ? 0 : round3(Math.max(0, now - since) / 1000);
  }

  function parts(sinceSecond?: number): SummaryParts {
    const now = clock.now();
    scan(now);
    const oldestSeconds: number[] = [];
    for (let s = 0; s < STATE_COUNT; s++) oldestSeconds.push(ageSeconds(scannedAt, oldestAt[s]!));
    const edgeCounts: number[] = [];
    for (let i = 0; i < edges.length; i++) if (edges[i]! > 0) edgeCounts.push(i, edges[i]!);
    const { from, to } = handshakeSpan(now, windowSeconds, sinceSecond);
    const seconds: number[][] = [];
    for (let sec = from; sec <= to; sec++) {
      const slot = sec % windowSeconds;
      if (sec < 0 || slotSecond[slot] !== sec) continue;
      if (okCount[slot] === 0 && failCount[slot] === 0) continue;
      const row = [sec, okCount[slot]!, failCount[slot]!, sumMs[slot]!, maxMs[slot]!];
      for (let b = 0; b < NB; b++) row.push(buckets[slot * NB + b]!);
      seconds.push(row);
    }
    return {
      at: now,
      windowSeconds,
      perState: Array.from(perState),
      oldestSeconds,
      edges: edgeCounts,
      waiting: {
        app: { count: waitCount.app, oldestSeconds: ageSeconds(scannedAt, waitSince.app) },
        upstream: { count: waitCount.upstream, oldestSeconds: ageSeconds(scannedAt, waitSince.upstream) },
      },
      upstreamTimeWait,
      seconds,
    };
  }

  const verdictOptions = { waitingAlertSeconds, timeWaitAlert };
  return {
    parts,
    snapshot: (sinceSecond) => summaryOf([parts(sinceSecond)], verdictOptions, sinceSecond),
    close: unsubscribe,
  };
}

/** The completed handshake seconds a snapshot at `now` covers: the window, or those after `sinceSecond`. */
function handshakeSpan(now: number, windowSeconds: number, sinceSecond: number | undefined): { nowSecond: number; from: number; to: number } {
  const nowSecond = Math.floor(now / 1000);
  let from = nowSecond - windowSeconds + 1;
  if (sinceSecond !== undefined && Number.isFinite(sinceSecond) && sinceSecond + 1 > from) from = Math.floor(sinceSecond) + 1;
  return { nowSecond, from, to: nowSecond - 1 };
}

/** Offsets in a `SummaryParts.seconds` row. */
const SEC_SECOND = 0;
const SEC_OK = 1;
const SEC_FAILED = 2;
const SEC_SUM_MS = 3;
const SEC_MAX_MS = 4;
const SEC_BUCKETS = 5;

/**
 * The summary of one stack or of several (`--workers N`: one stack per worker): counts and
 * transitions summed, the oldest ages and per-second maxima the largest, handshake quantiles from
 * the summed bucket counts (so they are those of all the handshakes, not an average of the
 * workers' quantiles), the verdict judged on the whole.
 */
export function summaryOf(
  all: readonly SummaryParts[],
  opts: { waitingAlertSeconds?: number; timeWaitAlert?: number } = {},
  sinceSecond?: number,
): SummarySnapshot {
  const at = all.reduce((a, p) => Math.max(a, p.at), 0);
  const windowSeconds = all[0]?.windowSeconds ?? 600;
  const perState = new Array<number>(STATE_COUNT).fill(0);
  const oldest = new Array<number>(STATE_COUNT).fill(0);
  const edges = new Map<number, number>();
  const waiting = { app: { count: 0, oldestSeconds: 0 }, upstream: { count: 0, oldestSeconds: 0 } };
  let upstreamTimeWait: number | null = null;
  const bySecond = new Map<number, number[]>();
  for (const p of all) {
    for (let s = 0; s < STATE_COUNT; s++) {
      perState[s]! += p.perState[s]!;
      oldest[s] = Math.max(oldest[s]!, p.oldestSeconds[s]!);
    }
    for (let i = 0; i < p.edges.length; i += 2) edges.set(p.edges[i]!, (edges.get(p.edges[i]!) ?? 0) + p.edges[i + 1]!);
    for (const leg of ['app', 'upstream'] as const) {
      waiting[leg].count += p.waiting[leg].count;
      waiting[leg].oldestSeconds = Math.max(waiting[leg].oldestSeconds, p.waiting[leg].oldestSeconds);
    }
    if (p.upstreamTimeWait !== null) upstreamTimeWait = (upstreamTimeWait ?? 0) + p.upstreamTimeWait;
    for (const row of p.seconds) {
      const into = bySecond.get(row[SEC_SECOND]!);
      if (into === undefined) {
        bySecond.set(row[SEC_SECOND]!, row.slice());
        continue;
      }
      for (let i = SEC_OK; i < row.length; i++) into[i] = i === SEC_MAX_MS ? Math.max(into[i]!, row[i]!) : into[i]! + row[i]!;
    }
  }
  // The stack answers every destination: one wildcard listener, however many stacks (as synfin_tcp_connections).
  if (all.length > 0) perState[State.LISTEN] = 1;

  const states = {} as Record<StateName, number>;
  const oldestSeconds = {} as Record<StateName, number>;
  for (let s = 0; s < STATE_COUNT; s++) {
    states[STATE_NAMES[s]!] = perState[s]!;
    oldestSeconds[STATE_NAMES[s]!] = oldest[s]!;
  }
  const transitions: Record<string, number> = {};
  for (const [i, n] of [...edges].sort((a, b) => a[0] - b[0])) {
    transitions[`${STATE_NAMES[Math.floor(i / STATE_COUNT)]!}>${STATE_NAMES[i % STATE_COUNT]!}`] = n;
  }
  const timeWait = { stack: perState[State.TIME_WAIT]!, upstream: upstreamTimeWait };

  const { nowSecond, from, to } = handshakeSpan(at, windowSeconds, sinceSecond);
  const points: number[][] = [];
  for (const row of [...bySecond.values()].sort((a, b) => a[SEC_SECOND]! - b[SEC_SECOND]!)) {
    const sec = row[SEC_SECOND]!;
    if (sec < from || sec > to) continue;
    const ok = row[SEC_OK]!;
    const max = row[SEC_MAX_MS]!;
    points.push([
      sec,
      ok,
      row[SEC_FAILED]!,
      round3(ok > 0 ? row[SEC_SUM_MS]! / ok : 0),
      round3(quantile(row, SEC_BUCKETS, ok, max, 0.5)),
      round3(quantile(row, SEC_BUCKETS, ok, max, 0.9)),
      round3(quantile(row, SEC_BUCKETS, ok, max, 0.99)),
      round3(max),
    ]);
  }

  const issues = diagnose(waiting, timeWait, opts.waitingAlertSeconds ?? 5, opts.timeWaitAlert ?? 1000);
  return {
    at,
    states,
    oldestSeconds,
    transitions,
    waiting,
    timeWait,
    handshakes: { resolutionSeconds: 1, windowSeconds, nowSecond, from, to, fields: HANDSHAKE_FIELDS, points },
    verdict: {
      level: issues.length === 0 ? 'ok' : 'warn',
      text: issues.length === 0 ? healthyText(perState) : issues.map((i) => i.text).join(' · '),
      issues,
    },
  };
}

/** Three decimals (µs for ms, ms for seconds) keep the JSON short; nothing finer is meaningful here. */
function round3(x: number): number {
  return Math.round(x * 1000) / 1000;
}

/**
 * The q-quantile of one second's latencies from its bucket counts: linear within the bucket
 * holding the rank (as Prometheus' histogram_quantile), never above the observed maximum.
 */
function quantile(buckets: ArrayLike<number>, off: number, count: number, max: number, q: number): number {
  if (count === 0) return 0;
  const rank = q * count;
  let cum = 0;
  for (let b = 0; b < NB; b++) {
    const n = buckets[off + b]!;
    if (n > 0 && cum + n >= rank) {
      const lo = b === 0 ? 0 : HANDSHAKE_BUCKETS_MS[b - 1]!;
      const hi = Math.min(HANDSHAKE_BUCKETS_MS[b]!, max);
      return Math.min(max, lo + (Math.max(hi, lo) - lo) * ((rank - cum) / n));
    }
    cum += n;
  }
  return max;
}

function plural(n: number, one: string, many: string): string {
  return `${n} ${n === 1 ? one : many}`;
}

function seconds(s: number): string {
  return s < 10 ? `${s.toFixed(1)} s` : `${Math.round(s)} s`;
}

/** Where connections pile up, naming the side that holds them (see "Two legs"). */
export function diagnose(
  waiting: { app: WaitingLeg; upstream: WaitingLeg },
  timeWait: { stack: number; upstream: number | null },
  waitingAlertSeconds: number,
  timeWaitAlert: number,
): Issue[] {
  const issues: Issue[] = [];
  const app = waiting.app;
  if (app.count > 0 && app.oldestSeconds >= waitingAlertSeconds) {
    issues.push({
      kind: 'waiting_app',
      count: app.count,
      text:
        `${plural(app.count, 'connection waits', 'connections wait')} on the app (oldest ${seconds(app.oldestSeconds)}): ` +
        'it is not closing its sockets after the server closed (they sit in CLOSE_WAIT in the app)',
    });
  }
  const up = waiting.upstream;
  if (up.count > 0 && up.oldestSeconds >= waitingAlertSeconds) {
    issues.push({
      kind: 'waiting_upstream',
      count: up.count,
      text:
        `${plural(up.count, 'connection waits', 'connections wait')} on the upstream (oldest ${seconds(up.oldestSeconds)}): ` +
        'the destination is not closing after the app closed (synfin holds them in CLOSE_WAIT, its upstream socket in FIN_WAIT_2)',
    });
  }
  if (timeWait.stack >= timeWaitAlert) {
    issues.push({
      kind: 'time_wait_stack',
      count: timeWait.stack,
      text: `${plural(timeWait.stack, 'connection', 'connections')} in TIME-WAIT in synfin's stack: destinations close first, synfin closed toward the app first`,
    });
  }
  if (timeWait.upstream !== null && timeWait.upstream >= timeWaitAlert) {
    issues.push({
      kind: 'time_wait_upstream',
      count: timeWait.upstream,
      text: `${plural(timeWait.upstream, 'upstream socket', 'upstream sockets')} in TIME-WAIT: apps close first, and each ties up an ephemeral port toward its destination for 60 s (port exhaustion)`,
    });
  }
  return issues;
}

function healthyText(perState: ArrayLike<number>): string {
  let open = 0;
  for (let s = 0; s < STATE_COUNT; s++) if (s !== State.LISTEN && s !== State.CLOSED) open += perState[s]!;
  return `No pile-up: ${plural(open, 'connection', 'connections')} open, none held by either side.`;
}
