/**
 * Header prediction (TcpConn.predicted / processPredicted): the fast path for in-order segments
 * on ESTABLISHED connections must give exactly what the general path (RFC 9293 §3.10.7.4 in
 * full, processSynchronized) gives.
 *
 * - A differential property test drives two connections, one with header prediction and one
 *   without (cfg.headerPrediction: false), through identical sequences of peer segments (in
 *   order, pure ACKs, window changes, out of order, duplicates, timestamps good, old and
 *   missing, SACK blocks, odd flags), owner calls and clock steps, with both sequence spaces and
 *   the peer's timestamp clock crossing 2^32; after every step both must have emitted the same
 *   segments, delivered the same bytes, reported the same events and callbacks and hold the
 *   same state.
 * - Focused tests show the fast path is taken for the segments it is for, and that each
 *   condition it excludes falls back to the general path (a spy on the prototype's methods:
 *   nothing is added to the hot path to observe it).
 */
import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { TcpConfig } from '../../src/tcp/config.js';
import { TcpConn } from '../../src/tcp/conn.js';
import { seqAdd, seqDiff } from '../../src/tcp/seq.js';
import { TimerKind } from '../../src/tcp/timers.js';
import { TcpFlag } from '../../src/wire/segment.js';
import {
  ACK,
  FIN,
  PSH,
  RST,
  SYN,
  type FixtureOpts,
  type SegSpec,
  type Sent,
  type T,
  bytes,
  closeWait,
  established,
  l,
  r,
  recv,
  seg,
  send,
} from './helpers.js';

// ------------------------------------------------------------------------- observing the path

type Internals = { processPredicted: (...a: unknown[]) => unknown; processSynchronized: (...a: unknown[]) => unknown };
const proto = TcpConn.prototype as unknown as Internals;

/** Counts the segments each path takes (spies on the prototype; restored after each test). */
function watchPaths(): { fast: () => number; general: () => number } {
  const fast = vi.spyOn(proto, 'processPredicted');
  const general = vi.spyOn(proto, 'processSynchronized');
  return { fast: () => fast.mock.calls.length, general: () => general.mock.calls.length };
}

afterEach(() => {
  vi.restoreAllMocks();
});

// ------------------------------------------------------------------------- the differential test

/**
 * A value as plain data for comparison: byte arrays as a digest of their bytes (deep equality
 * byte by byte is slow), class instances as their fields (minus `skip` at the top level),
 * functions and objects already on the path left out.
 */
function plain(v: unknown, skip: string[] = [], path: Set<object> = new Set()): unknown {
  if (v === null || typeof v !== 'object') return typeof v === 'function' ? undefined : v;
  if (ArrayBuffer.isView(v)) return `${v.byteLength}:${createHash('sha1').update(new Uint8Array(v.buffer, v.byteOffset, v.byteLength)).digest('hex')}`;
  if (path.has(v)) return '[cycle]';
  path.add(v);
  let out: unknown;
  if (Array.isArray(v)) out = v.map((x) => plain(x, [], path));
  else if (v instanceof Map) out = [...v.entries()].map(([k, x]) => [k, plain(x, [], path)]);
  else {
    const o: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) if (!skip.includes(k)) o[k] = plain(x, [], path);
    out = o;
  }
  path.delete(v);
  return out;
}

/**
 * Everything observable about a connection, and its internals: every field of the connection,
 * its sender (buffers, congestion controller, RTT estimator, scoreboard) and its receiver, but
 * the switch itself and the receiver's reassembly blocks (allocated unsafe: bytes never written
 * differ; the bytes that matter come out as deliveries and SACK blocks, compared).
 */
function snapshot(t: T): Record<string, unknown> {
  const own = plain(t.conn, ['cfg', 'events', 'handler', 'predicts', 'rcv']);
  const rcv = plain(t.conn.rcv, ['blocks']);
  return { own, rcv, pollAt: t.conn.pollAt(), calls: [...t.h.calls], received: plain(t.h.received()), ev: plain(t.ev) };
}

