/**
 * One TCP connection: the RFC 9293 state machine (Figure 5, event processing of §3.10), pure and
 * clock-injected, in the smoltcp shape:
 * - `process(seg, now)` takes one incoming segment and returns a verdict (null, or why it was
 *   dropped); replies it decides on (ACKs, challenge ACKs, RSTs) are queued, not sent;
 * - `dispatch(now, emit)` runs due timers and emits every segment due now through `emit`;
 * - `pollAt()` says when `dispatch` must run next.
 * The connection does no I/O, reads no clock and owns no timer.
 *
 * The rules it applies live one per file, each a verdict on plain inputs with its RFC section at
 * the top: time-wait.ts (RFC 9293 §3.10.7.4, 1337, 6191), paws.ts (RFC 7323 §5), challenge-ack.ts
 * (RFC 5961 and its rate budget), delayed-ack.ts (RFC 9293 §3.8.6.3, 1122 §4.2.3.2, 5681 §4.2),
 * persist.ts (RFC 9293 §3.8.6.1), keepalive.ts (RFC 9293 §3.8.4); this file composes them.
 *
 * Companion RFCs: 5681 (congestion control: only through the configured controller), 6298 (RTO),
 * 6582 (NewReno), 6675 + 2018 (SACK), 7323 (window scale, timestamps, PAWS), 5961 (blind in-window
 * attacks: challenge ACKs), 1337 + 6191 (TIME-WAIT), 1122 (keepalive, delayed ACK).
 *
 * Choices where the RFCs leave room (each documented where it is made):
 * - The passive side never sits in LISTEN: the stack creates the connection for a SYN after the
 *   upstream connected; LISTEN→SYN_RECEIVED is reported with the SYN's arrival time as the time
 *   the LISTEN "state" began. A reset or timeout in SYN_RECEIVED closes the connection (there is
 *   no listener to return to).
 * - FIN_WAIT_2 has no timeout here: the proxy owns idle timeouts (it aborts or closes).
 * - Keepalive (when cfg.keepaliveIdleMs > 0) runs in ESTABLISHED and CLOSE_WAIT; after
 *   keepaliveProbes unanswered probes the connection is reset with reason 'idle_timeout'.
 * - bytesIn counts payload bytes delivered in order to the owner; bytesOut counts payload bytes
 *   the peer has acknowledged. lastActivityAt moves when payload moves either way.
 * - Urgent data (RFC 9293 §3.8.5) is delivered inline as ordinary data; the urgent pointer is
 *   ignored. Text on a SYN is not kept (the peer retransmits it). ECN is not negotiated.
 *
 * Contract with the stack:
 * - After `process`, `write`, `close`, `consume` or `abort`, `pollAt()` returns 0: dispatch.
 *   A connection that has gone CLOSED may still hold an RST to send: dispatch it once more
 *   (pollAt says 0), then drop it.
 * - `dispatch` hands every segment to `emit` in one module-level OutSegment: `emit` must
 *   serialize it before returning and must not call into another connection's dispatch.
 */
import { TcpConnError, type TcpConnErrorCode } from '../errors.js';
import type { TcpConfig } from './config.js';
import { peerMssOrDefault } from './defaults.js';
import { SLOW_START_EXIT_REASONS, type CloseReason, type ConnFlow, type ConnIdentity, type DropReason, type ResetReason, type TcpEventSink } from './events.js';
import { SlowStartEnd, type SlowStartListener } from './cc/controller.js';
import type { MemoryBudget } from './memory-budget.js';
import { RcvFlag, Receiver } from './rcv.js';
import { OutSegment, Segment, TcpFlag } from '../wire/segment.js';
import { AckFlag, Recovery, SendKind, SendPlan, Sender } from './snd.js';
import type { ChunkReleaseSink, ViewSink } from './send-buffer.js';
import { ACK_NOW, delayedAckAt } from './delayed-ack.js';
import { ChallengeAckBudget, inWindowRstVerdict, isRetransmittedSyn } from './challenge-ack.js';
import { keepaliveApplies, keepaliveDeadline, keepaliveProbeSeq, keepaliveTimeout } from './keepalive.js';
import { pawsRejects, tsRecentTakes } from './paws.js';
import { persistEndsOnAck, persistInterval, persistNeeded, persistTimeout } from './persist.js';
import { seqAdd, seqGt, seqLeq } from './seq.js';
import { State, stateName } from './state.js';
import { ConnTimers, TimerKind } from './timers.js';
import {
  TimeWaitRecord,
  buildTimeWaitAck,
  nextIssAfterTimeWait,
  timeWaitProcess,
  tsClock,
  type TimeWaitGate,
} from './time-wait.js';

export interface ConnHandler {
  /** Passive: final ACK of the handshake; active: SYN-ACK received. */
  onEstablished(conn: TcpConn): void;
  /**
   * In-order payload, an OWNED copy (the connection keeps no reference), unless `acceptsViews`.
   */
  onData(conn: TcpConn, data: Buffer): void;
  /** The peer's FIN reached in order (all data before it delivered). */
  onFin(conn: TcpConn): void;
  /** write() had returned false and the buffered bytes fell below the limit. */
  onSendSpace(conn: TcpConn): void;
  /** The connection is CLOSED or handed to TIME-WAIT; `conn.closeReason` says why. */
  onClosed(conn: TcpConn): void;
  /**
   * When true, onData may pass a view into the buffer of the segment given to `process` instead
   * of a copy: the handler must be done with it (or copy it) before that buffer is reused. For
   * the stack's input that is the end of the flush() closing the batch (Stack.runAfterFlush).
   * Read once, when the connection is created.
   */
  readonly acceptsViews?: boolean;
  /**
   * A chunk given to write() has left the send buffer: acknowledged, or dropped as the connection
   * closed. The connection keeps no reference any more, but the link may: a packet serialized
   * from it in the current batch is written by the flush that ends the batch (and stays queued
   * past it if the device is full; Stack.linkHoldsNoViews tells). Optional; read once, when the
   * connection is created.
   */
  onChunkReleased?(chunk: Buffer): void;
}

export { TcpConnError, type TcpConnErrorCode };

/** An IPv6 header is 40 octets, an IPv4 header (without options) 20. */
const IPV6_EXTRA_HEADER = 20;
/** Smallest effective MSS we accept from a peer (guards against tiny-MSS resource abuse). */
export const MIN_MSS = 64;
/** RFC 7323 §3.2: the timestamps option takes 10 bytes, 12 with padding. */
const TS_OPTION_BYTES = 12;
/** Duplicate ACKs queued for one dispatch at most (one per out-of-order segment, RFC 5681 §4.2). */
const MAX_DUP_ACKS = 8;
/** RFC 6298 §5.7: the RTO after a handshake whose SYN or SYN-ACK had to be retransmitted. */
const RTO_AFTER_SYN_TIMEOUT_MS = 3000;

/** checkSequence's verdict for a segment into our zero window at RCV.NXT: its ACK counts, its text does not. */
const ZERO_WINDOW_PROBE = 'zero_window_probe';
/** processAck's verdicts: go on to the text, stop (closed or TIME-WAIT), or go on and leave FIN-WAIT-1. */
const ACK_STEP_CONTINUE = 0;
const ACK_STEP_DONE = 1;
const ACK_STEP_FIN_WAIT_1_ACKED = 2;

/** The one outgoing segment `dispatch` fills and hands to `emit` (serialized before emit returns). */
const OUT = new OutSegment();
/**
 * The send plan `dispatch` fills for the segment in OUT: one for every connection, like OUT (emit
 * never calls into another connection's dispatch); one each cost an idle connection ~80 bytes.
 */
const PLAN = new SendPlan();

function closeReasonFor(reason: ResetReason): CloseReason {
  switch (reason) {
    case 'retransmit_timeout':
      return 'retransmit_timeout';
    case 'idle_timeout':
      return 'idle_timeout';
    case 'shutdown':
      return 'shutdown';
    case 'upstream_refused':
    case 'upstream_reset':
      return 'upstream_failed';
    default:
      return 'reset_sent';
  }
}

