/**
 * The persist timer: zero-window probing (RFC 9293 §3.8.6.1). Plain numbers in, a verdict or a
 * deadline out; the connection owns the timer (ConnTimers, kind PERSIST), the backoff and the
 * count of unanswered probes, and the Sender builds the probe (one octet beyond the window, or the
 * FIN).
 *
 * - §3.8.6.1: "The sending TCP peer must regularly transmit at least one octet of new data (if
 *   available), or retransmit to the receiving TCP peer even if the send window is zero":
 *   when something waits to be sent, nothing is in flight (no retransmission timer to elicit an
 *   ACK) and the window does not let it out (zero, or too small for sender SWS avoidance), the
 *   persist timer runs.
 * - Its interval starts at the RTO and doubles with each probe (exponential backoff, as RFC 1122
 *   §4.2.2.17 recommends), capped at cfg.maxRtoMs.
 * - §3.8.6.1 forbids giving up while the peer keeps acknowledging probes (with a zero window);
 *   probes it never answers count like retransmissions: after cfg.maxRetries the connection is
 *   aborted ('retransmit_timeout'). Any acceptable ACK resets the count.
 * - Persist ends when an ACK opens the window (a new non-zero window) or nothing is left to send
 *   (the probe took the last of it, e.g. the FIN); the backoff starts over.
 */

/** RFC 9293 §3.8.6.1: data (or a FIN) waits, nothing is in flight: the window holds it back. */
export function persistNeeded(hasPending: boolean, flight: number): boolean {
  return hasPending && flight === 0;
}

/** The persist interval after `backoff` probes: RTO × 2^backoff, at most `maxRtoMs`. */
export function persistInterval(rto: number, backoff: number, maxRtoMs: number): number {
  const t = rto * 2 ** backoff;
  return t < maxRtoMs ? t : maxRtoMs;
}

/**
 * What the persist timer does when it fires:
 * - 'idle': nothing is left to send: persist is over (back to the idle timer);
 * - 'give_up': `maxRetries` probes went unanswered: abort ('retransmit_timeout');
 * - 'probe': send a probe, count it, back off and re-arm.
 */
export type PersistVerdict = 'idle' | 'give_up' | 'probe';

export function persistTimeout(hasPending: boolean, probesUnanswered: number, maxRetries: number): PersistVerdict {
  if (!hasPending) return 'idle';
  if (probesUnanswered >= maxRetries) return 'give_up';
  return 'probe';
}

/**
 * After an acceptable ACK while the persist timer runs: does persist end? The window opened (it
 * is non-zero and not the one we had: a repeated small window keeps probing), or nothing is left
 * to send.
 */
export function persistEndsOnAck(window: number, windowBefore: number, hasPending: boolean): boolean {
  return (window > 0 && window !== windowBefore) || !hasPending;
}
