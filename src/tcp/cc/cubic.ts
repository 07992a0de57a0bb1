/**
 * CUBIC congestion control (RFC 9438).
 *
 * Windows are kept in bytes as floating point (the getter floors them); the CUBIC formulas work in
 * segments of SMSS (RFC 9438 §4.1), converted at the edges. Times are milliseconds of the injected
 * clock, converted to seconds for the formulas, whose constant C is in segments/second³.
 *
 * Choices where RFC 9438 leaves them open:
 * - Slow start is HyStart++ (RFC 9406, hystart.ts; RFC 9438 §4.10: CUBIC SHOULD use it, and Linux
 *   runs its HyStart for CUBIC by default) over the Reno slow start shared with NewReno (RFC 5681
 *   with RFC 3465 byte counting, L = 2 SMSS), in the initial slow start only: a rise in the
 *   round's minimum RTT moves it to Conservative Slow Start, which after 5 rounds ends slow start
 *   with ssthresh = cwnd. `{ hystart: false }` leaves the plain Reno slow start (§4.10 MAY).
 *   Leaving slow start through HyStart++ is no congestion event: W_max is still unset, so the first
 *   epoch starts from cwnd with W_max = cwnd and K = 0 (RFC 9438 §4.10, see startEpoch).
 * - The multiplicative decrease uses FlightSize (RFC 9438 §4.6 Figure 5) and cwnd only grows while
 *   the sender is cwnd-limited (RFC 7661 / RFC 9438 §5.8), so FlightSize tracks cwnd.
 * - Time during which the sender was application-limited is cut out of t by moving t_epoch
 *   forward (RFC 9438 §4.2: t MUST NOT include such periods).
 * - In the Reno-friendly region cwnd is set to W_est but never lowered by an ACK.
 * - Fast convergence (RFC 9438 §4.7, SHOULD) is on by default; `cubic(smss, now, { fastConvergence:
 *   false })` turns it off for single-flow environments.
 * - Spurious-loss undo (§4.9) is not implemented: the controller interface has no undo signal.
 */
import { SlowStartEnd, type CongestionControlOptions, type CongestionController } from './controller.js';
import { HyStart, HyStartHolder, hystartStartsAt } from './hystart.js';
import { INITIAL_SSTHRESH, cwndLimited, initialWindow, validateSmss } from './newreno.js';

/** RFC 9438 §5: C = 0.4 segments/s³. */
export const CUBIC_C = 0.4;
/** RFC 9438 §4.6: β_cubic = 0.7. */
export const CUBIC_BETA = 0.7;
/** RFC 9438 §4.3: α_cubic = 3 (1 − β_cubic) / (1 + β_cubic). */
export const CUBIC_ALPHA = (3 * (1 - CUBIC_BETA)) / (1 + CUBIC_BETA);

export interface CubicOptions extends CongestionControlOptions {
  /** RFC 9438 §4.7 fast convergence; default true. */
  fastConvergence?: boolean;
}

export class Cubic extends HyStartHolder implements CongestionController {
  readonly name = 'cubic';
  readonly smss: number;
  /** The initial (and restart) window in bytes (RFC 6928 IW10, see newreno.ts). */
  readonly iw: number;
  readonly fastConvergence: boolean;

  private cwndBytes: number;
  private ssthreshBytes: number;
  /** W_max in segments; 0 until the first congestion event. */
  private wMax: number;
  /** cwnd_prior in segments (RFC 9438 §4.1.2); 0 until ssthresh is first set. */
  private cwndPrior: number;
  /** K in seconds (RFC 9438 Figure 2). */
  private k: number;
  /** t_epoch in ms, or -1 while no congestion-avoidance stage is running. */
  private epochStart: number;
  /** W_est in segments (RFC 9438 §4.3). */
  private wEst: number;
  /** Time of the previous onAck, for cutting application-limited time out of t. */
  private lastAckAt: number;
  /** RFC 9438 §4.8: the next congestion-avoidance stage is the first after a timeout. */
  private firstStageAfterRto: boolean;
  /** An RTO happened and no new data has been ACKed since (RFC 5681 §3.1, see newreno.ts). */
  private rtoOutstanding: boolean;
  /** In the slow start that follows an RTO (RFC 3465: L = 1 SMSS). */
  private slowStartAfterRto: boolean;