type Step =
  | {
      kind: 'seg';
      flags: number;
      /** 'next': SEG.SEQ = RCV.NXT; else RCV.NXT + delta (ahead: out of order; behind: duplicate). */
      seqDelta: number;
      /** SND.UNA + frac·(SND.NXT − SND.UNA), or 'max' (SND.MAX), or SND.UNA + delta. */
      ackMode: 'frac' | 'una' | 'nxt' | 'max' | 'delta';
      ackFrac: number;
      ackDelta: number;
      /** 'same': the previous window field again. */
      window: number | 'same';
      len: number;
      /** 'next': TSval moves on; 'same'; 'old': behind TS.Recent (PAWS); 'none': no TSopt. */
      ts: 'next' | 'same' | 'old' | 'none';
      /** A SACK block above SND.UNA. */
      sack: boolean;
      dispatch: boolean;
    }
  | { kind: 'tick'; ms: number }
  | { kind: 'write'; len: number }
  | { kind: 'consume'; frac: number }
  | { kind: 'close' };

const stepArb: fc.Arbitrary<Step> = fc.oneof(
  {
    weight: 60,
    arbitrary: fc.record({
      kind: fc.constant('seg' as const),
      flags: fc.oneof(
        { weight: 40, arbitrary: fc.constant(ACK) },
        { weight: 15, arbitrary: fc.constant(ACK | PSH) },
        { weight: 1, arbitrary: fc.constant(ACK | FIN) },
        { weight: 1, arbitrary: fc.constant(ACK | TcpFlag.URG) },
        { weight: 1, arbitrary: fc.constant(ACK | TcpFlag.ECE) },
        { weight: 1, arbitrary: fc.constantFrom(RST, RST | ACK, SYN, SYN | ACK, 0, PSH) },
      ),
      seqDelta: fc.oneof(
        { weight: 12, arbitrary: fc.constant(0) },
        { weight: 2, arbitrary: fc.integer({ min: 1, max: 5000 }) },
        { weight: 2, arbitrary: fc.integer({ min: -3000, max: -1 }) },
      ),
      ackMode: fc.constantFrom('frac' as const, 'una' as const, 'nxt' as const, 'nxt' as const, 'max' as const, 'delta' as const),
      ackFrac: fc.double({ min: 0, max: 1, noNaN: true }),
      ackDelta: fc.integer({ min: -70_000, max: 3000 }),
      window: fc.oneof({ weight: 6, arbitrary: fc.constant('same' as const) }, { weight: 1, arbitrary: fc.constantFrom(0, 1, 512, 8000, 65535) }),
      len: fc.oneof({ weight: 3, arbitrary: fc.constant(0) }, { weight: 4, arbitrary: fc.integer({ min: 1, max: 1460 }) }, { weight: 1, arbitrary: fc.integer({ min: 1, max: 9000 }) }),
      ts: fc.oneof({ weight: 10, arbitrary: fc.constant('next' as const) }, { weight: 1, arbitrary: fc.constantFrom('same' as const, 'old' as const, 'none' as const) }),
      sack: fc.oneof({ weight: 8, arbitrary: fc.constant(false) }, { weight: 1, arbitrary: fc.constant(true) }),
      dispatch: fc.oneof({ weight: 4, arbitrary: fc.constant(true) }, { weight: 1, arbitrary: fc.constant(false) }),
    }),
  },
  { weight: 8, arbitrary: fc.record({ kind: fc.constant('tick' as const), ms: fc.oneof(fc.integer({ min: 0, max: 60 }), fc.integer({ min: 0, max: 3000 })) }) },
  { weight: 14, arbitrary: fc.record({ kind: fc.constant('write' as const), len: fc.integer({ min: 1, max: 8000 }) }) },
  { weight: 6, arbitrary: fc.record({ kind: fc.constant('consume' as const), frac: fc.double({ min: 0, max: 1, noNaN: true }) }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'close' as const }) },
);

interface Variant {
  name: string;
  cfg: Partial<TcpConfig>;
  syn: SegSpec;
  ts: boolean;
}

/** The peer's timestamp clock starts 100 below 2^32: it wraps within a run. */
const TS_START = 0xffffff9c;

const VARIANTS: Variant[] = [
  { name: 'no options', cfg: { rcvBufBytes: 6000, sndBufBytes: 20_000 }, syn: {}, ts: false },
  {
    name: 'timestamps, SACK and window scale',
    cfg: { rcvBufBytes: 16_000, wscale: 2, sndBufBytes: 30_000, sack: true, timestamps: true },
    syn: { sackPermitted: true, wscale: 3, ts: [TS_START, 0] },
    ts: true,
  },
  {
    name: 'timestamps, small buffers (zero windows, write blocked)',
    cfg: { rcvBufBytes: 3000, sndBufBytes: 4000, timestamps: true, sack: true, gsoMaxBytes: 6000 },
    syn: { sackPermitted: true, ts: [TS_START, 0] },
    ts: true,
  },
];

