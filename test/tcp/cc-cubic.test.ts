import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { cubic, Cubic, CUBIC_ALPHA, CUBIC_BETA, CUBIC_C } from '../../src/tcp/cc/cubic.js';
import { INITIAL_SSTHRESH } from '../../src/tcp/cc/newreno.js';

const SMSS = 1000;
/** These tests give the controller no RTT samples (and so no sequence numbers): HyStart++ (RFC 9406)
 * then never leaves slow start, and slow start is the plain one; test/tcp/cc-hystart.test.ts drives it. */
const NO_RTT_SAMPLE = -1;

/**
 * One round trip of a sender that keeps cwnd full: the window at the start of the round is
 * acknowledged one SMSS at a time, the ACKs spread evenly over `rttMs`. Returns the new time.
 */
function ackOneRtt(c: Cubic, now: number, rttMs: number): number {
  const n = Math.ceil(c.cwnd / SMSS);
  for (let i = 0; i < n; i++) c.onAck(SMSS, c.cwnd, now + ((i + 1) * rttMs) / n, rttMs, NO_RTT_SAMPLE, 0, 0);
  return now + rttMs;
}

/** Slow-start to `bytes` (instantly), then a loss with the window full: W_max = bytes / SMSS. */
function afterLossAt(bytes: number, opts?: { fastConvergence?: boolean }): Cubic {
  const c = cubic(SMSS, 0, opts);
  while (c.cwnd < bytes) c.onAck(SMSS, c.cwnd, 0, 100, NO_RTT_SAMPLE, 0, 0);
  c.onLoss(c.cwnd, 0);
  c.onRecoveryEnd(0);
  return c;
}

const segs = (c: Cubic): number => c.cwnd / SMSS;

