import { describe, expect, it } from 'vitest';
import { identity } from '../helpers/identity.js';
import type { ConnectionSample } from '../../src/observability/metrics.js';
import { createSummary, diagnose, HANDSHAKE_FIELDS, summaryOf, type SummaryOptions } from '../../src/observability/summary.js';
import type { ConnectionSource } from '../../src/observability/table.js';
import { ManualClock } from '../../src/stack/clock.js';
import { EventHub } from '../../src/stack/events.js';
import { State } from '../../src/tcp/state.js';

const T0 = 1_000_000; // ms: second 1000

function sample(state: State, createdAt: number, waiting: 'app' | 'upstream' | null = null, waitingSince = 0): ConnectionSample {
  return { state, createdAt, lastActivityAt: createdAt, waitingOn: waiting, waitingSince };
}

function setup(samples: ConnectionSample[] = [], opts: SummaryOptions = {}) {
  const clock = new ManualClock(T0);
  const hub = new EventHub();
  let scans = 0;
  const source: ConnectionSource = {
    rows: () => {
      throw new Error('the summary must not build rows');
    },
    forEachSample: (visit) => {
      scans++;
      for (const s of samples) visit(s);
    },
  };
  const summary = createSummary(hub, source, clock, { minIntervalMs: 0, ...opts });
  return { clock, hub, summary, samples, scans: () => scans };
}

const conn = identity(1, 0);

/** A handshake point as an object, by field name. */
function point(p: number[]): Record<(typeof HANDSHAKE_FIELDS)[number], number> {
  return Object.fromEntries(HANDSHAKE_FIELDS.map((f, i) => [f, p[i]!])) as Record<(typeof HANDSHAKE_FIELDS)[number], number>;
}

describe('summary: transitions', () => {
  it('counts each transition on its own edge, cumulatively', () => {
    const { hub, summary } = setup();
    hub.stateChange(conn, State.ESTABLISHED, State.FIN_WAIT_1, T0, T0 - 10);
    hub.stateChange(conn, State.ESTABLISHED, State.FIN_WAIT_1, T0, T0 - 10);
    hub.stateChange(conn, State.FIN_WAIT_1, State.FIN_WAIT_2, T0, T0 - 10);
    hub.stateChange(conn, State.CLOSE_WAIT, State.LAST_ACK, T0, T0 - 10);
    expect(summary.snapshot().transitions).toEqual({
      'ESTABLISHED>FIN_WAIT_1': 2,
      'FIN_WAIT_1>FIN_WAIT_2': 1,
      'CLOSE_WAIT>LAST_ACK': 1,
    });
  });

  it('keeps the two directions of an edge apart', () => {
    const { hub, summary } = setup();
    hub.stateChange(conn, State.SYN_RECEIVED, State.LISTEN, T0, T0);
    hub.stateChange(conn, State.LISTEN, State.SYN_RECEIVED, T0, T0);
    hub.stateChange(conn, State.LISTEN, State.SYN_RECEIVED, T0, T0);
    const t = summary.snapshot().transitions;
    expect(t['LISTEN>SYN_RECEIVED']).toBe(2);
    expect(t['SYN_RECEIVED>LISTEN']).toBe(1);
  });

  it('close() stops counting', () => {
    const { hub, summary } = setup();
    hub.stateChange(conn, State.TIME_WAIT, State.CLOSED, T0, T0);
    summary.close();
    hub.stateChange(conn, State.TIME_WAIT, State.CLOSED, T0, T0);
    hub.handshake(conn, 'ok', 1);
    expect(summary.snapshot().transitions).toEqual({ 'TIME_WAIT>CLOSED': 1 });
    expect(hub.hasStateSubscribers).toBe(false);
  });

  it('stamps each snapshot with the clock so rates can be derived', () => {
    const { clock, summary } = setup();
    const a = summary.snapshot().at;
    clock.advance(1500);
    expect(summary.snapshot().at - a).toBe(1500);
  });
});