/** The peer's byte stream, by offset from REMOTE_SEQ + 1. */
const source = (i: number): number => (i * 131 + (i >>> 8) * 7 + 1) & 0xff;

function peerPayload(seq: number, len: number): Buffer {
  const b = Buffer.alloc(len);
  const off = seqDiff(seq, r(1));
  for (let i = 0; i < len; i++) b[i] = source(off + i);
  return b;
}

function ackFor(t: T, s: Extract<Step, { kind: 'seg' }>): number {
  const snd = t.conn.snd;
  switch (s.ackMode) {
    case 'frac':
      return seqAdd(snd.una, Math.floor(s.ackFrac * seqDiff(snd.nxt, snd.una)));
    case 'una':
      return snd.una;
    case 'nxt':
      return snd.nxt;
    case 'max':
      return snd.max;
    default:
      return seqAdd(snd.una, s.ackDelta);
  }
}

/** `drain`: the owner consumes everything delivered after every step (the window stays open). */
function runPair(v: Variant, drain: boolean, steps: Step[]): number {
  const opts = (headerPrediction: boolean): FixtureOpts => ({ cfg: { ...v.cfg, headerPrediction }, syn: v.syn });
  const fast = established(opts(true));
  const slow = established(opts(false));
  const both = [fast, slow];
  const paths = watchPaths();
  let now = 0;
  let tsVal = seqAdd(TS_START, 2);
  let window = 65535;
  let lastTsEcr = 0;
  let closed = false;
  const compare = (a: Sent[], b: Sent[]): void => {
    expect(a).toEqual(b);
    for (const o of a) if (o.ts) lastTsEcr = o.ts[0];
    expect(snapshot(fast)).toEqual(snapshot(slow));
  };
  for (const s of steps) {
    switch (s.kind) {
      case 'seg': {
        const rcvNxt = fast.conn.rcv.nxt;
        const seq = seqAdd(rcvNxt, s.seqDelta);
        if (s.window !== 'same') window = s.window;
        if (s.ts === 'next') tsVal = seqAdd(tsVal, 1 + (now & 3));
        const spec: SegSpec = { seq, ack: ackFor(fast, s), flags: s.flags, window, payload: peerPayload(seq, s.len) };
        if (v.ts && s.ts !== 'none') spec.ts = [s.ts === 'old' ? seqAdd(tsVal, -5000) : tsVal, lastTsEcr];
        if (s.sack) spec.sack = [[seqAdd(fast.conn.snd.una, 100), seqAdd(fast.conn.snd.una, 600)]];
        const verdicts = both.map((t) => send(t.conn, seg(spec), now));
        expect(verdicts[0]).toEqual(verdicts[1]);
        break;
      }
      case 'tick':
        now += s.ms;
        break;
      case 'write':
        // The owner never writes after close() (the connection throws).
        if (!closed) for (const t of both) t.conn.write(bytes(s.len, now));
        break;
      case 'consume':
        for (const t of both) t.conn.consume(Math.floor(s.frac * t.conn.receiveBuffered), now);
        break;
      case 'close':
        if (!closed) for (const t of both) t.conn.close(now);
        closed = true;
        break;
    }
    if (drain) for (const t of both) t.conn.consume(t.conn.receiveBuffered, now);
    if (s.kind === 'seg' && !s.dispatch) {
      expect(snapshot(fast)).toEqual(snapshot(slow));
      continue;
    }
    compare(recv(fast.conn, now), recv(slow.conn, now));
  }
  return paths.fast();
}

describe('header prediction gives what the general path gives', () => {
  // 120 runs per variant, 20-120 steps each (fast-check, seeded by the run); in half of the runs
  // the owner drains the receive buffer after every step, in the other half only on 'consume'.
  it.each(VARIANTS.map((v) => [v.name, v] as const))(
    'segment for segment, with %s: same segments out, bytes delivered, events and state after every step',
    (_name, v) => {
      let taken = 0;
      fc.assert(
        fc.property(fc.boolean(), fc.array(stepArb, { minLength: 20, maxLength: 120, size: 'max' }), (drain, steps) => {
          taken += runPair(v, drain, steps);
          vi.restoreAllMocks();
        }),
        { numRuns: 120 },
      );
      // The comparison means something only if the fast path ran, and often.
      expect(taken).toBeGreaterThan(250);
    },
    60_000,
  );
});

