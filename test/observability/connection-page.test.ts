/**
 * GET /api/connections pages (ConnectionRegistry.page): rows in id order after a cursor, the
 * same rows pageOfRows() picks from the full table, pages that neither skip nor repeat a
 * connection while others open and close, and a cost per request that follows the rows returned,
 * not the table: only those are built (TCP_INFO, the kernel lookup, formatted addresses).
 */
import fc from 'fast-check';
import { describe, expect, it, vi } from 'vitest';
import { IdIndex } from '../../src/observability/id-index.js';
import { ConnectionRegistry } from '../../src/observability/registry.js';
import { build } from '../../src/http/app.js';
import { createMetrics } from '../../src/observability/metrics.js';
import { pageOfRows, type ConnectionFilter, type ConnectionRow, type PageQuery } from '../../src/observability/table.js';
import { ManualClock } from '../../src/stack/clock.js';
import { EventHub } from '../../src/stack/events.js';
import { Stack, type PendingSyn } from '../../src/stack/stack.js';
import type { TcpConn } from '../../src/tcp/conn.js';
import { CONSUMING_HANDLER, IssLink } from '../helpers/iss-link.js';
import { defaultTcpConfig } from '../../src/tcp/defaults.js';
import { OutSegment, TcpFlag } from '../../src/wire/segment.js';
import { seqAdd } from '../../src/tcp/seq.js';
import { finishTcpChecksum, writeTcpPacket } from '../../src/wire/packet.js';

const APP_NET = 0xc6120000; // 198.18.0.0: apps at 198.18.0.x
const DEST = 0xc6120102; // 198.18.1.2
const DEST2 = 0xc6120103; // 198.18.1.3
const ISN = 0xfffffff0;

/** A stack with the registry attached, and app-side packets to drive connections through states. */
function table() {
  const clock = new ManualClock(1_000_000);
  const hub = new EventHub();
  const link = new IssLink();
  const syns: PendingSyn[] = [];
  const stack = new Stack({
    link,
    clock,
    tcp: defaultTcpConfig({ mslMs: 60_000 }),
    forwarder: { onSyn: (r) => syns.push(r), onSynAborted() {} },
    events: hub,
    synBacklog: 1 << 20,
    maxConnections: 1 << 20,
    setTimer: () => null,
    clearTimer: () => {},
  });
  const registry = new ConnectionRegistry(clock);
  registry.attach(stack);
  const buf = Buffer.alloc(200);
  const out = new OutSegment();
  const src = new Uint32Array(4);
  const dst = new Uint32Array(4);
  function send(port: number, seq: number, ack: number, flags: number, dest = DEST): void {
    out.clear();
    out.seq = seq;
    out.ack = ack;
    out.flags = flags;
    out.window = 65535;
    // 198.18.0.x: a new app address every 50,000 ports, so a table can hold any number of them.
    src[3] = APP_NET + 1 + Math.floor(port / 50_000);
    dst[3] = dest;
    const len = writeTcpPacket(buf, 0, 4, src, dst, 10_000 + (port % 50_000), 80, out, 0);
    finishTcpChecksum(buf, 0, 'full');
    stack.input(buf, 0, len, false);
    stack.flush();
  }
  const conns = new Map<number, { conn: TcpConn; iss: number; port: number }>();
  let nextPort = 0;
  return {
    clock,
    stack,
    registry,
    conns,
    /** A connection ESTABLISHED (or left in SYN_RECEIVED): returns its id. */
    open(opts: { established?: boolean; dest?: number } = {}): number {
      const port = nextPort++;
      send(port, ISN, 0, TcpFlag.SYN, opts.dest);
      const req = syns.shift()!;
      const conn = stack.acceptPending(req, CONSUMING_HANDLER)!;
      const iss = link.issByPort.get(10_000 + (port % 50_000))!;
      if (opts.established !== false) send(port, seqAdd(ISN, 1), seqAdd(iss, 1), TcpFlag.ACK, opts.dest);
      conns.set(conn.id, { conn, iss, port });
      return conn.id;
    },
    /** A SYN left pending (the forwarder has not decided). */
    pendingSyn(): PendingSyn {
      send(nextPort++, ISN, 0, TcpFlag.SYN);
      return syns.shift()!;
    },
    /** The app sends FIN: synfin CLOSE_WAIT (waiting on the upstream). */
    appFin(id: number, dest?: number): void {
      const c = conns.get(id)!;
      send(c.port, seqAdd(ISN, 1), seqAdd(c.iss, 1), TcpFlag.FIN | TcpFlag.ACK, dest);
    },
    /** synfin closes (FIN_WAIT_1 or 2: waiting on the app). */
    ourFin(id: number, dest?: number): void {
      const c = conns.get(id)!;
      c.conn.close(clock.now());
      stack.flush();
      send(c.port, seqAdd(ISN, 1), seqAdd(c.iss, 2), TcpFlag.ACK, dest);
    },
    /** After ourFin: the app's FIN puts synfin in TIME-WAIT (a compact record). */
    toTimeWait(id: number, dest?: number): void {
      const c = conns.get(id)!;
      send(c.port, seqAdd(ISN, 1), seqAdd(c.iss, 2), TcpFlag.FIN | TcpFlag.ACK, dest);
    },
    /** The app resets the connection: it leaves the table. */
    reset(id: number, dest?: number): void {
      const c = conns.get(id)!;
      send(c.port, seqAdd(ISN, 1), 0, TcpFlag.RST, dest);
      conns.delete(id);
    },
  };
}

