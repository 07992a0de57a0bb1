/**
 * The flight recorder (/api/history): the ring keeps the last N closed connections newest first
 * and filters them; the records are built from the hub's events alone, here driven through the
 * real stack on an in-memory link with a manual clock, so every time in a record is exact.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { build } from '../../src/http/app.js';
import { createMetrics } from '../../src/observability/metrics.js';
import { accessLog, createLogger } from '../../src/observability/log.js';
import { Draft, FlightRecorder, HistoryRing, LiveDrafts, MAX_STATES, type HistoryRecord } from '../../src/observability/history.js';
import type { UpstreamLeg } from '../../src/stack/upstream-leg.js';
import type { ConnHandler, TcpConn } from '../../src/tcp/conn.js';
import type { CloseReason } from '../../src/tcp/events.js';
import { seqAdd } from '../../src/tcp/seq.js';
import { State } from '../../src/tcp/state.js';
import { TcpFlag } from '../../src/wire/segment.js';
import { APP_ISN, appPacket, stackHarness } from '../stack/stack-harness.js';

/** Wall-clock epoch ms when the harness's clock reads 0. */
const WALL0 = Date.UTC(2026, 11, 6, 12, 0, 0);
const iso = (stackMs: number) => new Date(WALL0 + stackMs).toISOString();

function setup(capacity = 100) {
  const h = stackHarness({ mslMs: 500 });
  const recorder = new FlightRecorder({ capacity, wallClock: () => WALL0 + h.clock.now() });
  recorder.attach(h.hub);
  const all = () => recorder.ring.query({}, Infinity, 1000, Infinity).records;
  return { h, recorder, all };
}

/** An UpstreamLeg as the proxy would publish it (only the id is read by the recorder). */
function leg(id: number): UpstreamLeg {
  return {
    id,
    waitingSince: 0,
    upstreamClosed: false,
    connectMs: 0,
    bytesToUpstream: 0,
    bytesFromUpstream: 0,
    closedBy: 'destination',
    upstreamFd: () => -1,
    upstreamEndpoints: () => null,
    watchedTuple: () => null,
  };
}

const quietHandler = (h: ReturnType<typeof stackHarness>): ConnHandler => ({
  onEstablished() {},
  onData: (c: TcpConn, d: Buffer) => c.consume(d.length, h.clock.now()),
  onFin() {},
  onSendSpace() {},
  onClosed() {},
});

/** SYN at the clock's now, the dial takes `dialMs`, the final ACK `ackMs` after the SYN-ACK. */
function open(h: ReturnType<typeof stackHarness>, srcPort: number, dialMs: number, ackMs: number) {
  h.send(appPacket({ seq: APP_ISN, flags: TcpFlag.SYN, srcPort }));
  const req = h.syns.shift()!;
  h.clock.advance(dialMs);
  h.hub.upstreamConnect(req.id, 'ok', dialMs, h.clock.now());
  const conn = h.stack.acceptPending(req, quietHandler(h))!;
  h.stack.flush();
  const ourIss = h.link.take().at(-1)!.seg.seq;
  h.clock.advance(ackMs);
  h.send(appPacket({ seq: seqAdd(APP_ISN, 1), ack: seqAdd(ourIss, 1), flags: TcpFlag.ACK, srcPort }));
  return { conn, ourIss, id: req.id };
}

