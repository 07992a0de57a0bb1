/**
 * TIME-WAIT as a compact record and a pure verdict function, after Linux's minisocks
 * (`tcp_timewait_state_process`): once a connection reaches TIME-WAIT the stack keeps only a
 * `TimeWaitRecord` (plain numbers, thousands of them live at once) and asks `timeWaitProcess`
 * what to do with each segment for it. `TcpConn` in TIME_WAIT calls the same function, so there
 * is one implementation of the rules.
 *
 * Rules (in order):
 * 1. RFC 1337: an RST never ends TIME-WAIT (TIME-WAIT assassination hazard): dropped.
 * 2. RFC 7323 §5.3 R1 (PAWS, paws.ts): a segment whose TSval is older than TS.Recent is answered
 *    with an ACK and dropped, unless TS.Recent is more than 24 days old (§5.5).
 * 3. A SYN without ACK may start a new incarnation of the 4-tuple (RFC 9293 §3.10.7.4 / RFC 1122
 *    §4.2.2.13, RFC 6191): with timestamps on both, when its TSval is newer than TS.Recent; without,
 *    when its sequence number is above RCV.NXT. Any other SYN gets an ACK (RFC 5961 §4).
 * 4. RFC 9293 §3.10.7.4 TIME-WAIT: "The only thing that can arrive in this state is a retransmission
 *    of the remote FIN. Acknowledge it, and restart the 2 MSL timeout."
 * 5. A bare ACK exactly at RCV.NXT needs nothing: dropped silently.
 * 6. Anything else is unacceptable (RFC 9293 §3.10.7.4: send an ACK and drop it).
 */
import type { TcpConfig } from './config.js';
import type { CloseReason, ConnIdentity, TcpEventSink } from './events.js';
import { OutSegment, Segment, TcpFlag } from '../wire/segment.js';
import { pawsRejects, tsRecentTakes } from './paws.js';
import { seqAdd, seqGt } from './seq.js';
import { State } from './state.js';

/** Sequence-space margin between the old incarnation's SND.NXT and the new ISS (as Linux: 64 KiB + 2). */
export const TIME_WAIT_ISS_MARGIN = 65535 + 2;

/** The timestamp clock: 1 ms ticks (RFC 7323 §5.4 allows 1 ms to 1 s) plus a per-connection offset. */
export function tsClock(now: number, tsOffset: number): number {
  return (Math.floor(now) + tsOffset) >>> 0;
}

/** A connection in TIME-WAIT, reduced to what its rules need. Plain numbers; one shape. */
/** What a TIME-WAIT record is made of, by name (the fields of TimeWaitRecord). */
export type TimeWaitFields = Pick<
  TimeWaitRecord,
  'id' | 'sndNxt' | 'rcvNxt' | 'window' | 'tsEnabled' | 'tsRecent' | 'tsRecentAt' | 'tsOffset' | 'enteredAt' | 'expiresAt'
>;

export class TimeWaitRecord {
  /** The connection id (events keep reporting under it). */
  id: number;
  /** Our SND.NXT: the sequence number of our ACKs (our FIN has been acknowledged). */
  sndNxt: number;
  /** RCV.NXT: just past the peer's FIN. */
  rcvNxt: number;
  /** The window field to put in our ACKs (already scaled down). */
  window: number;
  tsEnabled: boolean;
  /** RFC 7323 TS.Recent and when it was last updated (ms). */
  tsRecent: number;
  tsRecentAt: number;
  tsOffset: number;
  /** When TIME-WAIT was entered (the TIME_WAIT→CLOSED transition reports time spent since). */
  enteredAt: number;
  /** When the 2×MSL timer expires (ms). */
  expiresAt: number;

  constructor(fields: TimeWaitFields) {
    this.id = fields.id;
    this.sndNxt = fields.sndNxt;
    this.rcvNxt = fields.rcvNxt;
    this.window = fields.window;
    this.tsEnabled = fields.tsEnabled;
    this.tsRecent = fields.tsRecent;
    this.tsRecentAt = fields.tsRecentAt;
    this.tsOffset = fields.tsOffset;
    this.enteredAt = fields.enteredAt;
    this.expiresAt = fields.expiresAt;
  }

  /**
   * Take every field of `from` (a record reused for another connection: the stack keeps a pool
   * of them, so thousands of live 2×MSL records are not each a new object to promote).
   */
  assign(from: TimeWaitFields): void {
    this.id = from.id;
    this.sndNxt = from.sndNxt;
    this.rcvNxt = from.rcvNxt;
    this.window = from.window;
    this.tsEnabled = from.tsEnabled;
    this.tsRecent = from.tsRecent;
    this.tsRecentAt = from.tsRecentAt;
    this.tsOffset = from.tsOffset;
    this.enteredAt = from.enteredAt;
    this.expiresAt = from.expiresAt;
  }
}

/**
 * Who decides whether a closing connection may keep a TIME-WAIT record (--max-time-wait, Linux's
 * tcp_max_tw_buckets). Refused, the connection skips TIME-WAIT: it ACKs the peer's FIN and goes
 * to CLOSED at once, as Linux's tcp_time_wait() does when it cannot allocate a timewait socket
 * ("TCP: time wait bucket table overflow"). The cost is RFC 9293's protection against old
 * duplicates of this 4-tuple (§3.4.2), which is what a bound trades for memory.
 */
