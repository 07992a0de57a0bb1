/**
 * Packetdrill/smoltcp-style harness for TcpConn: segments built over a template, `send` one in,
 * `recv` what the connection emits (payload copied out through copyPayload), state fixtures.
 *
 * REMOTE_SEQ and LOCAL_SEQ sit just below 2^32, so every test crosses the sequence wrap.
 */
import { expect } from 'vitest';
import { newReno } from '../../src/tcp/cc/newreno.js';
import type { TcpConfig } from '../../src/tcp/config.js';
import { TcpConn, type ConnHandler } from '../../src/tcp/conn.js';
import { defaultTcpConfig } from '../../src/tcp/defaults.js';
import type {
  CloseReason,
  ConnIdentity,
  DropReason,
  HandshakeResult,
  ResetDirection,
  ResetReason,
  RetransmitKind,
  SlowStartExitReason,
  TcpEventSink,
} from '../../src/tcp/events.js';
import { OutSegment, Segment, TcpFlag } from '../../src/wire/segment.js';
import { seqAdd } from '../../src/tcp/seq.js';
import { State, stateName } from '../../src/tcp/state.js';

export const { FIN, SYN, RST, PSH, ACK } = TcpFlag;

/** The peer's ISN (smoltcp's REMOTE_SEQ = −10001). */
export const REMOTE_SEQ = 0xffffd8ef;
/** Our ISS: 4096 below the wrap. */
export const LOCAL_SEQ = 0xfffff000;
export const LOCAL_PORT_MSS = 1460;
export const REMOTE_MSS = 1460;
export const REMOTE_WINDOW = 65535;

/** r(n): REMOTE_SEQ + n; l(n): LOCAL_SEQ + n (mod 2^32). */
export const r = (n: number): number => seqAdd(REMOTE_SEQ, n);
export const l = (n: number): number => seqAdd(LOCAL_SEQ, n);

/** The base configuration of these tests: no timestamps, no SACK, NewReno, 64 KiB − 1 buffers. */
export function testConfig(overrides: Partial<TcpConfig> = {}): TcpConfig {
  return defaultTcpConfig({
    mss: LOCAL_PORT_MSS,
    rcvBufBytes: 65535,
    sndBufBytes: 65536,
    timestamps: false,
    sack: false,
    congestionControl: newReno,
    initialRtoMs: 1000,
    minRtoMs: 200,
    maxRtoMs: 60_000,
    delayedAckMs: 40,
    mslMs: 30_000,
    ...overrides,
  });
}

// ---------------------------------------------------------------------------- segments in

export interface SegSpec {
  seq?: number;
  ack?: number;
  flags?: number;
  window?: number;
  payload?: Buffer | string;
  mss?: number;
  wscale?: number;
  sackPermitted?: boolean;
  /** [TSval, TSecr] */
  ts?: [number, number];
  /** SACK blocks [left, right) */
  sack?: [number, number][];
}

/** A segment from the peer over the template <SEQ=REMOTE_SEQ+1><ACK=LOCAL_SEQ+1><CTL=ACK><WND=65535>. */
export function seg(spec: SegSpec = {}): Segment {
  const s = new Segment();
  s.seq = spec.seq ?? r(1);
  s.ack = spec.ack ?? l(1);
  s.flags = spec.flags ?? ACK;
  s.window = spec.window ?? REMOTE_WINDOW;
  const p = spec.payload;
  s.payload = p === undefined ? Buffer.alloc(0) : typeof p === 'string' ? Buffer.from(p) : p;
  const o = s.options;
  if (spec.mss !== undefined) o.mss = spec.mss;
  if (spec.wscale !== undefined) o.wscale = spec.wscale;
  if (spec.sackPermitted) o.sackPermitted = true;
  if (spec.ts) {
    o.tsPresent = true;
    o.tsVal = spec.ts[0] >>> 0;
    o.tsEcr = spec.ts[1] >>> 0;
  }
  if (spec.sack) {
    o.sackCount = spec.sack.length;
    spec.sack.forEach(([a, b], i) => {
      o.sackBlocks[2 * i] = a;
      o.sackBlocks[2 * i + 1] = b;
    });
  }
  return s;
}

