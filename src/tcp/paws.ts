/**
 * RFC 7323 §5 (PAWS, Protection Against Wrapped Sequences) and the TS.Recent update rule, for a
 * connection (`TcpConn`) and for a TIME-WAIT record (`timeWaitProcess`) alike. Plain numbers in,
 * a verdict out; the caller owns TS.Recent and the time it was recorded.
 *
 * - §5.3 R1: a segment whose SEG.TSval is older than TS.Recent is not acceptable (the caller
 *   answers it with an ACK and drops it; RSTs are exempt, the caller decides that).
 * - §5.5: TS.Recent is invalid after 24 days of idleness: the test no longer rejects.
 * - §5.3 R3 / §4.3 (2): TS.Recent takes SEG.TSval when SEG.TSval ≥ TS.Recent and
 *   SEG.SEQ ≤ Last.ACK.sent (a segment we have acknowledged up to, not one ahead of a hole).
 */
import { seqLeq, seqLt } from './seq.js';

/** RFC 7323 §5.5: TS.Recent is invalid after 24 days of idleness (2^31 ms at 1 ms ticks is ~24.8 days). */
export const PAWS_IDLE_MS = 24 * 24 * 60 * 60 * 1000;

/** RFC 7323 §5.3 R1: the segment's TSval is older than a still-valid (§5.5) TS.Recent. */
export function pawsRejects(tsRecent: number, tsRecentAt: number, tsVal: number, now: number): boolean {
  return seqLt(tsVal, tsRecent) && now - tsRecentAt <= PAWS_IDLE_MS;
}

/**
 * RFC 7323 §5.3 R3: does SEG.TSval become TS.Recent? Call it for a segment that passed PAWS.
 *
 * `renewStale`: whether a TS.Recent older than 24 days (§5.5) is replaced by an older TSval too.
 * The two callers differ here, and the difference is kept as it was when the rule was spelled
 * twice:
 * - TIME-WAIT (true) follows Linux's tcp_timewait_state_process, which stores the TSval of any
 *   segment that passed PAWS (tcp_paws_check lets any TSval through once TS.Recent is 24 days
 *   old), so the record's TS.Recent (which judges a new incarnation's SYN, RFC 6191) is valid
 *   again;
 * - a connection (false) applies R3 to the letter (SEG.TSval ≥ TS.Recent): after 24 days of
 *   idleness an older TSval is accepted (§5.5) but does not replace TS.Recent.
 * The difference can only show after 24 days without a segment.
 */
export function tsRecentTakes(
  tsRecent: number,
  tsRecentAt: number,
  tsVal: number,
  segSeq: number,
  lastAckSent: number,
  now: number,
  renewStale: boolean,
): boolean {
  if (!seqLeq(segSeq, lastAckSent)) return false;
  if (!seqLt(tsVal, tsRecent)) return true;
  return renewStale && now - tsRecentAt > PAWS_IDLE_MS;
}
