/**
 * HyStart++ (RFC 9406): leave the initial slow start when the round-trip delay rises, before the
 * doubling window overshoots the path into a burst of losses.
 *
 * One home for every rule of the algorithm; NewReno and CUBIC (which share the Reno slow start,
 * RFC 9438 §4.10) each hold one `HyStart` and ask it, per ACK, whether slow start ends and how much
 * of the slow-start increase to apply. Pure: it reads no clock (RTTs arrive as samples in ms of the
 * injected clock) and compares sequence numbers only through seq.ts.
 *
 * A controller makes its `HyStart` at the first RTT sample of the initial slow start and drops it
 * when HyStart++ ends (CSS done, a loss, an RTO) or starts over (idle restart): a connection that
 * never samples (no timestamps, no data) or has left slow start holds none (~120 bytes each).
 *
 * What it does (RFC 9406 §4.2):
 * - Rounds. A round ends when SND.UNA passes `windowEnd`, the SND.NXT of the round's start (a
 *   sequence number is acknowledged when SEG.ACK is beyond it); the next round's `windowEnd` is
 *   then the SND.NXT of that moment. The first round starts at the first ACK with a sample.
 * - Per round the minimum of the RTT samples taken on its ACKs (the latest sample of each ACK, not
 *   SRTT; an ACK without a sample counts for nothing). The delay test runs once the round has
 *   N_RTT_SAMPLE samples and both this round's and the last round's minimum exist:
 *   RttThresh = clamp(lastRoundMinRTT / 8, 4 ms, 16 ms); currentRoundMinRTT ≥ lastRoundMinRTT +
 *   RttThresh enters Conservative Slow Start (CSS) with cssBaselineMinRtt = currentRoundMinRTT.
 * - In CSS the slow-start increase is divided by CSS_GROWTH_DIVISOR = 4 (the remainder carried,
 *   so windows stay whole bytes). A round in CSS with N_RTT_SAMPLE samples whose minimum falls
 *   below the baseline shows the exit was spurious: back to slow start, HyStart++ included. After
 *   CSS_ROUNDS = 5 rounds in CSS (the partial round of entry counts) slow start ends: the
 *   controller sets ssthresh = cwnd and continues in congestion avoidance.
 * - A loss (or an ECN mark; ECN is not negotiated by this stack) during slow start or CSS ends
 *   HyStart++: the controller sets ssthresh as it always does and drops its `HyStart`.
 *
 * Choices (RFC 9406 §4.3 leaves constants RECOMMENDED, §4.4 the scope):
 * - The per-ACK limit L stays the controller's RFC 3465 byte-counting limit (2 SMSS, 1 SMSS after
 *   an RTO) rather than §4.3's L = 8 for unpaced senders: this sender does not pace, and the
 *   smaller L only makes slow start burst less; slow start with HyStart++ off is unchanged.
 * - §4.4: only the initial slow start (ssthresh still "arbitrarily high", RFC 5681 §3.1) uses
 *   HyStart++. A loss, a retransmission timeout or the end of CSS ends it for the connection; the
 *   slow starts after an RTO run to the ssthresh found. After an idle restart (RFC 5681 §4.1) while
 *   the initial slow start is still running, HyStart++ starts over with fresh rounds from the next
 *   sample (the §4.4 MAY for the restart window): the delays measured before the idle period say
 *   nothing of the queue now, and a CSS resumed at the restart window would crawl. Once HyStart++
 *   has ended, an idle restart grows by standard slow start up to ssthresh.
 * - Without timestamps the sender times one segment per RTT (Karn, RFC 6298 §3), so no round
 *   reaches N_RTT_SAMPLE samples and HyStart++ never leaves slow start: the RFC's sample floor,
 *   kept rather than lowered.
 * - HyStart++ starts watching once cwnd reaches HYSTART_LOW_WINDOW segments, as Linux's CUBIC
 *   starts its HyStart (`hystart_low_window` in tcp_cubic.c), not at the first ACK: RFC 9406 starts
 *   at the beginning of slow start. Below 16 segments a round adds little to a queue, and most
 *   connections never get there: a short one ends, and a request/response one idles, at its
 *   initial window of 10. Those make no HyStart state and pay nothing per ACK (a HyStart for every
 *   short connection was ~100 B of its allocation, bench/alloc-sites.mjs).
 */
import { seqGt } from '../seq.js';
import { SlowStartEnd, type SlowStartListener } from './controller.js';