/** The peer's SYN: <SEQ=REMOTE_SEQ><CTL=SYN><MSS=1460>. */
export function synSeg(spec: SegSpec = {}): Segment {
  return seg({ seq: REMOTE_SEQ, ack: 0, flags: SYN, mss: REMOTE_MSS, ...spec });
}

// ---------------------------------------------------------------------------- segments out

export interface Sent {
  seq: number;
  ack: number;
  flags: number;
  window: number;
  payload: Buffer;
  gsoSize: number;
  mss: number;
  wscale: number;
  sackPermitted: boolean;
  ts: [number, number] | null;
  sack: [number, number][];
}

/** An expected outgoing segment over <SEQ=LOCAL_SEQ+1><ACK=REMOTE_SEQ+1><CTL=ACK><WND=65535>. */
export function out(spec: Partial<Omit<Sent, 'payload'>> & { payload?: Buffer | string } = {}): Sent {
  const p = spec.payload;
  return {
    seq: spec.seq ?? l(1),
    ack: spec.ack ?? r(1),
    flags: spec.flags ?? ACK,
    window: spec.window ?? 65535,
    payload: p === undefined ? Buffer.alloc(0) : typeof p === 'string' ? Buffer.from(p) : p,
    gsoSize: spec.gsoSize ?? 0,
    mss: spec.mss ?? -1,
    wscale: spec.wscale ?? -1,
    sackPermitted: spec.sackPermitted ?? false,
    ts: spec.ts ?? null,
    sack: spec.sack ?? [],
  };
}

function capture(conn: TcpConn, o: OutSegment): Sent {
  const payload = Buffer.alloc(o.payloadLength);
  if (o.payloadLength > 0) conn.copyPayload(payload, 0, o.payloadOffset, o.payloadLength);
  const opts = o.options;
  const sack: [number, number][] = [];
  for (let i = 0; i < opts.sackCount; i++) sack.push([opts.sackBlocks[2 * i]!, opts.sackBlocks[2 * i + 1]!]);
  return {
    seq: o.seq,
    ack: o.flags & ACK ? o.ack : 0,
    flags: o.flags,
    window: o.window,
    payload,
    gsoSize: o.gsoSize,
    mss: opts.mss,
    wscale: opts.wscale,
    sackPermitted: opts.sackPermitted,
    ts: opts.tsPresent ? [opts.tsVal, opts.tsEcr] : null,
    sack,
  };
}

/** Feed one segment at time `at`; returns the verdict. */
export function send(conn: TcpConn, s: Segment, at = 0): DropReason | null {
  return conn.process(s, at);
}

/** Run dispatch at `at` and collect everything emitted. */
export function recv(conn: TcpConn, at = 0, limit = Infinity): Sent[] {
  const got: Sent[] = [];
  conn.dispatch(at, (c, o) => {
    if (got.length >= limit) return false;
    got.push(capture(c, o));
    return true;
  });
  return got;
}

export function recvNothing(conn: TcpConn, at = 0): void {
  expect(recv(conn, at)).toEqual([]);
}

export function flagNames(flags: number): string {
  const names: string[] = [];
  if (flags & SYN) names.push('SYN');
  if (flags & FIN) names.push('FIN');
  if (flags & RST) names.push('RST');
  if (flags & PSH) names.push('PSH');
  if (flags & ACK) names.push('ACK');
  return names.join('|');
}

// ---------------------------------------------------------------------------- recorders

export class RecordingHandler implements ConnHandler {
  readonly chunks: Buffer[] = [];
  established = 0;
  fins = 0;
  sendSpace = 0;
  closed = 0;
  /** Order of callbacks, e.g. ['established', 'data', 'fin', 'closed']. */
  readonly calls: string[] = [];
  /** Optional hooks run inside the callbacks (re-entrancy tests). */
  onDataHook: ((conn: TcpConn, data: Buffer) => void) | null = null;
  onFinHook: ((conn: TcpConn) => void) | null = null;

  onEstablished(): void {
    this.established++;
    this.calls.push('established');
  }
  onData(conn: TcpConn, data: Buffer): void {
    this.chunks.push(data);
    this.calls.push('data');
    this.onDataHook?.(conn, data);
  }
  onFin(conn: TcpConn): void {
    this.fins++;
    this.calls.push('fin');
    this.onFinHook?.(conn);
  }
  onSendSpace(): void {
    this.sendSpace++;
    this.calls.push('sendSpace');
  }
  onClosed(): void {
    this.closed++;
    this.calls.push('closed');
  }
  /** All delivered bytes so far. */
  received(): Buffer {
    return Buffer.concat(this.chunks);
  }
}