export class TcpConn implements ConnIdentity, SlowStartListener {
  readonly id: number;
  state: State;
  closeReason: CloseReason | null;
  createdAt: number;
  /** ConnIdentity: when the SYN arrived (the same as createdAt). */
  get openedAt(): number {
    return this.createdAt;
  }
  stateSince: number;
  lastActivityAt: number;
  /** Payload bytes received in order and delivered to the owner. */
  bytesIn: number;
  /** Payload bytes sent and acknowledged by the peer. */
  bytesOut: number;
  /** Segments retransmitted (RTO, fast and probes), as reported to events.retransmit. */
  retransmits: number;
  /** ConnIdentity: SYN to the final ACK of a passive open, ms; -1 until then. */
  handshakeMs: number;
  /** ConnIdentity: the 4-tuple, set by the stack that owns the connection (null outside one). */
  flow: ConnFlow | null;
  /**
   * The stack's entry for this connection in its table (addresses, slot), or null outside the
   * table. Opaque here, like Linux's sk_user_data: tcp/ stands below stack/ and cannot name it.
   */
  tableEntry: object | null;
  /**
   * Set when a SYN arriving in TIME_WAIT opened a new incarnation (RFC 6191): this connection
   * is now CLOSED and the stack should create a new one for the SYN with this ISS; -1 otherwise.
   */
  newIncarnationIss: number;

  readonly snd: Sender;
  readonly rcv: Receiver;
  readonly timers: ConnTimers;

  private readonly cfg: TcpConfig;
  private readonly events: TcpEventSink;
  private readonly handler: ConnHandler;
  private family: 4 | 6;
  private passive: boolean;
  private synAt: number;
  /** Peer's window scale option was present (and ours is in effect). */
  private wsOk: boolean;
  tsEnabled: boolean;
  private tsOffset: number;
  /** RFC 7323 TS.Recent, and when it was recorded (for the 24-day rule). */
  tsRecent: number;
  private tsRecentAt: number;
  /** A SYN (active) or SYN-ACK (passive / simultaneous) is due. */
  private synPending: boolean;
  /** Our SYN / SYN-ACK has been emitted at least once. */
  private synSent: boolean;
  /** The SYN / SYN-ACK about to be resent is a timer-driven retransmission (report it). */
  private synRetransmitDue: boolean;
  private synRetries: number;
  /** An ACK is due now (piggybacked on data if any goes out). */
  private ackNow: boolean;
  /** Pure duplicate ACKs owed for out-of-order segments (RFC 5681 §4.2). */
  private dupAcksOwed: number;
  /** Payload bytes received since we last sent an ACK (delayed ACK, RFC 9293 §3.8.6.3). */
  private rcvUnacked: number;
  private rstPending: boolean;
  private rstSeq: number;
  private rstAck: number;
  private rstFlags: number;
  /** RFC 5961 §7 rate limit (challenge-ack.ts); made with the first challenge ACK (most connections never send one). */
  private challenges: ChallengeAckBudget | null;
  /** Persist timer (RFC 9293 §3.8.6.1). */
  private probePending: boolean;
  private persistBackoff: number;
  private probesUnanswered: number;
  /** Keepalive (RFC 9293 §3.8.4). */
  private lastRecvAt: number;
  private keepaliveProbes: number;
  private lastKeepaliveAt: number;
  private keepalivePending: boolean;
  /** write() returned false: owe an onSendSpace. */
  private writeBlocked: boolean;
  /** close() in SYN_RECEIVED with data queued: the FIN waits for ESTABLISHED (RFC 9293 §3.10.4). */
  private closeDeferred: boolean;
  private closedNotified: boolean;
  /** Something may be ready to send: dispatch is due now. */
  private dirty: boolean;
  private tw: TimeWaitRecord | null;
  /** Asked before entering TIME-WAIT (the stack's --max-time-wait); null: always enter. */
  timeWaitGate: TimeWaitGate | null;
  /** The gate refused TIME-WAIT: the connection closes once the ack of the peer's FIN is settled. */
  private timeWaitSkipped: boolean;
  /** CLOSED after a skipped TIME-WAIT with the peer's FIN still to acknowledge (from `tw`). */
  private finalAckOwed: boolean;
  /** Header prediction is on (cfg.headerPrediction; off only to compare it with the general path). */
  private readonly predicts: boolean;

  constructor(id: number, cfg: TcpConfig, events: TcpEventSink, handler: ConnHandler, now: number, budget: MemoryBudget | null = null) {
    this.id = id;
    this.state = State.CLOSED;
    this.closeReason = null;
    this.createdAt = now;
    this.stateSince = now;
    this.lastActivityAt = now;
    this.bytesIn = 0;
    this.bytesOut = 0;
    this.retransmits = 0;
    this.handshakeMs = -1;
    this.flow = null;
    this.tableEntry = null;
    this.newIncarnationIss = -1;
    this.snd = new Sender(cfg, now);
    this.snd.listenSlowStart(this);
    this.rcv = new Receiver(cfg.rcvBufBytes, cfg.mss, budget);
    this.rcv.deliverViews = handler.acceptsViews === true;
    if (handler.onChunkReleased !== undefined) this.snd.buf.releaseSink = handler as ChunkReleaseSink;
    this.timers = new ConnTimers();
    this.cfg = cfg;
    this.events = events;
    this.handler = handler;
    this.family = 4;
    this.passive = false;
    this.synAt = now;
    this.wsOk = false;
    this.tsEnabled = false;
    this.tsOffset = 0;
    this.tsRecent = 0;
    this.tsRecentAt = now;
    this.synPending = false;
    this.synSent = false;
    this.synRetransmitDue = false;
    this.synRetries = 0;
    this.ackNow = false;
    this.dupAcksOwed = 0;
    this.rcvUnacked = 0;
    this.rstPending = false;
    this.rstSeq = 0;
    this.rstAck = 0;
    this.rstFlags = 0;
    this.challenges = null;
    this.probePending = false;
    this.persistBackoff = 0;
    this.probesUnanswered = 0;
    this.lastRecvAt = now;
    this.keepaliveProbes = 0;
    this.lastKeepaliveAt = now;
    this.keepalivePending = false;
    this.writeBlocked = false;
    this.closeDeferred = false;
    this.closedNotified = false;
    this.dirty = false;
    this.tw = null;
    this.timeWaitGate = null;
    this.timeWaitSkipped = false;
    this.finalAckOwed = false;
    this.predicts = cfg.headerPrediction !== false;
  }

  // ------------------------------------------------------------------------------ accessors

  /** Smoothed RTT (RFC 6298 SRTT) in ms; 0 before the first sample. */
  get srttMs(): number {
    return this.snd.rtt.srtt;
  }

  /** SND.WND in bytes (scaled). */
  get sendWindow(): number {
    return this.snd.wnd;
  }

  /** The receive window we last advertised, in bytes. */
  get receiveWindow(): number {
    return this.rcv.advertisedWindow;
  }

  /** Effective send MSS (RFC 9293 §3.7.1). */
  get mss(): number {
    return this.snd.mss;
  }

  /** Payload bytes buffered for sending (unacknowledged plus unsent). */
  get sendBuffered(): number {
    return this.snd.buf.length;
  }

  /** Bytes held by the receiver: delivered-but-unconsumed plus out-of-order. */
  get receiveBuffered(): number {
    return this.rcv.buffered;
  }

  // ------------------------------------------------------------------------------ opening

  /**
   * Passive open (LISTEN → SYN_RECEIVED): negotiate from the SYN's options and queue our
   * SYN-ACK. `synAt` is when the SYN arrived; `tsOffset` the per-connection timestamp offset;
   * `family` picks the default MSS when the SYN carries none (RFC 9293 §3.7.1).
   */
  accept(syn: Segment, iss: number, synAt: number, now: number, tsOffset = 0, family: 4 | 6 = 4): void {
    if (this.state !== State.CLOSED || this.closeReason !== null) {
      throw new TcpConnError('ERR_TCP_BAD_STATE', `accept() on a connection in ${stateName(this.state)}`);
    }
    this.passive = true;
    this.synAt = synAt;
    this.createdAt = synAt;
    this.tsOffset = tsOffset;
    this.family = family;
    this.snd.init(iss);
    this.snd.synQueued();
    this.negotiate(syn, now);
    // RFC 7323 §2.2: the window of a SYN is never scaled.
    this.takeSynWindow(syn);
    this.lastRecvAt = now;
    this.lastActivityAt = now;
    this.state = State.LISTEN;
    this.stateSince = synAt;
    this.transition(State.SYN_RECEIVED, now);
    this.synPending = true;
    this.dirty = true;
  }

  /** Active open (CLOSED → SYN_SENT): queue our SYN. */
  connect(iss: number, now: number, tsOffset = 0, family: 4 | 6 = 4): void {
    if (this.state !== State.CLOSED || this.closeReason !== null) {
      throw new TcpConnError('ERR_TCP_BAD_STATE', `connect() on a connection in ${stateName(this.state)}`);
    }
    this.passive = false;
    this.synAt = now;
    this.tsOffset = tsOffset;
    this.family = family;
    this.snd.init(iss);
    this.snd.synQueued();
    this.lastRecvAt = now;
    this.transition(State.SYN_SENT, now);
    this.synPending = true;
    this.dirty = true;
  }