/** RFC 9406 §4.3: lower bound of RttThresh, ms. */
export const MIN_RTT_THRESH = 4;
/** RFC 9406 §4.3: upper bound of RttThresh, ms. */
export const MAX_RTT_THRESH = 16;
/** RFC 9406 §4.3: RttThresh = lastRoundMinRTT / MIN_RTT_DIVISOR before the clamp. */
export const MIN_RTT_DIVISOR = 8;
/** RFC 9406 §4.3: RTT samples a round needs before its minimum is compared. */
export const N_RTT_SAMPLE = 8;
/** RFC 9406 §4.3: CSS grows cwnd by 1/CSS_GROWTH_DIVISOR of slow start's increase (MUST be ≥ 2). */
export const CSS_GROWTH_DIVISOR = 4;
/** RFC 9406 §4.3: rounds in CSS before congestion avoidance. */
export const CSS_ROUNDS = 5;

/** cwnd, in segments, from which HyStart++ watches the initial slow start (Linux: hystart_low_window). */
export const HYSTART_LOW_WINDOW = 16;

/**
 * Whether a controller whose HyStart++ may still run (`on`) starts it at this ACK: the ACK gave an
 * RTT sample and cwnd has reached HYSTART_LOW_WINDOW segments.
 */
export function hystartStartsAt(on: boolean, rttSampleMs: number, cwndBytes: number, smss: number): boolean {
  return on && rttSampleMs >= 0 && cwndBytes >= HYSTART_LOW_WINDOW * smss;
}

/** Where HyStart++ is. */
export const HyStartPhase = {
  /** Standard slow start, with the delay test. */
  SLOW_START: 0,
  /** Conservative Slow Start (RFC 9406 §4.2). */
  CSS: 1,
  /** Ended (CSS done, a loss, an RTO) or off: slow start, if any, is the controller's standard one. */
  DONE: 2,
} as const;
export type HyStartPhase = (typeof HyStartPhase)[keyof typeof HyStartPhase];


/** RFC 9406 §4.2: RttThresh = max(MIN_RTT_THRESH, min(lastRoundMinRTT / MIN_RTT_DIVISOR, MAX_RTT_THRESH)). */
export function rttThresh(lastRoundMinRtt: number): number {
  const t = lastRoundMinRtt / MIN_RTT_DIVISOR;
  if (t < MIN_RTT_THRESH) return MIN_RTT_THRESH;
  return t > MAX_RTT_THRESH ? MAX_RTT_THRESH : t;
}

export class HyStart {
  phase: HyStartPhase;
  /** A round is running (`windowEnd` is set): false until the first ACK. */
  private inRound: boolean;
  /** SND.NXT when the current round started; the round ends when SND.UNA passes it. */
  windowEnd: number;
  /** RFC 9406 §4.2 lastRoundMinRTT / currentRoundMinRTT (ms; Infinity: none yet). */
  lastRoundMinRtt: number;
  currentRoundMinRtt: number;
  /** RFC 9406 §4.2 rttSampleCount of the current round. */
  rttSampleCount: number;
  /** RFC 9406 §4.2 cssBaselineMinRtt (Infinity outside CSS). */
  cssBaselineMinRtt: number;
  /** Rounds ended in CSS, the partial round of entry included. */
  cssRounds: number;
  /** The phase whose growth applies to the current ACK (the phase before this ACK's sample). */
  private growthPhase: HyStartPhase;
  /** Bytes of CSS increase not yet applied (below CSS_GROWTH_DIVISOR). */
  private cssCarry: number;

  constructor() {
    this.phase = HyStartPhase.SLOW_START;
    this.inRound = false;
    this.windowEnd = 0;
    this.lastRoundMinRtt = Infinity;
    this.currentRoundMinRtt = Infinity;
    this.rttSampleCount = 0;
    this.cssBaselineMinRtt = Infinity;
    this.cssRounds = 0;
    this.growthPhase = HyStartPhase.SLOW_START;
    this.cssCarry = 0;
  }

  /**
   * An ACK of new data during the initial slow start. `rttSampleMs` is this ACK's RTT sample
   * (−1: none); `sndUna` and `sndNxt` are SND.UNA and SND.NXT after it. Returns true when slow
   * start ends here (CSS_ROUNDS rounds done): the caller sets ssthresh = cwnd and treats this ACK
   * in congestion avoidance (and drops this object). Call `growth()` afterwards for the increase
   * of this ACK.
   */
  onAck(rttSampleMs: number, sndUna: number, sndNxt: number): boolean {
    if (this.phase === HyStartPhase.DONE) return false;
    if (!this.inRound) {
      // RFC 9406 §4.2: windowEnd is initialised to SND.NXT.
      this.inRound = true;
      this.windowEnd = sndNxt;
    } else if (seqGt(sndUna, this.windowEnd)) {
      if (this.phase === HyStartPhase.CSS && ++this.cssRounds >= CSS_ROUNDS) {
        // RFC 9406 §4.2: CSS_ROUNDS rounds are complete: ssthresh = cwnd, congestion avoidance.
        this.phase = HyStartPhase.DONE;
        this.growthPhase = HyStartPhase.DONE;
        return true;
      }
      // RFC 9406 §4.2: a new round (windowEnd = SND.NXT) with fresh minimum and count.
      this.windowEnd = sndNxt;
      this.lastRoundMinRtt = this.currentRoundMinRtt;
      this.currentRoundMinRtt = Infinity;
      this.rttSampleCount = 0;
    }
    // RFC 9406 §4.2 applies the increase of the phase the ACK arrived in, then the tests.
    this.growthPhase = this.phase;
    if (rttSampleMs >= 0) this.sample(rttSampleMs);
    return false;
  }

