import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { newReno, NewReno, INITIAL_SSTHRESH, initialWindow } from '../../src/tcp/cc/newreno.js';
import { CongestionControlError } from '../../src/tcp/cc/controller.js';

const SMSS = 1000;

/** Acknowledge one window (the cwnd at the start of the round) one SMSS at a time. */
function ackOneRtt(c: NewReno, now: number): void {
  const w = c.cwnd;
  for (let acked = 0; acked < w; acked += SMSS) c.onAck(Math.min(SMSS, w - acked), w, now, 100);
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
  it('initial_window_is_rfc6928_iw10', () => {
    expect(initialWindow(1460)).toBe(14600);
    expect(initialWindow(536)).toBe(5360); // 10*SMSS is the smaller bound
    expect(initialWindow(9000)).toBe(18000); // max(2*SMSS, 14600) is the smaller bound
    const c = newReno(1460, 0);
    expect(c.cwnd).toBe(14600);
    expect(c.name).toBe('newreno');
  });

  it('initial_ssthresh_is_arbitrarily_high (§3.1)', () => {
    expect(newReno(SMSS, 0).ssthresh).toBe(INITIAL_SSTHRESH);
  });

  it('slow_start_increases_cwnd_by_bytes_acked (§3.1 eq. 2, RFC 3465)', () => {
    const c = newReno(SMSS, 0);
    c.onAck(700, c.cwnd, 1, 100);
    expect(c.cwnd).toBe(10_000 + 700);
  });

  it('slow_start_byte_counting_is_limited_to_2_smss_per_ack (RFC 3465 §2.2 L=2*SMSS)', () => {
    const c = newReno(SMSS, 0);
    c.onAck(8 * SMSS, c.cwnd, 1, 100); // a stretch ACK
    expect(c.cwnd).toBe(10_000 + 2 * SMSS);
  });

  it('slow_start_doubles_cwnd_per_rtt', () => {
    const c = newReno(SMSS, 0);
    ackOneRtt(c, 100);
    expect(c.cwnd).toBe(20_000);
    ackOneRtt(c, 200);
    expect(c.cwnd).toBe(40_000);
  });

  it('congestion_avoidance_grows_one_smss_per_rtt (§3.1, RFC 3465 §2.1)', () => {
    const c = inCongestionAvoidance(20_000);
    ackOneRtt(c, 100);
    expect(c.cwnd).toBe(21_000);
    ackOneRtt(c, 200);
    expect(c.cwnd).toBe(22_000);
  });

  it('congestion_avoidance_does_not_grow_before_a_full_window_is_acked', () => {
    const c = inCongestionAvoidance(20_000);
    for (let i = 0; i < 19; i++) c.onAck(SMSS, 20_000, 1, 100);
    expect(c.cwnd).toBe(20_000);
    c.onAck(SMSS, 20_000, 1, 100);
    expect(c.cwnd).toBe(21_000);
  });

  it('slow_start_hands_over_to_congestion_avoidance_at_ssthresh (§3.1)', () => {
    const c = newReno(SMSS, 0);
    c.onRto(24_000, 0); // ssthresh 12_000, cwnd 1 SMSS
    while (c.cwnd < c.ssthresh) c.onAck(SMSS, c.cwnd, 1, 100);
    expect(c.cwnd).toBe(12_000);
    expect(c.inSlowStart).toBe(false);
    c.onAck(SMSS, c.cwnd, 2, 100);
    expect(c.cwnd).toBe(12_000); // now linear, not +SMSS per ACK
  });

  it('loss_sets_ssthresh_to_half_flight_and_cwnd_to_ssthresh (§3.2 eq. 4, RFC 6675 §5)', () => {
    const c = newReno(SMSS, 0);
    c.onLoss(30_001, 5);
    expect(c.ssthresh).toBe(15_000);
    expect(c.cwnd).toBe(15_000); // no +3 SMSS inflation: the RFC 6675 sender uses pipe
  });

  it('loss_ssthresh_is_at_least_2_smss (§3.2 eq. 4)', () => {
    const c = newReno(SMSS, 0);
    c.onLoss(2_500, 5);
    expect(c.ssthresh).toBe(2 * SMSS);
    expect(c.cwnd).toBe(2 * SMSS);
  });

  it('recovery_end_leaves_cwnd_at_ssthresh (RFC 6582 §3.2 step 3 option 2)', () => {
    const c = newReno(SMSS, 0);
    c.onLoss(40_000, 5);
    c.onRecoveryEnd(7);
    expect(c.cwnd).toBe(20_000);
    expect(c.ssthresh).toBe(20_000);
    ackOneRtt(c, 100);
    expect(c.cwnd).toBe(21_000); // congestion avoidance from ssthresh
  });

  it('recovery_end_does_not_raise_cwnd_after_an_rto (RFC 5681 §3.1 LW)', () => {
    const c = newReno(SMSS, 0);
    c.onLoss(40_000, 5);
    c.onRto(20_000, 1_000);
    c.onRecoveryEnd(1_100);
    expect(c.cwnd).toBe(SMSS);
  });

  it('rto_sets_cwnd_to_loss_window_and_ssthresh_to_half_flight (§3.1 eq. 4, LW)', () => {
    const c = newReno(SMSS, 0);
    ackOneRtt(c, 100);
    c.onRto(20_000, 1_000);
    expect(c.cwnd).toBe(SMSS);
    expect(c.ssthresh).toBe(10_000);
  });

  it('repeated_rto_of_same_segment_keeps_ssthresh (§3.1)', () => {
    const c = newReno(SMSS, 0);
    c.onRto(40_000, 1_000);
    c.onRto(1_000, 3_000); // backoff: flight is now one segment
    expect(c.ssthresh).toBe(20_000);
    expect(c.cwnd).toBe(SMSS);
  });

  it('rto_after_new_data_acked_reduces_ssthresh_again (§3.1)', () => {
    const c = newReno(SMSS, 0);
    c.onRto(40_000, 1_000);
    c.onAck(SMSS, SMSS, 1_100, 100);
    c.onRto(6_000, 3_000);
    expect(c.ssthresh).toBe(3_000);
  });

  it('slow_start_after_rto_counts_at_most_1_smss_per_ack (RFC 3465)', () => {
    const c = newReno(SMSS, 0);
    c.onRto(40_000, 1_000);
    c.onAck(3 * SMSS, SMSS, 1_100, 100);
    expect(c.cwnd).toBe(2 * SMSS);
  });

  it('idle_restart_limits_cwnd_to_initial_window (§4.1 RW = min(IW, cwnd))', () => {
    const c = newReno(SMSS, 0);
    ackOneRtt(c, 100);
    ackOneRtt(c, 200);
    expect(c.cwnd).toBe(40_000);
    c.onIdleRestart(5_000);
    expect(c.cwnd).toBe(10_000);
    expect(c.ssthresh).toBe(INITIAL_SSTHRESH);
  });

  it('idle_restart_keeps_a_cwnd_below_initial_window (§4.1)', () => {
    const c = newReno(SMSS, 0);
    c.onRto(40_000, 1_000);
    c.onIdleRestart(5_000);
    expect(c.cwnd).toBe(SMSS);
  });

  it('application_limited_ack_does_not_grow_cwnd_in_slow_start (RFC 7661)', () => {
    const c = newReno(SMSS, 0);
    c.onAck(SMSS, 3 * SMSS, 1, 100); // 3 KB in flight of a 10 KB window
    expect(c.cwnd).toBe(10_000);
  });

  it('application_limited_ack_does_not_grow_cwnd_in_congestion_avoidance (RFC 7661)', () => {
    const c = inCongestionAvoidance(20_000);
    for (let i = 0; i < 40; i++) c.onAck(SMSS, 10_000, i, 100);
    expect(c.cwnd).toBe(20_000);
  });

  it('zero_byte_ack_changes_nothing', () => {
    const c = newReno(SMSS, 0);
    c.onAck(0, c.cwnd, 1, 100);
    expect(c.cwnd).toBe(10_000);
  });

  it('invalid_smss_is_rejected_with_code', () => {
    expect(() => newReno(0, 0)).toThrow(CongestionControlError);
    try {
      newReno(1.5, 0);
      expect.unreachable();
    } catch (err) {
      expect((err as CongestionControlError).code).toBe('ERR_TCP_CC_CONFIG');
    }
  });

  it('cwnd_at_least_1_smss_and_ssthresh_at_least_2_smss_under_any_events (property)', () => {
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
          if (e.k === 'ack') c.onAck(e.n, e.f, now, 50);
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
