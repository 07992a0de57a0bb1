/**
 * The congestion controller interface (RFC 5681 and companions). The connection never branches on
 * the algorithm: it reports what happened and asks for the window. One file per algorithm.
 * All quantities are in bytes; times in milliseconds from the injected clock.
 */
import { CongestionControlError, type CongestionControlErrorCode } from '../../errors.js';

export { CongestionControlError, type CongestionControlErrorCode };

/** How a connection's initial slow start ended (CongestionController.slowStartEnd). */
export const SlowStartEnd = {
  /** Still running: most short and request/response connections never leave it. */
  NONE: 0,
  /** HyStart++'s Conservative Slow Start ran its rounds: the RTT rose (RFC 9406 §4.2). */
  DELAY: 1,
  /** A loss detected by duplicate ACKs or SACK (RFC 5681 §3.2, RFC 6675). */
  LOSS: 2,
  /** A retransmission timeout (RFC 5681 §3.1), the handshake's included. */
  TIMEOUT: 3,
} as const;
export type SlowStartEnd = (typeof SlowStartEnd)[keyof typeof SlowStartEnd];

/** Told once, when the initial slow start ends (the connection: events.slowStartExit). */
export interface SlowStartListener {
  slowStartEnded(how: SlowStartEnd): void;
}

export interface CongestionController {
  /** Algorithm name, for the connection table. */
  readonly name: string;
  /** Current congestion window in bytes. */
  readonly cwnd: number;
  /** Current slow-start threshold in bytes. */
  readonly ssthresh: number;
  /** How the initial slow start ended: NONE until it does, then the first of DELAY, LOSS, TIMEOUT, for good. */
  readonly slowStartEnd: SlowStartEnd;
  /** Told when slowStartEnd leaves NONE (nothing per ACK until then). */
  slowStartListener: SlowStartListener | null;
  /**
   * New data was cumulatively acknowledged (outside recovery): `ackedBytes` of payload, with
   * FlightSize `flightBefore` just before. `srttMs` is the smoothed RTT (RFC 6298 SRTT);
   * `rttSampleMs` the RTT sample this ACK gave (RFC 7323 TSecr or the Karn-timed segment of
   * RFC 6298 §3), −1 when it gave none; `sndUna` and `sndNxt` are SND.UNA and SND.NXT after the
   * ACK (RFC 9406 HyStart++ counts rounds by them; compare them only through seq.ts).
   */
  onAck(ackedBytes: number, flightBefore: number, now: number, srttMs: number, rttSampleMs: number, sndUna: number, sndNxt: number): void;
  /**
   * Loss detected by duplicate ACKs / SACK (RFC 5681 §3.2, RFC 6675): enter fast recovery.
   * `flight` is FlightSize when loss was detected.
   */
  onLoss(flight: number, now: number): void;
  /** Fast recovery ended (RFC 6582 full ACK). */
  onRecoveryEnd(now: number): void;
  /** A retransmission timeout fired (RFC 5681 §3.1 eq. 4; cwnd = 1 SMSS). */
  onRto(flight: number, now: number): void;
  /** The connection was idle longer than an RTO (RFC 5681 §4.1 restart window). */
  onIdleRestart(now: number): void;
}

/** What every algorithm's factory takes besides SMSS and the clock. */
export interface CongestionControlOptions {
  /** RFC 9406 HyStart++ in the initial slow start (src/tcp/cc/hystart.ts); on unless false. */
  hystart?: boolean;
}

export interface CongestionControllerFactory {
  (smss: number, now: number, opts?: CongestionControlOptions): CongestionController;
}