// ------------------------------------------------------------------------- focused tests

/** ESTABLISHED with `n` bytes of ours sent and unacknowledged (SND.UNA = l(1), SND.NXT = l(1+n)). */
function withFlight(n: number, opts: FixtureOpts = {}): T {
  const t = established(opts);
  t.conn.write(bytes(n));
  const sent = recv(t.conn, 0);
  expect(sent.reduce((a, o) => a + o.payload.length, 0)).toBe(n);
  return t;
}

describe('the fast path is taken', () => {
  it('for a pure ACK advancing SND.UNA within SND.NXT: the same timers, RTT sample and send space as the general path', () => {
    const t = withFlight(2000, { cfg: { sndBufBytes: 1000 } });
    const p = watchPaths();
    expect(send(t.conn, seg({ ack: l(1461) }), 30)).toBeNull();
    expect(p.fast()).toBe(1);
    expect(t.conn.snd.una).toBe(l(1461));
    expect(t.ev.rtts.length).toBe(1);
    // RFC 6298 §5.3: data still outstanding, the timer restarts.
    expect(t.conn.pollAt()).toBe(0);
    recv(t.conn, 30);
    expect(t.conn.pollAt()).toBe(30 + t.conn.snd.rtt.rto);
    expect(send(t.conn, seg({ ack: l(2001) }), 40)).toBeNull();
    expect(p.fast()).toBe(2);
    // write() had returned false: the ACK that empties the buffer gives onSendSpace.
    expect(t.h.sendSpace).toBe(1);
    recv(t.conn, 40);
    // RFC 6298 §5.2: everything acknowledged, the retransmission timer stops.
    expect(t.conn.pollAt()).toBe(Infinity);
  });

  it('for in-order data acknowledging nothing new: delivered, its ACK delayed (RFC 5681 §4.2)', () => {
    const t = established();
    const p = watchPaths();
    expect(send(t.conn, seg({ payload: 'hello', flags: ACK | PSH }), 5)).toBeNull();
    expect(p.fast()).toBe(1);
    expect(t.h.received().toString()).toBe('hello');
    expect(recv(t.conn, 5)).toEqual([]);
    expect(t.conn.pollAt()).toBe(5 + 40);
  });

  it('for in-order data that also acknowledges our data (a request after a response)', () => {
    const t = withFlight(100);
    const p = watchPaths();
    expect(send(t.conn, seg({ ack: l(101), payload: 'next request' }), 2)).toBeNull();
    expect(p.fast()).toBe(1);
    expect(t.conn.snd.una).toBe(l(101));
    expect(t.h.received().toString()).toBe('next request');
  });

  it('for the second full-sized segment, which is ACKed at once (RFC 5681 §4.2, RFC 1122 §4.2.3.2)', () => {
    const t = established();
    const p = watchPaths();
    send(t.conn, seg({ payload: bytes(1460) }), 1);
    send(t.conn, seg({ seq: r(1461), payload: bytes(1460) }), 1);
    expect(p.fast()).toBe(2);
    expect(recv(t.conn, 1).map((o) => o.ack)).toEqual([r(2921)]);
  });

  it('with timestamps: TS.Recent takes the TSval as the general path does (RFC 7323 §5.3 R3)', () => {
    const t = established({ cfg: { timestamps: true }, syn: { ts: [100, 0] } });
    const p = watchPaths();
    expect(send(t.conn, seg({ payload: 'x', ts: [150, 0] }), 1)).toBeNull();
    expect(p.fast()).toBe(1);
    expect(t.conn.tsRecent).toBe(150);
  });
});

interface Fallback {
  name: string;
  /** Makes the connection (default: ESTABLISHED with 2000 bytes in flight, timestamps on). */
  make?: () => T;
  spec: SegSpec;
}

const TS_OPTS: FixtureOpts = { cfg: { timestamps: true, sack: true }, syn: { ts: [100, 0], sackPermitted: true } };
const TS = (v = 200): [number, number] => [v, 0];

