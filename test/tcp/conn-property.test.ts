/**
 * Property test: random segment sequences (random flags, sequence and acknowledgment numbers
 * around the windows, payloads, window fields, options), owner calls and timer ticks against
 * connections in every state past the handshake. After every step:
 * - nothing throws;
 * - SND.UNA ≤ SND.NXT ≤ SND.MAX;
 * - the send buffer stays within cfg.sndBufBytes (+ one chunk: the owner honours write() = false)
 *   and the receive side within rcvBufBytes (+ less than one window-scale unit, RFC 7323 §2.4);
 * - the right edge we advertise (ACK + window) never moves left (with a window scale: never by a
 *   whole scale unit or more), and our ACK never moves back;
 * - what is delivered to the owner is exactly a prefix of the peer's byte stream;
 * - every reported state transition is an edge of RFC 9293 Figure 5 (plus RST/abort → CLOSED),
 *   and transitions chain (each starts where the previous ended).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { TcpConfig } from '../../src/tcp/config.js';
import { seqDiff, seqLeq } from '../../src/tcp/seq.js';
import { State } from '../../src/tcp/state.js';
import {
  ACK,
  FIN,
  PSH,
  RST,
  SYN,
  type FixtureOpts,
  type Sent,
  type T,
  closeWait,
  closing,
  established,
  finWait1,
  finWait2,
  lastAck,
  r,
  recv,
  seg,
  timeWait,
} from './helpers.js';

const ALLOWED = new Set([
  'CLOSED>SYN_SENT',
  'LISTEN>SYN_RECEIVED',
  'SYN_SENT>SYN_RECEIVED',
  'SYN_SENT>ESTABLISHED',
  'SYN_SENT>CLOSED',
  'SYN_RECEIVED>ESTABLISHED',
  'SYN_RECEIVED>FIN_WAIT_1',
  'SYN_RECEIVED>CLOSED',
  'ESTABLISHED>FIN_WAIT_1',
  'ESTABLISHED>CLOSE_WAIT',
  'ESTABLISHED>CLOSED',
  'FIN_WAIT_1>FIN_WAIT_2',
  'FIN_WAIT_1>CLOSING',
  'FIN_WAIT_1>TIME_WAIT',
  'FIN_WAIT_1>CLOSED',
  'FIN_WAIT_2>TIME_WAIT',
  'FIN_WAIT_2>CLOSED',
  'CLOSE_WAIT>LAST_ACK',
  'CLOSE_WAIT>CLOSED',
  'CLOSING>TIME_WAIT',
  'CLOSING>CLOSED',
  'LAST_ACK>CLOSED',
  'TIME_WAIT>CLOSED',
]);

/** The peer's byte stream: byte i (stream offset from REMOTE_SEQ+1) is source(i). */
const source = (i: number): number => (i * 131 + (i >>> 8) * 7 + 1) & 0xff;

type Action =
  | {
      kind: 'seg';
      flags: number;
      seqDelta: number;
      /** 'frac': an ACK between SND.UNA and SND.MAX; 'max': everything sent; 'delta': SND.UNA + ackDelta. */
      ackMode: 'frac' | 'max' | 'delta';
      ackFrac: number;
      ackDelta: number;
      window: number;
      len: number;
      ts: number;
      sack: boolean;
    }
  | { kind: 'tick'; ms: number }
  | { kind: 'write'; len: number }
  | { kind: 'close' }
  | { kind: 'consume'; frac: number }
  | { kind: 'abort' };

const flagsArb = fc.oneof(
  { weight: 12, arbitrary: fc.constant(ACK) },
  { weight: 4, arbitrary: fc.constant(ACK | PSH) },
  { weight: 4, arbitrary: fc.constant(ACK | FIN) },
  { weight: 1, arbitrary: fc.constant(RST) },
  { weight: 1, arbitrary: fc.constant(RST | ACK) },
  { weight: 1, arbitrary: fc.constant(SYN) },
  { weight: 1, arbitrary: fc.integer({ min: 0, max: 0x3f }) },
);