  /**
   * Negotiate options from the peer's SYN or SYN-ACK. RFC 7323 §2.2/§3.2 and RFC 2018 §2: window
   * scaling, timestamps and SACK are used only if the peer's SYN offered them (and we do).
   */
  private negotiate(syn: Segment, now: number): void {
    const cfg = this.cfg;
    const o = syn.options;
    this.wsOk = o.wscale >= 0;
    // RFC 7323 §2.3: a shift above 14 is used as 14.
    const sndShift = this.wsOk ? (o.wscale > 14 ? 14 : o.wscale) : 0;
    const rcvShift = this.wsOk ? (cfg.wscale > 14 ? 14 : cfg.wscale) : 0;
    this.tsEnabled = cfg.timestamps && o.tsPresent;
    if (this.tsEnabled) {
      this.tsRecent = o.tsVal;
      this.tsRecentAt = now;
    }
    const sackOk = cfg.sack && o.sackPermitted;
    // RFC 9293 §3.7.1: Eff.snd.MSS = min(SendMSS, MMS_S) − TCP options in use.
    const peerMss = peerMssOrDefault(o.mss, this.family);
    const ours = this.localMss;
    let mss = (peerMss < ours ? peerMss : ours) - (this.tsEnabled ? TS_OPTION_BYTES : 0);
    if (mss < MIN_MSS) mss = MIN_MSS;
    this.snd.negotiate(mss, sndShift, sackOk, cfg.gsoMaxBytes, now);
    this.rcv.mss = ours - (this.tsEnabled ? TS_OPTION_BYTES : 0);
    this.rcv.init(syn.seq, rcvShift);
    // The window of our SYN / SYN-ACK is fixed (unscaled, RFC 7323 §2.2): it is what the peer
    // may fill before our first scaled window reaches it.
    this.rcv.commitSynWindow(this.rcv.synWindow());
  }

  /**
   * The MSS we advertise (RFC 9293 §3.7.1): cfg.mss is computed for IPv4 headers; an IPv6
   * connection's headers are 20 octets longer.
   */
  get localMss(): number {
    return this.family === 6 ? this.cfg.mss - IPV6_EXTRA_HEADER : this.cfg.mss;
  }

  private takeSynWindow(syn: Segment): void {
    const snd = this.snd;
    snd.wnd = syn.window;
    snd.maxWnd = syn.window;
    snd.wl1 = syn.seq;
    snd.wl2 = syn.flags & TcpFlag.ACK ? syn.ack : snd.iss;
  }

  // ------------------------------------------------------------------------------ input

  /**
   * Process one incoming segment (checksum already verified). Returns null if it was accepted,
   * or the reason it was dropped (also reported through events.drop). Never keeps `seg`.
   */
  process(seg: Segment, now: number): DropReason | null {
    switch (this.state) {
      case State.CLOSED:
      case State.LISTEN:
        return this.drop('no_connection');
      case State.SYN_SENT:
        this.dirty = true;
        return this.processSynSent(seg, now);
      case State.TIME_WAIT:
        this.dirty = true;
        return this.processTimeWait(seg, now);
      case State.ESTABLISHED:
        this.dirty = true;
        if (this.predicts && this.predicted(seg, now)) return this.processPredicted(seg, now);
        return this.processSynchronized(seg, now);
      default:
        this.dirty = true;
        return this.processSynchronized(seg, now);
    }
  }

  private drop(reason: DropReason): DropReason {
    this.events.drop(this, reason);
    return reason;
  }

  /** RFC 9293 §3.10.7.3 SYN-SENT. */
  private processSynSent(seg: Segment, now: number): DropReason | null {
    const flags = seg.flags;
    const snd = this.snd;
    if (flags & TcpFlag.ACK) {
      // First: SEG.ACK ≤ ISS or SEG.ACK > SND.NXT is unacceptable: <SEQ=SEG.ACK><CTL=RST>.
      if (seqLeq(seg.ack, snd.iss) || seqGt(seg.ack, snd.max)) {
        if ((flags & TcpFlag.RST) === 0) this.queueRst(seg.ack, 0, TcpFlag.RST, 'bad_ack');
        return this.drop('bad_ack');
      }
    }
    if (flags & TcpFlag.RST) {
      // Second: with an acceptable ACK the RST means "connection reset" (RFC 5961 §3.2 does not
      // apply in SYN-SENT); without an ACK it is dropped.
      if ((flags & TcpFlag.ACK) === 0) return this.drop('rst_invalid');
      return this.resetReceived(now);
    }
    if ((flags & TcpFlag.SYN) === 0) return this.drop('out_of_window');

    // Fourth: the SYN.
    this.lastRecvAt = now;
    this.negotiate(seg, now);
    if (flags & TcpFlag.ACK) {
      // Our SYN is acknowledged: ESTABLISHED. The SYN-ACK's window is not scaled (RFC 7323 §2.2).
      this.takeSynWindow(seg);
      const shift = snd.shift;
      snd.shift = 0;
      snd.wl1 = seqAdd(seg.seq, -1);
      const ackFlags = snd.ack(seg, now, this.tsEnabled, tsClock(now, this.tsOffset), this.createdAt);
      snd.shift = shift;
      this.afterSynAcked(ackFlags);
      if (ackFlags & AckFlag.RTT) this.events.rtt(this, snd.rtt.srtt);
      this.timers.setIdle(Infinity);
      this.synPending = false;
      this.ackNow = true;
      this.transition(State.ESTABLISHED, now);
      this.armIdle();
      this.handler.onEstablished(this);
      if (this.state === State.CLOSED) return null;
      // "Continue processing at the sixth step": data (and FIN) in the SYN-ACK.
      this.processText(seg, seqAdd(seg.seq, 1), now);
      return null;
    }
    // Simultaneous open (RFC 9293 §3.5 Figure 8): SYN_RECEIVED, send SYN-ACK <SEQ=ISS><ACK=RCV.NXT>.
    this.takeSynWindow(seg);
    this.transition(State.SYN_RECEIVED, now);
    this.synPending = true;
    return null;
  }

  /**
   * RFC 9293 §3.10.7.4 for SYN-RECEIVED and the synchronized states, in the RFC's order: the
   * timestamp checks (RFC 7323), first the sequence number, then RST, SYN, ACK, text and FIN.
   */
  private processSynchronized(seg: Segment, now: number): DropReason | null {
    const flags = seg.flags;
    const rcv = this.rcv;

    // A retransmitted SYN while our SYN-ACK is unacknowledged: send the SYN-ACK again (our SYN-ACK
    // was probably lost), within the challenge-ACK budget (challenge-ack.ts).
    if (isRetransmittedSyn(flags, seg.seq, rcv.irs, this.snd.synAcked)) {
      if (!(this.challenges ??= new ChallengeAckBudget()).take(now, this.cfg.challengeAckLimitPerSec)) return this.drop('challenge_ack_limit');
      this.synPending = true;
      return null;
    }
    const tsDrop = this.checkTimestamps(seg, now);
    if (tsDrop !== null) return tsDrop;

    // First: sequence number acceptability.
    const seqVerdict = this.checkSequence(seg);
    if (seqVerdict !== null && seqVerdict !== ZERO_WINDOW_PROBE) return seqVerdict;
    this.takeTsRecent(seg, now);

    // Second: RST (RFC 5961 §3.2): exactly RCV.NXT resets; otherwise in the window, challenge ACK.
    if (flags & TcpFlag.RST) {
      if (inWindowRstVerdict(seg.seq, rcv.nxt) === 'reset') return this.resetReceived(now);
      return this.challengeAck(now, 'rst_invalid');
    }
    // Fourth: SYN in a synchronized state (RFC 5961 §4 / RFC 9293 §3.10.7.4): challenge ACK, drop.
    if (flags & TcpFlag.SYN) return this.challengeAck(now, 'syn_in_window');

    // Fifth: ACK.
    const ackDrop = this.checkAck(seg, now);
    if (ackDrop !== null) return ackDrop;
    const ackStep = this.processAck(seg, now);
    if (ackStep === ACK_STEP_DONE) return null;

    // Sixth (URG) is not supported: urgent data is delivered as ordinary data.
    // Seventh and eighth: text and FIN.
    if (seqVerdict !== ZERO_WINDOW_PROBE) this.processText(seg, seg.seq, now);
    if (ackStep === ACK_STEP_FIN_WAIT_1_ACKED && this.state === State.FIN_WAIT_1) this.transition(State.FIN_WAIT_2, now);
    this.sendSpaceAfterAck();
    return null;
  }