const FALLBACKS: Fallback[] = [
  { name: 'a FIN', spec: { flags: ACK | FIN, ack: l(1461), ts: TS() } },
  { name: 'an RST', spec: { flags: RST | ACK, ack: l(1461), ts: TS() } },
  { name: 'a SYN', spec: { flags: SYN | ACK, ack: l(1461), ts: TS() } },
  { name: 'the URG bit', spec: { flags: ACK | TcpFlag.URG, ack: l(1461), ts: TS() } },
  { name: 'an ECN bit', spec: { flags: ACK | TcpFlag.ECE, ack: l(1461), ts: TS() } },
  { name: 'no ACK bit', spec: { flags: PSH, payload: 'x', ts: TS() } },
  { name: 'SEG.SEQ ahead of RCV.NXT (out of order)', spec: { seq: r(100), payload: 'x', ts: TS() } },
  { name: 'SEG.SEQ behind RCV.NXT (a duplicate)', spec: { seq: r(0), payload: 'xy', ts: TS() } },
  { name: 'no timestamp option once negotiated (RFC 7323 §3.2)', spec: { ack: l(1461) } },
  { name: 'a TSval PAWS rejects (RFC 7323 §5.3 R1)', spec: { ack: l(1461), ts: TS(50) } },
  { name: 'SACK blocks', spec: { ack: l(1461), ts: TS(), sack: [[l(1601), l(1801)]] } },
  { name: 'a pure ACK repeating SND.UNA (duplicate ACK or window update)', spec: { ack: l(1), ts: TS(), window: 1000 } },
  { name: 'an ACK beyond SND.NXT', spec: { ack: l(3001), ts: TS() } },
  { name: 'data with an ACK below SND.UNA', spec: { ack: l(0), payload: 'x', ts: TS() } },
  {
    name: 'data longer than the window offered',
    make: () => established({ ...TS_OPTS, cfg: { ...TS_OPTS.cfg, rcvBufBytes: 1000 } }),
    spec: { payload: bytes(1200), ts: TS() },
  },
  {
    name: 'out-of-order data queued',
    make: () => {
      const t = established(TS_OPTS);
      send(t.conn, seg({ seq: r(11), payload: 'later', ts: TS(150) }));
      recv(t.conn, 0);
      return t;
    },
    spec: { payload: 'first10abc', ts: TS() },
  },
  {
    name: 'loss recovery (RFC 5681 §3.2, three duplicate ACKs)',
    make: () => {
      const t = withFlight(5000, { cfg: { timestamps: true }, syn: { ts: [100, 0] } });
      for (let i = 0; i < 3; i++) send(t.conn, seg({ ack: l(1), ts: TS(150) }));
      expect(t.conn.snd.recovery).not.toBe(0);
      return t;
    },
    spec: { ack: l(1461), ts: TS() },
  },
  {
    name: 'the persist timer (RFC 9293 §3.8.6.1)',
    make: () => {
      const t = established(TS_OPTS);
      send(t.conn, seg({ window: 0, ts: TS(150) }));
      t.conn.write(bytes(100));
      recv(t.conn, 0);
      expect(t.conn.timers.kind).toBe(TimerKind.PERSIST);
      return t;
    },
    spec: { payload: 'x', ts: TS() },
  },
  { name: 'a state other than ESTABLISHED (CLOSE-WAIT)', make: () => closeWait(), spec: { seq: r(2), ack: l(1) } },
];

describe('each condition header prediction excludes falls back to the general path', () => {
  it.each(FALLBACKS.map((f) => [f.name, f] as const))('%s', (_name, f) => {
    const t = f.make ? f.make() : withFlight(2000, TS_OPTS);
    const p = watchPaths();
    send(t.conn, seg(f.spec), 1);
    expect(p.fast()).toBe(0);
    expect(p.general()).toBe(1);
  });

  it('header prediction switched off (cfg.headerPrediction: false) takes the general path for every segment', () => {
    const t = established({ cfg: { headerPrediction: false } });
    const p = watchPaths();
    send(t.conn, seg({ payload: 'x' }), 1);
    expect(p.fast()).toBe(0);
    expect(p.general()).toBe(1);
    expect(t.h.received().toString()).toBe('x');
  });
});
