/**
 * The stack over an in-memory link with a manual clock: demux, the listener and the deferred
 * handshake, resets for strays (RFC 9293 §3.10.7.1), SYN cookies (RFC 4987), the connection
 * limit, TIME-WAIT records and their reuse (RFC 6191).
 */
import v8 from 'node:v8';
import vm from 'node:vm';
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/stack/clock.js';
import { EventHub } from '../../src/stack/events.js';
import type { LinkTx } from '../../src/wire/link.js';
import { Stack, type Forwarder, type PendingSyn } from '../../src/stack/stack.js';
import type { ConnHandler, TcpConn } from '../../src/tcp/conn.js';
import { defaultTcpConfig } from '../../src/tcp/defaults.js';
import type { DropReason } from '../../src/tcp/events.js';
import { OutSegment, Segment, TcpFlag } from '../../src/wire/segment.js';
import { seqAdd } from '../../src/tcp/seq.js';
import { State, STATE_NAMES } from '../../src/tcp/state.js';
import { FlowKey, PacketParser, finishTcpChecksum, writeTcpPacket } from '../../src/wire/packet.js';

const APP = 0xc6120001; // 198.18.0.1
const DEST = 0xc6120102; // 198.18.1.2
const APP_PORT = 40000;
const DEST_PORT = 80;
const APP_ISN = 0xfffffff0; // next to the wrap

/** A link that keeps every transmitted packet, parsed. */
class MemoryLink implements LinkTx {
  readonly vnetHdr = false;
  readonly txSlotSize = 70_000;
  readonly txBuffer = Buffer.alloc(this.txSlotSize);
  readonly sent: Array<{ seg: Segment; flow: FlowKey; payload: Buffer; raw: Buffer }> = [];
  private readonly parser = new PacketParser();
  txReserve(): number {
    return 0;
  }
  txCommit(offset: number, length: number): void {
    const raw = Buffer.from(this.txBuffer.subarray(offset, offset + length));
    const seg = new Segment();
    const flow = new FlowKey();
    const verdict = this.parser.parse(raw, 0, raw.length, false, seg, flow);
    if (verdict !== 'tcp') {
      this.sent.push({ seg, flow, payload: Buffer.alloc(0), raw });
      return;
    }
    this.sent.push({ seg, flow, payload: Buffer.from(seg.payload), raw });
  }
  txFlush(): void {}
  onTxDrain(): void {}
  take() {
    return this.sent.splice(0);
  }
}

function appPacket(o: { seq: number; ack?: number; flags: number; window?: number; payload?: Buffer; srcPort?: number; mss?: number; wscale?: number; sack?: boolean; ts?: [number, number] }): Buffer {
  const out = new OutSegment();
  out.seq = o.seq;
  out.ack = o.ack ?? 0;
  out.flags = o.flags;
  out.window = o.window ?? 65535;
  if (o.mss !== undefined) out.options.mss = o.mss;
  if (o.wscale !== undefined) out.options.wscale = o.wscale;
  if (o.sack !== undefined) out.options.sackPermitted = o.sack;
  if (o.ts !== undefined) {
    out.options.tsPresent = true;
    out.options.tsVal = o.ts[0];
    out.options.tsEcr = o.ts[1];
  }
  const payload = o.payload ?? Buffer.alloc(0);
  const buf = Buffer.alloc(100 + payload.length);
  const src = Uint32Array.of(0, 0, 0, APP);
  const dst = Uint32Array.of(0, 0, 0, DEST);
  const hl = writeTcpPacket(buf, 0, 4, src, dst, o.srcPort ?? APP_PORT, DEST_PORT, out, payload.length);
  payload.copy(buf, hl);
  finishTcpChecksum(buf, 0, 'full');
  return buf.subarray(0, hl + payload.length);
}

interface Harness {
  stack: Stack;
  link: MemoryLink;
  clock: ManualClock;
  syns: PendingSyn[];
  drops: DropReason[];
  transitions: string[];
  send(pkt: Buffer): void;
}

