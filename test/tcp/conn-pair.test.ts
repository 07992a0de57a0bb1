/**
 * Two TcpConns talking to each other through a simulated network (delay, jitter/reordering, loss,
 * duplication; GSO segments cut at gsoSize as a device would): an active open against a passive
 * one, both directions streaming, then an orderly close. Checks that every byte arrives, in order,
 * and that both ends finish (CLOSED, via TIME-WAIT on the side that closed first) without a reset.
 * Seeds are fixed so failures reproduce.
 */
import { describe, expect, it } from 'vitest';
import { cubic } from '../../src/tcp/cc/cubic.js';
import type { TcpConfig } from '../../src/tcp/config.js';
import { TcpConn, type ConnHandler } from '../../src/tcp/conn.js';
import { OutSegment, Segment, TcpFlag } from '../../src/wire/segment.js';
import { State } from '../../src/tcp/state.js';
import { RecordingEvents, segmentOf, testConfig } from './helpers.js';

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface NetOpts {
  loss: number;
  dup: number;
  delayMs: number;
  jitterMs: number;
}

interface Packet {
  at: number;
  to: 0 | 1;
  seg: Segment;
}

/** An application that writes `total` bytes (honouring backpressure), consumes what it reads, then closes. */
class App implements ConnHandler {
  conn: TcpConn | null = null;
  readonly received: Buffer[] = [];
  written = 0;
  blocked = false;
  finSeen = false;
  closedSeen = false;
  pendingConsume = 0;
  /** A slow consumer only reads at intervals, so the receive window fills up. */
  nextConsumeAt = 0;
  constructor(
    readonly stream: Buffer,
    readonly consumeLag: boolean,
  ) {}
  onEstablished(): void {}
  onData(_c: TcpConn, data: Buffer): void {
    this.received.push(data);
    this.pendingConsume += data.length;
  }
  onFin(): void {
    this.finSeen = true;
  }
  onSendSpace(): void {
    this.blocked = false;
  }
  onClosed(): void {
    this.closedSeen = true;
  }
  /** Let the app run at `now`: write more, consume, close when done. */
  pump(now: number, rnd: () => number): void {
    const c = this.conn;
    if (c === null) return;
    if (this.closedSeen) {
      this.pendingConsume = 0;
      return;
    }
    const st = c.state;
    if (st === State.ESTABLISHED || st === State.CLOSE_WAIT) {
      while (!this.blocked && this.written < this.stream.length) {
        const n = Math.min(1 + Math.floor(rnd() * 9000), this.stream.length - this.written);
        const chunk = Buffer.from(this.stream.subarray(this.written, this.written + n));
        this.written += n;
        if (!c.write(chunk)) this.blocked = true;
      }
      if (this.written === this.stream.length && !c.snd.finQueued) c.close(now);
    }
    if (this.pendingConsume > 0 && (!this.consumeLag || now >= this.nextConsumeAt)) {
      c.consume(this.pendingConsume, now);
      this.pendingConsume = 0;
      this.nextConsumeAt = now + 100 + rnd() * 300;
    }
  }
}

function simulate(seed: number, cfgA: TcpConfig, cfgB: TcpConfig, net: NetOpts, sizes: [number, number], lag: boolean) {
  const rnd = mulberry32(seed);
  const stream = (n: number, k: number): Buffer => {
    const b = Buffer.alloc(n);
    for (let i = 0; i < n; i++) b[i] = (i * 17 + k * 101 + (i >>> 9)) & 0xff;
    return b;
  };
  const apps = [new App(stream(sizes[0], 1), lag), new App(stream(sizes[1], 2), lag)] as const;
  const evs = [new RecordingEvents(), new RecordingEvents()] as const;
  const conns: [TcpConn | null, TcpConn | null] = [new TcpConn(1, cfgA, evs[0], apps[0], 0), null];
  apps[0].conn = conns[0]!;
  conns[0]!.connect(0xffff0000 + Math.floor(rnd() * 0xffff), 0);
  const wire: Packet[] = [];
  let now = 0;

  const emitFrom = (side: 0 | 1) => (conn: TcpConn, o: OutSegment): boolean => {
    const pieces = o.gsoSize > 0 && o.payloadLength > o.gsoSize ? Math.ceil(o.payloadLength / o.gsoSize) : 1;
    for (let i = 0; i < pieces; i++) {
      const from = pieces === 1 ? 0 : i * o.gsoSize;
      const len = pieces === 1 ? o.payloadLength : Math.min(o.gsoSize, o.payloadLength - from);
      const seg = segmentOf(conn, o, from, len, i === pieces - 1);
      if (rnd() < net.loss) continue;
      const copies = rnd() < net.dup ? 2 : 1;
      for (let k = 0; k < copies; k++) wire.push({ at: now + net.delayMs + rnd() * net.jitterMs, to: side === 0 ? 1 : 0, seg });
    }
    return true;
  };
  const emitters = [emitFrom(0), emitFrom(1)] as const;

  for (let steps = 0; steps < 200_000; steps++) {
    for (const side of [0, 1] as const) {
      const c = conns[side];
      if (c !== null && c.pollAt() <= now) c.dispatch(now, emitters[side]);
      apps[side].pump(now, rnd);
      if (c !== null && c.pollAt() <= now) c.dispatch(now, emitters[side]);
    }
    // Next event.
    let next = Infinity;
    for (const p of wire) if (p.at < next) next = p.at;
    for (const c of conns) if (c !== null) next = Math.min(next, c.pollAt());
    for (const app of apps) if (app.pendingConsume > 0 && app.consumeLag) next = Math.min(next, Math.max(app.nextConsumeAt, now));
    if (next === Infinity) break;
    now = Math.max(now, next);
    // Deliver everything due, in arrival order.
    wire.sort((a, b) => a.at - b.at);
    while (wire.length > 0 && wire[0]!.at <= now) {
      const p = wire.shift()!;
      let c = conns[p.to];
      if (c === null) {
        if (p.to !== 1 || (p.seg.flags & (TcpFlag.SYN | TcpFlag.ACK)) !== TcpFlag.SYN) continue;
        c = new TcpConn(2, cfgB, evs[1], apps[1], now);
        apps[1].conn = c;
        conns[1] = c;
        c.accept(p.seg, 0xfffff000 + Math.floor(rnd() * 0xfff), now, now, 0x12345678);
        continue;
      }
      c.process(p.seg, now);
    }
  }
  return { apps, conns, evs, now };
}