describe('CUBIC (RFC 9438)', () => {
  it('starts with iw10 and high ssthresh', () => {
    const c = cubic(1460, 0);
    expect(c.name).toBe('cubic');
    expect(c.cwnd).toBe(14600);
    expect(c.ssthresh).toBe(INITIAL_SSTHRESH);
  });

  it('slow start doubles cwnd per rtt (§4.10 Reno slow start)', () => {
    const c = cubic(SMSS, 0);
    let now = ackOneRtt(c, 0, 100);
    expect(c.cwnd).toBe(20_000);
    now = ackOneRtt(c, now, 100);
    expect(c.cwnd).toBe(40_000);
  });

  it('slow start byte counting is limited to 2 smss per ack (RFC 3465 §2.2)', () => {
    const c = cubic(SMSS, 0);
    c.onAck(8 * SMSS, c.cwnd, 1, 100, NO_RTT_SAMPLE, 0, 0);
    expect(c.cwnd).toBe(12_000);
  });

  it('loss sets w max to cwnd and ssthresh to beta flight (§4.6 Figure 5)', () => {
    const c = cubic(SMSS, 0);
    while (c.cwnd < 100_000) c.onAck(SMSS, c.cwnd, 0, 100, NO_RTT_SAMPLE, 0, 0);
    c.onLoss(100_000, 1);
    expect(c.wMaxSegments).toBe(100);
    expect(c.ssthresh).toBe(70_000);
    expect(c.cwnd).toBe(70_000);
  });

  it('loss keeps ssthresh and cwnd at least 2 smss (§4.6 Figure 5)', () => {
    const c = cubic(SMSS, 0);
    c.onLoss(1_000, 1);
    expect(c.ssthresh).toBe(2 * SMSS);
    expect(c.cwnd).toBe(2 * SMSS);
  });

  it('k is cube root of w max minus cwnd epoch over c (§4.2 Figure 2)', () => {
    const c = afterLossAt(160_000);
    c.onAck(SMSS, c.cwnd, 10, 100, NO_RTT_SAMPLE, 0, 0); // the first ACK in congestion avoidance starts the epoch
    expect(c.epochStartMs).toBe(10);
    expect(c.kSeconds).toBeCloseTo(Math.cbrt((160 - 112) / CUBIC_C), 9);
  });

  it('cwnd follows w cubic of t (§4.2 Figure 1)', () => {
    const c = afterLossAt(160_000);
    let now = 0;
    for (let r = 0; r < 30; r++) now = ackOneRtt(c, now, 100);
    const t = (now - c.epochStartMs) / 1000;
    const expected = CUBIC_C * (t - c.kSeconds) ** 3 + 160;
    expect(Math.abs(segs(c) - expected) / expected).toBeLessThan(0.01);
  });

  it('cwnd returns to w max around k (§4.2)', () => {
    const c = afterLossAt(160_000);
    let now = ackOneRtt(c, 0, 100);
    const kMs = c.kSeconds * 1000;
    while (now - c.epochStartMs < kMs / 2) now = ackOneRtt(c, now, 100);
    expect(segs(c)).toBeLessThan(0.98 * 160); // still well below W_max half way to K
    while (now - c.epochStartMs < kMs) now = ackOneRtt(c, now, 100);
    expect(segs(c)).toBeGreaterThan(0.99 * 160);
    expect(segs(c)).toBeLessThan(1.01 * 160);
  });

  it('growth is concave below w max (§4.4)', () => {
    const c = afterLossAt(160_000);
    let now = ackOneRtt(c, 0, 100);
    const kMs = c.kSeconds * 1000;
    const increments: number[] = [];
    while (now - c.epochStartMs < kMs - 200) {
      const before = c.cwnd;
      now = ackOneRtt(c, now, 100);
      increments.push(c.cwnd - before);
    }
    expect(increments.length).toBeGreaterThan(20);
    for (let i = 1; i < increments.length; i++) {
      // Per-RTT growth shrinks as cwnd approaches W_max (1 byte of slack for flooring).
      expect(increments[i]!).toBeLessThanOrEqual(increments[i - 1]! + 1);
    }
    expect(increments[0]!).toBeGreaterThan(10 * increments[increments.length - 1]!);
  });

  it('growth is convex above w max (§4.5)', () => {
    const c = afterLossAt(160_000);
    let now = ackOneRtt(c, 0, 100);
    const kMs = c.kSeconds * 1000;
    while (now - c.epochStartMs < kMs + 200) now = ackOneRtt(c, now, 100);
    expect(segs(c)).toBeGreaterThanOrEqual(160);
    const increments: number[] = [];
    for (let r = 0; r < 30; r++) {
      const before = c.cwnd;
      now = ackOneRtt(c, now, 100);
      increments.push(c.cwnd - before);
    }
    for (let i = 1; i < increments.length; i++) {
      expect(increments[i]!).toBeGreaterThanOrEqual(increments[i - 1]! - 1);
    }
    expect(increments[increments.length - 1]!).toBeGreaterThan(10 * Math.max(1, increments[0]!));
  });

  it('target is capped at 1.5 cwnd so each acked segment adds at most half a segment (§4.2)', () => {
    const c = afterLossAt(20_000);
    let now = ackOneRtt(c, 0, 100);
    now = ackOneRtt(c, now, 100);
    const before = c.cwnd;
    // A 10 s RTT puts W_cubic(t + RTT) far above 1.5 × cwnd: the bound decides.
    c.onAck(SMSS, c.cwnd, now + 1, 10_000, NO_RTT_SAMPLE, 0, 0);
    expect(c.cwnd - before).toBe(SMSS / 2);
  });

  it('reno friendly region grows by alpha cubic per rtt (§4.3 Figure 4)', () => {
    // Short RTT and a small window: W_cubic grows slower than the Reno estimate.
    const c = afterLossAt(40_000); // W_max 40, cwnd 28
    let now = ackOneRtt(c, 0, 10);
    const start = segs(c);
    for (let r = 0; r < 10; r++) now = ackOneRtt(c, now, 10);
    const t = (now - c.epochStartMs) / 1000;
    expect(c.wCubic(t)).toBeLessThan(c.wEstSegments);
    expect(segs(c)).toBeCloseTo(c.wEstSegments, 0);
    expect((segs(c) - start) / 10).toBeCloseTo(CUBIC_ALPHA, 1);
  });

  it('reno friendly alpha becomes 1 once w est reaches cwnd_prior (§4.3)', () => {
    const c = afterLossAt(40_000);
    let now = 0;
    while (c.wEstSegments < 40 + 2) now = ackOneRtt(c, now, 10);
    const start = segs(c);
    for (let r = 0; r < 10; r++) now = ackOneRtt(c, now, 10);
    expect((segs(c) - start) / 10).toBeCloseTo(1, 1);
  });

  it('fast convergence lowers w max when loss comes before w max (§4.7)', () => {
    const c = afterLossAt(100_000); // W_max 100, cwnd 70
    let now = 0;
    for (let r = 0; r < 5; r++) now = ackOneRtt(c, now, 100);
    const w = segs(c);
    expect(w).toBeLessThan(100);
    c.onLoss(c.cwnd, now);
    expect(c.wMaxSegments).toBeCloseTo((w * (1 + CUBIC_BETA)) / 2, 2);
    expect(c.ssthresh).toBe(Math.floor(Math.floor(w * SMSS) * CUBIC_BETA));
  });

  it('without fast convergence w max is cwnd at loss (§4.7 disabled)', () => {
    const c = afterLossAt(100_000, { fastConvergence: false });
    let now = 0;
    for (let r = 0; r < 5; r++) now = ackOneRtt(c, now, 100);
    const w = segs(c);
    c.onLoss(c.cwnd, now);
    expect(c.wMaxSegments).toBeCloseTo(w, 2);
  });

  it('loss above previous w max sets w max to cwnd (§4.7)', () => {
    const c = afterLossAt(20_000);
    let now = 0;
    while (segs(c) < 25) now = ackOneRtt(c, now, 100);
    const w = segs(c);
    c.onLoss(c.cwnd, now);
    expect(c.wMaxSegments).toBeCloseTo(w, 2);
  });

  it('rto sets cwnd to 1 smss and ssthresh with beta (§4.8, RFC 5681 §3.1)', () => {
    const c = cubic(SMSS, 0);
    while (c.cwnd < 100_000) c.onAck(SMSS, c.cwnd, 0, 100, NO_RTT_SAMPLE, 0, 0);
    c.onRto(100_000, 1_000);
    expect(c.cwnd).toBe(SMSS);
    expect(c.ssthresh).toBe(70_000);
  });

  it('repeated rto keeps ssthresh (RFC 5681 §3.1)', () => {
    const c = cubic(SMSS, 0);
    c.onRto(100_000, 1_000);
    c.onRto(1_000, 3_000);
    expect(c.ssthresh).toBe(70_000);
  });

  it('first avoidance stage after rto has k 0 and w max cwnd epoch (§4.8)', () => {
    const c = afterLossAt(160_000); // W_max 160
    c.onRto(100_000, 1_000); // ssthresh 70 segments
    while (c.cwnd < c.ssthresh) c.onAck(SMSS, c.cwnd, 1_100, 100, NO_RTT_SAMPLE, 0, 0);
    const w = segs(c);
    c.onAck(SMSS, c.cwnd, 1_200, 100, NO_RTT_SAMPLE, 0, 0);
    expect(c.kSeconds).toBe(0);
    expect(c.wMaxSegments).toBeCloseTo(w, 9);
  });

  it('application limited acks do not grow cwnd (RFC 7661, §5.8)', () => {
    const c = afterLossAt(100_000);
    c.onAck(SMSS, c.cwnd, 0, 100, NO_RTT_SAMPLE, 0, 0);
    const w = c.cwnd;
    for (let i = 1; i <= 50; i++) c.onAck(SMSS, 10_000, i * 100, 100, NO_RTT_SAMPLE, 0, 0);
    expect(c.cwnd).toBe(w);
  });

  it('application limited time is not counted in t (§4.2)', () => {
    const c = afterLossAt(100_000);
    c.onAck(SMSS, c.cwnd, 1_000, 100, NO_RTT_SAMPLE, 0, 0);
    expect(c.epochStartMs).toBe(1_000);
    c.onAck(SMSS, 1_000, 3_000, 100, NO_RTT_SAMPLE, 0, 0); // 2 s application-limited
    expect(c.epochStartMs).toBe(3_000);
  });

  it('idle restart limits cwnd to iw and restarts the epoch (RFC 5681 §4.1, §5.8)', () => {
    const c = afterLossAt(100_000);
    c.onAck(SMSS, c.cwnd, 10, 100, NO_RTT_SAMPLE, 0, 0);
    expect(c.epochStartMs).toBe(10);
    c.onIdleRestart(60_000);
    expect(c.cwnd).toBe(10_000);
    expect(c.epochStartMs).toBe(-1);
    expect(c.wMaxSegments).toBe(100);
  });

  it('recovery end does not raise cwnd after an rto', () => {
    const c = afterLossAt(100_000);
    c.onLoss(c.cwnd, 5);
    c.onRto(c.cwnd, 1_000);
    c.onRecoveryEnd(1_100);
    expect(c.cwnd).toBe(SMSS);
  });

  it('cwnd stays finite and at least 1 smss under any events (property)', () => {
    const event = fc.oneof(
      fc.record({ k: fc.constant('ack' as const), n: fc.integer({ min: 0, max: 50_000 }), f: fc.integer({ min: 0, max: 400_000 }), dt: fc.integer({ min: 0, max: 5_000 }) }),
      fc.record({ k: fc.constant('loss' as const), f: fc.integer({ min: 0, max: 400_000 }) }),
      fc.record({ k: fc.constant('rto' as const), f: fc.integer({ min: 0, max: 400_000 }) }),
      fc.record({ k: fc.constant('end' as const) }),
      fc.record({ k: fc.constant('idle' as const) }),
    );
    fc.assert(
      fc.property(fc.array(event, { maxLength: 200, size: 'max' }), fc.integer({ min: 0, max: 1_000 }), (events, rtt) => {
        const c = cubic(SMSS, 0);
        let now = 0;
        for (const e of events) {
          if (e.k === 'ack') {
            now += e.dt;
            c.onAck(e.n, e.f, now, rtt, NO_RTT_SAMPLE, 0, 0);
          } else if (e.k === 'loss') c.onLoss(e.f, now);
          else if (e.k === 'rto') c.onRto(e.f, now);
          else if (e.k === 'end') c.onRecoveryEnd(now);
          else c.onIdleRestart(now);
          expect(Number.isFinite(c.cwnd)).toBe(true);
          expect(c.cwnd).toBeGreaterThanOrEqual(SMSS);
          expect(c.ssthresh).toBeGreaterThanOrEqual(2 * SMSS);
        }
      }),
    );
  });
});