export type Transition = [string, string];

export class RecordingEvents implements TcpEventSink {
  readonly transitions: Transition[] = [];
  readonly handshakes: [HandshakeResult, number][] = [];
  readonly retransmits: RetransmitKind[] = [];
  readonly resets: [ResetDirection, ResetReason][] = [];
  readonly drops: DropReason[] = [];
  readonly rtts: number[] = [];
  readonly closes: CloseReason[] = [];
  readonly slowStartExits: SlowStartExitReason[] = [];
  /** Time spent in the old state per transition. */
  readonly durations: number[] = [];

  stateChange(_c: ConnIdentity, from: State, to: State, now: number, sinceMs: number): void {
    this.transitions.push([stateName(from), stateName(to)]);
    this.durations.push(now - sinceMs);
  }
  handshake(_c: ConnIdentity, result: HandshakeResult, durationMs: number): void {
    this.handshakes.push([result, durationMs]);
  }
  retransmit(_c: ConnIdentity, kind: RetransmitKind): void {
    this.retransmits.push(kind);
  }
  reset(_c: ConnIdentity | null, direction: ResetDirection, reason: ResetReason): void {
    this.resets.push([direction, reason]);
  }
  drop(_c: ConnIdentity | null, reason: DropReason): void {
    this.drops.push(reason);
  }
  rtt(_c: ConnIdentity, srttMs: number): void {
    this.rtts.push(srttMs);
  }
  slowStartExit(_c: ConnIdentity, reason: SlowStartExitReason): void {
    this.slowStartExits.push(reason);
  }
  closed(_c: ConnIdentity, reason: CloseReason, _now: number): void {
    this.closes.push(reason);
  }
  clear(): void {
    this.slowStartExits.length = 0;
    this.transitions.length = 0;
    this.handshakes.length = 0;
    this.retransmits.length = 0;
    this.resets.length = 0;
    this.drops.length = 0;
    this.rtts.length = 0;
    this.closes.length = 0;
    this.durations.length = 0;
  }
}

// ---------------------------------------------------------------------------- fixtures

export interface T {
  conn: TcpConn;
  h: RecordingHandler;
  ev: RecordingEvents;
  cfg: TcpConfig;
}

export interface FixtureOpts {
  cfg?: Partial<TcpConfig>;
  /** Extra options on the peer's SYN (e.g. { ts: [..], sackPermitted: true, wscale: 7 }). */
  syn?: SegSpec;
  /** Time of the SYN and of the accept. */
  at?: number;
}

/** Fixtures check segments exactly except the window, which depends on the configuration. */
const ANY_WINDOW = expect.any(Number) as unknown as number;

export function newConn(cfgOverrides: Partial<TcpConfig> = {}, at = 0): T {
  const cfg = testConfig(cfgOverrides);
  const h = new RecordingHandler();
  const ev = new RecordingEvents();
  const conn = new TcpConn(1, cfg, ev, h, at);
  return { conn, h, ev, cfg };
}

/** SYN_RECEIVED with our SYN-ACK already emitted (and checked). */
export function synReceived(opts: FixtureOpts = {}): T {
  const at = opts.at ?? 0;
  const t = newConn(opts.cfg, at);
  t.conn.accept(synSeg(opts.syn), LOCAL_SEQ, at, at);
  const sent = recv(t.conn, at);
  expect(sent.length).toBe(1);
  expect(sent[0]!.flags).toBe(SYN | ACK);
  expect(t.conn.state).toBe(State.SYN_RECEIVED);
  return t;
}

/** ESTABLISHED after the peer's final ACK (nothing left to emit). */
export function established(opts: FixtureOpts = {}): T {
  const t = synReceived(opts);
  const at = opts.at ?? 0;
  const ack: SegSpec = {};
  if (opts.syn?.ts) ack.ts = [opts.syn.ts[0] + 1, Math.floor(at)];
  expect(send(t.conn, seg(ack), at)).toBeNull();
  expect(t.conn.state).toBe(State.ESTABLISHED);
  recv(t.conn, at);
  t.ev.clear();
  t.h.calls.length = 0;
  return t;
}

