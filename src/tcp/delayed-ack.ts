/**
 * Delayed ACKs: when an ACK we owe goes out at once and when it may wait. Plain numbers in, a
 * deadline (or ACK_NOW) out; the connection keeps the timer (ConnTimers.delackAt) and the count
 * of bytes received since its last ACK.
 *
 * - RFC 9293 §3.8.6.3 / RFC 1122 §4.2.3.2: an ACK may be delayed, but less than 0.5 s (ours is
 *   cfg.delayedAckMs), and "in a stream of full-sized segments there SHOULD be an ACK for at least
 *   every second segment".
 * - RFC 5681 §4.2: the same: an ACK for at least every second full-sized segment (counted in
 *   bytes: 2 × the receive MSS), and within the delay otherwise.
 * - The delay runs from the first unacknowledged event: a deadline already set is never pushed
 *   back by later segments.
 * - A window update (RFC 9293 §3.8.6.2.2) goes at once when what the peer may still send is under
 *   two full segments (it may be stalled on the window, and two segments are what would draw our
 *   ACK anyway); otherwise it waits for the delayed ACK or rides on our next segment.
 * Segments that must be ACKed at once whatever this says (out of order, filling a hole, duplicates,
 * RFC 5681 §4.2; a FIN once our own FIN is out) are the caller's decision.
 */

/** The verdict "send the ACK now" (never a deadline: `now` is finite). */
export const ACK_NOW = -Infinity;

/**
 * When the ACK we owe must go: ACK_NOW, or the delayed-ACK deadline (the one already armed, else
 * `now + delayedAckMs`).
 * @param unackedBytes payload received in order since our last ACK (0 for a FIN or a window update)
 * @param peerRoom what the peer may still send in the window we advertise (Infinity when the ACK
 *   is not a window update)
 * @param mss our receive MSS
 * @param delackAt the armed deadline, Infinity when none
 */
export function delayedAckAt(
  unackedBytes: number,
  peerRoom: number,
  mss: number,
  delackAt: number,
  now: number,
  delayedAckMs: number,
): number {
  if (unackedBytes >= 2 * mss || peerRoom < 2 * mss) return ACK_NOW;
  return delackAt !== Infinity ? delackAt : now + delayedAckMs;
}