describe('flight recorder: records built from the events', () => {
  it('an app-first close: closedFirstBy app, reason fin, every state with the time it was entered', () => {
    const { h, all } = setup();
    h.clock.set(10_000);
    const { conn, ourIss, id } = open(h, 41000, 4, 2);
    // 5 bytes to the app, acknowledged.
    conn.write(Buffer.from('hello'));
    h.stack.wake(conn);
    h.stack.flush();
    h.clock.advance(100);
    h.send(appPacket({ seq: seqAdd(APP_ISN, 1), ack: seqAdd(ourIss, 6), flags: TcpFlag.ACK, srcPort: 41000 }));
    // The app's FIN (our CLOSE_WAIT), then our FIN and the app's ACK of it (LAST_ACK → CLOSED).
    h.clock.advance(1000);
    h.send(appPacket({ seq: seqAdd(APP_ISN, 1), ack: seqAdd(ourIss, 6), flags: TcpFlag.ACK | TcpFlag.FIN, srcPort: 41000 }));
    h.clock.advance(50);
    conn.close(h.clock.now());
    h.stack.wake(conn);
    h.stack.flush();
    h.clock.advance(3);
    h.send(appPacket({ seq: seqAdd(APP_ISN, 2), ack: seqAdd(ourIss, 7), flags: TcpFlag.ACK, srcPort: 41000 }));
    expect(conn.state).toBe(State.CLOSED);

    expect(all()).toEqual<HistoryRecord[]>([
      {
        id,
        client: '198.18.0.1:41000',
        destination: '198.18.1.2:80',
        service: 'other',
        openedAt: iso(10_000),
        closedAt: iso(11_159),
        durationSeconds: 1.159,
        handshakeSeconds: 0.006,
        connectSeconds: 0.004,
        bytesIn: 0,
        bytesOut: 5,
        closedFirstBy: 'app',
        reason: 'fin',
        retransmits: 0,
        states: [
          { state: 'SYN_RECEIVED', at: iso(10_004) },
          { state: 'ESTABLISHED', at: iso(10_006) },
          { state: 'CLOSE_WAIT', at: iso(11_106) },
          { state: 'LAST_ACK', at: iso(11_156) },
          { state: 'CLOSED', at: iso(11_159) },
        ],
        appProcess: null,
      },
    ]);
  });

  it('an upstream-first close is recorded when TIME-WAIT ends, closedFirstBy upstream', () => {
    const { h, all, recorder } = setup();
    h.clock.set(0);
    const { conn, ourIss, id } = open(h, 41001, 1, 1);
    h.clock.advance(10);
    // The destination's EOF arrives (the pipe publishes it), then the pipe closes the app leg.
    h.hub.upstreamEnded(leg(id), 'fin', h.clock.now());
    h.closeToTimeWait(conn, ourIss, { srcPort: 41001 });
    expect(all()).toEqual([]); // in TIME-WAIT: still a row of /api/connections
    expect(recorder.liveDrafts).toBe(1);
    h.clock.advance(1000); // 2×MSL
    h.stack.runTimers();
    const [r] = all();
    expect(r).toMatchObject({ id, closedFirstBy: 'upstream', reason: 'fin', durationSeconds: 1.012, handshakeSeconds: 0.002 });
    expect(r!.states.map((s) => s.state)).toEqual(['SYN_RECEIVED', 'ESTABLISHED', 'FIN_WAIT_1', 'TIME_WAIT', 'CLOSED']);
    expect(r!.states[3]!.at).toBe(iso(12));
    expect(recorder.liveDrafts).toBe(0);
  });

  it('without the upstream event, our FIN first (the owner closed) still reads as upstream', () => {
    const { h, all } = setup();
    const { conn, ourIss } = open(h, 41002, 1, 1);
    h.closeToTimeWait(conn, ourIss, { srcPort: 41002 });
    h.clock.advance(1000);
    h.stack.runTimers();
    expect(all()[0]!.closedFirstBy).toBe('upstream');
  });

  it('the app resets: closedFirstBy app, reason reset_received', () => {
    const { h, all } = setup();
    const { ourIss } = open(h, 41003, 1, 1);
    h.send(appPacket({ seq: seqAdd(APP_ISN, 1), ack: seqAdd(ourIss, 1), flags: TcpFlag.RST, srcPort: 41003 }));
    expect(all()[0]).toMatchObject({ closedFirstBy: 'app', reason: 'reset_received' });
  });

  it('the destination resets: closedFirstBy upstream, reason upstream_failed', () => {
    const { h, all } = setup();
    const { conn, id } = open(h, 41004, 1, 1);
    h.hub.upstreamEnded(leg(id), 'reset', h.clock.now());
    conn.abort('upstream_reset', h.clock.now());
    h.stack.wake(conn);
    h.stack.flush();
    expect(all()[0]).toMatchObject({ closedFirstBy: 'upstream', reason: 'upstream_failed' });
  });

  it("synfin's idle timeout and shutdown: closedFirstBy synfin", () => {
    const { h, all } = setup();
    const a = open(h, 41005, 1, 1);
    const b = open(h, 41006, 1, 1);
    a.conn.abort('idle_timeout', h.clock.now());
    h.stack.wake(a.conn);
    h.stack.flush();
    h.stack.abortAll('shutdown');
    expect(all().map((r) => [r.id, r.closedFirstBy, r.reason])).toEqual([
      [b.id, 'synfin', 'shutdown'],
      [a.id, 'synfin', 'idle_timeout'],
    ]);
  });

  it('a refused dial is the destination’s; a refusal without a dial (policy, loop) and a connect timeout are synfin’s', () => {
    const { h, all } = setup();
    const refused = (srcPort: number, result: 'refused' | 'timeout' | null) => {
      h.send(appPacket({ seq: APP_ISN, flags: TcpFlag.SYN, srcPort }));
      const req = h.syns.shift()!;
      h.clock.advance(30);
      if (result !== null) h.hub.upstreamConnect(req.id, result, 30, h.clock.now());
      h.stack.rejectPending(req, 'refused', result === 'timeout' ? 'upstream_timeout' : 'upstream_refused');
      return req.id;
    };
    const a = refused(41007, 'refused');
    const b = refused(41008, null);
    const c = refused(41009, 'timeout');
    const byId = new Map(all().map((r) => [r.id, r]));
    expect(byId.get(a)).toMatchObject({ closedFirstBy: 'upstream', reason: 'upstream_failed', connectSeconds: 0.03, handshakeSeconds: null, bytesIn: 0, bytesOut: 0 });
    expect(byId.get(a)!.states).toEqual([{ state: 'CLOSED', at: byId.get(a)!.closedAt }]);
    expect(byId.get(b)).toMatchObject({ closedFirstBy: 'synfin', connectSeconds: null });
    expect(byId.get(c)).toMatchObject({ closedFirstBy: 'synfin', connectSeconds: 0.03 });
  });

  it('a pending SYN forgotten at the dial cap leaves no record and no draft', () => {
    const { h, all, recorder } = setup();
    h.send(appPacket({ seq: APP_ISN, flags: TcpFlag.SYN, srcPort: 41010 }));
    h.stack.dropPendingQuietly(h.syns.shift()!);
    expect(all()).toEqual([]);
    expect(recorder.liveDrafts).toBe(0);
  });

  it('names the service and the app process through the hooks, and hands each record to onRecord', () => {
    const { h, all, recorder } = setup();
    const seen: Array<[number, number, number]> = [];
    recorder.serviceOf = (family, address, port) => {
      seen.push([family, address[3]!, port]);
      return port === 80 ? 'shop/web' : 'other';
    };
    recorder.appProcessOf = (id) => ({ pid: 4242, command: 'python3', fd: id });
    const logged: HistoryRecord[] = [];
    recorder.onRecord = (r) => logged.push(r);
    const { ourIss, id } = open(h, 41011, 1, 1);
    h.send(appPacket({ seq: seqAdd(APP_ISN, 1), ack: seqAdd(ourIss, 1), flags: TcpFlag.RST, srcPort: 41011 }));
    expect(seen).toEqual([[4, 0xc6120102, 80]]);
    expect(all()[0]).toMatchObject({ service: 'shop/web', appProcess: { pid: 4242, command: 'python3', fd: id } });
    expect(logged).toEqual(all());
    expect(recorder.ring.query({ service: 'shop/web' }, Infinity, 10, Infinity).records).toHaveLength(1);
    expect(recorder.ring.query({ service: 'other' }, Infinity, 10, Infinity).records).toHaveLength(0);
  });

  it('with --history 0 the ring stays empty but the access log still gets every record', () => {
    const { h, all, recorder } = setup(0);
    const logged: HistoryRecord[] = [];
    recorder.onRecord = (r) => logged.push(r);
    const { ourIss } = open(h, 41012, 1, 1);
    h.send(appPacket({ seq: seqAdd(APP_ISN, 1), ack: seqAdd(ourIss, 1), flags: TcpFlag.RST, srcPort: 41012 }));
    expect(all()).toEqual([]);
    expect(logged.map((r) => [r.client, r.closedFirstBy])).toEqual([['198.18.0.1:41012', 'app']]);
  });
});

