/**
 * The congestion controller interface (RFC 5681 and companions). The connection never branches on
 * the algorithm: it reports what happened and asks for the window. One file per algorithm.
 * All quantities are in bytes; times in milliseconds from the injected clock.
 */
import { CongestionControlError, type CongestionControlErrorCode } from '../../errors.js';

export { CongestionControlError, type CongestionControlErrorCode };
export interface CongestionController {
  /** Algorithm name, for the connection table. */
  readonly name: string;
  /** Current congestion window in bytes. */
  readonly cwnd: number;
  /** Current slow-start threshold in bytes. */
  readonly ssthresh: number;
  /** New data was cumulatively acknowledged (outside recovery). */
  onAck(ackedBytes: number, flightBefore: number, now: number, rttMs: number): void;
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

export interface CongestionControllerFactory {
  (smss: number, now: number): CongestionController;
}


