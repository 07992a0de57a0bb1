/**
 * HyStart++ (RFC 9406) in the initial slow start of CUBIC and NewReno: the rules of
 * src/tcp/cc/hystart.ts driven through the controllers (and, at the end, through a Sender with
 * timestamps), with ACKs, RTT samples and sequence numbers as a cwnd-limited sender produces them.
 */
import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { cubic, type Cubic } from '../../src/tcp/cc/cubic.js';
import { newReno, INITIAL_SSTHRESH, type NewReno } from '../../src/tcp/cc/newreno.js';
import { SlowStartEnd } from '../../src/tcp/cc/controller.js';
import {
  CSS_GROWTH_DIVISOR,
  CSS_ROUNDS,
  HyStart,
  HyStartPhase,
  HYSTART_LOW_WINDOW,
  N_RTT_SAMPLE,
  rttThresh,
} from '../../src/tcp/cc/hystart.js';
import { seqAdd, seqDiff, seqLt } from '../../src/tcp/seq.js';
import { Sender, SendPlan } from '../../src/tcp/snd.js';
import { ACK, seg, testConfig } from './helpers.js';

const SMSS = 1000;
/** Slow start's doubling and HyStart++'s rounds, with the 100 ms path of these tests. */
const BASE_RTT = 100;

type Controller = Cubic | NewReno;

/**
 * A sender that keeps cwnd full: every ACK is followed by as much new data as cwnd allows
 * (SND.NXT moves after the controller has seen the ACK, as in snd.ts). Sequence numbers start at
 * `start`, so a start near 2^32 wraps during the test.
 */
class Flow {
  una: number;
  nxt: number;
  now = 0;

  constructor(
    readonly c: Controller,
    start = 0,
    /** Leave cwnd at the initial window (else ACKs without samples grow it to HYSTART_LOW_WINDOW first). */
    cold = false,
  ) {
    this.una = start;
    this.nxt = seqAdd(start, c.cwnd);
    // HyStart++ watches from HYSTART_LOW_WINDOW segments on (hystart.ts): slow start gets there
    // first, on ACKs that give no RTT sample.
    if (!cold) while (c.cwnd < HYSTART_LOW_WINDOW * SMSS) this.ack(-1);
  }

  /** One ACK of `bytes` with RTT sample `rtt` (−1: the ACK gave none). */
  ack(rtt: number, bytes = SMSS): void {
    const flight = seqDiff(this.nxt, this.una);
    this.una = seqAdd(this.una, bytes);
    this.now += 1;
    this.c.onAck(bytes, flight, this.now, BASE_RTT, rtt, this.una, this.nxt);
    const room = this.c.cwnd - seqDiff(this.nxt, this.una);
    if (room > 0) this.nxt = seqAdd(this.nxt, room);
  }

  acks(n: number, rtt: number): void {
    for (let i = 0; i < n; i++) this.ack(rtt);
  }

  /**
   * One HyStart++ round, every ACK with sample `rtt`: the first ACK starts it (it passes the last
   * round's windowEnd, or arms the first one), the rest acknowledge up to the new windowEnd exactly.
   */
  round(rtt: number): void {
    this.ack(rtt);
    this.finishRound(rtt);
  }

  /** The rest of the current round (up to windowEnd), every ACK with sample `rtt`. */
  finishRound(rtt: number): void {
    for (let hs = this.c.hystart; hs !== null && seqLt(this.una, hs.windowEnd); hs = this.c.hystart) {
      this.ack(rtt, Math.min(SMSS, seqDiff(hs.windowEnd, this.una)));
    }
  }
}

const ALGORITHMS: { name: string; make: (hystart?: boolean) => Controller }[] = [
  { name: 'CUBIC', make: (hystart) => cubic(SMSS, 0, hystart === undefined ? undefined : { hystart }) },
  { name: 'NewReno', make: (hystart) => newReno(SMSS, 0, hystart === undefined ? undefined : { hystart }) },
];

/**
 * Two rounds at 100 ms, one at 112 ms (below 100 + RttThresh 12.5: still slow start), then
 * N_RTT_SAMPLE ACKs at 126 ms = 112 + 112/8: the round's minimum reaches lastRoundMinRTT +
 * RttThresh, which enters CSS (RFC 9406 §4.2, ≥).
 */
function intoCss(f: Flow): void {
  f.round(100);
  f.round(100);
  f.round(112);
  f.ack(126);
  f.acks(N_RTT_SAMPLE - 1, 126);
}

