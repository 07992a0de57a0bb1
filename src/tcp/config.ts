/**
 * Tunables of the userspace TCP stack. Times are milliseconds of the injected clock.
 * Defaults follow the RFCs and Linux where the RFCs leave a choice.
 */
import type { CongestionControllerFactory } from './cc/controller.js';

export interface TcpConfig {
  /** Maximum segment lifetime; TIME-WAIT lasts 2×MSL (RFC 9293 §3.4.2; Linux uses 60 s total). */
  mslMs: number;
  /** Our MSS to advertise (RFC 9293 §3.7.1), from the device MTU. */
  mss: number;
  /** Receive buffer per connection in bytes: the most we advertise and the most we buffer. */
  rcvBufBytes: number;
  /** Send buffer per connection in bytes: `write()` accepts no more than this is unacknowledged. */
  sndBufBytes: number;
  /** Our window scale shift (RFC 7323 §2.3), chosen so rcvBufBytes fits. */
  wscale: number;
  /** Offer/accept SACK (RFC 2018). */
  sack: boolean;
  /** Offer/accept timestamps (RFC 7323). */
  timestamps: boolean;
  /** Initial RTO (RFC 6298 §2.1: 1 s). */
  initialRtoMs: number;
  /** Lower bound on RTO (RFC 6298 §2.4 says 1 s; Linux uses 200 ms). */
  minRtoMs: number;
  /** Upper bound on RTO (RFC 6298 §2.5: at least 60 s). */
  maxRtoMs: number;
  /** Retransmissions of one segment before the connection is reset (RFC 9293 §3.8.3 R2). */
  maxRetries: number;
  /** Retransmissions of our SYN-ACK before the half-open connection is dropped. */
  maxSynAckRetries: number;
  /** Delayed ACK timeout (RFC 9293 §3.8.6.3 MUST be < 0.5 s). */
  delayedAckMs: number;
  /** Keepalive idle time before the first probe; 0 disables keepalives (RFC 9293 §3.8.4). */
  keepaliveIdleMs: number;
  keepaliveIntervalMs: number;
  keepaliveProbes: number;
  /** RFC 5961 §7: challenge ACKs allowed per second per connection. */
  challengeAckLimitPerSec: number;
  /** Congestion control algorithm. */
  congestionControl: CongestionControllerFactory;
  /**
   * RFC 9406 HyStart++ in the initial slow start of either algorithm (src/tcp/cc/hystart.ts); on
   * unless false. Off gives the plain RFC 5681 / RFC 3465 slow start.
   */
  hystart?: boolean;
  /** Largest segment (payload bytes) handed to the device when it takes TSO/GSO; 0 = MSS only. */
  gsoMaxBytes: number;
  /**
   * Header prediction for in-order segments on ESTABLISHED connections (TcpConn.predicted); on
   * unless false. Off only where a test compares it with the general path (the result must be
   * the same segment for segment).
   */
  headerPrediction?: boolean;
}
