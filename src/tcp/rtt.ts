/**
 * Round-trip time estimation and the retransmission timeout (RFC 6298).
 *
 * The estimator is pure arithmetic on samples the connection hands it; it reads no clock and owns
 * no timer. All values are milliseconds (floating point) of the injected clock.
 *
 * Karn's algorithm (RFC 6298 §3) is the CALLER's job: an RTT sample MUST NOT be taken from a
 * segment that was retransmitted, because its ACK is ambiguous, unless the measurement is
 * unambiguous by construction (RFC 7323 §4: timestamps echoed in TSecr, taken only from segments
 * that advance SND.UNA). The connection therefore calls `sample()` only for such measurements, and
 * the backed-off RTO stays in force until it does (RFC 6298 §5, note after step 5.7).
 *
 * RFC 6298 §5.7 (a SYN or SYN-ACK that timed out leaves the RTO at ≥ 3 s once data transfer starts)
 * is available as `reinitialize(3000)` for the connection to call when the handshake completes.
 */
import { RttConfigError } from '../errors.js';

export { RttConfigError };

/** RFC 6298 §2.3: alpha = 1/8. */
const ALPHA = 1 / 8;
/** RFC 6298 §2.3: beta = 1/4. */
const BETA = 1 / 4;
/** RFC 6298 §2.2/§2.3: K = 4. */
const K = 4;


export class RttEstimator {
  private srttMs: number;
  private rttvarMs: number;
  private sampled: boolean;
  private backoffs: number;
  private readonly minRtoMs: number;
  private readonly maxRtoMs: number;
  private readonly granularityMs: number;
  /** RTO without backoff, already clamped to [min, max]. */
  private baseRto: number;
  /** RTO with backoff, clamped to [min, max]. */
  private currentRto: number;

  constructor(initialRtoMs: number, minRtoMs: number, maxRtoMs: number, clockGranularityMs = 1) {
    if (!(minRtoMs > 0) || !(maxRtoMs >= minRtoMs) || !Number.isFinite(maxRtoMs)) {
      throw new RttConfigError(`need 0 < minRtoMs <= maxRtoMs < Infinity, got ${minRtoMs}, ${maxRtoMs}`);
    }
    if (!(initialRtoMs > 0) || !Number.isFinite(initialRtoMs)) {
      throw new RttConfigError(`initialRtoMs must be a positive finite number, got ${initialRtoMs}`);
    }
    if (!(clockGranularityMs >= 0) || !Number.isFinite(clockGranularityMs)) {
      throw new RttConfigError(`clockGranularityMs must be >= 0, got ${clockGranularityMs}`);
    }
    this.srttMs = 0;
    this.rttvarMs = 0;
    this.sampled = false;
    this.backoffs = 0;
    this.minRtoMs = minRtoMs;
    this.maxRtoMs = maxRtoMs;
    this.granularityMs = clockGranularityMs;
    // RFC 6298 §2.1: until a measurement is made, RTO = the initial value (1 s recommended).
    this.baseRto = this.clamp(initialRtoMs);
    this.currentRto = this.baseRto;
  }

  /** Smoothed RTT in ms (RFC 6298 SRTT); 0 before the first sample. */
  get srtt(): number {
    return this.srttMs;
  }

  /** RTT variation in ms (RFC 6298 RTTVAR); 0 before the first sample. */
  get rttvar(): number {
    return this.rttvarMs;
  }

  /** The current retransmission timeout in ms, including backoff, within [minRto, maxRto]. */
  get rto(): number {
    return this.currentRto;
  }

  /** Whether at least one sample has been taken since construction / `reinitialize`. */
  get hasSample(): boolean {
    return this.sampled;
  }

  /** Number of `backoff()` calls since the last sample or `resetBackoff()`. */
  get backoffCount(): number {
    return this.backoffs;
  }

  /**
   * Feed one RTT measurement R (ms). Negative or non-finite values are ignored (a clock step or a
   * caller bug must not poison the estimate). A valid sample also collapses any backoff
   * (RFC 6298 §5, note after 5.7: the RTO computed from a new measurement replaces the backed-off one).
   */
  sample(rttMs: number): void {
    if (!(rttMs >= 0) || !Number.isFinite(rttMs)) return;
    if (!this.sampled) {
      // RFC 6298 §2.2: SRTT <- R, RTTVAR <- R/2.
      this.srttMs = rttMs;
      this.rttvarMs = rttMs / 2;
      this.sampled = true;
    } else {
      // RFC 6298 §2.3: RTTVAR is updated with the OLD SRTT, then SRTT.
      const err = this.srttMs - rttMs;
      this.rttvarMs = (1 - BETA) * this.rttvarMs + BETA * (err < 0 ? -err : err);
      this.srttMs = (1 - ALPHA) * this.srttMs + ALPHA * rttMs;
    }
    // RFC 6298 §2.2/§2.3: RTO <- SRTT + max(G, K*RTTVAR); §2.4 lower bound; §2.5 upper bound.
    const kv = K * this.rttvarMs;
    this.baseRto = this.clamp(this.srttMs + (kv > this.granularityMs ? kv : this.granularityMs));
    this.backoffs = 0;
    this.currentRto = this.baseRto;
  }

  /** RFC 6298 §5.5: the retransmission timer expired; RTO <- RTO * 2, bounded by the maximum (§2.5). */
  backoff(): void {
    this.backoffs++;
    const doubled = this.currentRto * 2;
    this.currentRto = doubled < this.maxRtoMs ? doubled : this.maxRtoMs;
  }

  /** Drop the backoff and return to the RTO computed from the samples (or the initial RTO). */
  resetBackoff(): void {
    this.backoffs = 0;
    this.currentRto = this.baseRto;
  }

  /**
   * Forget all samples and start over with `initialRtoMs` as the RTO (clamped). Used for
   * RFC 6298 §5.7: after a SYN/SYN-ACK timeout, RTO is re-initialised to 3 s for data transfer.
   */
  reinitialize(initialRtoMs: number): void {
    if (!(initialRtoMs > 0) || !Number.isFinite(initialRtoMs)) {
      throw new RttConfigError(`initialRtoMs must be a positive finite number, got ${initialRtoMs}`);
    }
    this.srttMs = 0;
    this.rttvarMs = 0;
    this.sampled = false;
    this.backoffs = 0;
    this.baseRto = this.clamp(initialRtoMs);
    this.currentRto = this.baseRto;
  }

  private clamp(rto: number): number {
    // RFC 6298 §2.4: round up to the minimum; §2.5: a maximum MAY be placed (≥ 60 s).
    if (rto < this.minRtoMs) return this.minRtoMs;
    if (rto > this.maxRtoMs) return this.maxRtoMs;
    return rto;
  }
}