describe('summary: states and the two legs', () => {
  it('counts connections per state from the table, with the one LISTEN', () => {
    const { summary } = setup([
      sample(State.ESTABLISHED, T0 - 5000),
      sample(State.ESTABLISHED, T0 - 1000),
      sample(State.TIME_WAIT, T0 - 2000),
    ]);
    const s = summary.snapshot();
    expect(s.states.ESTABLISHED).toBe(2);
    expect(s.states.TIME_WAIT).toBe(1);
    expect(s.states.LISTEN).toBe(1);
    expect(s.states.CLOSED).toBe(0);
    expect(Object.keys(s.states)).toHaveLength(11);
    expect(s.oldestSeconds.ESTABLISHED).toBe(5);
    expect(s.oldestSeconds.FIN_WAIT_2).toBe(0);
  });

  it('counts waiting on the app and on the upstream, with the oldest wait of each', () => {
    const { summary } = setup([
      sample(State.FIN_WAIT_2, T0 - 100_000, 'app', T0 - 60_000),
      sample(State.FIN_WAIT_1, T0 - 10_000, 'app', T0 - 3_000),
      sample(State.CLOSE_WAIT, T0 - 9_000, 'upstream', T0 - 8_000),
      sample(State.ESTABLISHED, T0 - 9_000),
    ]);
    const w = summary.snapshot().waiting;
    expect(w.app).toEqual({ count: 2, oldestSeconds: 60 });
    expect(w.upstream).toEqual({ count: 1, oldestSeconds: 8 });
  });

  it('reports TIME-WAIT in the stack, and on upstream sockets only when told', () => {
    const unknown = setup([sample(State.TIME_WAIT, T0)]).summary.snapshot().timeWait;
    expect(unknown).toEqual({ stack: 1, upstream: null });
    const known = setup([sample(State.TIME_WAIT, T0)], { upstreamTimeWait: () => 42 }).summary.snapshot().timeWait;
    expect(known).toEqual({ stack: 1, upstream: 42 });
  });

  it('reuses one table pass for minIntervalMs', () => {
    const env = setup([sample(State.ESTABLISHED, T0)], { minIntervalMs: 500 });
    env.summary.snapshot();
    env.clock.advance(499);
    env.summary.snapshot();
    expect(env.scans()).toBe(1);
    env.clock.advance(1);
    env.summary.snapshot();
    expect(env.scans()).toBe(2);
  });

  it('a reused table pass still reports transitions as they are now', () => {
    const { hub, summary } = setup([], { minIntervalMs: 10_000 });
    summary.snapshot();
    hub.stateChange(conn, State.ESTABLISHED, State.CLOSE_WAIT, T0, T0);
    expect(summary.snapshot().transitions['ESTABLISHED>CLOSE_WAIT']).toBe(1);
  });
});

