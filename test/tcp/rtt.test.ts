import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { RttEstimator, RttConfigError } from '../../src/tcp/rtt.js';

// Bounds small enough that the RFC formulas are visible rather than hidden by the 1 s floor.
const INITIAL = 1000;
const MIN = 200;
const MAX = 60_000;

function est(granularity = 1): RttEstimator {
  return new RttEstimator(INITIAL, MIN, MAX, granularity);
}

describe('RttEstimator (RFC 6298)', () => {
  it('initial state rto is initial value and no sample (§2.1)', () => {
    const e = est();
    expect(e.rto).toBe(1000);
    expect(e.srtt).toBe(0);
    expect(e.rttvar).toBe(0);
    expect(e.hasSample).toBe(false);
    expect(e.backoffCount).toBe(0);
  });

  it('first sample sets srtt r rttvar half r (§2.2)', () => {
    const e = est();
    e.sample(300);
    expect(e.hasSample).toBe(true);
    expect(e.srtt).toBe(300);
    expect(e.rttvar).toBe(150);
    // RTO = SRTT + max(G, K*RTTVAR) = 300 + 600
    expect(e.rto).toBe(900);
  });

  it('later sample updates rttvar with old srtt then srtt (§2.3)', () => {
    const e = est();
    e.sample(300);
    e.sample(500);
    // RTTVAR = 3/4*150 + 1/4*|300-500| = 112.5 + 50 = 162.5
    expect(e.rttvar).toBeCloseTo(162.5, 10);
    // SRTT = 7/8*300 + 1/8*500 = 262.5 + 62.5 = 325
    expect(e.srtt).toBeCloseTo(325, 10);
    expect(e.rto).toBeCloseTo(325 + 4 * 162.5, 10);
  });

  it('stable samples converge srtt to r and rttvar toward zero (§2.3)', () => {
    const e = est();
    for (let i = 0; i < 200; i++) e.sample(400);
    expect(e.srtt).toBeCloseTo(400, 6);
    expect(e.rttvar).toBeLessThan(1e-6);
  });

  it('clock granularity bounds variance term (§2.3 max(G, K*RTTVAR))', () => {
    const e = new RttEstimator(INITIAL, 1, MAX, 50);
    for (let i = 0; i < 200; i++) e.sample(400);
    // K*RTTVAR has decayed to ~0, so the G term applies: RTO = SRTT + G.
    expect(e.rto).toBeCloseTo(450, 6);
  });

  it('rto below minimum is rounded up (§2.4)', () => {
    const e = est();
    e.sample(10); // 10 + 4*5 = 30 ms < 200 ms
    expect(e.rto).toBe(MIN);
  });

  it('rto above maximum is clamped (§2.5)', () => {
    const e = new RttEstimator(INITIAL, MIN, 5_000);
    e.sample(4_000); // 4000 + 8000 > 5000
    expect(e.rto).toBe(5_000);
  });

  it('initial rto is clamped to bounds', () => {
    expect(new RttEstimator(50, MIN, MAX).rto).toBe(MIN);
    expect(new RttEstimator(90_000, MIN, MAX).rto).toBe(MAX);
  });

  it('backoff doubles rto (§5.5)', () => {
    const e = est();
    e.sample(300); // 900
    e.backoff();
    expect(e.rto).toBe(1800);
    e.backoff();
    expect(e.rto).toBe(3600);
    expect(e.backoffCount).toBe(2);
  });

  it('backoff is clamped to maximum (§5.5, §2.5)', () => {
    const e = new RttEstimator(INITIAL, MIN, 10_000);
    for (let i = 0; i < 10; i++) e.backoff();
    expect(e.rto).toBe(10_000);
    expect(e.backoffCount).toBe(10);
  });

  it('backoff before any sample doubles initial rto (§5.5)', () => {
    const e = est();
    e.backoff();
    expect(e.rto).toBe(2000);
  });

  it('new sample collapses backoff (§5 note after 5.7)', () => {
    const e = est();
    e.sample(300);
    e.backoff();
    e.backoff();
    e.sample(300);
    expect(e.backoffCount).toBe(0);
    // RTTVAR = 3/4*150 + 0 = 112.5; RTO = 300 + 450
    expect(e.rto).toBeCloseTo(750, 10);
  });

  it('resetBackoff: returns to computed rto', () => {
    const e = est();
    e.sample(300);
    e.backoff();
    e.resetBackoff();
    expect(e.rto).toBe(900);
    expect(e.backoffCount).toBe(0);
  });

  it('reinitialize forgets samples and sets rto (§5.7: 3 s after a SYN timeout)', () => {
    const e = est();
    e.sample(300);
    e.backoff();
    e.reinitialize(3000);
    expect(e.rto).toBe(3000);
    expect(e.hasSample).toBe(false);
    expect(e.srtt).toBe(0);
    expect(e.backoffCount).toBe(0);
    e.sample(100);
    expect(e.srtt).toBe(100); // treated as a first sample again (§2.2)
  });

  it('invalid samples are ignored', () => {
    const e = est();
    e.sample(-5);
    e.sample(Number.NaN);
    e.sample(Number.POSITIVE_INFINITY);
    expect(e.hasSample).toBe(false);
    expect(e.rto).toBe(INITIAL);
  });

  it('zero rtt sample is valid and rto respects granularity', () => {
    const e = new RttEstimator(INITIAL, 1, MAX, 4);
    e.sample(0);
    expect(e.hasSample).toBe(true);
    expect(e.rto).toBe(4); // 0 + max(G=4, 0)
  });

  it('constructor rejects inconsistent bounds with code', () => {
    expect(() => new RttEstimator(1000, 500, 100)).toThrow(RttConfigError);
    try {
      new RttEstimator(0, 200, 1000);
      expect.unreachable();
    } catch (err) {
      expect((err as RttConfigError).code).toBe('ERR_TCP_RTT_CONFIG');
    }
  });

  it('rto always within bounds and at least srtt (property)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.oneof(fc.double({ min: 0, max: 120_000, noNaN: true }), fc.constant(-1)), {
          maxLength: 50,
          size: 'max',
        }),
        fc.array(fc.boolean(), { maxLength: 50, size: 'max' }),
        (samples, backoffs) => {
          const e = est();
          for (let i = 0; i < samples.length; i++) {
            e.sample(samples[i]!);
            if (backoffs[i] === true) e.backoff();
            expect(e.rto).toBeGreaterThanOrEqual(MIN);
            expect(e.rto).toBeLessThanOrEqual(MAX);
            if (e.backoffCount === 0 && e.hasSample) {
              expect(e.rto).toBeGreaterThanOrEqual(Math.min(e.srtt, MAX));
            }
          }
        },
      ),
    );
  });
});