/** The API over the registry (the slices, the cursor, `next`), as a client reads it. */
function api(t: ReturnType<typeof table>) {
  const counters = { segmentsIn: 0, segmentsOut: 0, bytesClientToUpstream: 0, bytesUpstreamToClient: 0, tunRxPackets: 0, tunRxBytes: 0, tunTxPackets: 0, tunTxBytes: 0 };
  const hub = new EventHub();
  const metrics = createMetrics(hub, { clock: t.clock, forEachConnection: () => {}, counters: () => counters }, '0.0.0-test');
  const app = build({
    registry: metrics.registry,
    openMetricsRegistry: metrics.openMetricsRegistry,
    connections: t.registry,
    events: hub,
    isReady: () => true,
    describe: () => null,
  });
  return {
    app,
    async get(query: string): Promise<{ count: number; connections: ConnectionRow[]; next: string | null }> {
      const res = await app.inject({ url: `/api/connections${query}`, remoteAddress: '127.0.0.1' });
      expect(res.statusCode, res.body).toBe(200);
      return res.json();
    },
  };
}

describe('ConnectionRegistry.page', () => {
  it('returns, page by page, exactly the rows the full table gives for each filter, in id order', () => {
    const t = table();
    const ids: number[] = [];
    for (let i = 0; i < 120; i++) {
      t.clock.advance(1000);
      ids.push(t.open({ established: i % 10 !== 9, dest: i % 4 === 0 ? DEST2 : DEST }));
    }
    for (let i = 0; i < 120; i++) {
      const dest = i % 4 === 0 ? DEST2 : DEST;
      if (i % 10 === 9) continue; // left in SYN_RECEIVED
      if (i % 7 === 1) t.appFin(ids[i]!, dest);
      else if (i % 7 === 2) t.ourFin(ids[i]!, dest);
      else if (i % 7 === 3) {
        t.ourFin(ids[i]!, dest);
        t.toTimeWait(ids[i]!, dest);
      } else if (i % 11 === 5) t.reset(ids[i]!, dest);
    }
    t.clock.advance(500);
    const all = t.registry.rows();
    const states = new Set<string>(all.map((r) => r.state));
    for (const st of ['CLOSE_WAIT', 'ESTABLISHED', 'SYN_RECEIVED', 'TIME_WAIT']) expect(states.has(st), st).toBe(true);
    expect(all.some((r) => r.waitingOn === 'app')).toBe(true);
    const filters: ConnectionFilter[] = [
      {},
      { state: 'TIME_WAIT' },
      { state: 'ESTABLISHED', minAge: 60 },
      { waitingOn: 'app' },
      { waitingOn: 'upstream' },
      { minIdle: 30 },
      { destination: '198.18.1.3' },
      { destination: '198.18.1.2:80' },
      { destination: '198.18.1.2:81' },
      { state: 'LAST_ACK' },
    ];
    const cursors = [0, 1, 17, ids[60]!, ids[119]!, 10_000];
    let compared = 0;
    for (const filter of filters) {
      for (const limit of [0, 1, 7, 1000]) {
        for (const maxExamined of [undefined, 1, 13]) {
          for (const afterId of cursors) {
            const q: PageQuery = { filter, afterId, limit, ...(maxExamined !== undefined ? { maxExamined } : {}) };
            expect(t.registry.page(q), JSON.stringify(q)).toEqual(pageOfRows(all, q));
            compared++;
          }
        }
      }
    }
    expect(compared).toBe(filters.length * 4 * 3 * cursors.length);
    // The filters did select something (and not everything).
    expect(t.registry.page({ filter: { state: 'TIME_WAIT' }, afterId: 0, limit: 1000 }).rows.length).toBeGreaterThan(5);
    expect(t.registry.page({ filter: { destination: '198.18.1.3' }, afterId: 0, limit: 1000 }).rows.length).toBe(
      all.filter((r) => r.destination.startsWith('198.18.1.3:')).length,
    );
  });

  it('through the API, pages neither skip nor repeat a connection that stays open while others open and close', async () => {
    const t = table();
    for (let i = 0; i < 200; i++) t.open();
    const { app, get } = api(t);
    const seen = new Map<number, number>();
    const stayed = new Set([...t.conns.keys()]);
    let query = '?limit=9';
    let round = 0;
    for (;;) {
      const p = await get(query);
      for (const r of p.connections) seen.set(r.id, (seen.get(r.id) ?? 0) + 1);
      // Between pages: close some connections (seen and not yet seen) and open new ones.
      round++;
      const ids = [...t.conns.keys()];
      for (const id of [ids[(round * 7) % ids.length]!, ids[(round * 13 + 5) % ids.length]!]) {
        if (!t.conns.has(id)) continue;
        t.reset(id);
        stayed.delete(id);
      }
      for (let k = 0; k < 3; k++) t.open();
      if (p.next === null) break;
      query = `?limit=9&cursor=${p.next}`;
    }
    await app.close();
    expect(round).toBeGreaterThan(20);
    for (const [id, n] of seen) expect(n, `connection ${id}`).toBe(1);
    for (const id of stayed) expect(seen.has(id), `connection ${id} open throughout`).toBe(true);
  });

  it('through the API, a page larger than a slice and a filter that skips more than a slice examines come out whole', async () => {
    const t = table();
    for (let i = 0; i < 6_000; i++) t.open();
    const late = [...t.conns.keys()].slice(-3);
    for (const id of late) t.appFin(id);
    const { app, get } = api(t);
    const page = await get('?limit=1000');
    expect(page.connections.map((r) => r.id)).toEqual([...t.conns.keys()].slice(0, 1000));
    expect(page.next).not.toBeNull();
    // 5,997 connections skipped by the filter over two slices (5,000 examined each at most), then the three that match.
    const waiting = await get('?waitingOn=upstream&limit=2');
    expect(waiting.connections.map((r) => r.id)).toEqual(late.slice(0, 2));
    expect(waiting.next).not.toBeNull();
    const rest = await get(`?waitingOn=upstream&limit=2&cursor=${waiting.next}`);
    expect(rest.connections.map((r) => r.id)).toEqual(late.slice(2));
    expect(rest.next).toBeNull();
    await app.close();
  });

  it('builds only the rows it returns: a page of 10 from 2,000 connections builds 10 rows, whatever the filter skips', () => {
    const t = table();
    for (let i = 0; i < 2000; i++) t.open();
    const late = [...t.conns.keys()].slice(-5);
    for (const id of late) t.appFin(id);
    const built = vi.spyOn(t.registry as unknown as { connRow: () => ConnectionRow }, 'connRow');
    const p = t.registry.page({ filter: {}, afterId: 0, limit: 10 });
    expect(p.rows.map((r) => r.id)).toEqual([...t.conns.keys()].slice(0, 10));
    expect(built).toHaveBeenCalledTimes(10);
    built.mockClear();
    // A filter matching only the last five: 1,995 connections skipped on their cheap columns.
    const w = t.registry.page({ filter: { waitingOn: 'upstream' }, afterId: 0, limit: 10 });
    expect(w.rows.map((r) => r.id)).toEqual(late);
    expect(w.more).toBe(false);
    expect(built).toHaveBeenCalledTimes(5);
  });

  it('forgets a pending SYN dropped without an answer (no closed event) and one refused', () => {
    const t = table();
    t.open();
    const index = (t.registry as unknown as { flows: IdIndex<unknown> }).flows;
    expect(index.size).toBe(1);
    const quiet = t.pendingSyn();
    const refused = t.pendingSyn();
    expect(index.size).toBe(3);
    // Pending SYNs are not rows yet.
    expect(t.registry.page({ filter: {}, afterId: 0, limit: 10 }).rows).toHaveLength(1);
    t.stack.dropPendingQuietly(quiet); // the dial cap: the app's SYN retransmission offers it again
    expect(index.size).toBe(2);
    t.stack.rejectPending(refused, 'refused', 'upstream_refused');
    expect(index.size).toBe(1);
  });
});