describe('summary: handshake latency ring', () => {
  it('summarises one second: completed, failed, mean, max and quantiles', () => {
    const { clock, hub, summary } = setup();
    for (let i = 1; i <= 100; i++) hub.handshake(conn, 'ok', i / 10); // 0.1 .. 10 ms
    hub.handshake(conn, 'upstream_refused', 3000);
    hub.handshake(conn, 'timeout', 9000);
    clock.advance(1000);
    const h = summary.snapshot().handshakes;
    expect(h.points).toHaveLength(1);
    const p = point(h.points[0]!);
    expect(p.second).toBe(1000);
    expect(p.ok).toBe(100);
    expect(p.failed).toBe(2);
    expect(p.meanMs).toBeCloseTo(5.05, 9);
    expect(p.maxMs).toBe(10);
    // Rank 50 falls in the (2.5, 5] ms bucket, rank 99 in (5, 10]: estimates stay inside them.
    expect(p.p50Ms).toBeGreaterThan(2.5);
    expect(p.p50Ms).toBeLessThanOrEqual(5);
    expect(p.p99Ms).toBeGreaterThan(5);
    expect(p.p99Ms).toBeLessThanOrEqual(10);
  });

  it('never estimates a quantile above the slowest handshake of the second', () => {
    const { clock, hub, summary } = setup();
    hub.handshake(conn, 'ok', 260); // alone in the (250, 500] bucket
    clock.advance(1000);
    const p = point(summary.snapshot().handshakes.points[0]!);
    expect(p.p50Ms).toBeLessThanOrEqual(260);
    expect(p.p99Ms).toBeLessThanOrEqual(260);
    expect(p.p99Ms).toBeGreaterThan(250);
  });

  it('leaves the current second out until it is complete', () => {
    const { clock, hub, summary } = setup();
    hub.handshake(conn, 'ok', 1);
    expect(summary.snapshot().handshakes.points).toEqual([]);
    clock.advance(1000);
    expect(summary.snapshot().handshakes.points).toHaveLength(1);
  });

  it('keeps only the last windowSeconds, and a reused slot starts empty', () => {
    const { clock, hub, summary } = setup([], { windowSeconds: 10 });
    for (let s = 0; s < 25; s++) {
      hub.handshake(conn, 'ok', 1 + s);
      clock.advance(1000);
    }
    const h = summary.snapshot().handshakes;
    expect(h.windowSeconds).toBe(10);
    expect(h.nowSecond).toBe(1025);
    expect(h.points.map((p) => p[0])).toEqual([1016, 1017, 1018, 1019, 1020, 1021, 1022, 1023, 1024]);
    // Second 1024 reused the slot of 1014 and 1004: one handshake, not three.
    const last = point(h.points[h.points.length - 1]!);
    expect(last.ok).toBe(1);
    expect(last.maxMs).toBe(25);
  });

  it('returns only seconds after `since`', () => {
    const { clock, hub, summary } = setup();
    for (let s = 0; s < 5; s++) {
      hub.handshake(conn, 'ok', 1);
      clock.advance(1000);
    }
    const h = summary.snapshot(1002);
    expect(h.handshakes.from).toBe(1003);
    expect(h.handshakes.points.map((p) => p[0])).toEqual([1003, 1004]);
  });

  it('leaves seconds without handshakes out of the series', () => {
    const { clock, hub, summary } = setup();
    hub.handshake(conn, 'ok', 1);
    clock.advance(3000);
    hub.handshake(conn, 'ok', 1);
    clock.advance(1000);
    expect(summary.snapshot().handshakes.points.map((p) => p[0])).toEqual([1000, 1003]);
  });
});

describe('summary: verdict', () => {
  it('names the app when connections wait on it past the threshold', () => {
    const { summary } = setup([
      sample(State.FIN_WAIT_2, T0 - 100_000, 'app', T0 - 60_000),
      sample(State.FIN_WAIT_2, T0 - 100_000, 'app', T0 - 1_000),
    ]);
    const v = summary.snapshot().verdict;
    expect(v.level).toBe('warn');
    expect(v.issues.map((i) => i.kind)).toEqual(['waiting_app']);
    expect(v.text).toBe(
      '2 connections wait on the app (oldest 60 s): it is not closing its sockets after the server closed (they sit in CLOSE_WAIT in the app)',
    );
  });

  it('names the destination when connections wait on the upstream', () => {
    const { summary } = setup([sample(State.CLOSE_WAIT, T0 - 30_000, 'upstream', T0 - 20_000)]);
    const v = summary.snapshot().verdict;
    expect(v.issues.map((i) => i.kind)).toEqual(['waiting_upstream']);
    expect(v.text).toMatch(/^1 connection waits on the upstream \(oldest 20 s\): the destination is not closing after the app closed/);
  });

  it('a half-close younger than the threshold is not a pile-up', () => {
    const { summary } = setup([sample(State.FIN_WAIT_2, T0 - 2_000, 'app', T0 - 1_000), sample(State.ESTABLISHED, T0)], {
      waitingAlertSeconds: 5,
    });
    const v = summary.snapshot().verdict;
    expect(v.level).toBe('ok');
    expect(v.text).toBe('No pile-up: 2 connections open, none held by either side.');
  });

  it('flags TIME-WAIT in the stack and on upstream sockets at the threshold', () => {
    const tw = Array.from({ length: 3 }, () => sample(State.TIME_WAIT, T0));
    const { summary } = setup(tw, { timeWaitAlert: 3, upstreamTimeWait: () => 5 });
    const v = summary.snapshot().verdict;
    expect(v.issues.map((i) => [i.kind, i.count])).toEqual([
      ['time_wait_stack', 3],
      ['time_wait_upstream', 5],
    ]);
    expect(v.issues[1]!.text).toMatch(/upstream sockets in TIME-WAIT: apps close first/);
  });

  it('unknown upstream TIME-WAIT is never a verdict', () => {
    const issues = diagnose({ app: { count: 0, oldestSeconds: 0 }, upstream: { count: 0, oldestSeconds: 0 } }, { stack: 0, upstream: null }, 5, 0);
    expect(issues.map((i) => i.kind)).toEqual(['time_wait_stack']);
  });
});