describe('HyStart++ (RFC 9406) constants and thresholds', () => {
  it('RttThresh is an eighth of the last round minimum, clamped to 4..16 ms (§4.2)', () => {
    expect(rttThresh(10)).toBe(4);
    expect(rttThresh(32)).toBe(4);
    expect(rttThresh(80)).toBe(10);
    expect(rttThresh(128)).toBe(16);
    expect(rttThresh(1_000)).toBe(16);
  });

  it('CSS keeps a remainder so that four one-byte increases make one byte (§4.2, whole-byte windows)', () => {
    const h = new HyStart();
    // Round 1 (armed at SND.NXT 100) at 20 ms, round 2 at 24 ms = 20 + 4: CSS.
    for (let i = 1; i <= N_RTT_SAMPLE; i++) h.onAck(20, i, 100);
    for (let i = 1; i <= N_RTT_SAMPLE; i++) h.onAck(24, 100 + i, 200);
    expect(h.phase).toBe(HyStartPhase.CSS);
    expect(h.cssBaselineMinRtt).toBe(24);
    // The ACK that entered CSS grows as slow start did when it arrived (§4.2: cwnd first, then the test).
    expect(h.growth(1)).toBe(1);
    h.onAck(24, 100 + N_RTT_SAMPLE + 1, 200);
    const grown = [1, 1, 1, 1, 1, 1, 1, 1].map(() => h.growth(1));
    expect(grown).toEqual([0, 0, 0, 1, 0, 0, 0, 1]);
    expect(h.growth(1000)).toBe(1000 / CSS_GROWTH_DIVISOR);
    expect(h.growth(2)).toBe(0);
    expect(h.growth(2)).toBe(1);
  });
});