/** FIN_WAIT_1: we closed, our FIN (seq LOCAL_SEQ+1) emitted and unacknowledged. */
export function finWait1(opts: FixtureOpts = {}): T {
  const t = established(opts);
  t.conn.close(0);
  expect(recv(t.conn, 0)).toEqual([out({ flags: FIN | ACK, window: ANY_WINDOW })]);
  expect(t.conn.state).toBe(State.FIN_WAIT_1);
  t.ev.clear();
  return t;
}

/** FIN_WAIT_2: our FIN acknowledged. */
export function finWait2(opts: FixtureOpts = {}): T {
  const t = finWait1(opts);
  expect(send(t.conn, seg({ ack: l(2) }))).toBeNull();
  expect(t.conn.state).toBe(State.FIN_WAIT_2);
  recvNothing(t.conn, 0);
  t.ev.clear();
  return t;
}

/** CLOSE_WAIT: the peer's FIN (seq REMOTE_SEQ+1) received and acknowledged. */
export function closeWait(opts: FixtureOpts = {}): T {
  const t = established(opts);
  expect(send(t.conn, seg({ flags: FIN | ACK }))).toBeNull();
  // The FIN's ACK is delayed (delayedAckMs): the next segment we send carries it.
  recvNothing(t.conn, 0);
  expect(t.conn.state).toBe(State.CLOSE_WAIT);
  t.ev.clear();
  t.h.calls.length = 0;
  return t;
}

/** LAST_ACK: CLOSE_WAIT, then we closed; our FIN emitted. */
export function lastAck(opts: FixtureOpts = {}): T {
  const t = closeWait(opts);
  t.conn.close(0);
  expect(recv(t.conn, 0)).toEqual([out({ flags: FIN | ACK, ack: r(2), window: ANY_WINDOW })]);
  expect(t.conn.state).toBe(State.LAST_ACK);
  t.ev.clear();
  return t;
}

/** CLOSING: simultaneous close, the peer's FIN arrived before the ACK of ours. */
export function closing(opts: FixtureOpts = {}): T {
  const t = finWait1(opts);
  expect(send(t.conn, seg({ flags: FIN | ACK, ack: l(1) }))).toBeNull();
  expect(t.conn.state).toBe(State.CLOSING);
  expect(recv(t.conn, 0)).toEqual([out({ seq: l(2), ack: r(2), window: ANY_WINDOW })]);
  t.ev.clear();
  return t;
}

/** TIME_WAIT, entered from FIN_WAIT_2 at time 0 (expires at 2×MSL). */
export function timeWait(opts: FixtureOpts = {}): T {
  const t = finWait2(opts);
  expect(send(t.conn, seg({ flags: FIN | ACK, ack: l(2) }))).toBeNull();
  expect(t.conn.state).toBe(State.TIME_WAIT);
  expect(recv(t.conn, 0)).toEqual([out({ seq: l(2), ack: r(2), window: ANY_WINDOW })]);
  t.ev.clear();
  return t;
}

/** `n` bytes of recognisable data. */
export function bytes(n: number, seed = 0): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed * 7 + 11) & 0xff;
  return b;
}

/**
 * What a peer receives of a segment `conn` sent: bytes [from, from + len) of its payload, with
 * its options; `last`: the piece that keeps FIN and PSH (a segment split in the network).
 */
export function segmentOf(conn: TcpConn, o: OutSegment, from = 0, len = o.payloadLength, last = true): Segment {
  const s = new Segment();
  s.seq = seqAdd(o.seq, from);
  s.ack = o.ack;
  s.flags = last ? o.flags : o.flags & ~(TcpFlag.FIN | TcpFlag.PSH);
  s.window = o.window;
  const p = Buffer.alloc(len);
  if (len > 0) conn.copyPayload(p, 0, o.payloadOffset + from, len);
  s.payload = p;
  const a = o.options;
  const b = s.options;
  b.mss = a.mss;
  b.wscale = a.wscale;
  b.sackPermitted = a.sackPermitted;
  b.tsPresent = a.tsPresent;
  b.tsVal = a.tsVal;
  b.tsEcr = a.tsEcr;
  b.sackCount = a.sackCount;
  b.sackBlocks.set(a.sackBlocks);
  return s;
}