function harness(opts: { synBacklog?: number; maxConnections?: number; mslMs?: number } = {}): Harness {
  const link = new MemoryLink();
  const clock = new ManualClock(1000);
  const hub = new EventHub();
  const syns: PendingSyn[] = [];
  const drops: DropReason[] = [];
  const transitions: string[] = [];
  hub.subscribe({
    drop: (_c, r) => drops.push(r),
    stateChange: (_c, from, to) => transitions.push(`${STATE_NAMES[from]}>${STATE_NAMES[to]}`),
  });
  const forwarder: Forwarder = { onSyn: (r) => syns.push(r), onSynAborted() {} };
  const stack = new Stack({
    link,
    clock,
    tcp: defaultTcpConfig({ mslMs: opts.mslMs ?? 1000 }),
    forwarder,
    events: hub,
    synBacklog: opts.synBacklog ?? 16,
    maxConnections: opts.maxConnections ?? 100,
    setTimer: () => null,
    clearTimer: () => {},
  });
  return {
    stack,
    link,
    clock,
    syns,
    drops,
    transitions,
    send(pkt: Buffer) {
      stack.input(pkt, 0, pkt.length, false);
      stack.flush();
    },
  };
}

const idleHandler = (): ConnHandler & { data: Buffer[]; fins: number } => ({
  data: [],
  fins: 0,
  onEstablished() {},
  onData(c: TcpConn, d: Buffer) {
    this.data.push(d);
    c.consume(d.length, 0);
  },
  onFin() {
    this.fins++;
  },
  onSendSpace() {},
  onClosed() {},
});

/** SYN, accept, SYN-ACK, final ACK: an ESTABLISHED connection. */
function establish(h: Harness, srcPort = APP_PORT): { conn: TcpConn; ourIss: number } {
  h.send(appPacket({ seq: APP_ISN, flags: TcpFlag.SYN, mss: 1460, srcPort }));
  const req = h.syns.shift()!;
  const conn = h.stack.acceptPending(req, idleHandler())!;
  h.stack.flush();
  const [synAck] = h.link.take();
  expect(synAck!.seg.flags).toBe(TcpFlag.SYN | TcpFlag.ACK);
  expect(synAck!.seg.ack).toBe(seqAdd(APP_ISN, 1));
  const ourIss = synAck!.seg.seq;
  h.send(appPacket({ seq: seqAdd(APP_ISN, 1), ack: seqAdd(ourIss, 1), flags: TcpFlag.ACK, srcPort }));
  expect(conn.state).toBe(State.ESTABLISHED);
  return { conn, ourIss };
}