/** A draft as the recorder would have made it. */
function draft(id: number, openedAt: number, port: number): Draft {
  const d = new Draft();
  d.reset(id, openedAt);
  d.hasFlow = true;
  d.family = 4;
  d.clientPort = port;
  d.destinationPort = 443;
  d.client.set([0, 0, 0, 0x0a000001]);
  d.destination.set([0, 0, 0, 0x0a000002]);
  d.addState(State.CLOSED, openedAt);
  return d;
}

const reasons: CloseReason[] = ['fin', 'reset_received', 'idle_timeout'];

describe('flight recorder: the ring', () => {

  it('keeps the last N records, newest first', () => {
    const ring = new HistoryRing(3);
    for (let i = 1; i <= 5; i++) ring.add(draft(i, 0, 1000 + i), WALL0 + i * 1000, 10, 'fin', 1, 'other', null);
    expect(ring.size).toBe(3);
    expect(ring.added).toBe(5);
    const ids = ring.query({}, Infinity, 10, Infinity).records.map((r) => [r.id, r.client, r.closedAt]);
    expect(ids).toEqual([
      [5, '10.0.0.1:1005', iso(5000)],
      [4, '10.0.0.1:1004', iso(4000)],
      [3, '10.0.0.1:1003', iso(3000)],
    ]);
  });

  it('filters by reason, closedFirstBy, minDuration and since', () => {
    const ring = new HistoryRing(10);
    // Record i closes at WALL0 + i s, lasts i × 100 ms; closers cycle app, upstream, synfin.
    for (let i = 1; i <= 9; i++) ring.add(draft(i, 0, 2000 + i), WALL0 + i * 1000, i * 100, reasons[i % 3]!, (i % 3) + 1, 'other', null);
    const ids = (q: Parameters<HistoryRing['query']>[0]) => ring.query(q, Infinity, 100, Infinity).records.map((r) => r.id);
    expect(ids({ reason: 'reset_received' })).toEqual([7, 4, 1]);
    expect(ids({ closedFirstBy: 'app' })).toEqual([9, 6, 3]);
    expect(ids({ closedFirstBy: 'synfin' })).toEqual([8, 5, 2]);
    expect(ids({ minDuration: 0.7 })).toEqual([9, 8, 7]);
    expect(ids({ since: WALL0 + 8000 })).toEqual([9, 8]);
    expect(ids({ service: 'nope' })).toEqual([]);
    expect(ring.query({}, Infinity, 100, Infinity).records[0]).toMatchObject({ durationSeconds: 0.9, openedAt: iso(8100), closedAt: iso(9000) });
  });

  it('walks in slices that resume where they stopped, and stop at records overwritten meanwhile', () => {
    const ring = new HistoryRing(4);
    for (let i = 1; i <= 4; i++) ring.add(draft(i, 0, 3000 + i), WALL0 + i, 0, 'fin', 1, 'other', null);
    const first = ring.query({}, Infinity, 2, Infinity);
    expect(first.records.map((r) => r.id)).toEqual([4, 3]);
    const second = ring.query({}, first.next, 2, Infinity);
    expect(second.records.map((r) => r.id)).toEqual([2, 1]);
    expect(second.next).toBe(-1);
    const cut = ring.query({ closedFirstBy: 'upstream' }, Infinity, 2, 3);
    expect(cut).toEqual({ records: [], next: 1 });
    // Three more closes overwrite records 1 to 3: a walk resuming at 2 finds them gone.
    for (let i = 5; i <= 7; i++) ring.add(draft(i, 0, 3000 + i), WALL0 + i, 0, 'fin', 1, 'other', null);
    expect(ring.query({}, 3, 10, Infinity)).toEqual({ records: [], next: -1 });
  });

  it('keeps at most MAX_STATES states, CLOSED last', () => {
    const d = new Draft();
    d.reset(1, 0);
    for (let i = 0; i < MAX_STATES + 3; i++) d.addState(State.ESTABLISHED, i);
    d.addState(State.CLOSED, 100);
    const ring = new HistoryRing(1);
    ring.add(d, WALL0 + 100, 100, 'fin', 1, 'other', null);
    const states = ring.query({}, Infinity, 1, Infinity).records[0]!.states;
    expect(states).toHaveLength(MAX_STATES);
    expect(states.at(-1)).toEqual({ state: 'CLOSED', at: iso(100) });
  });

  it('costs its columns, allocated up front: BYTES_PER_RECORD × N', () => {
    const ring = new HistoryRing(10_000);
    expect(ring.columnBytes).toBe(10_000 * HistoryRing.BYTES_PER_RECORD);
    expect(HistoryRing.BYTES_PER_RECORD).toBeLessThan(200);
  });
});