  /**
   * Header prediction (Van Jacobson's, as Linux's tcp_rcv_established): is `seg` one whose
   * §3.10.7.4 steps, taken in full by processSynchronized, come to nothing but "take the ACK,
   * take the text"? Only when the answer follows from these tests; anything else takes the
   * general path. Called in ESTABLISHED only (no FIN of ours queued or acknowledged, no
   * handshake to complete, text is taken). Reads, changes nothing.
   */
  private predicted(seg: Segment, now: number): boolean {
    // Exactly ACK (PSH changes nothing here): no SYN, RST or FIN step, no urgent pointer or ECN
    // bits; and at RCV.NXT: the first check (acceptability) holds for a pure ACK in any window.
    if ((seg.flags & ~TcpFlag.PSH) !== TcpFlag.ACK || seg.seq !== this.rcv.nxt) return false;
    const opts = seg.options;
    // RFC 2018 / RFC 6675: SACK blocks update the scoreboard and may count as duplicates.
    if (opts.sackCount !== 0) return false;
    // RFC 7323 §3.2 / §5.3 R1: a segment checkTimestamps would drop (no TSopt, or PAWS).
    if (this.tsEnabled && (!opts.tsPresent || pawsRejects(this.tsRecent, this.tsRecentAt, opts.tsVal, now))) return false;
    const snd = this.snd;
    // Loss recovery (RFC 5681 §3.2, RFC 6582, RFC 6675) and persist (RFC 9293 §3.8.6.1) have
    // their own rules for an ACK; out-of-order data queued makes in-order text an ACK-now fill.
    if (snd.recovery !== Recovery.NONE || this.timers.kind === TimerKind.PERSIST || this.rcv.hasOutOfOrder) return false;
    const ack = seg.ack;
    const len = seg.payload.length;
    // Pure ACK: it must advance, SND.UNA < SEG.ACK ≤ SND.NXT (RFC 9293 §3.10.7.4 fifth check);
    // one that repeats SND.UNA is a duplicate-ACK candidate or a window update: general path.
    if (len === 0) return seqGt(ack, snd.una) && seqLeq(ack, snd.nxt);
    // Text: SND.UNA ≤ SEG.ACK ≤ SND.NXT (the ACK is acceptable, RFC 5961 §5.2 holds), and all of
    // it fits the window we offered: acceptable, and ingest trims nothing (RCV.WND > 0).
    return seqLeq(snd.una, ack) && seqLeq(ack, snd.nxt) && len <= this.rcv.window;
  }

  /**
   * A predicted segment (predicted() said so): what processSynchronized would do with it, minus
   * the checks predicted() settled: TS.Recent (RFC 7323 §5.3 R3), the ACK (snd.ack: SND.UNA,
   * congestion control, RTT sample, window; RFC 6298 §5.2/5.3 timers in onNewAck), then the
   * text (processText: delivery and delayed-ACK accounting, RFC 5681 §4.2, RFC 1122 §4.2.3.2).
   */
  private processPredicted(seg: Segment, now: number): null {
    this.takeTsRecent(seg, now);
    this.ackArrived(now);
    const snd = this.snd;
    const ackFlags = snd.ack(seg, now, this.tsEnabled, tsClock(now, this.tsOffset), this.createdAt);
    if (ackFlags & AckFlag.RTT) this.events.rtt(this, snd.rtt.srtt);
    this.probesUnanswered = 0;
    if (ackFlags & AckFlag.NEW) this.onNewAck(now);
    if (seg.payload.length > 0) this.processText(seg, seg.seq, now);
    this.sendSpaceAfterAck();
    return null;
  }

  /** write() had returned false and the acknowledged bytes made room: tell the owner. */
  private sendSpaceAfterAck(): void {
    if (this.writeBlocked && this.state !== State.CLOSED && this.snd.buf.length < this.cfg.sndBufBytes) {
      this.writeBlocked = false;
      this.handler.onSendSpace(this);
    }
  }

  /** RFC 7323 §3.2 and §5.3 R1 (PAWS, paws.ts), before anything else: a drop reason, or null. */
  private checkTimestamps(seg: Segment, now: number): DropReason | null {
    if (!this.tsEnabled || seg.flags & TcpFlag.RST) return null;
    const opts = seg.options;
    // RFC 7323 §3.2: once negotiated, a non-RST segment without TSopt SHOULD be dropped.
    if (!opts.tsPresent) return this.drop('malformed');
    // RFC 7323 §5.3 R1 (PAWS): an older TSval than TS.Recent: send an ACK, drop.
    if (pawsRejects(this.tsRecent, this.tsRecentAt, opts.tsVal, now)) {
      this.ackNow = true;
      return this.drop('paws');
    }
    return null;
  }

  /**
   * RFC 9293 §3.10.7.4 first check (the four cases of the table): null if acceptable,
   * ZERO_WINDOW_PROBE for a probe into our zero window (its ACK is processed, its text dropped),
   * or the reason the segment was dropped.
   */
  private checkSequence(seg: Segment): DropReason | typeof ZERO_WINDOW_PROBE | null {
    const rcv = this.rcv;
    const flags = seg.flags;
    if (rcv.acceptable(seg.seq, seg.segLen)) return null;
    // RFC 5961 §3.2: an RST outside the window is dropped silently.
    if (flags & TcpFlag.RST) return this.drop('rst_invalid');
    // Unacceptable segments are answered with an ACK.
    this.ackNow = true;
    // "If the RCV.WND is zero ... special allowance should be made to accept valid ACKs":
    // a segment at RCV.NXT into a zero window (a zero-window probe) has its ACK processed and
    // its text dropped; it is answered with an ACK.
    if (rcv.window === 0 && seg.seq === rcv.nxt && flags & TcpFlag.ACK && (flags & TcpFlag.SYN) === 0) {
      return ZERO_WINDOW_PROBE;
    }
    return this.drop('out_of_window');
  }

  /** RFC 7323 §5.3 R3 (paws.ts): TS.Recent takes SEG.TSval if SEG.SEQ ≤ Last.ACK.sent. */
  private takeTsRecent(seg: Segment, now: number): void {
    const opts = seg.options;
    if (
      this.tsEnabled &&
      opts.tsPresent &&
      tsRecentTakes(this.tsRecent, this.tsRecentAt, opts.tsVal, seg.seq, this.rcv.lastAckSent, now, false)
    ) {
      this.tsRecent = opts.tsVal;
      this.tsRecentAt = now;
    }
  }

  /**
   * RFC 9293 §3.10.7.4 fifth check, up to acceptability: no ACK bit drops the segment; in
   * SYN-RECEIVED an ACK outside SND.UNA < SEG.ACK ≤ SND.NXT draws an RST; afterwards RFC 5961 §5.2
   * (challenge-ack.ts). A drop reason, or null when the ACK is acceptable.
   */
  private checkAck(seg: Segment, now: number): DropReason | null {
    if ((seg.flags & TcpFlag.ACK) === 0) return this.drop('bad_ack');
    const snd = this.snd;
    this.ackArrived(now);
    if (!snd.synAcked) {
      // SYN-RECEIVED (or FIN-WAIT-1 entered from it): SND.UNA < SEG.ACK ≤ SND.NXT completes the
      // handshake; otherwise <SEQ=SEG.ACK><CTL=RST> (RFC 9293 §3.10.7.4, §3.10.7.3 shape).
      if (!(seqGt(seg.ack, snd.una) && seqLeq(seg.ack, snd.max))) {
        this.queueRst(seg.ack, 0, TcpFlag.RST, 'bad_ack');
        return this.drop('bad_ack');
      }
    } else if (!snd.ackAcceptable(seg.ack)) {
      // RFC 5961 §5.2: SEG.ACK above SND.NXT (data not yet sent) or below SND.UNA − MAX.SND.WND:
      // send an ACK (rate-limited as a challenge ACK) and drop.
      return this.challengeAck(now, 'bad_ack');
    }
    return null;
  }

  /** A segment with ACK passed the checks before the fifth: the peer is alive (keepalive, RFC 9293 §3.8.4). */
  private ackArrived(now: number): void {
    this.lastRecvAt = now;
    this.keepaliveProbes = 0;
    this.refreshIdle();
  }