const actionArb: fc.Arbitrary<Action> = fc.oneof(
  {
    weight: 20,
    arbitrary: fc.record({
      kind: fc.constant('seg' as const),
      flags: flagsArb,
      seqDelta: fc.oneof(
        { weight: 4, arbitrary: fc.constant(0) },
        { weight: 4, arbitrary: fc.integer({ min: -3000, max: 6000 }) },
        { weight: 1, arbitrary: fc.integer({ min: -100_000, max: 100_000 }) },
      ),
      ackMode: fc.constantFrom('frac' as const, 'frac' as const, 'max' as const, 'delta' as const),
      ackFrac: fc.double({ min: 0, max: 1, noNaN: true }),
      ackDelta: fc.oneof(fc.integer({ min: -2000, max: 8000 }), fc.integer({ min: -100_000, max: 100_000 })),
      window: fc.oneof(fc.constant(65535), fc.constant(0), fc.integer({ min: 0, max: 65535 })),
      len: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 1460 }), fc.integer({ min: 1, max: 4000 })),
      ts: fc.integer({ min: -5, max: 50 }),
      sack: fc.boolean(),
    }),
  },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('tick' as const), ms: fc.oneof(fc.integer({ min: 0, max: 50 }), fc.integer({ min: 0, max: 5000 })) }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('write' as const), len: fc.integer({ min: 1, max: 6000 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('close' as const) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('consume' as const), frac: fc.double({ min: 0, max: 1, noNaN: true }) }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'abort' as const }) },
);

function ackFor(conn: T['conn'], a: { ackMode: 'frac' | 'max' | 'delta'; ackFrac: number; ackDelta: number }): number {
  const snd = conn.snd;
  switch (a.ackMode) {
    case 'frac':
      return (snd.una + Math.floor(a.ackFrac * seqDiff(snd.max, snd.una))) >>> 0;
    case 'max':
      return snd.max;
    default:
      return (snd.una + a.ackDelta) >>> 0;
  }
}

type Fixture = (o: FixtureOpts) => T;
const FIXTURES: [string, Fixture][] = [
  ['established', established],
  ['finWait1', finWait1],
  ['finWait2', finWait2],
  ['closeWait', closeWait],
  ['lastAck', lastAck],
  ['closing', closing],
  ['timeWait', timeWait],
];

interface Variant {
  name: string;
  opts: FixtureOpts;
  shift: number;
  ts: boolean;
}

const VARIANTS: Variant[] = [
  { name: 'plain', opts: { cfg: { rcvBufBytes: 6000, sndBufBytes: 30_000 } }, shift: 0, ts: false },
  {
    name: 'sack+wscale',
    opts: { cfg: { rcvBufBytes: 12_000, wscale: 2, sndBufBytes: 30_000, sack: true, gsoMaxBytes: 8000 }, syn: { sackPermitted: true, wscale: 3 } },
    shift: 2,
    ts: false,
  },
  {
    name: 'timestamps',
    opts: { cfg: { rcvBufBytes: 8000, timestamps: true, challengeAckLimitPerSec: 5 }, syn: { ts: [1000, 0] } },
    shift: 0,
    ts: true,
  },
];

