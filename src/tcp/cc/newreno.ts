/**
 * NewReno congestion control: RFC 5681 slow start and congestion avoidance with appropriate byte
 * counting (RFC 3465), the RFC 5681 §3.2 / RFC 6582 window reduction on loss, the RFC 5681 §3.1
 * loss window after a retransmission timeout, and the RFC 5681 §4.1 restart window after idle.
 *
 * Division of labour with the sender (src/tcp/snd.ts):
 * - During loss recovery the sender runs RFC 6675 (SACK) or RFC 6582 (NewReno) and computes what
 *   it may send from `pipe`/FlightSize against `cwnd`. The "+3 SMSS" inflation and the
 *   per-dup-ACK inflation of RFC 5681 §3.2 steps 3–4 are artefacts of counting dup ACKs; they are
 *   the sender's business (RFC 6675 replaces them with `pipe`). So `onLoss` leaves
 *   cwnd = ssthresh and `onAck` is not called until recovery ends.
 * - Karn's rule and RTT sampling live in rtt.ts / the connection.
 *
 * Windows are bytes. The helpers exported here (initial window, cwnd-limited test, slow start) are
 * shared with CUBIC, which uses the Reno slow start (RFC 9438 §4.10).
 *
 * The initial slow start runs HyStart++ (RFC 9406, hystart.ts) unless `{ hystart: false }`: it only
 * ever makes slow start end earlier or grow slower, never faster, and the problem it addresses (a
 * doubling window overshooting into a burst of losses) is that of the slow start both algorithms
 * share here, so NewReno has it on by default too; Linux has it for CUBIC only because its HyStart
 * lives in tcp_cubic.c.
 */
import { CongestionControlError, SlowStartEnd, type CongestionControlOptions, type CongestionController } from './controller.js';
import { HyStart, HyStartHolder, hystartStartsAt } from './hystart.js';

/**
 * The initial ssthresh: "arbitrarily high" (RFC 5681 §3.1). A large finite value (Linux's
 * TCP_INFINITE_SSTHRESH) rather than Infinity, so it exports cleanly as a gauge.
 */
export const INITIAL_SSTHRESH = 0x7fffffff;

/**
 * Initial window (bytes). We choose RFC 6928 IW10: min(10*SMSS, max(2*SMSS, 14600)), as Linux
 * does; RFC 5681 §3.1's IW (2–4 segments) is the conservative alternative. The same value is the
 * IW in the RFC 5681 §4.1 restart window RW = min(IW, cwnd).
 */
export function initialWindow(smss: number): number {
  const floor = 2 * smss > 14600 ? 2 * smss : 14600;
  return 10 * smss < floor ? 10 * smss : floor;
}

/**
 * Whether the sender was limited by cwnd (not by the application or the receive window) when an
 * ACK arrived, so that growing cwnd is justified (RFC 7661 §4: cwnd is only validated, i.e. grown,
 * while it is being used; RFC 9438 §5.8 for CUBIC).
 * - In slow start the window doubles per RTT, so half of cwnd in flight is enough (as Linux does).
 * - In congestion avoidance, flight within one SMSS of cwnd counts as full: the sender cannot
 *   fill a sub-segment remainder.
 * `flightBefore` is FlightSize just before this ACK arrived, including the bytes it acknowledges.
 */
export function cwndLimited(cwnd: number, ssthresh: number, smss: number, flightBefore: number): boolean {
  if (cwnd < ssthresh) return 2 * flightBefore >= cwnd;
  return flightBefore + smss >= cwnd;
}

/**
 * RFC 5681 eq. 4: ssthresh = max(FlightSize / 2, 2*SMSS), in whole bytes.
 */
export function halveFlight(flight: number, smss: number): number {
  const half = Math.floor(flight / 2);
  return half > 2 * smss ? half : 2 * smss;
}

export function validateSmss(smss: number): void {
  if (!Number.isInteger(smss) || smss <= 0) {
    throw new CongestionControlError('ERR_TCP_CC_CONFIG', `SMSS must be a positive integer, got ${smss}`);
  }
}

export class NewReno extends HyStartHolder implements CongestionController {
  readonly name = 'newreno';
  readonly smss: number;
  /** The initial (and restart) window in bytes. */
  readonly iw: number;
  private cwndBytes: number;
  private ssthreshBytes: number;
  /** RFC 3465 §2.1: bytes acknowledged in congestion avoidance since cwnd last grew. */
  private caBytesAcked: number;
  /**
   * An RTO happened and no new data has been acknowledged since, so a further RTO is a backoff
   * of the same retransmission (RFC 5681 §3.1: ssthresh is only reduced on the first one).
   */
  private rtoOutstanding: boolean;
  /** In the slow start that follows an RTO (RFC 3465: byte-counting limit L = 1 SMSS). */
  private slowStartAfterRto: boolean;

  constructor(smss: number, _now: number, opts?: CongestionControlOptions) {
    validateSmss(smss);
    super(opts?.hystart !== false);
    this.smss = smss;
    this.iw = initialWindow(smss);
    this.cwndBytes = this.iw;
    this.ssthreshBytes = INITIAL_SSTHRESH;
    this.caBytesAcked = 0;
    this.rtoOutstanding = false;
    this.slowStartAfterRto = false;
  }