  /**
   * An acceptable ACK: SND.UNA and the window, the handshake's end, the timers, and the state
   * changes our FIN's acknowledgment brings (RFC 9293 §3.10.7.4 fifth check). ACK_STEP_DONE when
   * the segment needs nothing more (the connection closed or entered TIME-WAIT).
   */
  private processAck(seg: Segment, now: number): number {
    const snd = this.snd;
    const wasWindow = snd.wnd;
    const ackFlags = snd.ack(seg, now, this.tsEnabled, tsClock(now, this.tsOffset), this.createdAt);
    if (ackFlags & AckFlag.RTT) this.events.rtt(this, snd.rtt.srtt);
    this.probesUnanswered = 0;
    if (ackFlags & AckFlag.SYN_ACKED) {
      this.afterSynAcked(ackFlags);
      if (this.completeHandshake(now)) return ACK_STEP_DONE;
    }
    if (ackFlags & AckFlag.NEW) this.onNewAck(now);
    if (this.timers.kind === TimerKind.PERSIST && persistEndsOnAck(snd.wnd, wasWindow, snd.hasPending)) {
      // The window opened, or the probe took the last of it (e.g. the FIN): leave persist;
      // dispatch sends and re-arms what is needed.
      this.persistBackoff = 0;
      this.armIdle();
    }
    if ((ackFlags & AckFlag.FIN_ACKED) === 0) return ACK_STEP_CONTINUE;
    switch (this.state) {
      case State.FIN_WAIT_1:
        // FIN-WAIT-1 → FIN-WAIT-2, unless this very segment also carries the peer's FIN
        // (eighth step: "if our FIN has been ACKed (perhaps in this segment) ... TIME-WAIT").
        return ACK_STEP_FIN_WAIT_1_ACKED;
      case State.CLOSING:
        this.enterTimeWait(now);
        this.afterTimeWaitEntry(now);
        return ACK_STEP_DONE;
      case State.LAST_ACK:
        this.closeReason = 'fin';
        this.toClosed(now);
        return ACK_STEP_DONE;
    }
    return ACK_STEP_CONTINUE;
  }

  /** RFC 6298 §5.7: a handshake that needed a retransmission and gave no RTT sample leaves RTO at 3 s. */
  private afterSynAcked(ackFlags: number): void {
    if (this.synRetries > 0 && (ackFlags & AckFlag.RTT) === 0) this.snd.rtt.reinitialize(RTO_AFTER_SYN_TIMEOUT_MS);
  }

  /**
   * The final ACK of a passive (or simultaneous) open: SYN_RECEIVED → ESTABLISHED (or, if the
   * owner closed meanwhile, FIN_WAIT_1 stays). Returns true when the handler closed the connection.
   */
  private completeHandshake(now: number): boolean {
    this.synPending = false;
    this.timers.setIdle(Infinity);
    if (this.passive) {
      this.handshakeMs = now - this.synAt;
      this.events.handshake(this, 'ok', this.handshakeMs);
    }
    if (this.state === State.SYN_RECEIVED) {
      this.transition(State.ESTABLISHED, now);
      if (this.closeDeferred) {
        this.closeDeferred = false;
        this.snd.queueFin();
        this.transition(State.FIN_WAIT_1, now);
      }
    }
    this.armIdle();
    this.handler.onEstablished(this);
    return this.state === State.CLOSED;
  }

  /** SND.UNA advanced (RFC 6298 §5.2/5.3 timer management, send-space, counters). */
  private onNewAck(now: number): void {
    const snd = this.snd;
    this.bytesOut += snd.lastDataAcked;
    if (snd.lastDataAcked > 0) this.lastActivityAt = now;
    if (snd.flight > 0) {
      // RFC 6298 §5.3: restart the timer for the remaining data.
      this.timers.setRetransmit(now + snd.rtt.rto);
    } else if (this.timers.kind === TimerKind.RETRANSMIT) {
      // RFC 6298 §5.2: all outstanding data acknowledged: stop the timer.
      this.armIdle();
    }
  }

  /**
   * Seventh and eighth steps: segment text and FIN, in ESTABLISHED, FIN-WAIT-1 and FIN-WAIT-2
   * (in CLOSE-WAIT, CLOSING and LAST-ACK the peer's FIN has been received: text is ignored).
   */
  private processText(seg: Segment, textSeq: number, now: number): void {
    const fin = (seg.flags & TcpFlag.FIN) !== 0;
    const len = seg.payload.length;
    if (len === 0 && !fin) return;
    const st = this.state;
    if (st !== State.ESTABLISHED && st !== State.FIN_WAIT_1 && st !== State.FIN_WAIT_2) return;
    const r = this.rcv.ingest(textSeq, seg.payload, fin);
    if (r & RcvFlag.NO_MEMORY) {
      // --memory-limit refused the bytes: dropped like a full buffer's, the peer resends them;
      // ACK at once so it learns RCV.NXT (and the window that is not growing).
      this.events.drop(this, 'memory_limit');
      this.ackNow = true;
      return;
    }
    if (r & (RcvFlag.OUT_OF_ORDER | RcvFlag.DROPPED)) {
      // RFC 5681 §4.2 / RFC 9293 §3.10.7.4: an out-of-order segment is ACKed at once (a
      // duplicate ACK, with SACK blocks when negotiated).
      if (this.dupAcksOwed < MAX_DUP_ACKS) this.dupAcksOwed++;
      if (r & RcvFlag.DROPPED) this.events.drop(this, 'rcv_buffer_full');
    } else if (r & (RcvFlag.FILLED | RcvFlag.DUPLICATE)) {
      // RFC 5681 §4.2: a segment filling (part of) a hole is ACKed at once; so is a duplicate.
      this.ackNow = true;
    } else if (r & RcvFlag.DATA) {
      // RFC 5681 §4.2 / RFC 9293 §3.8.6.3: ACK at least every second full-sized segment, and
      // within delayedAckMs otherwise.
      this.rcvUnacked += this.rcv.delivered!.length;
      this.oweAck(this.rcvUnacked, Infinity, now);
    }
    if (r & RcvFlag.DATA) {
      const data = this.rcv.delivered!;
      this.rcv.delivered = null;
      this.bytesIn += data.length;
      this.lastActivityAt = now;
      this.handler.onData(this, data);
      if (this.state === State.CLOSED) return;
    }
    if (r & RcvFlag.FIN) this.receiveFin(now);
  }

  /** Eighth step: the peer's FIN, reached in order (RFC 9293 §3.10.7.4). */
  private receiveFin(now: number): void {
    // In ESTABLISHED its ACK is delayed like a data segment's (RFC 9293
    // §3.8.6.3 allows up to 0.5 s; ours is delayedAckMs, well under the peer's RTO): the proxy
    // passes the FIN on to the destination, whose close usually comes back first, and then our
    // FIN carries the ACK. One packet less per short connection; Linux does the same (a FIN
    // received in ESTABLISHED enters its delayed-ACK "pingpong" mode). In every other state
    // our FIN is already out and the FIN is ACKed at once.
    if (this.state === State.ESTABLISHED) {
      this.oweAck(0, Infinity, now);
    } else {
      this.ackNow = true;
    }
    switch (this.state) {
      case State.ESTABLISHED:
        this.transition(State.CLOSE_WAIT, now);
        this.handler.onFin(this);
        return;
      case State.FIN_WAIT_1:
        if (this.snd.finAcked) {
          this.enterTimeWait(now);
          this.handler.onFin(this);
          this.afterTimeWaitEntry(now);
        } else {
          this.transition(State.CLOSING, now);
          this.handler.onFin(this);
        }
        return;
      case State.FIN_WAIT_2:
        this.enterTimeWait(now);
        this.handler.onFin(this);
        this.afterTimeWaitEntry(now);
        return;
    }
  }

  /** TIME-WAIT: the one implementation of its rules lives in time-wait.ts. */
  private processTimeWait(seg: Segment, now: number): DropReason | null {
    const tw = this.tw!;
    const verdict = timeWaitProcess(tw, seg, now, this.cfg);
    switch (verdict) {
      case 'ack_restart':
        this.ackNow = true;
        this.timers.setTimeWait(tw.expiresAt);
        return null;
      case 'ack':
        this.ackNow = true;
        return this.drop('time_wait');
      case 'accept_syn':
        // RFC 6191 / RFC 9293 §3.10.7.4: a new incarnation takes over the 4-tuple.
        this.newIncarnationIss = nextIssAfterTimeWait(tw);
        this.ackNow = false;
        this.toClosed(now);
        return null;
      default:
        return this.drop('time_wait');
    }
  }

  /** A valid RST arrived (RFC 9293 §3.10.7.3/§3.10.7.4, RFC 5961 §3.2). */
  private resetReceived(now: number): null {
    this.events.reset(this, 'received', 'peer');
    if (!this.snd.synAcked && this.passive) this.events.handshake(this, 'reset', now - this.synAt);
    this.closeReason = 'reset_received';
    this.toClosed(now);
    return null;
  }

  // ------------------------------------------------------------------------------ owner calls