function run(variant: Variant, fixture: Fixture, actions: Action[]): void {
  // Fixtures without timestamps only (their scripted segments carry none).
  const t = fixture(variant.ts ? { ...variant.opts } : variant.opts);
  const { conn, ev, h } = t;
  const cfg: TcpConfig = t.cfg;
  let now = 0;
  let lastEdge = -1;
  let lastAck = -1;
  let tsVal = 2000;
  let blocked = false;
  let checkedTransitions = 0;
  let lastTo: string | null = null;
  const maxChunk = 6000;
  const unit = 2 ** variant.shift;

  const checkOut = (out: Sent[]): void => {
    for (const o of out) {
      if (o.flags & RST || (o.flags & ACK) === 0 || o.flags & SYN) continue;
      const edge = (o.ack + o.window * unit) >>> 0;
      if (lastAck >= 0) expect(seqDiff(o.ack, lastAck)).toBeGreaterThanOrEqual(0);
      if (lastEdge >= 0) expect(seqDiff(edge, lastEdge)).toBeGreaterThan(-unit);
      if (lastEdge < 0 || seqDiff(edge, lastEdge) > 0) lastEdge = edge;
      lastAck = o.ack;
    }
  };

  const check = (): void => {
    const snd = conn.snd;
    expect(seqLeq(snd.una, snd.nxt)).toBe(true);
    expect(seqLeq(snd.nxt, snd.max)).toBe(true);
    expect(conn.sendBuffered).toBeLessThanOrEqual(cfg.sndBufBytes + maxChunk);
    expect(conn.receiveBuffered).toBeLessThanOrEqual(cfg.rcvBufBytes + unit - 1);
    const got = h.received();
    for (let i = 0; i < got.length; i++) if (got[i] !== source(i)) expect([i, got[i]]).toEqual([i, source(i)]);
    expect(got.length).toBe(conn.bytesIn);
    for (; checkedTransitions < ev.transitions.length; checkedTransitions++) {
      const [from, to] = ev.transitions[checkedTransitions]!;
      expect(ALLOWED.has(`${from}>${to}`), `${from} → ${to}`).toBe(true);
      if (lastTo !== null) expect(from).toBe(lastTo);
      lastTo = to;
    }
    const p = conn.pollAt();
    expect(Number.isNaN(p)).toBe(false);
  };

  // Start from the fixture's current state.
  lastTo = null;
  h.chunks.length = 0;
  const baseIn = conn.bytesIn;
  // Fixtures may have delivered nothing: the peer stream starts at REMOTE_SEQ+1 (+1 past a FIN).
  expect(baseIn).toBe(0);

  for (const a of actions) {
    switch (a.kind) {
      case 'seg': {
        const rcvNxt = conn.state === State.CLOSED ? r(1) : conn.rcv.nxt;
        const seq = (rcvNxt + a.seqDelta) >>> 0;
        const off = seqDiff(seq, r(1));
        const len = off >= 0 ? a.len : 0;
        const payload = Buffer.alloc(len);
        for (let i = 0; i < len; i++) payload[i] = source(off + i);
        const s = seg({
          seq,
          ack: ackFor(conn, a),
          flags: a.flags,
          window: a.window,
          payload,
        });
        if (variant.ts) {
          tsVal += a.ts;
          s.options.tsPresent = a.ts !== -5;
          s.options.tsVal = tsVal >>> 0;
          s.options.tsEcr = Math.floor(now) >>> 0;
        }
        if (a.sack && conn.snd.sackOk) {
          s.options.sackCount = 1;
          s.options.sackBlocks[0] = (conn.snd.una + 1000) >>> 0;
          s.options.sackBlocks[1] = (conn.snd.una + 3000) >>> 0;
        }
        const v = conn.process(s, now);
        expect(v === null || typeof v === 'string').toBe(true);
        break;
      }
      case 'tick':
        now += a.ms;
        break;
      case 'write': {
        const st = conn.state;
        if (!blocked && (st === State.ESTABLISHED || st === State.CLOSE_WAIT) && !conn.snd.finQueued) {
          if (!conn.write(Buffer.alloc(a.len, 0x5a))) blocked = true;
        }
        break;
      }
      case 'close':
        conn.close(now);
        break;
      case 'consume':
        conn.consume(Math.floor(conn.rcv.unconsumed * a.frac), now);
        break;
      case 'abort':
        conn.abort('abort', now);
        break;
    }
    if (h.sendSpace > 0) {
      blocked = false;
      h.sendSpace = 0;
    }
    // Dispatch whatever is due (bounded: a connection must settle).
    for (let i = 0; i < 5 && conn.pollAt() <= now; i++) checkOut(recv(conn, now));
    check();
  }
  // Finally let every timer run out: the connection must end CLOSED or idle in a waiting state.
  for (let i = 0; i < 200 && conn.pollAt() !== Infinity; i++) {
    now = Math.max(now, conn.pollAt());
    checkOut(recv(conn, now));
    check();
  }
}

describe('TcpConn under random segments (fast-check)', () => {
  for (const variant of VARIANTS) {
    it(`invariants hold for any segment sequence (${variant.name})`, () => {
      fc.assert(
        fc.property(fc.integer({ min: 0, max: FIXTURES.length - 1 }), fc.array(actionArb, { minLength: 1, maxLength: 80, size: 'max' }), (fi, actions) => {
          const fixture = variant.ts ? established : FIXTURES[fi]![1];
          run(variant, fixture, actions);
        }),
        { numRuns: 300 },
      );
    });
  }
});