const BASE = { mslMs: 1000, delayedAckMs: 40, rcvBufBytes: 64 * 1024, sndBufBytes: 64 * 1024, maxRetries: 30 };

interface Scenario {
  name: string;
  cfg: Partial<TcpConfig>;
  net: NetOpts;
  lag: boolean;
}

const SCENARIOS: Scenario[] = [
  { name: 'clean network', cfg: {}, net: { loss: 0, dup: 0, delayMs: 10, jitterMs: 0 }, lag: false },
  { name: 'reordering', cfg: { sack: true }, net: { loss: 0, dup: 0, delayMs: 5, jitterMs: 20 }, lag: false },
  { name: '3% loss, NewReno, no SACK', cfg: {}, net: { loss: 0.03, dup: 0.01, delayMs: 10, jitterMs: 2 }, lag: false },
  { name: '3% loss with SACK and timestamps', cfg: { sack: true, timestamps: true }, net: { loss: 0.03, dup: 0.01, delayMs: 10, jitterMs: 2 }, lag: false },
  { name: '10% loss, reordering, SACK, window scaling', cfg: { sack: true, rcvBufBytes: 300_000, wscale: 3 }, net: { loss: 0.1, dup: 0.02, delayMs: 10, jitterMs: 15 }, lag: false },
  { name: 'slow consumer (zero windows), GSO', cfg: { rcvBufBytes: 8000, gsoMaxBytes: 16_000, sack: true }, net: { loss: 0.02, dup: 0, delayMs: 3, jitterMs: 1 }, lag: true },
  { name: 'small MSS, timestamps, slow consumer', cfg: { mss: 536, timestamps: true }, net: { loss: 0.05, dup: 0, delayMs: 20, jitterMs: 5 }, lag: true },
  { name: 'CUBIC, 5% loss, SACK', cfg: { congestionControl: cubic, sack: true }, net: { loss: 0.05, dup: 0, delayMs: 15, jitterMs: 3 }, lag: false },
];

describe('two connections over a lossy simulated network', () => {
  for (const sc of SCENARIOS) {
    it(`both streams arrive intact and both ends close cleanly: ${sc.name}`, () => {
      for (let seed = 1; seed <= 6; seed++) {
        const cfg = testConfig({ ...BASE, ...sc.cfg });
        const { apps, conns, evs, now } = simulate(seed * 7919, cfg, cfg, sc.net, [150_000 + seed * 1000, 90_000], sc.lag);
        const [a, b] = apps;
        const ctx = `seed ${seed * 7919} at ${now} ms`;
        expect(Buffer.concat(b.received).equals(a.stream), `A→B stream (${ctx})`).toBe(true);
        expect(Buffer.concat(a.received).equals(b.stream), `B→A stream (${ctx})`).toBe(true);
        expect(conns[0]!.state, ctx).toBe(State.CLOSED);
        expect(conns[1]!.state, ctx).toBe(State.CLOSED);
        expect(evs[0].resets.concat(evs[1].resets), ctx).toEqual([]);
        expect(conns[0]!.closeReason, ctx).toBe('fin');
        expect(conns[1]!.closeReason, ctx).toBe('fin');
        expect(a.finSeen && b.finSeen, ctx).toBe(true);
      }
    });
  }
});