describe('GET /api/history', () => {
  const cleanup: Array<() => Promise<unknown>> = [];
  afterEach(async () => {
    for (const c of cleanup.splice(0)) await c();
  });

  function appWith(history: HistoryRing | null, apiAddresses: 'loopback' | 'all' | 'none' = 'loopback') {
    const { h } = setup();
    const metrics = createMetrics(h.hub, { clock: h.clock, forEachConnection: () => {}, counters: () => ({ segmentsIn: 0, segmentsOut: 0, bytesClientToUpstream: 0, bytesUpstreamToClient: 0, tunRxPackets: 0, tunRxBytes: 0, tunTxPackets: 0, tunTxBytes: 0 }) }, '0.0.0-test');
    const app = build({
      registry: metrics.registry,
      openMetricsRegistry: metrics.openMetricsRegistry,
      connections: { rows: () => [], forEachSample: () => {} },
      events: h.hub,
      isReady: () => true,
      describe: () => null,
      history,
      apiAddresses,
    });
    cleanup.push(() => app.close());
    return app;
  }

  function filled(): HistoryRing {
    const ring = new HistoryRing(100);
    const t0 = Date.UTC(2026, 11, 6, 23, 0, 0);
    for (let i = 1; i <= 30; i++) ring.add(draft(i, 0, 4000 + i), t0 + i * 1000, 500 * i, reasons[i % 3]!, (i % 3) + 1, i % 2 === 0 ? 'shop/web' : 'other', null);
    return ring;
  }

  it('answers newest first with the filters, the default limit and a bounded one', async () => {
    const app = appWith(filled());
    const get = async (qs: string) => {
      const res = await app.inject({ url: `/api/history${qs}`, remoteAddress: '127.0.0.1' });
      return { status: res.statusCode, body: res.json() as { count: number; addresses: string; capacity: number; connections: HistoryRecord[] } };
    };
    const all = await get('');
    expect(all.status).toBe(200);
    expect(all.body).toMatchObject({ count: 30, addresses: 'shown', capacity: 100 });
    expect(all.body.connections.map((r) => r.id).slice(0, 3)).toEqual([30, 29, 28]);
    expect(all.body.connections[0]!.client).toBe('10.0.0.1:4030');
    expect((await get('?service=shop/web&closedFirstBy=app')).body.connections.map((r) => r.id)).toEqual([30, 24, 18, 12, 6]);
    expect((await get('?reason=idle_timeout&minDuration=10')).body.connections.map((r) => r.id)).toEqual([29, 26, 23, 20]);
    expect((await get('?limit=2')).body.connections.map((r) => r.id)).toEqual([30, 29]);
    // since: epoch seconds or ISO 8601, compared with closedAt.
    const at28 = Date.UTC(2026, 11, 6, 23, 0, 28) / 1000;
    expect((await get(`?since=${at28}`)).body.connections.map((r) => r.id)).toEqual([30, 29, 28]);
    expect((await get('?since=2026-12-06T23:00:29Z')).body.connections.map((r) => r.id)).toEqual([30, 29]);
    expect((await get('?since=2026-12-06T23:00:28.500%2B00:00')).body.connections.map((r) => r.id)).toEqual([30, 29]);
    expect((await get('?since=yesterday')).status).toBe(400);
    expect((await get('?limit=10001')).status).toBe(400);
    expect((await get('?closedFirstBy=kernel')).status).toBe(400);
    expect((await get('?reason=bogus')).status).toBe(400);
  });

  it('redacts addresses as /api/connections does', async () => {
    const app = appWith(filled());
    const remote = await app.inject({ url: '/api/history?limit=1', remoteAddress: '10.1.2.3' });
    expect(remote.json()).toMatchObject({ addresses: 'redacted', connections: [{ id: 30, client: 'redacted', destination: 'redacted', service: 'shop/web' }] });
    const none = appWith(filled(), 'none');
    const local = await none.inject({ url: '/api/history?limit=1', remoteAddress: '127.0.0.1' });
    expect(local.json()).toMatchObject({ addresses: 'redacted', connections: [{ client: 'redacted' }] });
  });

  it('says the recorder is off with --history 0', async () => {
    const app = appWith(null);
    const res = await app.inject({ url: '/api/history', remoteAddress: '127.0.0.1' });
    expect(res.statusCode).toBe(404);
    expect(res.json().error).toContain('--history 0');
  });
});

