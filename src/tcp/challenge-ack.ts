/**
 * RFC 5961 (blind in-window attacks): when a segment in a synchronized state is answered with a
 * challenge ACK instead of being acted on, and the rate budget those ACKs are sent under. Plain
 * numbers in, a verdict out; the connection sends the ACK (<SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>)
 * and drops the segment.
 *
 * - §3.2 (RST): an RST that passed the window check resets the connection only when
 *   SEG.SEQ = RCV.NXT exactly; any other in-window RST draws a challenge ACK. (Outside the window
 *   it is dropped silently: the caller's sequence check.)
 * - §4.2 (SYN): a SYN in a synchronized state, in the window or not, draws a challenge ACK and
 *   changes nothing. The one exception here: a retransmission of the peer's SYN while our SYN-ACK
 *   is unacknowledged (SYN-RECEIVED; our SYN-ACK was probably lost) is answered with the SYN-ACK
 *   again (RFC 9293 §3.8.1), under the same budget.
 * - §5.2 (ACK): SEG.ACK above SND.NXT or below SND.UNA − MAX.SND.WND draws a challenge ACK.
 * - §7: at most cfg.challengeAckLimitPerSec challenge ACKs per second per connection; beyond the
 *   budget the segment is dropped without an answer (drop reason 'challenge_ack_limit').
 */
import { TcpFlag } from '../wire/segment.js';
import { seqAdd, seqGeq, seqGt } from './seq.js';

/** RFC 5961 §3.2: what an RST that passed the window check does. */
export type RstVerdict = 'reset' | 'challenge';

export function inWindowRstVerdict(segSeq: number, rcvNxt: number): RstVerdict {
  return segSeq === rcvNxt ? 'reset' : 'challenge';
}

/**
 * A retransmission of the SYN that opened this connection (no ACK, no RST, SEG.SEQ = IRS) while
 * our SYN-ACK is still unacknowledged: resend the SYN-ACK rather than challenge (RFC 9293 §3.8.1).
 */
export function isRetransmittedSyn(flags: number, segSeq: number, irs: number, synAcked: boolean): boolean {
  return (flags & (TcpFlag.SYN | TcpFlag.ACK | TcpFlag.RST)) === TcpFlag.SYN && !synAcked && segSeq === irs;
}

/**
 * RFC 5961 §5.2: SND.UNA − MAX.SND.WND ≤ SEG.ACK ≤ SND.NXT (SND.NXT being the highest sequence
 * number sent, SND.MAX). The lower bound uses at least one 64 KiB window before the peer has
 * offered anything larger.
 */
export function ackAcceptable(ack: number, una: number, sndMax: number, maxSndWnd: number): boolean {
  if (seqGt(ack, sndMax)) return false;
  const span = maxSndWnd > 0xffff ? maxSndWnd : 0xffff;
  return seqGeq(ack, seqAdd(una, -span));
}

/** RFC 5961 §7: challenge ACKs sent in the current one-second window, one per connection. */
export class ChallengeAckBudget {
  /** When the current one-second window began (ms). */
  windowStart = -Infinity;
  /** Challenge ACKs taken in it. */
  count = 0;

  /** Take one challenge ACK from this second's budget of `limitPerSec`; false if exhausted. */
  take(now: number, limitPerSec: number): boolean {
    if (now - this.windowStart >= 1000) {
      this.windowStart = now;
      this.count = 0;
    }
    if (this.count >= limitPerSec) return false;
    this.count++;
    return true;
  }
}