export interface TimeWaitGate {
  /** May this connection enter TIME-WAIT? A true answer reserves a place for its record. */
  admitTimeWait(conn: ConnIdentity): boolean;
}

/**
 * What to do with a segment for a TIME-WAIT record.
 * - 'ack': send `buildTimeWaitAck` and drop the segment (count it as a 'time_wait' drop);
 * - 'ack_restart': a retransmitted FIN: send the ACK; `expiresAt` has been pushed back (reschedule);
 * - 'accept_syn': a new incarnation's SYN: end the record and open a new connection for it, with
 *   an ISS from `nextIssAfterTimeWait`;
 * - 'drop': discard silently (RSTs, bare ACKs, anything not worth an answer).
 */
export type TimeWaitVerdict = 'ack' | 'ack_restart' | 'accept_syn' | 'drop';

export function timeWaitProcess(rec: TimeWaitRecord, seg: Segment, now: number, cfg: TcpConfig): TimeWaitVerdict {
  const flags = seg.flags;
  // RFC 1337: ignore RSTs in TIME-WAIT (whatever their sequence number or timestamp).
  if (flags & TcpFlag.RST) return 'drop';

  const opts = seg.options;
  const withTs = rec.tsEnabled && opts.tsPresent;
  // RFC 7323 §5.3 R1 (PAWS), before any other check.
  if (withTs && pawsRejects(rec.tsRecent, rec.tsRecentAt, opts.tsVal, now)) return 'ack';

  if (flags & TcpFlag.SYN) {
    if ((flags & TcpFlag.ACK) === 0) {
      // RFC 6191 §2: with timestamps on both incarnations the TSval decides; otherwise RFC 1122
      // §4.2.2.13: the SYN's sequence number must be above the old RCV.NXT.
      const newer = withTs ? seqGt(opts.tsVal, rec.tsRecent) : seqGt(seg.seq, rec.rcvNxt);
      if (newer) return 'accept_syn';
    }
    // RFC 5961 §4: a SYN that does not open a new incarnation gets a (challenge) ACK.
    return 'ack';
  }

  const payloadLen = seg.payload.length;
  if (flags & TcpFlag.FIN) {
    // The peer's FIN occupied rcvNxt − 1: a retransmission ends exactly at rcvNxt.
    const finSeq = seqAdd(seg.seq, payloadLen);
    if (finSeq === seqAdd(rec.rcvNxt, -1)) {
      // RFC 9293 §3.10.7.4 TIME-WAIT: acknowledge it and restart the 2 MSL timeout.
      rec.expiresAt = now + 2 * cfg.mslMs;
      if (withTs) updateTsRecent(rec, opts.tsVal, seg.seq, now);
      return 'ack_restart';
    }
    return 'ack';
  }

  if (payloadLen === 0 && seg.seq === rec.rcvNxt && flags & TcpFlag.ACK) {
    // An in-window bare ACK (e.g. a late duplicate of the ACK of our FIN): nothing to do.
    if (withTs) updateTsRecent(rec, opts.tsVal, seg.seq, now);
    return 'drop';
  }
  // RFC 9293 §3.10.7.4: anything else is not acceptable here: <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>.
  return 'ack';
}

function updateTsRecent(rec: TimeWaitRecord, tsVal: number, segSeq: number, now: number): void {
  // RFC 7323 §5.3 R3 (paws.ts). Last.ACK.sent is RCV.NXT: every ACK of a record carries it.
  if (tsRecentTakes(rec.tsRecent, rec.tsRecentAt, tsVal, segSeq, rec.rcvNxt, now, true)) {
    rec.tsRecent = tsVal;
    rec.tsRecentAt = now;
  }
}

/** Fill `out` with the ACK a TIME-WAIT record sends: <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>. */
export function buildTimeWaitAck(rec: TimeWaitRecord, now: number, out: OutSegment): void {
  out.clear();
  out.seq = rec.sndNxt;
  out.ack = rec.rcvNxt;
  out.flags = TcpFlag.ACK;
  out.window = rec.window;
  if (rec.tsEnabled) {
    // RFC 7323 §3.2: TSopt in every segment once negotiated.
    out.options.tsPresent = true;
    out.options.tsVal = tsClock(now, rec.tsOffset);
    out.options.tsEcr = rec.tsRecent;
  }
}

/**
 * The ISS for a new incarnation that replaces a TIME-WAIT record (RFC 1122 §4.2.2.13 (1): above
 * the largest sequence number used by the old one), `margin` past the old SND.NXT. Never 0, so
 * callers can keep 0 as "unset".
 */
export function nextIssAfterTimeWait(rec: TimeWaitRecord, margin = TIME_WAIT_ISS_MARGIN): number {
  const iss = seqAdd(rec.sndNxt, margin);
  return iss === 0 ? 1 : iss;
}

/**
 * Report the end of TIME-WAIT for a record: the TIME_WAIT→CLOSED transition (with the time spent
 * in TIME-WAIT) and the close. TIME-WAIT is only ever reached through an orderly FIN exchange,
 * so the close reason is 'fin'.
 */
export function reportTimeWaitClosed(who: ConnIdentity, rec: TimeWaitRecord, events: TcpEventSink, now: number): void {
  const reason: CloseReason = 'fin';
  events.stateChange(who, State.TIME_WAIT, State.CLOSED, now, rec.enteredAt);
  events.closed(who, reason, now);
}