describe('summary of several stacks (--workers N): summaryOf', () => {
  it('gives the quantiles of all the handshakes together, not an average of each stack\'s', () => {
    const a = setup();
    const b = setup();
    const whole = setup();
    // Stack a: 90 fast handshakes; stack b: 10 slow ones. Together the p90 sits at the fast end.
    for (let i = 0; i < 90; i++) {
      a.hub.handshake(conn, 'ok', 0.2);
      whole.hub.handshake(conn, 'ok', 0.2);
    }
    for (let i = 0; i < 10; i++) {
      b.hub.handshake(conn, 'ok', 40);
      whole.hub.handshake(conn, 'ok', 40);
    }
    b.hub.handshake(conn, 'timeout', 9000);
    whole.hub.handshake(conn, 'timeout', 9000);
    for (const s of [a, b, whole]) s.clock.advance(1000);
    const merged = summaryOf([a.summary.parts(), b.summary.parts()]);
    expect(merged.handshakes.points).toEqual(whole.summary.snapshot().handshakes.points);
    const p = point(merged.handshakes.points[0]!);
    expect(p).toMatchObject({ ok: 100, failed: 1, maxMs: 40 });
    expect(p.p90Ms).toBeLessThan(1);
    expect(p.p99Ms).toBeGreaterThan(25);
  });

  it('sums counts and transitions, keeps one LISTEN and the oldest ages, and judges the verdict on the whole', () => {
    const tw = (n: number, at: number): ConnectionSample[] => Array.from({ length: n }, () => sample(State.TIME_WAIT, at));
    const a = setup([...tw(600, T0 - 5000), sample(State.CLOSE_WAIT, T0 - 9000, 'app', T0 - 9000)]);
    const b = setup([...tw(600, T0 - 2000), sample(State.ESTABLISHED, T0 - 1000)], { upstreamTimeWait: () => 7 });
    a.hub.stateChange(conn, State.ESTABLISHED, State.FIN_WAIT_1, T0, T0);
    b.hub.stateChange(conn, State.ESTABLISHED, State.FIN_WAIT_1, T0, T0);
    b.hub.stateChange(conn, State.FIN_WAIT_1, State.FIN_WAIT_2, T0, T0);
    // Each alone stays under the TIME-WAIT alert (1000); together they are over it.
    expect(a.summary.snapshot().verdict.issues.map((i) => i.kind)).toEqual(['waiting_app']);
    expect(b.summary.snapshot().verdict.level).toBe('ok');
    const s = summaryOf([a.summary.parts(), b.summary.parts()]);
    expect(s.states).toMatchObject({ LISTEN: 1, TIME_WAIT: 1200, CLOSE_WAIT: 1, ESTABLISHED: 1 });
    expect(s.oldestSeconds.TIME_WAIT).toBe(5);
    expect(s.transitions).toEqual({ 'ESTABLISHED>FIN_WAIT_1': 2, 'FIN_WAIT_1>FIN_WAIT_2': 1 });
    expect(s.waiting.app).toEqual({ count: 1, oldestSeconds: 9 });
    // One stack knows its upstream TIME_WAIT, the other does not: the known part is what there is.
    expect(s.timeWait).toEqual({ stack: 1200, upstream: 7 });
    expect(s.verdict.issues.map((i) => i.kind)).toEqual(['waiting_app', 'time_wait_stack']);
  });

  it('of one stack is that stack\'s snapshot', () => {
    const a = setup([sample(State.ESTABLISHED, T0 - 3000), sample(State.LAST_ACK, T0 - 500, 'upstream', T0 - 500)]);
    a.hub.handshake(conn, 'ok', 2);
    a.hub.stateChange(conn, State.CLOSE_WAIT, State.LAST_ACK, T0, T0);
    a.clock.advance(2000);
    expect(summaryOf([a.summary.parts()])).toEqual(a.summary.snapshot());
    expect(summaryOf([a.summary.parts(999)], {}, 999)).toEqual(a.summary.snapshot(999));
  });
});