  /**
   * Queue data to send; keeps a reference to `buf`. Returns false once the buffered
   * (unacknowledged plus unsent) bytes reach cfg.sndBufBytes; onSendSpace follows when they fall
   * below it again. On a connection that is already closed (onClosed has fired) the data is
   * discarded and false returned. Throws ERR_TCP_WRITE_AFTER_CLOSE after close().
   */
  write(buf: Buffer): boolean {
    const st = this.state;
    if (st === State.CLOSED || st === State.TIME_WAIT || st === State.LISTEN) return false;
    if (this.snd.finQueued || this.closeDeferred) {
      throw new TcpConnError('ERR_TCP_WRITE_AFTER_CLOSE', `write() after close() on connection ${this.id}`);
    }
    this.snd.write(buf);
    this.dirty = true;
    if (this.snd.buf.length >= this.cfg.sndBufBytes) {
      this.writeBlocked = true;
      return false;
    }
    return true;
  }

  /**
   * The owner will send no more: a FIN follows the queued data (RFC 9293 §3.10.4 CLOSE).
   * ESTABLISHED → FIN_WAIT_1, CLOSE_WAIT → LAST_ACK, SYN_RECEIVED → FIN_WAIT_1 (or, with data
   * still queued, after ESTABLISHED), SYN_SENT → CLOSED. Idempotent elsewhere.
   */
  close(now: number): void {
    switch (this.state) {
      case State.ESTABLISHED:
        this.snd.queueFin();
        this.transition(State.FIN_WAIT_1, now);
        break;
      case State.CLOSE_WAIT:
        this.snd.queueFin();
        this.transition(State.LAST_ACK, now);
        break;
      case State.SYN_RECEIVED:
        if (this.snd.buf.length === 0) {
          this.snd.queueFin();
          this.transition(State.FIN_WAIT_1, now);
        } else {
          this.closeDeferred = true;
        }
        break;
      case State.SYN_SENT:
        // RFC 9293 §3.10.4 CLOSE in SYN-SENT: delete the TCB (nothing to tell the peer).
        this.closeReason = 'fin';
        this.toClosed(now);
        return;
      default:
        return;
    }
    this.dirty = true;
  }

  /**
   * Send RST and go to CLOSED (RFC 9293 §3.10.5 ABORT). No RST in SYN_SENT, TIME_WAIT or CLOSED.
   * closeReason: retransmit_timeout / idle_timeout / shutdown as given, upstream_refused →
   * upstream_failed, anything else → reset_sent.
   */
  abort(reason: ResetReason, now: number): void {
    const st = this.state;
    if (st === State.CLOSED) return;
    if (st !== State.SYN_SENT && st !== State.TIME_WAIT && st !== State.LISTEN) {
      // <SEQ=SND.NXT><CTL=RST>, with the ACK bit (as Linux) so the peer can match it. But an RST
      // beyond the peer's window is dropped unseen (RFC 9293 §3.10.7.4 first check, RFC 5961
      // §3.2), and SND.NXT lies beyond it after a zero-window probe octet the peer refused: then
      // use the window's right edge, SND.UNA + SND.WND (= its RCV.NXT when the window is zero),
      // as Linux's tcp_acceptable_seq() does. Otherwise a peer that never reads keeps its socket
      // ESTABLISHED forever after we gave up on it.
      const snd = this.snd;
      const wndEnd = seqAdd(snd.una, snd.wnd);
      const seq = snd.synAcked && seqGt(snd.max, wndEnd) ? wndEnd : snd.max;
      this.queueRst(seq, this.rcv.nxt, TcpFlag.RST | TcpFlag.ACK, reason);
    }
    if (!this.snd.synAcked && this.passive && st !== State.TIME_WAIT) {
      this.events.handshake(this, reason === 'upstream_refused' ? 'upstream_refused' : 'reset', now - this.synAt);
    }
    this.closeReason = st === State.TIME_WAIT ? 'fin' : closeReasonFor(reason);
    this.toClosed(now);
  }

  /**
   * The owner forwarded `n` delivered bytes: they leave the receive buffer (window update).
   * Returns true when that made a segment due (a window update, now or by the delayed ACK):
   * only then does the connection need a dispatch.
   */
  consume(n: number, now: number): boolean {
    if (n <= 0) return false;
    this.rcv.consume(n);
    const st = this.state;
    if (
      (st === State.ESTABLISHED || st === State.FIN_WAIT_1 || st === State.FIN_WAIT_2) &&
      this.rcv.windowUpdateDue()
    ) {
      // RFC 9293 §3.8.6.2.2: the window can open by at least min(MSS, RCV.BUFF/2): tell the peer.
      // At once when what it may still send is under two full segments (it may be stalled on the
      // window; two segments are what would draw our ACK anyway, RFC 5681 §4.2). Otherwise the
      // update rides on our next segment, at the latest the delayed ACK (RFC 9293 §3.8.6.3): the
      // peer is not waiting for it. That is the case right after the handshake, when the SYN-ACK's
      // unscaled 16-bit field (RFC 7323 §2.2) could not say the whole window: the first bytes the
      // proxy passes on would otherwise cost a packet of their own on every short connection.
      this.oweAck(0, this.rcv.advertisedWindow, now);
      this.dirty = true;
      this.lastActivityAt = now;
      return true;
    }
    this.lastActivityAt = now;
    return false;
  }

  /** The compact TIME-WAIT record for the stack to keep instead of this object. */
  toTimeWait(): TimeWaitRecord {
    if (this.state !== State.TIME_WAIT || this.tw === null) {
      throw new TcpConnError('ERR_TCP_BAD_STATE', `toTimeWait() on a connection in ${stateName(this.state)}`);
    }
    return this.tw;
  }

  /** Copy `len` payload bytes of the send stream starting `offsetFromUna` bytes after SND.UNA. */
  copyPayload(dst: Buffer, dstOffset: number, offsetFromUna: number, len: number): void {
    this.snd.buf.copy(dst, dstOffset, offsetFromUna, len);
  }

  /** Hand the same bytes to a link's transmit slot as views of the send buffer (no copy); false if they span too many chunks. */
  attachPayload(sink: ViewSink, slot: number, offsetFromUna: number, len: number, maxViews: number): boolean {
    return this.snd.buf.attach(sink, slot, offsetFromUna, len, maxViews);
  }

  /** When dispatch must run next: 0 if something is due now, Infinity if nothing is pending. */
  pollAt(): number {
    if (this.dirty || this.rstPending) return 0;
    return this.timers.next();
  }

  // ------------------------------------------------------------------------------ output

  /**
   * Run due timers and emit every segment due now via `emit(conn, out)`. `out` is one reused
   * OutSegment: emit must serialize it (payload via copyPayload) before returning. Stops when
   * emit returns false and resumes at the next call.
   */
  dispatch(now: number, emit: (conn: TcpConn, out: OutSegment) => boolean): void {
    this.runTimers(now);
    if (this.rstPending) {
      this.buildRst(now);
      if (!emit(this, OUT)) return;
      this.rstPending = false;
    }
    const st = this.state;
    if (st === State.CLOSED || st === State.LISTEN || st === State.TIME_WAIT) {
      this.dispatchEnded(now, emit);
      return;
    }
    if (this.synPending) {
      this.buildSyn(now);
      if (!emit(this, OUT)) return;
      this.commitSyn(now);
    }
    if (this.state === State.SYN_SENT) {
      this.dirty = false;
      return;
    }
    if (!this.sendData(now, emit)) return;
    if (!this.sendProbes(now, emit)) return;
    if (!this.sendAcks(now, emit)) return;
    this.dirty = false;
  }

  /** CLOSED, LISTEN and TIME-WAIT send nothing but the ACK TIME-WAIT (or its skipped place) owes. */
  private dispatchEnded(now: number, emit: (conn: TcpConn, out: OutSegment) => boolean): void {
    switch (this.state) {
      case State.CLOSED:
        if (this.finalAckOwed) {
          // TIME-WAIT was skipped (--max-time-wait): the peer's FIN still gets its ACK, the
          // same <SEQ=SND.NXT><ACK=RCV.NXT> TIME-WAIT would have sent.
          buildTimeWaitAck(this.tw!, now, OUT);
          if (!emit(this, OUT)) return;
          this.finalAckOwed = false;
        }
        this.dirty = false;
        return;
      case State.LISTEN:
        this.dirty = false;
        return;
      case State.TIME_WAIT:
        if (this.ackNow) {
          buildTimeWaitAck(this.tw!, now, OUT);
          if (!emit(this, OUT)) return;
          this.ackNow = false;
          this.dupAcksOwed = 0;
        }
        this.dirty = false;
        return;
    }
  }