describe('flight recorder: live connections', () => {
  it('keep one slab row each, reused after the close; past MAX_STATES states, the latest stays last', () => {
    const live = new LiveDrafts();
    const a = live.open(1, 100);
    expect(live.open(1, 999)).toBe(a);
    for (let i = 0; i < MAX_STATES + 2; i++) live.addState(a, State.ESTABLISHED, 100 + i);
    live.addState(a, State.CLOSED, 500);
    expect(live.lastState(a)).toBe(State.CLOSED);
    live.setConnect(a, 'refused', 12);
    expect(live.connectResult(a)).toBe('refused');
    const d = new Draft();
    live.copyTo(a, d);
    expect([d.id, d.openedAt, d.connectMs, d.nStates, d.stateAt[MAX_STATES - 1]]).toEqual([1, 100, 12, MAX_STATES, 500]);
    live.close(1);
    expect(live.size).toBe(0);
    const b = live.open(2, 0);
    expect(b).toBe(a);
    expect([live.closer(b), live.connectResult(b), live.lastState(b)]).toEqual([0, null, -1]);
  });
});

describe('--access-log', () => {
  it('writes each record as one info line whatever --log-level says, addresses redacted on demand', () => {
    const ring = new HistoryRing(1);
    ring.add(draft(7, 0, 5000), WALL0 + 1000, 250, 'fin', 2, 'other', null);
    const record = ring.query({}, Infinity, 1, 1).records[0]!;
    for (const level of ['info', 'warn', 'silent'] as const) {
      const lines: Array<Record<string, unknown>> = [];
      const logger = createLogger(level, { write: (s: string) => void lines.push(JSON.parse(s) as Record<string, unknown>) });
      accessLog(logger, false)(record);
      logger.info('other info');
      expect(lines.filter((l) => l.msg === 'connection closed')).toEqual([{ level: 30, time: expect.any(String), name: 'synfin', msg: 'connection closed', ...record }]);
      expect(lines.some((l) => l.msg === 'other info')).toBe(level === 'info');
    }
    const lines: Array<Record<string, unknown>> = [];
    accessLog(createLogger('info', { write: (s: string) => void lines.push(JSON.parse(s) as Record<string, unknown>) }), true)(record);
    expect(lines[0]).toMatchObject({ id: 7, client: 'redacted', destination: 'redacted', closedFirstBy: 'upstream' });
  });
});