for (const alg of ALGORITHMS) {
  describe(`HyStart++ in ${alg.name}'s initial slow start`, () => {
    it('is on by default and off with { hystart: false }', () => {
      expect(alg.make().hystartPhase).toBe(HyStartPhase.SLOW_START);
      expect(alg.make(true).hystartPhase).toBe(HyStartPhase.SLOW_START);
      expect(alg.make(false).hystartPhase).toBe(HyStartPhase.DONE);
    });

    it('holds no HyStart++ state before its first RTT sample nor after it has ended', () => {
      const f = new Flow(alg.make());
      f.acks(5, -1);
      expect(f.c.hystart).toBeNull();
      f.ack(BASE_RTT);
      expect(f.c.hystart).not.toBeNull();
      f.c.onLoss(seqDiff(f.nxt, f.una), f.now);
      expect(f.c.hystart).toBeNull();
      expect(f.c.hystartPhase).toBe(HyStartPhase.DONE);
      f.acks(20, BASE_RTT);
      expect(f.c.hystart).toBeNull();
      const off = new Flow(alg.make(false));
      off.acks(20, BASE_RTT);
      expect(off.c.hystart).toBeNull();
    });

    it('starts no HyStart++ below HYSTART_LOW_WINDOW segments: a connection at its initial window holds none', () => {
      const f = new Flow(alg.make(), 0, true);
      expect(f.c.cwnd).toBeLessThan(HYSTART_LOW_WINDOW * SMSS);
      f.ack(BASE_RTT);
      expect(f.c.hystart).toBeNull();
      expect(f.c.hystartPhase).toBe(HyStartPhase.SLOW_START);
      while (f.c.cwnd < HYSTART_LOW_WINDOW * SMSS) f.ack(BASE_RTT);
      expect(f.c.hystart).toBeNull();
      f.ack(BASE_RTT);
      expect(f.c.hystart).not.toBeNull();
    });

    it('a steady RTT keeps slow start doubling cwnd each round', () => {
      const f = new Flow(alg.make());
      const before = f.c.cwnd;
      f.round(BASE_RTT);
      expect(f.c.cwnd).toBe(2 * before);
      for (let i = 0; i < 4; i++) f.round(BASE_RTT + (i % 2) * 3); // jitter below RttThresh
      expect(f.c.hystartPhase).toBe(HyStartPhase.SLOW_START);
      expect(f.c.ssthresh).toBe(INITIAL_SSTHRESH);
    });

    it('a delay increase of RttThresh ends slow start into Conservative Slow Start at the round\'s N_RTT_SAMPLE-th sample', () => {
      const f = new Flow(alg.make());
      f.round(100);
      f.round(100);
      f.round(112); // 112 < 100 + 12.5
      expect(f.c.hystartPhase).toBe(HyStartPhase.SLOW_START);
      f.acks(N_RTT_SAMPLE - 1, 126);
      f.ack(-1); // an ACK without an RTT sample counts for nothing
      expect(f.c.hystartPhase).toBe(HyStartPhase.SLOW_START);
      f.ack(126);
      expect(f.c.hystartPhase).toBe(HyStartPhase.CSS);
      expect(f.c.hystart!.cssBaselineMinRtt).toBe(126);
      expect(f.c.ssthresh).toBe(INITIAL_SSTHRESH);
    });

    it('the per-round minimum decides: one low sample among high ones keeps slow start', () => {
      const f = new Flow(alg.make());
      f.round(100);
      f.round(100);
      f.ack(100); // the first ACK of round 3 carries a sample at the old delay
      f.acks(20, 150);
      expect(f.c.hystartPhase).toBe(HyStartPhase.SLOW_START);
    });

    it('in CSS cwnd grows by a quarter of what slow start would add', () => {
      const f = new Flow(alg.make());
      intoCss(f);
      const w = f.c.cwnd;
      f.ack(130);
      expect(f.c.cwnd).toBe(w + SMSS / CSS_GROWTH_DIVISOR);
      f.ack(130, 700);
      expect(f.c.cwnd).toBe(w + SMSS / CSS_GROWTH_DIVISOR + 175);
      // RFC 3465 L = 2 SMSS still bounds the increase before the division.
      f.ack(130, 8 * SMSS);
      expect(f.c.cwnd).toBe(w + SMSS / CSS_GROWTH_DIVISOR + 175 + (2 * SMSS) / CSS_GROWTH_DIVISOR);
    });

    it('a CSS round whose minimum falls below the baseline was a spurious exit: slow start resumes', () => {
      const f = new Flow(alg.make());
      intoCss(f);
      f.finishRound(126);
      f.round(120); // below the baseline of 126, with N_RTT_SAMPLE samples
      expect(f.c.hystartPhase).toBe(HyStartPhase.SLOW_START);
      expect(f.c.hystart!.cssBaselineMinRtt).toBe(Infinity);
      const w = f.c.cwnd;
      f.ack(120);
      expect(f.c.cwnd).toBe(w + SMSS);
      // HyStart++ is back in full: the next rise enters CSS again.
      f.finishRound(120);
      f.round(136);
      expect(f.c.hystartPhase).toBe(HyStartPhase.CSS);
    });

    it('fewer than N_RTT_SAMPLE low samples in a CSS round do not end CSS', () => {
      const f = new Flow(alg.make());
      intoCss(f);
      f.finishRound(126);
      f.ack(110);
      f.acks(N_RTT_SAMPLE - 2, -1);
      f.ack(110);
      expect(f.c.hystart!.rttSampleCount).toBe(2);
      expect(f.c.hystartPhase).toBe(HyStartPhase.CSS);
    });

    it('CSS_ROUNDS rounds in CSS (the partial round of entry counting) end slow start with ssthresh = cwnd', () => {
      const f = new Flow(alg.make());
      intoCss(f);
      f.finishRound(126); // round 1 of CSS: the partial one
      for (let r = 2; r <= CSS_ROUNDS; r++) {
        f.round(128);
        expect(f.c.hystartPhase, `CSS round ${r}`).toBe(HyStartPhase.CSS);
      }
      expect(f.c.hystart!.cssRounds).toBe(CSS_ROUNDS - 1);
      const w = f.c.cwnd;
      f.ack(128); // passes windowEnd: the fifth round is complete
      expect(f.c.hystartPhase).toBe(HyStartPhase.DONE);
      expect(f.c.ssthresh).toBe(w);
      // This ACK was already congestion avoidance: far less than slow start's or CSS's SMSS/4.
      expect(f.c.cwnd - w).toBeLessThan(SMSS / CSS_GROWTH_DIVISOR);
      expect(f.c.cwnd).toBeGreaterThanOrEqual(w);
      // And HyStart++ is over: a falling delay does not bring slow start back.
      f.acks(3 * N_RTT_SAMPLE, 90);
      expect(f.c.ssthresh).toBe(w);
      expect(f.c.hystartPhase).toBe(HyStartPhase.DONE);
    });

    it('slowStartEnd says how the initial slow start ended (the end of CSS: delay), once', () => {
      const f = new Flow(alg.make());
      expect(f.c.slowStartEnd).toBe(SlowStartEnd.NONE);
      intoCss(f);
      f.finishRound(126);
      for (let r = 2; r <= CSS_ROUNDS; r++) f.round(128);
      expect(f.c.slowStartEnd).toBe(SlowStartEnd.NONE);
      f.ack(128);
      expect(f.c.slowStartEnd).toBe(SlowStartEnd.DELAY);
      // Later losses and timeouts are not the initial slow start's end.
      f.c.onLoss(f.c.cwnd, f.now);
      f.c.onRto(f.c.cwnd, f.now);
      expect(f.c.slowStartEnd).toBe(SlowStartEnd.DELAY);
    });

    it('slowStartEnd: the first loss or timeout ends the initial slow start, HyStart++ on or off', () => {
      for (const hystart of [true, false]) {
        const lossFirst = new Flow(alg.make(hystart));
        lossFirst.acks(5, 100);
        expect(lossFirst.c.slowStartEnd).toBe(SlowStartEnd.NONE);
        lossFirst.c.onLoss(lossFirst.c.cwnd, lossFirst.now);
        lossFirst.c.onRto(lossFirst.c.cwnd, lossFirst.now);
        expect(lossFirst.c.slowStartEnd, `hystart ${hystart}`).toBe(SlowStartEnd.LOSS);
        const timeoutFirst = new Flow(alg.make(hystart));
        timeoutFirst.c.onRto(timeoutFirst.c.cwnd, timeoutFirst.now);
        timeoutFirst.c.onLoss(SMSS, timeoutFirst.now);
        expect(timeoutFirst.c.slowStartEnd, `hystart ${hystart}`).toBe(SlowStartEnd.TIMEOUT);
      }
    });

    it('a loss in CSS ends it: ssthresh as the algorithm sets it, congestion avoidance after', () => {
      const f = new Flow(alg.make());
      intoCss(f);
      const flight = seqDiff(f.nxt, f.una);
      const off = alg.make(false);
      off.onLoss(flight, f.now);
      f.c.onLoss(flight, f.now);
      expect(f.c.hystartPhase).toBe(HyStartPhase.DONE);
      expect(f.c.ssthresh).toBe(off.ssthresh);
      expect(f.c.cwnd).toBe(off.cwnd);
      f.c.onRecoveryEnd(f.now);
      const w = f.c.cwnd;
      f.acks(4, 126);
      expect(f.c.cwnd - w).toBeLessThan(SMSS); // congestion avoidance, neither slow start nor CSS
    });

    it('no HyStart++ after a retransmission timeout: the slow start that follows is the standard one (§4.4)', () => {
      const on = new Flow(alg.make());
      const off = new Flow(alg.make(false));
      for (const f of [on, off]) {
        f.acks(10, 100);
        f.c.onRto(seqDiff(f.nxt, f.una), f.now);
        f.nxt = seqAdd(f.una, f.c.cwnd); // go-back-N from SND.UNA with the loss window
      }
      expect(on.c.hystartPhase).toBe(HyStartPhase.DONE);
      // Rising delays that would end slow start in the initial one change nothing here.
      const rtts = [100, 100, 100, 100, 100, 100, 100, 100, 100, 100, 150, 150, 150, 150, 150, 150, 150, 150, 150, 150, 200, 200];
      for (const rtt of rtts) {
        on.ack(rtt);
        off.ack(rtt);
        expect(on.c.cwnd).toBe(off.c.cwnd);
        expect(on.c.ssthresh).toBe(off.c.ssthresh);
      }
      expect(on.c.cwnd).toBeGreaterThan(SMSS * 10);
    });

    it('an idle restart in the initial slow start starts HyStart++ over; once it has ended, it stays ended', () => {
      const f = new Flow(alg.make());
      intoCss(f);
      f.c.onIdleRestart(f.now + 10_000);
      expect(f.c.hystartPhase).toBe(HyStartPhase.SLOW_START);
      expect(f.c.hystart).toBeNull(); // fresh rounds from the next sample
      f.una = f.nxt; // everything was acknowledged before the idle period
      f.nxt = seqAdd(f.una, f.c.cwnd);
      const w = f.c.cwnd;
      f.ack(200);
      expect(f.c.cwnd).toBe(w + SMSS); // slow start, not CSS
      const g = new Flow(alg.make());
      intoCss(g);
      g.c.onLoss(seqDiff(g.nxt, g.una), g.now);
      g.c.onIdleRestart(g.now + 10_000);
      expect(g.c.hystartPhase).toBe(HyStartPhase.DONE);
    });

    it('sequence numbers crossing 2^32 during a round change nothing', () => {
      const script = (f: Flow): string[] => {
        const trace: string[] = [];
        const rtts = [100, 100, 100, 112, 126, 126, 126, 126, 128, 128, 128, 128, 128, 128];
        for (const rtt of rtts) {
          // a round's worth of ACKs without relying on windowEnd: the flight at the round's start
          const n = Math.floor(seqDiff(f.nxt, f.una) / SMSS);
          for (let i = 0; i < n; i++) {
            f.ack(rtt);
            trace.push(`${f.c.cwnd}/${f.c.ssthresh}/${f.c.hystartPhase}`);
          }
        }
        return trace;
      };
      const plain = script(new Flow(alg.make(), 0));
      // Start 20 KB below the wrap: rounds 2 and later straddle or follow it.
      const wrapped = script(new Flow(alg.make(), 0x100000000 - 20_500));
      expect(wrapped).toEqual(plain);
      // Not vacuous: the script goes through CSS and into congestion avoidance.
      expect(plain.some((s) => s.endsWith(`/${HyStartPhase.CSS}`))).toBe(true);
      expect(plain.at(-1)!.endsWith(`/${HyStartPhase.DONE}`)).toBe(true);
    });

    it('switched off, RTT samples and sequence numbers change nothing: the old slow start exactly (property)', () => {
      const event = fc.oneof(
        fc.record({
          k: fc.constant('ack' as const),
          n: fc.integer({ min: 0, max: 20_000 }),
          f: fc.integer({ min: 0, max: 400_000 }),
          dt: fc.integer({ min: 0, max: 500 }),
          rtt: fc.oneof(fc.constant(-1), fc.integer({ min: 0, max: 400 })),
        }),
        fc.record({ k: fc.constant('loss' as const), f: fc.integer({ min: 0, max: 400_000 }) }),
        fc.record({ k: fc.constant('rto' as const), f: fc.integer({ min: 0, max: 400_000 }) }),
        fc.record({ k: fc.constant('end' as const) }),
        fc.record({ k: fc.constant('idle' as const) }),
      );
      fc.assert(
        fc.property(fc.array(event, { maxLength: 200, size: 'max' }), fc.integer({ min: 0, max: 0xffffffff }), (events, start) => {
          // Off with every input, against on with no RTT samples at all (HyStart++ then never
          // leaves slow start, whose growth is the standard one: the tests in cc-newreno and
          // cc-cubic pin that down).
          const off = alg.make(false);
          const ref = alg.make(true);
          let now = 0;
          let una = start;
          for (const e of events) {
            if (e.k === 'ack') {
              now += e.dt;
              una = seqAdd(una, e.n);
              off.onAck(e.n, e.f, now, 50, e.rtt, una, seqAdd(una, e.f));
              ref.onAck(e.n, e.f, now, 50, -1, 0, 0);
            } else if (e.k === 'loss') {
              off.onLoss(e.f, now);
              ref.onLoss(e.f, now);
            } else if (e.k === 'rto') {
              off.onRto(e.f, now);
              ref.onRto(e.f, now);
            } else if (e.k === 'end') {
              off.onRecoveryEnd(now);
              ref.onRecoveryEnd(now);
            } else {
              off.onIdleRestart(now);
              ref.onIdleRestart(now);
            }
            expect(off.cwnd).toBe(ref.cwnd);
            expect(off.ssthresh).toBe(ref.ssthresh);
          }
        }),
      );
    });

    it('switched on, HyStart++ never grows cwnd faster than slow start, and windows stay whole bytes (property)', () => {
      fc.assert(
        fc.property(
          fc.array(fc.oneof(fc.constant(-1), fc.integer({ min: 1, max: 300 })), { minLength: 50, maxLength: 400, size: 'max' }),
          fc.integer({ min: 0, max: 0xffffffff }),
          (rtts, start) => {
            const f = new Flow(alg.make(), start);
            for (const rtt of rtts) {
              const w = f.c.cwnd;
              f.ack(rtt);
              expect(f.c.cwnd - w).toBeLessThanOrEqual(SMSS);
              expect(f.c.cwnd).toBeGreaterThanOrEqual(w);
              expect(Number.isInteger(f.c.cwnd)).toBe(true);
              if (f.c.hystartPhase === HyStartPhase.DONE) expect(f.c.ssthresh).toBeLessThanOrEqual(f.c.cwnd);
            }
          },
        ),
      );
    });
  });
}