  constructor(smss: number, now: number, opts?: CubicOptions) {
    validateSmss(smss);
    super(opts?.hystart !== false);
    this.smss = smss;
    this.iw = initialWindow(smss);
    this.fastConvergence = opts?.fastConvergence ?? true;
    this.cwndBytes = this.iw;
    this.ssthreshBytes = INITIAL_SSTHRESH;
    this.wMax = 0;
    this.cwndPrior = 0;
    this.k = 0;
    this.epochStart = -1;
    this.wEst = 0;
    this.lastAckAt = now;
    this.firstStageAfterRto = false;
    this.rtoOutstanding = false;
    this.slowStartAfterRto = false;
  }

  get cwnd(): number {
    return Math.floor(this.cwndBytes);
  }

  get ssthresh(): number {
    return this.ssthreshBytes;
  }

  get inSlowStart(): boolean {
    return this.cwndBytes < this.ssthreshBytes;
  }

  /** W_max in segments (0 before the first congestion event). */
  get wMaxSegments(): number {
    return this.wMax;
  }

  /** K in seconds of the current congestion-avoidance stage. */
  get kSeconds(): number {
    return this.k;
  }

  /** W_est in segments of the current congestion-avoidance stage. */
  get wEstSegments(): number {
    return this.wEst;
  }

  /** t_epoch in ms, or -1 when no congestion-avoidance stage is running. */
  get epochStartMs(): number {
    return this.epochStart;
  }

  /** RFC 9438 Figure 1: W_cubic(t) = C (t − K)³ + W_max, segments, t in seconds. */
  wCubic(tSeconds: number): number {
    const d = tSeconds - this.k;
    return CUBIC_C * d * d * d + this.wMax;
  }

  onAck(
    ackedBytes: number,
    flightBefore: number,
    now: number,
    srttMs: number,
    rttSampleMs: number,
    sndUna: number,
    sndNxt: number,
  ): void {
    if (!(ackedBytes > 0)) return;
    this.rtoOutstanding = false;
    let hs = this.hs;
    if (hs === null && hystartStartsAt(this.hystartOn, rttSampleMs, this.cwndBytes, this.smss)) this.hs = hs = new HyStart();
    // RFC 9406 §4.2: rounds and RTT samples count whether or not this ACK may grow cwnd; at the end
    // of CSS, ssthresh = cwnd and this ACK is the first of congestion avoidance.
    if (hs !== null && hs.onAck(rttSampleMs, sndUna, sndNxt)) {
      this.ssthreshBytes = this.cwnd;
      this.endHyStart(SlowStartEnd.DELAY);
    }
    if (!cwndLimited(this.cwndBytes, this.ssthreshBytes, this.smss, flightBefore)) {
      // RFC 9438 §4.2 / §5.8: application-limited time does not count towards t.
      if (this.epochStart >= 0) this.epochStart += now - this.lastAckAt;
      this.lastAckAt = now;
      return;
    }
    this.lastAckAt = now;

    if (this.cwndBytes < this.ssthreshBytes) {
      // RFC 9438 §4.10: Reno slow start (RFC 5681 §3.1, RFC 3465 §2.2 L = 2 SMSS; 1 SMSS after RTO),
      // a quarter of it in HyStart++'s Conservative Slow Start (RFC 9406 §4.2).
      const limit = this.slowStartAfterRto ? this.smss : 2 * this.smss;
      const inc = ackedBytes < limit ? ackedBytes : limit;
      this.cwndBytes += hs === null ? inc : hs.growth(inc);
      if (this.cwndBytes >= this.ssthreshBytes) this.slowStartAfterRto = false;
      return;
    }

    let w = this.cwndBytes / this.smss;
    if (this.epochStart < 0) this.startEpoch(now, w);

    const segmentsAcked = ackedBytes / this.smss;
    const t = (now - this.epochStart) / 1000;

    // RFC 9438 §4.3 Figure 4, with α_cubic = 1 once W_est ≥ cwnd_prior.
    const alpha = this.wEst >= this.cwndPrior ? 1 : CUBIC_ALPHA;
    this.wEst += (alpha * segmentsAcked) / w;

    if (this.wCubic(t) < this.wEst) {
      // RFC 9438 §4.3: Reno-friendly region, cwnd = W_est (never lowered by an ACK).
      if (this.wEst > w) w = this.wEst;
    } else {
      // RFC 9438 §4.2: target = W_cubic(t + RTT) bounded to [cwnd, 1.5 cwnd]; §4.4 concave and
      // §4.5 convex regions both add (target − cwnd) / cwnd per ACKed segment.
      let target = this.wCubic(t + srttMs / 1000);
      if (target < w) target = w;
      else if (target > 1.5 * w) target = 1.5 * w;
      const grown = w + ((target - w) / w) * segmentsAcked;
      w = grown < target ? grown : target;
    }
    this.cwndBytes = w * this.smss;
  }