  /** The zero-window probe (persist.ts) and the keepalive probe (keepalive.ts); false if emit refused one. */
  private sendProbes(now: number, emit: (conn: TcpConn, out: OutSegment) => boolean): boolean {
    if (this.probePending) {
      if (this.snd.probe(PLAN)) {
        this.buildData(now);
        if (!emit(this, OUT)) return false;
        this.commitData(now);
      }
      this.probePending = false;
    }
    if (this.keepalivePending) {
      // RFC 9293 §3.8.4: SEG.SEQ = SND.NXT − 1, no data, to elicit an ACK (keepalive.ts).
      this.buildAck(now, keepaliveProbeSeq(this.snd.max));
      if (!emit(this, OUT)) return false;
      this.commitAck();
      this.keepalivePending = false;
    }
    return true;
  }

  /** Pure ACKs owed (at once, delayed-ACK expiry, duplicate ACKs); false if emit refused one. */
  private sendAcks(now: number, emit: (conn: TcpConn, out: OutSegment) => boolean): boolean {
    while (this.ackNow || this.dupAcksOwed > 0) {
      // <SEQ=SND.NXT><ACK=RCV.NXT>: SND.NXT in the RFC's sense, i.e. SND.MAX here. Our SND.NXT may
      // have gone back to SND.UNA after an RTO (go-back-N); a pure ACK with that sequence number
      // could lie below the peer's RCV.NXT, be unacceptable, and have its ACK field ignored —
      // two such peers ACK each other forever.
      this.buildAck(now, this.snd.max);
      if (!emit(this, OUT)) return false;
      this.commitAck();
      if (this.dupAcksOwed > 0) this.dupAcksOwed--;
    }
    return true;
  }

  /** Data, FIN and retransmissions; false if emit refused a segment. */
  private sendData(now: number, emit: (conn: TcpConn, out: OutSegment) => boolean): boolean {
    const st = this.state;
    const snd = this.snd;
    if (!snd.synAcked) return true;
    if (st !== State.ESTABLISHED && st !== State.CLOSE_WAIT && st !== State.FIN_WAIT_1 && st !== State.CLOSING && st !== State.LAST_ACK) {
      return true;
    }
    if (snd.idle && snd.hasPending) snd.maybeIdleRestart(now);
    const plan = PLAN;
    while (snd.next(plan)) {
      this.buildData(now);
      if (!emit(this, OUT)) return false;
      this.commitData(now);
    }
    // RFC 9293 §3.8.6.1: something to send, nothing in flight, and the window does not let it
    // out (zero, or too small for sender SWS avoidance): the persist timer takes over (persist.ts).
    if (persistNeeded(snd.hasPending, snd.flight)) {
      if (this.timers.kind !== TimerKind.PERSIST) {
        this.persistBackoff = 0;
        this.timers.setPersist(now + this.nextPersistInterval());
      }
    } else if (this.timers.kind === TimerKind.PERSIST) {
      this.armIdle();
    }
    return true;
  }

  private nextPersistInterval(): number {
    return persistInterval(this.snd.rtt.rto, this.persistBackoff, this.cfg.maxRtoMs);
  }

  /** Fill OUT with the header common to every non-RST segment we send after the handshake. */
  private buildHeader(now: number, seq: number, flags: number): void {
    const out = OUT;
    out.clear();
    out.seq = seq;
    out.ack = this.rcv.nxt;
    out.flags = flags | TcpFlag.ACK;
    out.window = this.rcv.selectWindow();
    const o = out.options;
    if (this.tsEnabled) {
      // RFC 7323 §3.2: TSopt in every segment; TSecr = TS.Recent.
      o.tsPresent = true;
      o.tsVal = tsClock(now, this.tsOffset);
      o.tsEcr = this.tsRecent;
    }
    if (this.snd.sackOk && this.rcv.hasOutOfOrder) {
      // RFC 2018 §3: at most 3 blocks fit next to the timestamps option, 4 without.
      o.sackCount = this.rcv.sackBlocks(o.sackBlocks, this.tsEnabled ? 3 : 4);
    }
  }

  private buildAck(now: number, seq: number): void {
    this.buildHeader(now, seq, 0);
  }

  private buildData(now: number): void {
    const plan = PLAN;
    const snd = this.snd;
    let flags = plan.fin ? TcpFlag.FIN : 0;
    // PSH on the segment that empties the send buffer (RFC 9293 §3.9.1 SEND with PUSH).
    if (plan.len > 0 && seqAdd(plan.seq, plan.len) === snd.dataEnd) flags |= TcpFlag.PSH;
    this.buildHeader(now, plan.seq, flags);
    OUT.payloadOffset = plan.len > 0 ? snd.offsetOf(plan.seq) : 0;
    OUT.payloadLength = plan.len;
    OUT.gsoSize = plan.gsoSize;
  }

  /** An ACK is owed: at once or by the delayed-ACK deadline (delayed-ack.ts). */
  private oweAck(unackedBytes: number, peerRoom: number, now: number): void {
    const at = delayedAckAt(unackedBytes, peerRoom, this.rcv.mss, this.timers.delackAt, now, this.cfg.delayedAckMs);
    if (at === ACK_NOW) this.ackNow = true;
    else this.timers.delackAt = at;
  }

  private commitAck(): void {
    this.rcv.commitWindow(OUT.window);
    this.ackNow = false;
    this.rcvUnacked = 0;
    this.timers.delackAt = Infinity;
  }

  private commitData(now: number): void {
    const plan = PLAN;
    const snd = this.snd;
    this.commitAck();
    snd.sent(plan, now);
    switch (plan.kind) {
      case SendKind.FAST:
        this.reportRetransmit('fast');
        break;
      case SendKind.RTO:
        this.reportRetransmit('rto');
        break;
      case SendKind.PROBE:
        this.reportRetransmit('probe');
        return; // the persist timer stays in charge
    }
    // RFC 6298 §5.1: start the timer when sending data (or a FIN) if it is not running.
    if (!this.timers.retransmitRunning) this.timers.setRetransmit(now + snd.rtt.rto);
  }

  private reportRetransmit(kind: 'rto' | 'fast' | 'probe'): void {
    this.retransmits++;
    this.events.retransmit(this, kind);
  }

  private buildSyn(now: number): void {
    const out = OUT;
    const cfg = this.cfg;
    out.clear();
    out.seq = this.snd.iss;
    const o = out.options;
    o.mss = this.localMss;
    if (this.state === State.SYN_SENT) {
      // Active open: offer everything we support (RFC 7323 §2.2/§3.2, RFC 2018 §2).
      out.flags = TcpFlag.SYN;
      out.window = this.rcv.synWindow();
      o.wscale = cfg.wscale;
      o.sackPermitted = cfg.sack;
      if (cfg.timestamps) {
        o.tsPresent = true;
        o.tsVal = tsClock(now, this.tsOffset);
        o.tsEcr = 0;
      }
      return;
    }
    // SYN-ACK: only what the peer's SYN offered.
    out.flags = TcpFlag.SYN | TcpFlag.ACK;
    out.ack = this.rcv.nxt;
    out.window = this.rcv.synWindow();
    if (this.wsOk) o.wscale = cfg.wscale;
    o.sackPermitted = this.snd.sackOk;
    if (this.tsEnabled) {
      o.tsPresent = true;
      o.tsVal = tsClock(now, this.tsOffset);
      o.tsEcr = this.tsRecent;
    }
  }

  private commitSyn(now: number): void {
    const snd = this.snd;
    this.synPending = false;
    const retransmission = this.synSent;
    this.synSent = true;
    if (this.state !== State.SYN_SENT) {
      this.rcv.commitSynWindow(OUT.window);
      this.ackNow = false;
    }
    if (retransmission) {
      snd.rttTiming = false;
      if (this.synRetransmitDue) this.reportRetransmit('rto');
    } else {
      // RFC 6298 §3: the SYN / SYN-ACK may be timed (Karn: only if never retransmitted).
      snd.rttTiming = true;
      snd.rttSeq = snd.iss;
      snd.rttSentAt = now;
    }
    this.synRetransmitDue = false;
    if (!this.timers.retransmitRunning) this.timers.setRetransmit(now + snd.rtt.rto);
  }

  private buildRst(now: number): void {
    const out = OUT;
    out.clear();
    out.seq = this.rstSeq;
    out.ack = this.rstAck;
    out.flags = this.rstFlags;
    if (this.tsEnabled && this.rstFlags & TcpFlag.ACK) {
      // RFC 7323 §3.2: TSopt SHOULD be sent in an RST too.
      out.options.tsPresent = true;
      out.options.tsVal = tsClock(now, this.tsOffset);
      out.options.tsEcr = this.tsRecent;
    }
  }

  private queueRst(seq: number, ack: number, flags: number, reason: ResetReason): void {
    this.rstPending = true;
    this.rstSeq = seq;
    this.rstAck = ack;
    this.rstFlags = flags;
    this.dirty = true;
    this.events.reset(this, 'sent', reason);
  }