describe('HyStart++ through the Sender (RTT samples from timestamps, SND.UNA / SND.NXT, wrap at 2^32)', () => {
  const ISS = 0xffffc000; // 16 KB below the wrap: the first rounds cross it
  const MSS = 1000;

  function sender(timestamps: boolean, hystart = true): Sender {
    const s = new Sender(testConfig({ congestionControl: cubic, mss: MSS, timestamps, hystart }), 0);
    s.init(ISS);
    s.synQueued();
    s.negotiate(MSS, 0, false, 0, 0);
    s.shift = 5;
    s.wnd = 65535 << 5;
    s.maxWnd = s.wnd;
    s.wl2 = ISS;
    s.ack(seg({ seq: 1, ack: seqAdd(ISS, 1), flags: ACK, window: 65535 }), 0, timestamps, 0, 0);
    s.write(Buffer.alloc(4 * 1024 * 1024));
    return s;
  }

  /** A path: segments in flight, each the end of its sequence range and its send time. */
  interface Path {
    s: Sender;
    ts: boolean;
    now: number;
    inFlight: { end: number; sentAt: number }[];
  }

  function path(s: Sender, ts: boolean): Path {
    const p: Path = { s, ts, now: 1, inFlight: [] };
    send(p);
    return p;
  }

  function send(p: Path): void {
    const plan = new SendPlan();
    while (p.s.next(plan)) {
      p.s.sent(plan, p.now);
      p.inFlight.push({ end: seqAdd(plan.seq, plan.len), sentAt: p.now });
    }
  }

  /**
   * One round trip: the peer acknowledges every segment in flight `rtt` ms after it was sent,
   * echoing its send time (RFC 7323: TSecr = our TSval), and after each ACK the sender sends what
   * cwnd allows (the next round's segments).
   */
  function round(p: Path, rtt: number): void {
    const segs = p.inFlight;
    p.inFlight = [];
    for (const x of segs) {
      p.now = x.sentAt + rtt;
      const ts: [number, number] | undefined = p.ts ? [1, x.sentAt] : undefined;
      p.s.ack(seg({ seq: 1, ack: x.end, flags: ACK, window: 65535, ts }), p.now, p.ts, p.now, 0);
      send(p);
    }
  }

  it('with timestamps every ACK gives a sample: a delay rise moves CUBIC into CSS, and 5 rounds later into congestion avoidance', () => {
    const s = sender(true);
    const cc = s.cc as Cubic;
    const p = path(s, true);
    round(p, 40);
    expect(cc.cwnd).toBe(2 * 10 * MSS); // slow start: IW doubled
    round(p, 40);
    expect(cc.hystartPhase).toBe(HyStartPhase.SLOW_START);
    round(p, 46); // 40 + RttThresh 5 ≤ 46
    expect(cc.hystartPhase).toBe(HyStartPhase.CSS);
    expect(cc.hystart!.cssBaselineMinRtt).toBe(46);
    const w = cc.cwnd;
    round(p, 46);
    // One round of CSS: cwnd grows by a quarter of the window acknowledged, not by all of it.
    expect(cc.cwnd).toBe(w + w / CSS_GROWTH_DIVISOR);
    for (let i = 0; i < CSS_ROUNDS; i++) round(p, 46);
    expect(cc.hystartPhase).toBe(HyStartPhase.DONE);
    expect(cc.ssthresh).toBeLessThan(INITIAL_SSTHRESH);
    expect(cc.inSlowStart).toBe(false);
    expect(seqLt(s.una, ISS)).toBe(false); // the sequence space wrapped on the way
  });

  it('without timestamps (one Karn-timed segment per RTT) no round has N_RTT_SAMPLE samples: slow start as before', () => {
    const s = sender(false);
    const off = sender(false, false);
    const p = path(s, false);
    const q = path(off, false);
    for (const rtt of [40, 40, 60, 80, 100]) {
      round(p, rtt);
      round(q, rtt);
      expect(s.cc.cwnd).toBe(off.cc.cwnd);
    }
    expect((s.cc as Cubic).hystartPhase).toBe(HyStartPhase.SLOW_START);
  });

  it('switched off in the TCP config, the same delay rise leaves CUBIC in slow start', () => {
    const s = sender(true, false);
    const p = path(s, true);
    for (const rtt of [40, 40, 46, 46, 46]) round(p, rtt);
    expect((s.cc as Cubic).hystartPhase).toBe(HyStartPhase.DONE);
    expect((s.cc as Cubic).inSlowStart).toBe(true);
  });
});