describe('stack', () => {
  it('RFC 9293 §3.10.7.1: an ACK for no connection gets a RST with seq = SEG.ACK', () => {
    const h = harness();
    h.send(appPacket({ seq: 100, ack: 5555, flags: TcpFlag.ACK }));
    const [rst] = h.link.take();
    expect(rst!.seg.flags).toBe(TcpFlag.RST);
    expect(rst!.seg.seq).toBe(5555);
    expect(rst!.flow.srcPort).toBe(DEST_PORT);
    expect(rst!.flow.dst[3]).toBe(APP);
    expect(h.drops).toEqual(['no_connection']);
  });

  it('RFC 9293 §3.10.7.1: a segment without ACK for no connection gets RST|ACK acknowledging it', () => {
    const h = harness();
    h.send(appPacket({ seq: 100, flags: TcpFlag.FIN, payload: Buffer.from('abc') }));
    const [rst] = h.link.take();
    expect(rst!.seg.flags).toBe(TcpFlag.RST | TcpFlag.ACK);
    expect(rst!.seg.seq).toBe(0);
    expect(rst!.seg.ack).toBe(100 + 3 + 1);
  });

  it('RFC 9293 §3.10.7.1: an RST for no connection is dropped, never answered', () => {
    const h = harness();
    h.send(appPacket({ seq: 100, flags: TcpFlag.RST }));
    expect(h.link.take()).toEqual([]);
    expect(h.drops).toEqual(['no_connection']);
  });

  it('a SYN for any destination is offered to the forwarder and answered only after accept', () => {
    const h = harness();
    h.send(appPacket({ seq: APP_ISN, flags: TcpFlag.SYN, mss: 1460 }));
    expect(h.syns).toHaveLength(1);
    expect(h.link.take()).toEqual([]); // deferred: nothing until the upstream connects
    // A retransmitted SYN while dialling is absorbed.
    h.send(appPacket({ seq: APP_ISN, flags: TcpFlag.SYN, mss: 1460 }));
    expect(h.syns).toHaveLength(1);
    expect(h.link.take()).toEqual([]);
    h.stack.acceptPending(h.syns[0]!, idleHandler());
    h.stack.flush();
    const [synAck] = h.link.take();
    expect(synAck!.seg.flags).toBe(TcpFlag.SYN | TcpFlag.ACK);
    expect(synAck!.flow.src[3]).toBe(DEST); // we answer as the destination
    expect(h.transitions).toEqual(['LISTEN>SYN_RECEIVED']);
  });

  it('a refused upstream gives the app a RST|ACK to its SYN', () => {
    const h = harness();
    h.send(appPacket({ seq: APP_ISN, flags: TcpFlag.SYN }));
    h.stack.rejectPending(h.syns[0]!, 'refused', 'upstream_refused');
    h.stack.flush();
    const [rst] = h.link.take();
    expect(rst!.seg.flags).toBe(TcpFlag.RST | TcpFlag.ACK);
    expect(rst!.seg.ack).toBe(seqAdd(APP_ISN, 1));
    expect(h.stack.halfOpenCount).toBe(0);
  });

  it('an unreachable upstream gives the app an ICMP host unreachable quoting its SYN', () => {
    const h = harness();
    h.send(appPacket({ seq: APP_ISN, flags: TcpFlag.SYN }));
    h.stack.rejectPending(h.syns[0]!, 'unreachable', 'upstream_unreachable');
    h.stack.flush();
    const [icmp] = h.link.take();
    const raw = icmp!.raw;
    expect(raw[9]).toBe(1); // IPv4 protocol ICMP
    expect(raw[20]).toBe(3); // destination unreachable
    expect(raw[21]).toBe(1); // host unreachable
    // The quoted TCP header carries the app's ports and ISN.
    expect(raw.readUInt16BE(28 + 20)).toBe(APP_PORT);
    expect(raw.readUInt32BE(28 + 20 + 4)).toBe(APP_ISN);
  });

  it('RFC 4987: with the backlog full, SYNs are answered with cookies and dialled only on a valid final ACK', () => {
    const h = harness({ synBacklog: 1 });
    h.send(appPacket({ seq: APP_ISN, flags: TcpFlag.SYN, srcPort: 1000 })); // fills the backlog
    expect(h.syns).toHaveLength(1);
    h.send(appPacket({ seq: 777, flags: TcpFlag.SYN, mss: 1400, srcPort: 2000 }));
    expect(h.syns).toHaveLength(1); // no state, no dial
    const [synAck] = h.link.take();
    expect(synAck!.seg.flags).toBe(TcpFlag.SYN | TcpFlag.ACK);
    const cookie = synAck!.seg.seq;
    // A forged ACK is answered with a RST, not dialled, and counted as a bad cookie.
    h.send(appPacket({ seq: 778, ack: seqAdd(cookie, 2), flags: TcpFlag.ACK, srcPort: 2000 }));
    expect(h.syns).toHaveLength(1);
    expect(h.link.take()[0]!.seg.flags).toBe(TcpFlag.RST);
    expect(h.drops).toEqual(['bad_cookie']);
    // The real final ACK: now the upstream is dialled.
    h.send(appPacket({ seq: 778, ack: seqAdd(cookie, 1), flags: TcpFlag.ACK, srcPort: 2000 }));
    expect(h.syns).toHaveLength(2);
    const req = h.syns[1]!;
    expect(req.fromCookie).toBe(true);
    const conn = h.stack.acceptPending(req, idleHandler())!;
    expect(conn.state).toBe(State.ESTABLISHED);
    expect(conn.mss).toBeLessThanOrEqual(1400);
  });

  it('RFC 4987: bare ACKs are checked as cookies only while cookies may be outstanding', () => {
    const h = harness({ synBacklog: 1 });
    h.send(appPacket({ seq: APP_ISN, flags: TcpFlag.SYN, srcPort: 1000 }));
    h.send(appPacket({ seq: 777, flags: TcpFlag.SYN, srcPort: 2000 }));
    const cookie = h.link.take()[0]!.seg.seq;
    // Long after the last cookie went out, even the once-valid ACK is a stray: no dial, no hash.
    h.clock.advance(10 * 60_000);
    h.send(appPacket({ seq: 778, ack: seqAdd(cookie, 1), flags: TcpFlag.ACK, srcPort: 2000 }));
    expect(h.syns).toHaveLength(1);
    expect(h.link.take()[0]!.seg.flags).toBe(TcpFlag.RST);
    expect(h.drops).toEqual(['no_connection']);
  });

  it('RFC 4987 + RFC 7323 §2.3: a cookie handshake keeps the peer\'s window scale, not ours', () => {
    // The peer's shift (10, as Linux picks for a large buffer) differs from ours: its window
    // field after the handshake must be scaled by ITS shift.
    const h = harness({ synBacklog: 0 });
    const ours = h.stack.tcp.wscale;
    expect(ours).not.toBe(10);
    h.send(appPacket({ seq: 777, flags: TcpFlag.SYN, mss: 1460, wscale: 10, sack: true, ts: [5000, 0] }));
    const [synAck] = h.link.take();
    expect(synAck!.seg.flags).toBe(TcpFlag.SYN | TcpFlag.ACK);
    // We advertise our own shift in the SYN-ACK (RFC 7323 §2.2).
    expect(synAck!.seg.options.wscale).toBe(ours);
    const cookie = synAck!.seg.seq;
    h.send(appPacket({ seq: 778, ack: seqAdd(cookie, 1), flags: TcpFlag.ACK, window: 63, ts: [5001, synAck!.seg.options.tsVal] }));
    expect(h.syns).toHaveLength(1);
    expect(h.syns[0]!.fromCookie).toBe(true);
    expect(h.syns[0]!.wscale).toBe(10);
    expect(h.syns[0]!.sackPermitted).toBe(true);
    const conn = h.stack.acceptPending(h.syns[0]!, idleHandler())!;
    expect(conn.state).toBe(State.ESTABLISHED);
    // 63 << 10, not 63 << ours: 64 KiB the peer offered, not 504 bytes (or, with a peer shift
    // below ours, more than it offered).
    expect(conn.sendWindow).toBe(63 << 10);
  });

  it('--max-connections: a SYN beyond the limit is refused with RST and counted as syn_limit', () => {
    const h = harness({ maxConnections: 1 });
    establish(h, 1000);
    h.send(appPacket({ seq: 5, flags: TcpFlag.SYN, srcPort: 2000 }));
    expect(h.syns).toHaveLength(0);
    const [rst] = h.link.take();
    expect(rst!.seg.flags).toBe(TcpFlag.RST | TcpFlag.ACK);
    expect(h.drops).toContain('syn_limit');
  });

  it('data reaches the handler in order through the table', () => {
    const h = harness();
    h.send(appPacket({ seq: APP_ISN, flags: TcpFlag.SYN, mss: 1460 }));
    const handler = idleHandler();
    h.stack.acceptPending(h.syns[0]!, handler);
    h.stack.flush();
    const ourIss = h.link.take()[0]!.seg.seq;
    h.send(appPacket({ seq: seqAdd(APP_ISN, 1), ack: seqAdd(ourIss, 1), flags: TcpFlag.ACK | TcpFlag.PSH, payload: Buffer.from('hello') }));
    expect(Buffer.concat(handler.data).toString()).toBe('hello');
  });

  it('TIME-WAIT becomes a compact record that expires after 2×MSL', () => {
    const h = harness({ mslMs: 500 });
    const { conn, ourIss } = establish(h);
    conn.close(h.clock.now());
    h.stack.wake(conn);
    h.stack.flush();
    const fin = h.link.take().find((p) => p.seg.flags & TcpFlag.FIN)!;
    expect(fin.seg.seq).toBe(seqAdd(ourIss, 1));
    // The app acknowledges our FIN and sends its own.
    h.send(appPacket({ seq: seqAdd(APP_ISN, 1), ack: seqAdd(ourIss, 2), flags: TcpFlag.ACK | TcpFlag.FIN }));
    expect(h.stack.connectionCount).toBe(0);
    expect(h.stack.timeWaitRecords).toBe(1);
    const ack = h.link.take().at(-1)!;
    expect(ack.seg.ack).toBe(seqAdd(APP_ISN, 2));
    // A retransmitted FIN is acknowledged again (RFC 9293 §3.10.7.4 TIME-WAIT).
    h.clock.advance(400);
    h.send(appPacket({ seq: seqAdd(APP_ISN, 1), ack: seqAdd(ourIss, 2), flags: TcpFlag.ACK | TcpFlag.FIN }));
    expect(h.link.take().at(-1)!.seg.ack).toBe(seqAdd(APP_ISN, 2));
    // The timer restarted at the retransmitted FIN: still there 900 ms after entering.
    h.clock.advance(500);
    h.stack.runTimers();
    expect(h.stack.timeWaitRecords).toBe(1);
    h.clock.advance(600);
    h.stack.runTimers();
    expect(h.stack.timeWaitRecords).toBe(0);
    expect(h.transitions.at(-1)).toBe('TIME_WAIT>CLOSED');
  });

  it('connections that closed with a deadline pending are released, however many TIME-WAIT records are live', async () => {
    const h = harness({ mslMs: 30_000, maxConnections: 1000 });
    // 300 records in TIME-WAIT (we closed first), each with its 2×MSL deadline.
    for (let i = 0; i < 300; i++) {
      const port = 20_000 + i;
      h.link.take();
      const { conn, ourIss } = establish(h, port);
      conn.close(h.clock.now());
      h.stack.wake(conn);
      h.stack.flush();
      h.send(appPacket({ seq: seqAdd(APP_ISN, 1), ack: seqAdd(ourIss, 2), flags: TcpFlag.ACK | TcpFlag.FIN, srcPort: port }));
    }
    expect(h.stack.timeWaitRecords).toBe(300);
    // 200 connections reset while our FIN waits for its acknowledgement (a retransmission deadline armed).
    const refs: WeakRef<TcpConn>[] = [];
    for (let i = 0; i < 200; i++) {
      const port = 30_000 + i;
      h.link.take();
      const { conn, ourIss } = establish(h, port);
      conn.close(h.clock.now());
      h.stack.wake(conn);
      h.stack.flush();
      h.send(appPacket({ seq: seqAdd(APP_ISN, 1), ack: seqAdd(ourIss, 1), flags: TcpFlag.RST, srcPort: port }));
      expect(conn.state).toBe(State.CLOSED);
      refs.push(new WeakRef(conn));
    }
    h.link.take();
    expect(h.stack.connectionCount).toBe(0);
    // Stale timer entries may hold a few closed connections until the next compaction (the
    // heap's slack, 64), not one for every live TIME-WAIT record.
    v8.setFlagsFromString('--expose-gc');
    const gc = vm.runInNewContext('gc') as () => void;
    await new Promise((resolve) => setImmediate(resolve));
    gc();
    const reachable = refs.filter((r) => r.deref() !== undefined).length;
    expect(reachable).toBeLessThanOrEqual(65);
    expect(h.stack.timeWaitRecords).toBe(300);
  });

  it('RFC 6191: a SYN with a higher sequence number replaces a TIME-WAIT record at once', () => {
    const h = harness({ mslMs: 30_000 });
    const { conn, ourIss } = establish(h);
    conn.close(h.clock.now());
    h.stack.wake(conn);
    h.stack.flush();
    h.send(appPacket({ seq: seqAdd(APP_ISN, 1), ack: seqAdd(ourIss, 2), flags: TcpFlag.ACK | TcpFlag.FIN }));
    expect(h.stack.timeWaitRecords).toBe(1);
    h.link.take();
    h.send(appPacket({ seq: seqAdd(APP_ISN, 100_000), flags: TcpFlag.SYN }));
    expect(h.stack.timeWaitRecords).toBe(0);
    expect(h.syns).toHaveLength(1);
    const newConn = h.stack.acceptPending(h.syns[0]!, idleHandler())!;
    h.stack.flush();
    const synAck = h.link.take()[0]!;
    expect(synAck.seg.flags).toBe(TcpFlag.SYN | TcpFlag.ACK);
    // The new ISS lies beyond the old incarnation's sequence space.
    expect(((synAck.seg.seq - seqAdd(ourIss, 2)) | 0) > 0).toBe(true);
    expect(newConn.state).toBe(State.SYN_RECEIVED);
  });

  it('reuses an ended TIME-WAIT entry for a later record, which reports the later connection and its tuple', () => {
    const h = harness({ mslMs: 30_000 });
    const closed: Array<{ id: number; port: number; bytesIn: number }> = [];
    h.stack.events.subscribe({ closed: (c) => closed.push({ id: c.id, port: c.flow!.remotePort, bytesIn: c.bytesIn }) });
    const intoTimeWait = (port: number, payload: Buffer): { conn: TcpConn; entry: unknown } => {
      const { conn, ourIss } = establish(h, port);
      if (payload.length > 0) h.send(appPacket({ seq: seqAdd(APP_ISN, 1), ack: seqAdd(ourIss, 1), flags: TcpFlag.ACK, payload, srcPort: port }));
      conn.close(h.clock.now());
      h.stack.wake(conn);
      h.stack.flush();
      h.send(appPacket({ seq: seqAdd(APP_ISN, 1 + payload.length), ack: seqAdd(ourIss, 2), flags: TcpFlag.ACK | TcpFlag.FIN, srcPort: port }));
      h.link.take();
      const flow = [...h.stack.timeWaits()].find((t) => t.flow.remotePort === port)!.flow;
      return { conn, entry: h.stack.entryFor(flow) };
    };
    const first = intoTimeWait(40001, Buffer.alloc(0));
    expect(first.entry).toBeDefined();
    // Its 2×MSL ends: the record reports the first connection, and its entry waits for reuse.
    h.clock.advance(60_001);
    h.stack.runTimers();
    expect(closed).toEqual([{ id: first.conn.id, port: 40001, bytesIn: 0 }]);
    expect(h.stack.timeWaitRecords).toBe(0);
    const second = intoTimeWait(40002, Buffer.from('hello'));
    expect(second.entry).toBe(first.entry);
    expect(h.stack.timeWaitRecords).toBe(1);
    const tw = [...h.stack.timeWaits()];
    expect(tw.map((t) => [t.flow.remotePort, t.rec.id])).toEqual([[40002, second.conn.id]]);
    // The first tuple is in no entry any more; the reused one is found by the second's.
    h.clock.advance(60_001);
    h.stack.runTimers();
    expect(closed.at(-1)).toEqual({ id: second.conn.id, port: 40002, bytesIn: 5 });
    expect(h.stack.timeWaitRecords).toBe(0);
  });

  it('replaces a connection that entered TIME-WAIT earlier in the same batch with a new SYN, after ACKing its FIN (RFC 6191)', () => {
    const h = harness({ mslMs: 30_000 });
    const { conn, ourIss } = establish(h);
    conn.close(h.clock.now());
    h.stack.wake(conn);
    h.stack.flush();
    h.link.take();
    // One batch: the app's FIN (we enter TIME-WAIT) and, before the flush, a new incarnation's SYN.
    const fin = appPacket({ seq: seqAdd(APP_ISN, 1), ack: seqAdd(ourIss, 2), flags: TcpFlag.ACK | TcpFlag.FIN });
    const syn = appPacket({ seq: seqAdd(APP_ISN, 100_000), flags: TcpFlag.SYN });
    h.stack.input(fin, 0, fin.length, false);
    h.stack.input(syn, 0, syn.length, false);
    h.stack.flush();
    // The FIN was acknowledged before the record was replaced.
    const sent = h.link.take();
    expect(sent.map((p) => [p.seg.flags, p.seg.ack])).toEqual([[TcpFlag.ACK, seqAdd(APP_ISN, 2)]]);
    expect(h.transitions.slice(-2)).toEqual(['FIN_WAIT_1>TIME_WAIT', 'TIME_WAIT>CLOSED']);
    expect(h.stack.timeWaitRecords).toBe(0);
    expect(h.stack.connectionCount).toBe(0);
    // The SYN is offered at once, with the ISS past the old incarnation.
    expect(h.syns).toHaveLength(1);
    expect(h.syns[0]!.issOverride).toBe(seqAdd(ourIss, 2 + 65537));
  });

  it('still replaces a same-batch TIME-WAIT connection with a new SYN when the transmit ring is full', () => {
    const h = harness({ mslMs: 30_000 });
    const { conn, ourIss } = establish(h);
    conn.close(h.clock.now());
    h.stack.wake(conn);
    h.stack.flush();
    h.link.take();
    let drain: (() => void) | null = null;
    const link = h.link as unknown as { txReserve(): number; onTxDrain(cb: () => void): void };
    link.txReserve = () => -1;
    link.onTxDrain = (cb) => (drain = cb);
    const fin = appPacket({ seq: seqAdd(APP_ISN, 1), ack: seqAdd(ourIss, 2), flags: TcpFlag.ACK | TcpFlag.FIN });
    const syn = appPacket({ seq: seqAdd(APP_ISN, 100_000), flags: TcpFlag.SYN });
    h.stack.input(fin, 0, fin.length, false);
    h.stack.input(syn, 0, syn.length, false);
    h.stack.flush();
    expect(h.syns).toHaveLength(1);
    expect(h.stack.timeWaitRecords).toBe(0);
    expect(h.stack.connectionCount).toBe(0);
    // The ring drains: the old connection left the table and sends nothing more.
    link.txReserve = () => 0;
    expect(drain).not.toBeNull();
    drain!();
    expect(h.link.take()).toEqual([]);
  });

  it('RFC 1337: an RST does not end TIME-WAIT', () => {
    const h = harness({ mslMs: 30_000 });
    const { conn, ourIss } = establish(h);
    conn.close(h.clock.now());
    h.stack.wake(conn);
    h.stack.flush();
    h.send(appPacket({ seq: seqAdd(APP_ISN, 1), ack: seqAdd(ourIss, 2), flags: TcpFlag.ACK | TcpFlag.FIN }));
    h.send(appPacket({ seq: seqAdd(APP_ISN, 2), flags: TcpFlag.RST }));
    expect(h.stack.timeWaitRecords).toBe(1);
  });

  it('an app RST while the upstream is being dialled cancels the attempt', () => {
    const h = harness();
    let aborted = 0;
    const stack = h.stack;
    (stack as unknown as { forwarder: Forwarder }).forwarder.onSynAborted = () => aborted++;
    h.send(appPacket({ seq: APP_ISN, flags: TcpFlag.SYN }));
    h.send(appPacket({ seq: seqAdd(APP_ISN, 1), flags: TcpFlag.RST }));
    expect(aborted).toBe(1);
    expect(h.stack.halfOpenCount).toBe(0);
    expect(h.stack.acceptPending(h.syns[0]!, idleHandler())).toBeNull();
  });

  it('malformed and bad-checksum packets are dropped with a reason and never throw', () => {
    const h = harness();
    const pkt = Buffer.from(appPacket({ seq: 1, flags: TcpFlag.SYN }));
    pkt[pkt.length - 1]! ^= 0xff; // corrupt the TCP checksum region
    h.send(pkt);
    h.send(Buffer.from([0x45, 0, 0, 10]));
    expect(h.drops).toEqual(['checksum', 'malformed']);
    expect(h.syns).toHaveLength(0);
  });
});

describe('Stack.linkHoldsNoViews', () => {
  function stackOver(link: LinkTx): Stack {
    return new Stack({
      link,
      clock: new ManualClock(0),
      tcp: defaultTcpConfig({}),
      forwarder: { onSyn() {}, onSynAborted() {} },
      events: new EventHub(),
      setTimer: () => null,
      clearTimer: () => {},
    });
  }

  it('is true for a link that copies payloads into its slots', () => {
    expect(stackOver(new MemoryLink()).linkHoldsNoViews).toBe(true);
  });

  it('for a link that writes payloads from where they are, only while it has nothing queued', () => {
    const link = Object.assign(new MemoryLink(), { txQueued: 2, txAttach: () => true, txMaxViews: 4 });
    const stack = stackOver(link);
    expect(stack.linkHoldsNoViews).toBe(false);
    link.txQueued = 0;
    expect(stack.linkHoldsNoViews).toBe(true);
  });
});
