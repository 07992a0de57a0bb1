import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { newReno, NewReno, INITIAL_SSTHRESH, initialWindow } from '../../src/tcp/cc/newreno.js';
import { CongestionControlError } from '../../src/tcp/cc/controller.js';

const SMSS = 1000;
/** These tests give the controller no RTT samples (and so no sequence numbers): HyStart++ (RFC 9406)
 * then never leaves slow start, and slow start is the plain one; test/tcp/cc-hystart.test.ts drives it. */
const NO_RTT_SAMPLE = -1;

/** Acknowledge one window (the cwnd at the start of the round) one SMSS at a time. */
function ackOneRtt(c: NewReno, now: number): void {
  const w = c.cwnd;
  for (let acked = 0; acked < w; acked += SMSS) c.onAck(Math.min(SMSS, w - acked), w, now, 100, NO_RTT_SAMPLE, 0, 0);
}

/** A controller in congestion avoidance with cwnd = ssthresh = `w` bytes. */
function inCongestionAvoidance(w: number): NewReno {
  const c = newReno(SMSS, 0);
  c.onLoss(2 * w, 0);
  c.onRecoveryEnd(0);
  expect(c.cwnd).toBe(w);
  expect(c.ssthresh).toBe(w);
  return c;
}

describe('NewReno (RFC 5681, RFC 3465, RFC 6582)', () => {
  it('initial window is RFC 6928 iw10', () => {
    expect(initialWindow(1460)).toBe(14600);
    expect(initialWindow(536)).toBe(5360); // 10*SMSS is the smaller bound
    expect(initialWindow(9000)).toBe(18000); // max(2*SMSS, 14600) is the smaller bound
    const c = newReno(1460, 0);
    expect(c.cwnd).toBe(14600);
    expect(c.name).toBe('newreno');
  });

  it('initial ssthresh is arbitrarily high (§3.1)', () => {
    expect(newReno(SMSS, 0).ssthresh).toBe(INITIAL_SSTHRESH);
  });

  it('slow start increases cwnd by bytes acked (§3.1 eq. 2, RFC 3465)', () => {
    const c = newReno(SMSS, 0);
    c.onAck(700, c.cwnd, 1, 100, NO_RTT_SAMPLE, 0, 0);
    expect(c.cwnd).toBe(10_000 + 700);
  });

  it('slow start byte counting is limited to 2 smss per ack (RFC 3465 §2.2 L=2*SMSS)', () => {
    const c = newReno(SMSS, 0);
    c.onAck(8 * SMSS, c.cwnd, 1, 100, NO_RTT_SAMPLE, 0, 0); // a stretch ACK
    expect(c.cwnd).toBe(10_000 + 2 * SMSS);
  });

  it('slow start doubles cwnd per rtt', () => {
    const c = newReno(SMSS, 0);
    ackOneRtt(c, 100);
    expect(c.cwnd).toBe(20_000);
    ackOneRtt(c, 200);
    expect(c.cwnd).toBe(40_000);
  });

  it('congestion avoidance grows one smss per rtt (§3.1, RFC 3465 §2.1)', () => {
    const c = inCongestionAvoidance(20_000);
    ackOneRtt(c, 100);
    expect(c.cwnd).toBe(21_000);
    ackOneRtt(c, 200);
    expect(c.cwnd).toBe(22_000);
  });

  it('congestion avoidance does not grow before a full window is acked', () => {
    const c = inCongestionAvoidance(20_000);
    for (let i = 0; i < 19; i++) c.onAck(SMSS, 20_000, 1, 100, NO_RTT_SAMPLE, 0, 0);
    expect(c.cwnd).toBe(20_000);
    c.onAck(SMSS, 20_000, 1, 100, NO_RTT_SAMPLE, 0, 0);
    expect(c.cwnd).toBe(21_000);
  });

  it('slow start hands over to congestion avoidance at ssthresh (§3.1)', () => {
    const c = newReno(SMSS, 0);
    c.onRto(24_000, 0); // ssthresh 12_000, cwnd 1 SMSS
    while (c.cwnd < c.ssthresh) c.onAck(SMSS, c.cwnd, 1, 100, NO_RTT_SAMPLE, 0, 0);
    expect(c.cwnd).toBe(12_000);
    expect(c.inSlowStart).toBe(false);
    c.onAck(SMSS, c.cwnd, 2, 100, NO_RTT_SAMPLE, 0, 0);
    expect(c.cwnd).toBe(12_000); // now linear, not +SMSS per ACK
  });

  it('loss sets ssthresh to half flight and cwnd to ssthresh (§3.2 eq. 4, RFC 6675 §5)', () => {
    const c = newReno(SMSS, 0);
    c.onLoss(30_001, 5);
    expect(c.ssthresh).toBe(15_000);
    expect(c.cwnd).toBe(15_000); // no +3 SMSS inflation: the RFC 6675 sender uses pipe
  });

  it('loss ssthresh is at least 2 smss (§3.2 eq. 4)', () => {
    const c = newReno(SMSS, 0);
    c.onLoss(2_500, 5);
    expect(c.ssthresh).toBe(2 * SMSS);
    expect(c.cwnd).toBe(2 * SMSS);
  });

  it('recovery end leaves cwnd at ssthresh (RFC 6582 §3.2 step 3 option 2)', () => {
    const c = newReno(SMSS, 0);
    c.onLoss(40_000, 5);
    c.onRecoveryEnd(7);
    expect(c.cwnd).toBe(20_000);
    expect(c.ssthresh).toBe(20_000);
    ackOneRtt(c, 100);
    expect(c.cwnd).toBe(21_000); // congestion avoidance from ssthresh
  });

  it('recovery end does not raise cwnd after an rto (RFC 5681 §3.1 LW)', () => {
    const c = newReno(SMSS, 0);
    c.onLoss(40_000, 5);
    c.onRto(20_000, 1_000);
    c.onRecoveryEnd(1_100);
    expect(c.cwnd).toBe(SMSS);
  });

  it('rto sets cwnd to loss window and ssthresh to half flight (§3.1 eq. 4, LW)', () => {
    const c = newReno(SMSS, 0);
    ackOneRtt(c, 100);
    c.onRto(20_000, 1_000);
    expect(c.cwnd).toBe(SMSS);
    expect(c.ssthresh).toBe(10_000);
  });

  it('repeated rto of same segment keeps ssthresh (§3.1)', () => {
    const c = newReno(SMSS, 0);
    c.onRto(40_000, 1_000);
    c.onRto(1_000, 3_000); // backoff: flight is now one segment
    expect(c.ssthresh).toBe(20_000);
    expect(c.cwnd).toBe(SMSS);
  });

  it('rto after new data acked reduces ssthresh again (§3.1)', () => {
    const c = newReno(SMSS, 0);
    c.onRto(40_000, 1_000);
    c.onAck(SMSS, SMSS, 1_100, 100, NO_RTT_SAMPLE, 0, 0);
    c.onRto(6_000, 3_000);
    expect(c.ssthresh).toBe(3_000);
  });

  it('slow start after rto counts at most 1 smss per ack (RFC 3465)', () => {
    const c = newReno(SMSS, 0);
    c.onRto(40_000, 1_000);
    c.onAck(3 * SMSS, SMSS, 1_100, 100, NO_RTT_SAMPLE, 0, 0);
    expect(c.cwnd).toBe(2 * SMSS);
  });

  it('idle restart limits cwnd to initial window (§4.1 RW = min(IW, cwnd))', () => {
    const c = newReno(SMSS, 0);
    ackOneRtt(c, 100);
    ackOneRtt(c, 200);
    expect(c.cwnd).toBe(40_000);
    c.onIdleRestart(5_000);
    expect(c.cwnd).toBe(10_000);
    expect(c.ssthresh).toBe(INITIAL_SSTHRESH);
  });

  it('idle restart keeps a cwnd below initial window (§4.1)', () => {
    const c = newReno(SMSS, 0);
    c.onRto(40_000, 1_000);
    c.onIdleRestart(5_000);
    expect(c.cwnd).toBe(SMSS);
  });

  it('application limited ack does not grow cwnd in slow start (RFC 7661)', () => {
    const c = newReno(SMSS, 0);
    c.onAck(SMSS, 3 * SMSS, 1, 100, NO_RTT_SAMPLE, 0, 0); // 3 KB in flight of a 10 KB window
    expect(c.cwnd).toBe(10_000);
  });

  it('application limited ack does not grow cwnd in congestion avoidance (RFC 7661)', () => {
    const c = inCongestionAvoidance(20_000);
    for (let i = 0; i < 40; i++) c.onAck(SMSS, 10_000, i, 100, NO_RTT_SAMPLE, 0, 0);
    expect(c.cwnd).toBe(20_000);
  });

  it('zero byte ack changes nothing', () => {
    const c = newReno(SMSS, 0);
    c.onAck(0, c.cwnd, 1, 100, NO_RTT_SAMPLE, 0, 0);
    expect(c.cwnd).toBe(10_000);
  });

  it('invalid smss is rejected with code', () => {
    expect(() => newReno(0, 0)).toThrow(CongestionControlError);
    try {
      newReno(1.5, 0);
      expect.unreachable();
    } catch (err) {
      expect((err as CongestionControlError).code).toBe('ERR_TCP_CC_CONFIG');
    }
  });

  it('cwnd at least 1 smss and ssthresh at least 2 smss under any events (property)', () => {
    const event = fc.oneof(
      fc.record({ k: fc.constant('ack' as const), n: fc.integer({ min: 0, max: 50_000 }), f: fc.integer({ min: 0, max: 200_000 }) }),
      fc.record({ k: fc.constant('loss' as const), f: fc.integer({ min: 0, max: 200_000 }) }),
      fc.record({ k: fc.constant('rto' as const), f: fc.integer({ min: 0, max: 200_000 }) }),
      fc.record({ k: fc.constant('end' as const) }),
      fc.record({ k: fc.constant('idle' as const) }),
    );
    fc.assert(
      fc.property(fc.array(event, { maxLength: 100, size: 'max' }), (events) => {
        const c = newReno(SMSS, 0);
        let now = 0;
        for (const e of events) {
          now += 10;
          if (e.k === 'ack') c.onAck(e.n, e.f, now, 50, NO_RTT_SAMPLE, 0, 0);
          else if (e.k === 'loss') c.onLoss(e.f, now);
          else if (e.k === 'rto') c.onRto(e.f, now);
          else if (e.k === 'end') c.onRecoveryEnd(now);
          else c.onIdleRestart(now);
          expect(c.cwnd).toBeGreaterThanOrEqual(SMSS);
          expect(c.ssthresh).toBeGreaterThanOrEqual(2 * SMSS);
          expect(Number.isInteger(c.cwnd)).toBe(true);
        }
      }),
    );
  });
});