  /**
   * The part of a slow-start increase of `inc` bytes (min(N, L·SMSS)) that applies to this ACK:
   * all of it in slow start, 1/CSS_GROWTH_DIVISOR in CSS (RFC 9406 §4.2), in whole bytes.
   */
  growth(inc: number): number {
    if (this.growthPhase !== HyStartPhase.CSS) return inc;
    const total = inc + this.cssCarry;
    this.cssCarry = total % CSS_GROWTH_DIVISOR;
    return (total - this.cssCarry) / CSS_GROWTH_DIVISOR;
  }

  /** RFC 9406 §4.2: track the round's minimum and run the test of the phase. */
  private sample(rttMs: number): void {
    if (rttMs < this.currentRoundMinRtt) this.currentRoundMinRtt = rttMs;
    this.rttSampleCount++;
    if (this.rttSampleCount < N_RTT_SAMPLE) return;
    if (this.phase === HyStartPhase.SLOW_START) {
      // A round's minimum exists once it has a sample; the last round's may not (Infinity).
      const last = this.lastRoundMinRtt;
      if (last !== Infinity && this.currentRoundMinRtt >= last + rttThresh(last)) {
        // The delay rose: exit slow start into CSS.
        this.cssBaselineMinRtt = this.currentRoundMinRtt;
        this.cssRounds = 0;
        this.phase = HyStartPhase.CSS;
      }
    } else if (this.currentRoundMinRtt < this.cssBaselineMinRtt) {
      // The delay fell back below the baseline: the exit was spurious; resume slow start.
      this.cssBaselineMinRtt = Infinity;
      this.cssRounds = 0;
      this.cssCarry = 0;
      this.phase = HyStartPhase.SLOW_START;
    }
  }
}

/**
 * What CUBIC and NewReno share of HyStart++ (both extend it; their slow start is the same Reno
 * one): whether it may still run and its state while it does. Fields, not an object of their own,
 * so a controller that never reaches HYSTART_LOW_WINDOW allocates nothing for it.
 */
export abstract class HyStartHolder {
  /** RFC 9406 HyStart++ may still run: configured on, and the initial slow start has not ended. */
  protected hystartOn: boolean;
  /** HyStart++'s state: made at its first RTT sample from HYSTART_LOW_WINDOW on, dropped when it ends or restarts. */
  protected hs: HyStart | null;
  /** CongestionController.slowStartEnd: set by the first endHyStart, whether HyStart++ was on or not. */
  slowStartEnd: SlowStartEnd;
  /** CongestionController.slowStartListener. */
  slowStartListener: SlowStartListener | null;

  constructor(on: boolean) {
    this.hystartOn = on;
    this.hs = null;
    this.slowStartEnd = SlowStartEnd.NONE;
    this.slowStartListener = null;
  }

  /** HyStart++'s state while it runs and has sampled (null otherwise). */
  get hystart(): HyStart | null {
    return this.hs;
  }

  /** Where HyStart++ is: its state's phase; without one, slow start while it may still run, else DONE. */
  get hystartPhase(): HyStartPhase {
    if (this.hs !== null) return this.hs.phase;
    return this.hystartOn ? HyStartPhase.SLOW_START : HyStartPhase.DONE;
  }

  /**
   * RFC 9406 §4.2 / §4.4: HyStart++ is over for this connection, because the initial slow start
   * ended (`how`: the end of CSS, a loss, a timeout). Only the first end is the initial slow
   * start's; later losses and timeouts leave `slowStartEnd` as it is.
   */
  protected endHyStart(how: SlowStartEnd): void {
    this.hystartOn = false;
    this.hs = null;
    if (this.slowStartEnd !== SlowStartEnd.NONE) return;
    this.slowStartEnd = how;
    this.slowStartListener?.slowStartEnded(how);
  }
}