  // ------------------------------------------------------------------------------ timers

  private runTimers(now: number): void {
    const timers = this.timers;
    if (timers.delackAt <= now) {
      timers.delackAt = Infinity;
      this.ackNow = true;
    }
    if (timers.at > now) return;
    switch (timers.kind) {
      case TimerKind.RETRANSMIT:
        this.onRetransmitTimeout(now);
        return;
      case TimerKind.PERSIST:
        this.onPersistTimeout(now);
        return;
      case TimerKind.IDLE:
        this.onKeepaliveTimeout(now);
        return;
      case TimerKind.TIME_WAIT:
        // RFC 9293 §3.3.2: the 2×MSL timer ran out: TIME-WAIT → CLOSED.
        this.closeReason = 'fin';
        this.ackNow = false;
        this.toClosed(now);
        return;
    }
  }

  private onRetransmitTimeout(now: number): void {
    const snd = this.snd;
    if (!snd.synAcked) {
      // Our SYN or SYN-ACK went unanswered.
      if (this.synRetries >= this.cfg.maxSynAckRetries) {
        if (this.passive) this.events.handshake(this, 'timeout', now - this.synAt);
        this.closeReason = 'retransmit_timeout';
        this.toClosed(now);
        return;
      }
      this.synRetries++;
      snd.rtt.backoff();
      this.synPending = true;
      this.synRetransmitDue = true;
      this.dirty = true;
      this.timers.setRetransmit(now + snd.rtt.rto);
      return;
    }
    if (snd.idle) {
      this.armIdle();
      return;
    }
    // RFC 9293 §3.8.3 R2: give up after maxRetries retransmissions of the same data.
    if (snd.retries >= this.cfg.maxRetries) {
      this.abort('retransmit_timeout', now);
      return;
    }
    // RFC 6298 §5.4–5.6: retransmit (dispatch sends from SND.UNA), back off, restart the timer.
    snd.onRto(now);
    this.dupAcksOwed = 0;
    this.dirty = true;
    this.timers.setRetransmit(now + snd.rtt.rto);
  }

  /** SlowStartListener: the controller's initial slow start ended (once); nothing per ACK before. */
  slowStartEnded(how: SlowStartEnd): void {
    if (how !== SlowStartEnd.NONE) this.events.slowStartExit(this, SLOW_START_EXIT_REASONS[how - 1]!);
  }

  /** RFC 9293 §3.8.6.1 (persist.ts). */
  private onPersistTimeout(now: number): void {
    switch (persistTimeout(this.snd.hasPending, this.probesUnanswered, this.cfg.maxRetries)) {
      case 'idle':
        this.armIdle();
        return;
      case 'give_up':
        this.abort('retransmit_timeout', now);
        return;
    }
    this.probesUnanswered++;
    this.probePending = true;
    this.dirty = true;
    this.persistBackoff++;
    this.timers.setPersist(now + this.nextPersistInterval());
  }

  /** RFC 9293 §3.8.4 (keepalive.ts). */
  private onKeepaliveTimeout(now: number): void {
    switch (keepaliveTimeout(this.snd.idle, this.state, this.keepaliveProbes, this.cfg.keepaliveProbes)) {
      case 'retransmit':
        // Something is outstanding: the retransmission timer is in charge, not keepalive.
        this.timers.setRetransmit(now + this.snd.rtt.rto);
        return;
      case 'rearm':
        this.armIdle();
        return;
      case 'give_up':
        // RFC 9293 §3.8.4 / RFC 1122 §4.2.3.6: the peer is gone.
        this.abort('idle_timeout', now);
        return;
    }
    this.keepaliveProbes++;
    this.lastKeepaliveAt = now;
    this.keepalivePending = true;
    this.dirty = true;
    this.armIdle();
  }

  /** Main timer to IDLE, with the next keepalive deadline if keepalives apply. */
  private armIdle(): void {
    const cfg = this.cfg;
    if (keepaliveApplies(cfg.keepaliveIdleMs, this.state)) {
      this.timers.setIdle(
        keepaliveDeadline(cfg.keepaliveIdleMs, cfg.keepaliveIntervalMs, this.keepaliveProbes, this.lastRecvAt, this.lastKeepaliveAt),
      );
    } else {
      this.timers.setIdle(Infinity);
    }
  }

  /** Keep the keepalive deadline current after a segment arrives (cheap: only when idle). */
  private refreshIdle(): void {
    if (this.timers.kind === TimerKind.IDLE) this.armIdle();
  }

  /**
   * Drop the segment for `reason` with a challenge ACK (RFC 5961 §3.2/§4.2/§5.2), or, over the
   * budget (RFC 5961 §7), without one as 'challenge_ack_limit'.
   */
  private challengeAck(now: number, reason: DropReason): DropReason {
    if (!(this.challenges ??= new ChallengeAckBudget()).take(now, this.cfg.challengeAckLimitPerSec)) return this.drop('challenge_ack_limit');
    this.ackNow = true;
    return this.drop(reason);
  }

  // ------------------------------------------------------------------------------ transitions

  private transition(to: State, now: number): void {
    const from = this.state;
    this.events.stateChange(this, from, to, now, this.stateSince);
    this.state = to;
    this.stateSince = now;
  }

  /**
   * Enter TIME-WAIT: start 2×MSL, keep a compact record (RFC 9293 §3.10.7.4). If the gate refuses
   * (TimeWaitGate: the bound on records is reached), stay put: afterTimeWaitEntry closes instead.
   */
  private enterTimeWait(now: number): void {
    const expiresAt = now + 2 * this.cfg.mslMs;
    const tw = new TimeWaitRecord({
      id: this.id,
      sndNxt: this.snd.max,
      rcvNxt: this.rcv.nxt,
      window: this.rcv.selectWindow(),
      tsEnabled: this.tsEnabled,
      tsRecent: this.tsRecent,
      tsRecentAt: this.tsRecentAt,
      tsOffset: this.tsOffset,
      enteredAt: now,
      expiresAt,
    });
    this.tw = tw;
    if (this.timeWaitGate !== null && !this.timeWaitGate.admitTimeWait(this)) {
      this.timeWaitSkipped = true;
      return;
    }
    this.transition(State.TIME_WAIT, now);
    this.closeReason = 'fin';
    // "Turn off the other timers."
    this.timers.clear();
    this.timers.setTimeWait(expiresAt);
    this.dupAcksOwed = 0;
    this.probePending = false;
    this.keepalivePending = false;
    this.snd.buf.clear();
    this.rcv.reset();
  }

  /**
   * After enterTimeWait and the handler's onFin: tell the owner the connection is over, or, when
   * TIME-WAIT was refused, go to CLOSED now (Linux's tcp_done() after a timewait bucket overflow:
   * FIN_WAIT_2 → CLOSED) with the ACK of the peer's FIN still owed, sent by the next dispatch.
   */
  private afterTimeWaitEntry(now: number): void {
    if (!this.timeWaitSkipped) {
      this.notifyClosed();
      return;
    }
    const ackOwed = this.ackNow;
    this.closeReason = 'fin';
    this.toClosed(now);
    if (ackOwed) {
      this.finalAckOwed = true;
      this.dirty = true;
    }
  }

  private notifyClosed(): void {
    if (this.closedNotified) return;
    this.closedNotified = true;
    this.handler.onClosed(this);
  }

  /** Go to CLOSED (closeReason already set), release buffers, report and notify. */
  private toClosed(now: number): void {
    const reason = this.closeReason ?? 'fin';
    this.closeReason = reason;
    this.transition(State.CLOSED, now);
    this.timers.clear();
    this.synPending = false;
    this.ackNow = false;
    this.dupAcksOwed = 0;
    this.probePending = false;
    this.keepalivePending = false;
    this.snd.buf.clear();
    this.rcv.reset();
    this.dirty = this.rstPending;
    this.events.closed(this, reason, now);
    this.notifyClosed();
  }
}

/**
 * RFC 9293 §3.10.7.1: the reset for a segment that belongs to no connection. Never answers an
 * RST. If the segment has ACK: <SEQ=SEG.ACK><CTL=RST>; otherwise
 * <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>. Fills `out`; returns false when no reset is due.
 */
export function rstForUnknown(seg: Segment, out: OutSegment): boolean {
  if (seg.flags & TcpFlag.RST) return false;
  out.clear();
  if (seg.flags & TcpFlag.ACK) {
    out.seq = seg.ack;
    out.flags = TcpFlag.RST;
  } else {
    out.seq = 0;
    out.ack = seqAdd(seg.seq, seg.segLen);
    out.flags = TcpFlag.RST | TcpFlag.ACK;
  }
  return true;
}