  onLoss(flight: number, _now: number): void {
    const w = this.cwndBytes / this.smss;
    // RFC 9438 §4.7: fast convergence lowers W_max when the saturation point is dropping.
    this.wMax = this.fastConvergence && w < this.wMax ? (w * (1 + CUBIC_BETA)) / 2 : w;
    // RFC 9438 §4.6 Figure 5: cwnd_prior = cwnd; ssthresh = max(flight_size × β_cubic, 2 SMSS);
    // cwnd = max(ssthresh, 2 SMSS) on loss.
    this.cwndPrior = w;
    this.ssthreshBytes = this.betaFlight(flight);
    this.cwndBytes = this.ssthreshBytes;
    this.epochStart = -1;
    this.firstStageAfterRto = false;
    this.slowStartAfterRto = false;
    // RFC 9406 §4.2: a loss ends slow start and CSS; ssthresh is CUBIC's (above).
    this.endHyStart(SlowStartEnd.LOSS);
  }

  onRecoveryEnd(_now: number): void {
    // RFC 6582 §3.2 step 3 option (2): cwnd = ssthresh; the next ACK starts a new epoch.
    if (this.cwndBytes > this.ssthreshBytes) this.cwndBytes = this.ssthreshBytes;
    this.epochStart = -1;
  }

  onRto(flight: number, _now: number): void {
    // RFC 9438 §4.8: cwnd as Reno (RFC 5681 §3.1: LW = 1 SMSS), ssthresh with β_cubic (§4.6),
    // reduced only on the first timeout of a retransmission (RFC 5681 §3.1).
    if (!this.rtoOutstanding) {
      this.cwndPrior = this.cwndBytes / this.smss;
      this.ssthreshBytes = this.betaFlight(flight);
    }
    this.rtoOutstanding = true;
    this.cwndBytes = this.smss;
    this.epochStart = -1;
    this.firstStageAfterRto = true;
    this.slowStartAfterRto = true;
    // RFC 9406 §4.4: the slow start after a timeout is a standard one.
    this.endHyStart(SlowStartEnd.TIMEOUT);
  }

  onIdleRestart(_now: number): void {
    // RFC 5681 §4.1: restart window min(IW, cwnd). The idle time must not count towards t
    // (RFC 9438 §5.8), so the next congestion-avoidance ACK starts a fresh epoch that climbs
    // from the restart window back towards the unchanged W_max.
    if (this.iw < this.cwndBytes) this.cwndBytes = this.iw;
    this.epochStart = -1;
    // RFC 9406 §4.4: HyStart++ starts over at the next sample if the initial slow start is still
    // running (hystart.ts).
    this.hs = null;
  }

  /** Begin a congestion-avoidance stage at `now` with cwnd_epoch = `w` segments. */
  private startEpoch(now: number, w: number): void {
    this.epochStart = now;
    this.lastAckAt = now;
    // RFC 9438 §4.3: W_est starts at cwnd_epoch.
    this.wEst = w;
    if (this.firstStageAfterRto || this.wMax <= w) {
      // RFC 9438 §4.8 (first stage after a timeout) and §4.10 (no W_max yet, or cwnd already
      // past it): K = 0 and W_max = cwnd_epoch, so growth is convex from here.
      this.wMax = w;
      this.k = 0;
      if (this.cwndPrior === 0) this.cwndPrior = w;
    } else {
      // RFC 9438 Figure 2: K = ∛((W_max − cwnd_epoch) / C).
      this.k = Math.cbrt((this.wMax - w) / CUBIC_C);
    }
    this.firstStageAfterRto = false;
  }

  private betaFlight(flight: number): number {
    const reduced = Math.floor(flight * CUBIC_BETA);
    return reduced > 2 * this.smss ? reduced : 2 * this.smss;
  }
}

/** The CUBIC factory (a `CongestionControllerFactory`; `opts` is optional). */
export function cubic(smss: number, now: number, opts?: CubicOptions): Cubic {
  return new Cubic(smss, now, opts);
}
