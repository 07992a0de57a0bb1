import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { newReno } from '../../src/tcp/cc/newreno.js';
import { Segment } from '../../src/wire/segment.js';
import { SendBuffer, SendBufferError, freeSendRings } from '../../src/tcp/send-buffer.js';
import { seqAdd } from '../../src/tcp/seq.js';
import { AckFlag, Recovery, SendKind, SendPlan, Sender } from '../../src/tcp/snd.js';
import { ACK, seg, testConfig } from './helpers.js';

/** Send-buffer operations shared by the model checks below. */
const pushOp = fc.record({ op: fc.constant('push' as const), len: fc.integer({ min: 0, max: 50 }) });
const consumeOp = fc.record({ op: fc.constant('consume' as const), frac: fc.double({ min: 0, max: 1, noNaN: true }) });

describe('SendBuffer', () => {
  it('an empty buffer holds no ring; emptied it gives its ring back and takes one again on the next write', () => {
    const b = new SendBuffer();
    expect(b.holdsRing).toBe(false);
    b.push(Buffer.from('abc'));
    expect(b.holdsRing).toBe(true);
    const pooled = freeSendRings();
    b.consume(2);
    expect(b.holdsRing).toBe(true);
    b.consume(1);
    expect(b.holdsRing).toBe(false);
    expect(freeSendRings()).toBe(pooled + 1);
    b.push(Buffer.from('defg'));
    expect(b.holdsRing).toBe(true);
    expect(freeSendRings()).toBe(pooled);
    const dst = Buffer.alloc(4);
    b.copy(dst, 0, 0, 4);
    expect(dst.toString()).toBe('defg');
    b.clear();
    expect(b.holdsRing).toBe(false);
    expect(b.length).toBe(0);
  });

  it('a ring grown past its first size is dropped when emptied, and the buffer still works after', () => {
    const b = new SendBuffer();
    for (let i = 0; i < 20; i++) b.push(Buffer.from([65 + i]));
    const pooled = freeSendRings();
    b.consume(20);
    expect(b.holdsRing).toBe(false);
    expect(freeSendRings()).toBe(pooled);
    for (let i = 0; i < 12; i++) b.push(Buffer.from([97 + i]));
    const dst = Buffer.alloc(12);
    b.copy(dst, 0, 0, 12);
    expect(dst.toString()).toBe('abcdefghijkl');
  });

  it('copy reads across chunk boundaries', () => {
    const b = new SendBuffer();
    b.push(Buffer.from('abc'));
    b.push(Buffer.from('defg'));
    b.push(Buffer.from('h'));
    const dst = Buffer.alloc(10, '.');
    b.copy(dst, 1, 2, 5);
    expect(dst.toString()).toBe('.cdefg....');
    expect(b.length).toBe(8);
  });

  it('consume releases whole and partial chunks from the front', () => {
    const b = new SendBuffer();
    b.push(Buffer.from('abc'));
    b.push(Buffer.from('defg'));
    b.consume(4);
    expect(b.length).toBe(3);
    expect(b.chunks).toBe(1);
    const dst = Buffer.alloc(3);
    b.copy(dst, 0, 0, 3);
    expect(dst.toString()).toBe('efg');
  });

  it('keeps references to the chunks it was given (no copy on write)', () => {
    const b = new SendBuffer();
    const chunk = Buffer.from('xyz');
    b.push(chunk);
    chunk[0] = 0x41;
    const dst = Buffer.alloc(3);
    b.copy(dst, 0, 0, 3);
    expect(dst.toString()).toBe('Ayz');
  });

  it('ignores empty chunks and grows past its initial ring size', () => {
    const b = new SendBuffer();
    for (let i = 0; i < 100; i++) {
      b.push(Buffer.alloc(0));
      b.push(Buffer.from([i]));
    }
    expect(b.chunks).toBe(100);
    const dst = Buffer.alloc(100);
    b.copy(dst, 0, 0, 100);
    expect(Array.from(dst)).toEqual(Array.from({ length: 100 }, (_, i) => i));
  });

  it('copy outside the buffered range throws ERR_TCP_SEND_BUFFER_RANGE', () => {
    const b = new SendBuffer();
    b.push(Buffer.from('abc'));
    expect(() => b.copy(Buffer.alloc(5), 0, 1, 3)).toThrow(SendBufferError);
    expect(() => b.consume(4)).toThrow(expect.objectContaining({ code: 'ERR_TCP_SEND_BUFFER_RANGE' }));
  });

  it('attach hands over views of the held chunks, not copies, across boundaries; too many chunks: nothing', () => {
    const b = new SendBuffer();
    const c1 = Buffer.from('abc');
    const c2 = Buffer.from('defg');
    const c3 = Buffer.from('hi');
    b.push(c1);
    b.push(c2);
    b.push(c3);
    b.consume(1);
    const got: Array<[Buffer, number, number]> = [];
    const sink = { txAttach: (_slot: number, buf: Buffer, off: number, len: number) => got.push([buf, off, len]) > 0 };
    expect(b.attach(sink, 0, 1, 5, 4)).toBe(true);
    expect(got).toEqual([
      [c1, 2, 1],
      [c2, 0, 4],
    ]);
    got.length = 0;
    expect(b.attach(sink, 0, 0, 8, 2)).toBe(false); // 'bc' 'defg' 'hi': three chunks
    expect(got).toEqual([]);
    expect(b.attach(sink, 0, 0, 8, 0)).toBe(false);
    expect(() => b.attach(sink, 0, 5, 4, 4)).toThrow(SendBufferError);
  });

  it('any interleaving of push, consume, copy and attach reads the right bytes (model check)', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.oneof(
            pushOp,
            consumeOp,
            fc.record({
              op: fc.constant('copy' as const),
              a: fc.double({ min: 0, max: 1, noNaN: true }),
              b: fc.double({ min: 0, max: 1, noNaN: true }),
            }),
            fc.record({
              op: fc.constant('attach' as const),
              a: fc.double({ min: 0, max: 1, noNaN: true }),
              b: fc.double({ min: 0, max: 1, noNaN: true }),
              max: fc.integer({ min: 1, max: 4 }),
            }),
          ),
          { maxLength: 80, size: 'max' },
        ),
        (ops) => {
          const b = new SendBuffer();
          let model = Buffer.alloc(0);
          let counter = 0;
          for (const o of ops) {
            if (o.op === 'push') {
              const c = Buffer.alloc(o.len);
              for (let i = 0; i < o.len; i++) c[i] = counter++ & 0xff;
              b.push(c);
              model = Buffer.concat([model, c]);
            } else if (o.op === 'consume') {
              const k = Math.floor(o.frac * model.length);
              b.consume(k);
              model = model.subarray(k);
            } else if (o.op === 'copy') {
              const start = Math.floor(o.a * model.length);
              const len = Math.floor(o.b * (model.length - start));
              const dst = Buffer.alloc(len);
              b.copy(dst, 0, start, len);
              expect(dst.equals(model.subarray(start, start + len))).toBe(true);
            } else {
              const start = Math.floor(o.a * model.length);
              const len = Math.floor(o.b * (model.length - start));
              const views: Buffer[] = [];
              const ok = b.attach({ txAttach: (_slot, buf, off, n) => views.push(buf.subarray(off, off + n)) > 0 }, 0, start, len, o.max);
              // All of the range, or nothing when it spans more chunks than allowed.
              if (ok) expect(Buffer.concat(views).equals(model.subarray(start, start + len))).toBe(true);
              else expect(views).toEqual([]);
              expect(views.length).toBeLessThanOrEqual(o.max);
              expect(views.every((v) => v.length > 0)).toBe(true);
            }
            expect(b.length).toBe(model.length);
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  it('tells its release sink of every chunk once, in order, when consume() passes its end or clear() drops it', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.oneof(
            pushOp,
            consumeOp,
            fc.record({ op: fc.constant('clear' as const) }),
          ),
          { maxLength: 60, size: 'max' },
        ),
        (ops) => {
          const b = new SendBuffer();
          const released: Buffer[] = [];
          b.releaseSink = { onChunkReleased: (c) => released.push(c) };
          // The model: chunks held (identity), bytes of the first already consumed.
          let held: Buffer[] = [];
          let headUsed = 0;
          const expected: Buffer[] = [];
          for (const o of ops) {
            if (o.op === 'push') {
              const c = Buffer.alloc(o.len);
              b.push(c);
              if (o.len > 0) held.push(c);
            } else if (o.op === 'consume') {
              const total = held.reduce((n, c) => n + c.length, 0) - headUsed;
              let k = Math.floor(o.frac * total);
              b.consume(k);
              while (k > 0) {
                const left = held[0]!.length - headUsed;
                if (k < left) {
                  headUsed += k;
                  break;
                }
                k -= left;
                expected.push(held.shift()!);
                headUsed = 0;
              }
            } else {
              b.clear();
              expected.push(...held);
              held = [];
              headUsed = 0;
            }
            expect(released.length).toBe(expected.length);
            for (let i = 0; i < expected.length; i++) expect(released[i]).toBe(expected[i]);
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});

const ISS = 0xffffff00;
const MSS = 1000;

function sender(opts: { sack?: boolean; wnd?: number } = {}): Sender {
  const cfg = testConfig({ congestionControl: newReno, mss: MSS });
  const s = new Sender(cfg, 0);
  s.init(ISS);
  s.synQueued();
  s.negotiate(MSS, 0, opts.sack ?? false, 0, 0);
  s.wnd = opts.wnd ?? 65535;
  s.maxWnd = s.wnd;
  s.wl1 = 0;
  s.wl2 = ISS;
  // The peer acknowledged our SYN.
  s.ack(ackSeg(seqAdd(ISS, 1), s.wnd), 0, false, 0, 0);
  return s;
}

function ackSeg(ack: number, window = 65535, seq = 1): Segment {
  return seg({ seq, ack, flags: ACK, window });
}

/** Send everything the sender allows now; returns the plans. */
function drain(s: Sender, now = 0): { seq: number; len: number; fin: boolean; kind: number }[] {
  const plan = new SendPlan();
  const sent: { seq: number; len: number; fin: boolean; kind: number }[] = [];
  while (s.next(plan)) {
    sent.push({ seq: plan.seq, len: plan.len, fin: plan.fin, kind: plan.kind });
    s.sent(plan, now);
  }
  return sent;
}

const d = (k: number): number => seqAdd(ISS, 1 + k);

describe('Sender: ACK processing', () => {
  it('RFC 5961 §5.2: acceptable ACKs lie in [SND.UNA − MAX.SND.WND, SND.MAX]', () => {
    const s = sender();
    s.write(Buffer.alloc(3000));
    drain(s);
    expect(s.ackAcceptable(d(3000))).toBe(true);
    expect(s.ackAcceptable(d(3001))).toBe(false);
    expect(s.ackAcceptable(d(-65535))).toBe(true);
    expect(s.ackAcceptable(d(-65536))).toBe(false);
  });

  it('RFC 9293 §3.10.7.4: an older segment (SND.WL1/WL2) does not update the window', () => {
    const s = sender();
    s.ack(ackSeg(d(0), 1000, 10), 0, false, 0, 0);
    expect(s.wnd).toBe(1000);
    s.ack(ackSeg(d(0), 5000, 9), 0, false, 0, 0);
    expect(s.wnd).toBe(1000);
    s.ack(ackSeg(d(0), 5000, 10), 0, false, 0, 0);
    expect(s.wnd).toBe(5000);
  });

  it('acknowledged payload leaves the buffer; FIN acknowledgment is reported once', () => {
    const s = sender();
    s.write(Buffer.alloc(100));
    s.queueFin();
    expect(drain(s)).toEqual([{ seq: d(0), len: 100, fin: true, kind: SendKind.NEW }]);
    const f = s.ack(ackSeg(d(101)), 5, false, 0, 0);
    expect(f & AckFlag.FIN_ACKED).toBeTruthy();
    expect(s.buf.length).toBe(0);
    expect(s.finAcked).toBe(true);
    expect(s.lastDataAcked).toBe(100);
  });

  it('RFC 5681 §3.2: three duplicate ACKs enter NewReno recovery with ssthresh = FlightSize/2', () => {
    const s = sender();
    s.write(Buffer.alloc(8000));
    drain(s);
    for (let i = 0; i < 2; i++) expect(s.ack(ackSeg(d(0)), 1, false, 0, 0) & AckFlag.RECOVERY).toBe(0);
    expect(s.ack(ackSeg(d(0)), 1, false, 0, 0) & AckFlag.RECOVERY).toBeTruthy();
    expect(s.recovery).toBe(Recovery.NEWRENO);
    expect(s.cc.ssthresh).toBe(4000);
    expect(s.cwnd).toBe(4000 + 3 * MSS);
    expect(drain(s)[0]).toEqual({ seq: d(0), len: MSS, fin: false, kind: SendKind.FAST });
  });

  it('RFC 6675 §5: with SACK, IsLost(SND.UNA) enters recovery on the first ACK', () => {
    const s = sender({ sack: true });
    s.write(Buffer.alloc(8000));
    drain(s);
    const a = seg({ seq: 1, ack: d(0), flags: ACK, sack: [[d(1000), d(4000)]] });
    expect(s.ack(a, 1, false, 0, 0) & AckFlag.RECOVERY).toBeTruthy();
    expect(s.recovery).toBe(Recovery.SACK);
    expect(drain(s)[0]).toEqual({ seq: d(0), len: MSS, fin: false, kind: SendKind.FAST });
  });
});

describe('Sender: SND.UNA back at ISS after 2^32 − 1 bytes', () => {
  /** Acknowledges 2^32 − 1 payload bytes (64 MiB at a time, written by reference, never sent). */
  function wrapToIss(s: Sender): void {
    const big = Buffer.allocUnsafe(64 * 1024 * 1024);
    for (let i = 0; i < 64; i++) {
      s.write(i < 63 ? big : big.subarray(0, big.length - 1));
      s.ack(ackSeg(seqAdd(s.una, s.buf.length)), 0, false, 0, 0);
    }
  }

  it('our SYN stays acknowledged and the send buffer starts at SND.UNA (not ISS + 1) when SND.UNA comes back to ISS', () => {
    const s = sender();
    wrapToIss(s);
    expect(s.una).toBe(ISS);
    expect(s.buf.length).toBe(0);
    expect(s.synAcked).toBe(true);
    expect(s.dataStart).toBe(ISS);
    s.write(Buffer.alloc(100));
    const f = s.ack(ackSeg(seqAdd(ISS, 60)), 1, false, 0, 0);
    expect(f & AckFlag.SYN_ACKED).toBe(0);
    expect(s.lastDataAcked).toBe(60);
    expect(s.buf.length).toBe(40);
  });
});

describe('Sender: choosing segments', () => {
  it('RFC 9293 §3.8.6.2.1: a sub-MSS segment that is not the last data waits (sender SWS avoidance)', () => {
    const s = sender({ wnd: 1500 });
    s.write(Buffer.alloc(5000));
    expect(drain(s).map((p) => p.len)).toEqual([1000]);
  });

  it('RFC 9293 §3.8.6.2.1: a sub-MSS segment goes if it is at least half the largest window offered', () => {
    const s = sender({ wnd: 1500 });
    s.maxWnd = 1000;
    s.write(Buffer.alloc(5000));
    expect(drain(s).map((p) => p.len)).toEqual([1000, 500]);
  });

  it('a FIN alone takes one unit of the peer window', () => {
    const s = sender({ wnd: 0 });
    s.queueFin();
    expect(drain(s)).toEqual([]);
    s.wnd = 1;
    expect(drain(s)).toEqual([{ seq: d(0), len: 0, fin: true, kind: SendKind.NEW }]);
  });

  it('RFC 9293 §3.8.6.1: a probe sends one octet into a zero window without advancing SND.NXT', () => {
    const s = sender({ wnd: 0 });
    s.write(Buffer.from('abc'));
    const plan = new SendPlan();
    expect(s.probe(plan)).toBe(true);
    expect([plan.seq, plan.len, plan.kind]).toEqual([d(0), 1, SendKind.PROBE]);
    s.sent(plan, 0);
    expect(s.nxt).toBe(d(0));
    expect(s.max).toBe(d(1));
    expect(s.ackAcceptable(d(1))).toBe(true);
  });

  it('RFC 6298 §5.4 / go-back-N: after an RTO the resent segments are of kind RTO until SND.MAX', () => {
    const s = sender();
    s.write(Buffer.alloc(3000));
    drain(s);
    s.onRto(1000);
    expect(s.nxt).toBe(d(0));
    expect(s.cc.cwnd).toBe(MSS);
    expect(drain(s, 1000)).toEqual([{ seq: d(0), len: MSS, fin: false, kind: SendKind.RTO }]);
    s.ack(ackSeg(d(1000)), 1100, false, 0, 0);
    expect(drain(s, 1100).map((p) => p.kind)).toEqual([SendKind.RTO, SendKind.RTO]);
  });

  it('new data stays of kind NEW past 2^31 bytes from the last RTO bound (modular comparison)', () => {
    // Big segments so that 2^31 bytes take a few thousand round trips.
    const mss = 65000;
    const s = new Sender(testConfig({ congestionControl: newReno, mss }), 0);
    s.init(ISS);
    s.synQueued();
    s.negotiate(mss, 4, false, 0, 0);
    s.wnd = 16 * mss;
    s.maxWnd = s.wnd;
    s.wl1 = 0;
    s.wl2 = ISS;
    s.ack(ackSeg(seqAdd(ISS, 1), 65535), 0, false, 0, 0);
    const chunk = Buffer.alloc(16 * mss);
    const kinds = new Set<number>();
    let sent = 0;
    for (let t = 1; sent < 2 ** 31 + 32 * mss; t++) {
      s.write(chunk);
      for (const p of drain(s, t)) {
        kinds.add(p.kind);
        sent += p.len;
      }
      s.ack(ackSeg(s.max, 65535), t, false, 0, 0);
    }
    expect([...kinds]).toEqual([SendKind.NEW]);
  });

  it('RFC 6298 §3 (Karn): only the first transmission is timed; a retransmission cancels the timing', () => {
    const s = sender();
    s.write(Buffer.alloc(500));
    drain(s, 10);
    expect([s.rttTiming, s.rttSeq, s.rttSentAt]).toEqual([true, d(0), 10]);
    s.onRto(300);
    expect(s.rttTiming).toBe(false);
    drain(s, 300);
    expect(s.rttTiming).toBe(false);
    expect(s.ack(ackSeg(d(500)), 320, false, 0, 0) & AckFlag.RTT).toBe(0);
  });

  it('retransmitting a range that ends at the FIN carries the FIN again', () => {
    const s = sender();
    s.write(Buffer.alloc(500));
    s.queueFin();
    drain(s);
    s.onRto(1000);
    expect(drain(s, 1000)).toEqual([{ seq: d(0), len: 500, fin: true, kind: SendKind.RTO }]);
  });
});