  get cwnd(): number {
    return this.cwndBytes;
  }

  get ssthresh(): number {
    return this.ssthreshBytes;
  }

  /** True while cwnd < ssthresh (RFC 5681 §3.1: slow start; at equality either may be used, we use CA). */
  get inSlowStart(): boolean {
    return this.cwndBytes < this.ssthreshBytes;
  }

  onAck(
    ackedBytes: number,
    flightBefore: number,
    _now: number,
    _srttMs: number,
    rttSampleMs: number,
    sndUna: number,
    sndNxt: number,
  ): void {
    if (!(ackedBytes > 0)) return;
    this.rtoOutstanding = false;
    let hs = this.hs;
    if (hs === null && hystartStartsAt(this.hystartOn, rttSampleMs, this.cwndBytes, this.smss)) this.hs = hs = new HyStart();
    // RFC 9406 §4.2: rounds and RTT samples count whether or not this ACK may grow cwnd.
    if (hs !== null && hs.onAck(rttSampleMs, sndUna, sndNxt)) {
      this.ssthreshBytes = this.cwndBytes;
      this.endHyStart(SlowStartEnd.DELAY);
    }
    if (!cwndLimited(this.cwndBytes, this.ssthreshBytes, this.smss, flightBefore)) return;
    if (this.cwndBytes < this.ssthreshBytes) {
      // RFC 5681 §3.1 eq. 2 with RFC 3465 §2.2 byte counting: cwnd += min(N, L), L = 2*SMSS
      // (L = 1*SMSS in the slow start following an RTO, RFC 3465); a quarter of it in HyStart++'s
      // Conservative Slow Start (RFC 9406 §4.2).
      const limit = this.slowStartAfterRto ? this.smss : 2 * this.smss;
      const inc = ackedBytes < limit ? ackedBytes : limit;
      this.cwndBytes += hs === null ? inc : hs.growth(inc);
      if (this.cwndBytes >= this.ssthreshBytes) this.slowStartAfterRto = false;
      return;
    }
    // RFC 5681 §3.1 congestion avoidance with RFC 3465 §2.1 byte counting: cwnd grows by one
    // SMSS once a full cwnd of bytes has been acknowledged, i.e. one SMSS per RTT.
    this.caBytesAcked += ackedBytes;
    if (this.caBytesAcked >= this.cwndBytes) {
      this.caBytesAcked -= this.cwndBytes;
      this.cwndBytes += this.smss;
    }
  }

  onLoss(flight: number, _now: number): void {
    // RFC 5681 §3.2 step 2 (and RFC 6582 §3.2 step 2, RFC 6675 §5 step 4.2): ssthresh per eq. 4,
    // cwnd = ssthresh. The +3*SMSS of RFC 5681 step 3 is not applied: the RFC 6675 sender uses pipe.
    this.ssthreshBytes = halveFlight(flight, this.smss);
    this.cwndBytes = this.ssthreshBytes;
    this.caBytesAcked = 0;
    this.slowStartAfterRto = false;
    // RFC 9406 §4.2: a loss ends slow start and CSS; ssthresh is this algorithm's.
    this.endHyStart(SlowStartEnd.LOSS);
  }

  onRecoveryEnd(_now: number): void {
    // RFC 6582 §3.2 step 3 option (2): on the full ACK, cwnd = ssthresh ("deflating" the window).
    // cwnd already equals ssthresh here because we never inflate; restate it in case an RTO or a
    // restart changed one of them during recovery.
    if (this.cwndBytes > this.ssthreshBytes) this.cwndBytes = this.ssthreshBytes;
    this.caBytesAcked = 0;
  }

  onRto(flight: number, _now: number): void {
    // RFC 5681 §3.1: on the first timeout of a segment ssthresh = max(FlightSize/2, 2*SMSS)
    // (eq. 4); later backoffs of the same retransmission keep it.
    if (!this.rtoOutstanding) this.ssthreshBytes = halveFlight(flight, this.smss);
    this.rtoOutstanding = true;
    // RFC 5681 §3.1: cwnd MUST be no more than the loss window LW = 1 full-sized segment.
    this.cwndBytes = this.smss;
    this.caBytesAcked = 0;
    this.slowStartAfterRto = true;
    // RFC 9406 §4.4: the slow start after a timeout is a standard one.
    this.endHyStart(SlowStartEnd.TIMEOUT);
  }

  onIdleRestart(_now: number): void {
    // RFC 5681 §4.1: after an idle period longer than RTO, cwnd = RW = min(IW, cwnd).
    if (this.iw < this.cwndBytes) this.cwndBytes = this.iw;
    this.caBytesAcked = 0;
    // RFC 9406 §4.4: HyStart++ starts over at the next sample if the initial slow start is still
    // running (hystart.ts).
    this.hs = null;
  }
}

/** The NewReno factory (a `CongestionControllerFactory`). */
export function newReno(smss: number, now: number, opts?: CongestionControlOptions): NewReno {
  return new NewReno(smss, now, opts);
}