describe('IdIndex', () => {
  it('matches a sorted map under adds in id order, deletes and cursor lookups', () => {
    const op = fc.oneof(
      fc.record({ kind: fc.constant('add' as const), n: fc.integer({ min: 1, max: 5 }) }),
      fc.record({ kind: fc.constant('delete' as const), pick: fc.nat() }),
      fc.record({ kind: fc.constant('after' as const), id: fc.integer({ min: 0, max: 3000 }) }),
    );
    // size: 'max' lets the arrays reach maxLength (fast-check's default size keeps them near 10):
    // enough deletes to cross the compaction threshold (64 holes) many times.
    fc.assert(
      fc.property(fc.array(op, { minLength: 200, maxLength: 1500, size: 'max' }), (ops) => {
        const index = new IdIndex<number>();
        const model = new Map<number, number>();
        let next = 1;
        for (const o of ops) {
          if (o.kind === 'add') {
            for (let k = 0; k < o.n; k++) {
              index.add(next, next * 10);
              model.set(next, next * 10);
              next++;
            }
          } else if (o.kind === 'delete') {
            const keys = [...model.keys()];
            if (keys.length === 0) continue;
            const id = keys[o.pick % keys.length]!;
            expect(index.delete(id)).toBe(true);
            expect(index.delete(id)).toBe(false);
            model.delete(id);
          } else {
            const live: number[] = [];
            for (let i = index.firstAfter(o.id); i < index.length; i++) if (index.at(i) !== null) live.push(index.idAt(i));
            expect(live).toEqual([...model.keys()].filter((k) => k > o.id));
          }
          expect(index.size).toBe(model.size);
        }
        for (const [k, v] of model) expect(index.get(k)).toBe(v);
        // Holes never outnumber live entries by more than the threshold.
        expect(index.length - index.size).toBeLessThanOrEqual(Math.max(64, index.size));
      }),
      { numRuns: 30 },
    );
  });
});
