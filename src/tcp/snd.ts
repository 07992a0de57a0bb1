/**
 * The sending half of a connection (gVisor's snd.go): SND.* variables, the send buffer, RTT
 * measurement, congestion control (through the configured controller only), loss detection and
 * recovery — RFC 5681 fast retransmit, RFC 6582 NewReno recovery, RFC 6675 SACK-based recovery —
 * and the choice of the next segment to send.
 *
 * The connection drives it: `ack()` for the ACK field of each acceptable segment, `onRto()` when
 * the retransmission timer fires, and, in `dispatch`, `next(plan)` to choose a segment and
 * `sent(plan)` once the stack has taken it. Choosing and committing are separate so that a full
 * device ring (emit returns false) leaves no trace.
 *
 * Sequence space. SND.UNA ≤ SND.NXT ≤ SND.MAX. SND.MAX is the highest sequence number sent plus
 * one (RFC 6582's "recover" and RFC 5961's upper ACK bound use it). After an RTO, SND.NXT goes
 * back to SND.UNA and the bytes up to SND.MAX are sent again in order (go-back-N, as BSD and
 * smoltcp do); a zero-window probe raises SND.MAX without moving SND.NXT.
 */
import type { CongestionControlOptions, CongestionController, SlowStartListener } from './cc/controller.js';
import type { TcpConfig } from './config.js';
import { RttEstimator } from './rtt.js';
import { DUP_THRESH, SackScoreboard } from './sack-scoreboard.js';
import type { Segment } from '../wire/segment.js';
import { TcpFlag } from '../wire/segment.js';
import { ackAcceptable } from './challenge-ack.js';
import { SendBuffer } from './send-buffer.js';
import { seqAdd, seqDiff, seqGeq, seqGt, seqLeq, seqLt } from './seq.js';

/**
 * The hole SackScoreboard.nextHole finds, read at once by planRange: one scratch for every
 * connection (a per-connection typed array cost ~220 bytes of heap each, idle or not).
 */
const HOLE = new Uint32Array(3);

/** The controller options of cfg.hystart, shared by every connection (nothing allocated per one). */
const HYSTART_ON: CongestionControlOptions = Object.freeze({ hystart: true });
const HYSTART_OFF: CongestionControlOptions = Object.freeze({ hystart: false });

/** Loss-recovery mode. */
export const Recovery = {
  NONE: 0,
  /** RFC 6582 NewReno fast recovery (no SACK). */
  NEWRENO: 1,
  /** RFC 6675 SACK-based loss recovery. */
  SACK: 2,
} as const;
export type Recovery = (typeof Recovery)[keyof typeof Recovery];

/** Why a planned segment is sent. */
export const SendKind = {
  NONE: 0,
  /** New data and/or FIN at SND.NXT. */
  NEW: 1,
  /** Go-back-N resend at SND.NXT below the SND.MAX of the last RTO (reported as 'rto'). */
  RTO: 2,
  /** Fast retransmit / recovery retransmission of a hole (reported as 'fast'). */
  FAST: 3,
  /** Zero-window probe or SWS override (RFC 9293 §3.8.6.1/§3.8.6.2.1; reported as 'probe'). */
  PROBE: 4,
} as const;
export type SendKind = (typeof SendKind)[keyof typeof SendKind];

/** The segment `next()` chose (one reused object per connection). */
export class SendPlan {
  kind: SendKind = SendKind.NONE;
  seq = 0;
  /** Payload bytes. */
  len = 0;
  fin = false;
  /** >0 when `len` spans several MSS-sized segments for the device to cut (TSO/GSO). */
  gsoSize = 0;
}

/** Result bits of `ack()`. */
export const AckFlag = {
  /** SND.UNA advanced. */
  NEW: 1,
  /** Our SYN is now acknowledged (by this ACK). */
  SYN_ACKED: 2,
  /** Our FIN is now acknowledged (by this ACK). */
  FIN_ACKED: 4,
  /** A duplicate ACK (RFC 5681 §2 / RFC 6675 §2). */
  DUP: 8,
  /** Loss recovery was entered: a retransmission is pending. */
  RECOVERY: 16,
  /** Loss recovery ended (RFC 6582 full ACK / RFC 6675 RecoveryPoint reached). */
  RECOVERED: 32,
  /** A new RTT sample was taken. */
  RTT: 64,
  /** The send window changed. */
  WINDOW: 128,
} as const;

export class Sender {
  /** ISS. */
  iss: number;
  /**
   * Our SYN has been acknowledged. Kept, not derived from SND.UNA ≠ ISS: SND.UNA is back at ISS
   * after 2^32 − 1 bytes acknowledged, and a connection that took that for "SYN unacknowledged"
   * would answer the next duplicate ACK with an RST (the SYN-RECEIVED rule of RFC 9293
   * §3.10.7.4), complete its handshake a second time and misplace its send buffer by one byte.
   * Set by `advance` only.
   */
  synAcked: boolean;
  /** SND.UNA. */
  una: number;
  /** SND.NXT. */
  nxt: number;
  /** SND.MAX: highest sequence number sent, plus one. */
  max: number;
  /** SND.WND (bytes, already scaled). */
  wnd: number;
  /** SND.WL1 / SND.WL2 (RFC 9293 §3.10.7.4). */
  wl1: number;
  wl2: number;
  /** MAX.SND.WND (RFC 5961 §5.2): the largest window the peer has offered. */
  maxWnd: number;
  /** Snd.Wind.Shift (RFC 7323 §2.3). */
  shift: number;
  /** Eff.snd.MSS (RFC 9293 §3.7.1): payload bytes per segment, options excluded. */
  mss: number;
  /** Largest payload handed to the device as one TSO/GSO segment (0: MSS only). */
  gsoMax: number;
  readonly buf: SendBuffer;
  /** close() was called: a FIN follows the buffered data at `finSeq`. */
  finQueued: boolean;
  finSeq: number;
  readonly rtt: RttEstimator;
  cc: CongestionController;
  /** listenSlowStart's listener, handed to every controller this sender makes. */
  private slowStartListener: SlowStartListener | null = null;
  readonly ccFactory: TcpConfig['congestionControl'];
  /** The options every controller of this connection is made with (cfg.hystart). */
  readonly ccOpts: CongestionControlOptions;
  /** SACK negotiated (RFC 2018). */
  sackOk: boolean;
  readonly sb: SackScoreboard;
  /** Karn's algorithm (RFC 6298 §3): one segment timed at a time, never a retransmitted one. */
  rttTiming: boolean;
  rttSeq: number;
  rttSentAt: number;
  recovery: Recovery;
  /** RFC 6582 "recover" / RFC 6675 RecoveryPoint (an exclusive end: SND.MAX at the time). */
  recover: number;
  dupAcks: number;
  /** RFC 6582 / RFC 5681 §3.2 window inflation, added to cwnd during NewReno recovery (bytes). */
  inflate: number;
  /** RFC 6675 HighRxt as an exclusive end (see sack-scoreboard.ts). */
  highRxt: number;
  /** Retransmit the segment at SND.UNA at the next opportunity (fast retransmit, partial ACK). */
  fastRtxPending: boolean;
  /** Segments sent at SND.NXT below this are go-back-N retransmissions after an RTO. */
  rtoRewindEnd: number;
  /** Consecutive retransmission timeouts without progress (RFC 9293 §3.8.3 R2). */
  retries: number;
  /** When data or a FIN was last sent (RFC 5681 §4.1 idle restart). */
  lastSendAt: number;
  /** Payload bytes acknowledged by the last ACK that advanced SND.UNA. */
  lastDataAcked: number;

  constructor(cfg: TcpConfig, now: number) {
    this.iss = 0;
    this.synAcked = false;
    this.una = 0;
    this.nxt = 0;
    this.max = 0;
    this.wnd = 0;
    this.wl1 = 0;
    this.wl2 = 0;
    this.maxWnd = 0;
    this.shift = 0;
    this.mss = cfg.mss;
    this.gsoMax = 0;
    this.buf = new SendBuffer();
    this.finQueued = false;
    this.finSeq = 0;
    this.rtt = new RttEstimator(cfg.initialRtoMs, cfg.minRtoMs, cfg.maxRtoMs, 1);
    this.ccFactory = cfg.congestionControl;
    this.ccOpts = cfg.hystart === false ? HYSTART_OFF : HYSTART_ON;
    this.cc = cfg.congestionControl(cfg.mss, now, this.ccOpts);
    this.sackOk = false;
    this.sb = new SackScoreboard();
    this.rttTiming = false;
    this.rttSeq = 0;
    this.rttSentAt = 0;
    this.recovery = Recovery.NONE;
    this.recover = 0;
    this.dupAcks = 0;
    this.inflate = 0;
    this.highRxt = 0;
    this.fastRtxPending = false;
    this.rtoRewindEnd = 0;
    this.retries = 0;
    this.lastSendAt = now;
    this.lastDataAcked = 0;
  }

  /** Start a connection with initial send sequence number `iss` (nothing sent yet). */
  init(iss: number): void {
    this.iss = iss;
    this.synAcked = false;
    this.una = iss;
    this.nxt = iss;
    this.max = iss;
    this.recover = iss;
    this.highRxt = iss;
    this.rtoRewindEnd = iss;
  }

  /**
   * Our SYN (or SYN-ACK) is queued: it occupies ISS, so SND.NXT = ISS + 1 from now on (RFC 9293
   * §3.10.1 / §3.10.7.2), whether or not the stack has emitted it yet.
   */
  synQueued(): void {
    this.nxt = seqAdd(this.iss, 1);
    this.max = this.nxt;
  }

  /**
   * Fix the negotiated parameters once the peer's SYN options are known and create the
   * congestion controller for the effective MSS.
   */
  negotiate(mss: number, shift: number, sackOk: boolean, gsoMaxBytes: number, now: number): void {
    this.mss = mss;
    this.shift = shift;
    this.sackOk = sackOk;
    this.gsoMax = gsoMaxBytes > mss ? gsoMaxBytes - (gsoMaxBytes % mss) : 0;
    this.cc = this.ccFactory(mss, now, this.ccOpts);
    this.cc.slowStartListener = this.slowStartListener;
  }

  /** Who hears when the initial slow start ends (the connection), for this controller and the one negotiate() makes. */
  listenSlowStart(listener: SlowStartListener): void {
    this.slowStartListener = listener;
    this.cc.slowStartListener = listener;
  }

  /** Sequence number of the first byte in the send buffer (after the SYN, which occupies ISS). */
  get dataStart(): number {
    return this.synAcked ? this.una : seqAdd(this.iss, 1);
  }

  /** Sequence number just past the last buffered byte. */
  get dataEnd(): number {
    return seqAdd(this.dataStart, this.buf.length);
  }


  /** Our FIN has been acknowledged. */
  get finAcked(): boolean {
    return this.finQueued && seqGt(this.una, this.finSeq);
  }

  /** FlightSize (RFC 5681 §2) as the sender sees it: SND.NXT − SND.UNA (bytes, SYN/FIN counted). */
  get flight(): number {
    return seqDiff(this.nxt, this.una);
  }

  /** Outstanding sequence space: SND.MAX − SND.UNA. */
  get outstanding(): number {
    return seqDiff(this.max, this.una);
  }

  /** The window the sender uses now: cwnd (inflated in NewReno recovery), never below one MSS. */
  get cwnd(): number {
    const w = this.cc.cwnd + this.inflate;
    return w > this.mss ? w : this.mss;
  }

  /** Something is waiting to be sent at or after SND.NXT (data, or a FIN not yet sent). */
  get hasPending(): boolean {
    return seqLt(this.nxt, this.dataEnd) || (this.finQueued && seqLeq(this.nxt, this.finSeq));
  }

  /** Queue data (kept by reference). */
  write(buf: Buffer): void {
    this.buf.push(buf);
  }

  /** No more data: a FIN follows what is buffered (RFC 9293 §3.10.4 CLOSE). */
  queueFin(): void {
    if (this.finQueued) return;
    this.finQueued = true;
    this.finSeq = this.dataEnd;
  }

  // ----------------------------------------------------------------------------------- ACKs

  /**
   * RFC 5961 §5.2 ACK acceptability: SND.UNA − MAX.SND.WND ≤ SEG.ACK ≤ SND.MAX. (The lower
   * bound uses at least one 64 KiB window before the peer has offered anything larger.)
   */
  ackAcceptable(ack: number): boolean {
    return ackAcceptable(ack, this.una, this.max, this.maxWnd);
  }

  /**
   * Process the ACK field (and window) of an acceptable segment (ack ≤ SND.MAX, not older than
   * MAX.SND.WND). `tsNow` is our timestamp clock; RTT samples use TSecr when timestamps are on.
   * Returns AckFlag bits.
   */
  ack(seg: Segment, now: number, tsEnabled: boolean, tsNow: number, createdAt: number): number {
    const ack = seg.ack;
    let result = 0;
    // 1 << shift (≤ 14, RFC 7323 §2.3), not 2 ** shift: that is a call to pow() per ACK.
    const wndBytes = seg.window * (1 << this.shift);
    const opts = seg.options;

    // RFC 5681 §2 DUPLICATE ACKNOWLEDGMENT (a)-(e), before the window is updated.
    const dupCandidate =
      ack === this.una &&
      seqGt(this.max, this.una) &&
      seg.payload.length === 0 &&
      (seg.flags & (TcpFlag.SYN | TcpFlag.FIN)) === 0;
    const sameWindow = wndBytes === this.wnd;

    // RFC 6675 §5: the scoreboard is updated for every ACK carrying SACK information.
    let newlySacked = 0;
    if (this.sackOk && opts.sackCount > 0 && seqGeq(ack, this.una)) {
      newlySacked = this.sb.update(ack, this.max, opts.sackBlocks, opts.sackCount);
    }

    if (seqGt(ack, this.una)) result |= this.advance(seg, now, tsEnabled, tsNow, createdAt);
    // RFC 5681 §2: a duplicate ACK repeats SND.UNA with the same window; RFC 6675 §2: with SACK,
    // any ACK that SACKs new data counts, "regardless of its status as a cumulative ACK".
    if ((dupCandidate && sameWindow) || newlySacked > 0) {
      result |= AckFlag.DUP | this.duplicate(now);
    }

    // RFC 9293 §3.10.7.4: update the send window if the segment is not older than the last update.
    if (seqLt(this.wl1, seg.seq) || (this.wl1 === seg.seq && seqLeq(this.wl2, ack))) {
      if (wndBytes !== this.wnd) result |= AckFlag.WINDOW;
      this.wnd = wndBytes;
      this.wl1 = seg.seq;
      this.wl2 = ack;
      if (wndBytes > this.maxWnd) this.maxWnd = wndBytes;
    }
    return result;
  }

  /** SND.UNA < SEG.ACK ≤ SND.MAX: new data (or SYN/FIN) acknowledged. */
  private advance(seg: Segment, now: number, tsEnabled: boolean, tsNow: number, createdAt: number): number {
    const ack = seg.ack;
    let result = AckFlag.NEW;
    const flightBefore = this.outstanding;
    const acked = seqDiff(ack, this.una);
    // Payload bytes acknowledged: those of [dataStart, ack) that are buffered.
    let dataAcked = seqDiff(ack, this.dataStart);
    if (dataAcked < 0) dataAcked = 0;
    if (dataAcked > this.buf.length) dataAcked = this.buf.length;
    // The first ACK to advance SND.UNA acknowledges our SYN (it occupies ISS).
    if (!this.synAcked) {
      this.synAcked = true;
      result |= AckFlag.SYN_ACKED;
    }
    const finWasAcked = this.finAcked;
    this.buf.consume(dataAcked);
    this.lastDataAcked = dataAcked;
    this.una = ack;
    if (seqLt(this.nxt, ack)) this.nxt = ack;
    if (seqLt(this.highRxt, ack)) this.highRxt = ack;
    // The go-back-N bound follows SND.UNA once it is passed: left 2^31 bytes behind (2 GB after
    // the last RTO, or after the ISS), modular comparison would put it ahead again and every new
    // segment would count as an RTO retransmission.
    if (seqLt(this.rtoRewindEnd, ack)) this.rtoRewindEnd = ack;
    if (!finWasAcked && this.finAcked) result |= AckFlag.FIN_ACKED;
    this.retries = 0;

    // RTT measurement: RFC 7323 §4.1/Appendix G from TSecr on ACKs that advance SND.UNA;
    // otherwise the timed segment of Karn's algorithm (RFC 6298 §3).
    let rttMs = -1;
    const tsEcr = seg.options.tsEcr;
    if (tsEnabled && seg.options.tsPresent && tsEcr !== 0) {
      const d = seqDiff(tsNow, tsEcr);
      // The echo must come from this connection's lifetime (guards against a zero/garbage TSecr).
      if (d >= 0 && d <= now - createdAt + 1) rttMs = d;
    } else if (this.rttTiming && seqGt(ack, this.rttSeq)) {
      rttMs = now - this.rttSentAt;
    }
    if (seqGt(ack, this.rttSeq)) this.rttTiming = false;
    if (rttMs >= 0) {
      this.rtt.sample(rttMs);
      result |= AckFlag.RTT;
    }

    if (this.recovery !== Recovery.NONE) {
      if (seqGeq(ack, this.recover)) {
        // RFC 6582 §3.2 step 3 full acknowledgment / RFC 6675 §5 (A): recovery ends.
        this.recovery = Recovery.NONE;
        this.inflate = 0;
        this.dupAcks = 0;
        this.fastRtxPending = false;
        this.cc.onRecoveryEnd(now);
        result |= AckFlag.RECOVERED;
      } else if (this.recovery === Recovery.NEWRENO) {
        // RFC 6582 §3.2 step 3 partial acknowledgment: retransmit the first unacknowledged
        // segment, deflate cwnd by the amount acknowledged, add back one SMSS if at least one
        // SMSS was acknowledged.
        this.fastRtxPending = true;
        this.inflate -= acked;
        if (acked >= this.mss) this.inflate += this.mss;
      }
      // RFC 6675: partial ACKs need nothing more than the scoreboard and pipe.
    } else {
      this.dupAcks = 0;
      // Payload bytes (SYN/FIN are sequence space only); rttMs, una, nxt for HyStart++ (controller.ts).
      if (dataAcked > 0) this.cc.onAck(dataAcked, flightBefore, now, this.rtt.srtt, rttMs, ack, this.nxt);
    }
    if (this.sackOk) this.sb.advance(ack);
    return result;
  }

  /** A duplicate ACK (RFC 5681 §2, RFC 6675 §2). */
  private duplicate(now: number): number {
    if (this.recovery === Recovery.NEWRENO) {
      // RFC 5681 §3.2 step 4 / RFC 6582 §3.2 step 4: inflate by one SMSS per further dup ACK.
      this.inflate += this.mss;
      return 0;
    }
    if (this.recovery === Recovery.SACK) return 0; // RFC 6675: pipe accounts for it
    this.dupAcks++;
    const sackLost = this.sackOk && this.sb.isLost(this.una, this.mss);
    if (this.dupAcks < DUP_THRESH && !sackLost) return 0;
    if (this.sackOk) {
      // RFC 6675 §5 (4): a new recovery only once the previous RecoveryPoint is acknowledged.
      if (seqLt(this.una, this.recover)) return 0;
    } else if (!seqGt(this.una, this.recover)) {
      // RFC 6582 §3.2 step 2: only if the cumulative ACK covers more than "recover".
      return 0;
    }
    // RFC 5681 §3.2 step 2 / RFC 6675 §5 (4.1–4.2): RecoveryPoint = HighData; ssthresh and cwnd
    // from FlightSize.
    this.recover = this.max;
    this.cc.onLoss(this.outstanding, now);
    this.fastRtxPending = true;
    this.highRxt = this.una;
    if (this.sackOk) {
      this.recovery = Recovery.SACK;
      this.inflate = 0;
    } else {
      this.recovery = Recovery.NEWRENO;
      // RFC 5681 §3.2 step 3 / RFC 6582 §3.2 step 2: cwnd = ssthresh + 3*SMSS.
      this.inflate = 3 * this.mss;
    }
    return AckFlag.RECOVERY;
  }

  /**
   * RFC 6298 §5.4–5.6 retransmission timeout: back off, collapse cwnd (RFC 5681 §3.1), end any
   * recovery and go back to SND.UNA. RFC 6582 §4.1 / RFC 6675 §5.1: recover = SND.MAX, so that
   * duplicate ACKs for data sent before the timeout do not start a fast retransmit. RFC 2018 §8:
   * SACK information is discarded (the receiver may have reneged).
   */
  onRto(now: number): void {
    this.cc.onRto(this.outstanding, now);
    this.rtt.backoff();
    this.retries++;
    this.recovery = Recovery.NONE;
    this.inflate = 0;
    this.dupAcks = 0;
    this.fastRtxPending = false;
    this.recover = this.max;
    this.rtoRewindEnd = this.max;
    this.sb.clear();
    this.highRxt = this.una;
    this.nxt = this.una;
    // RFC 6298 §3 (Karn): nothing sent before the timeout may be timed.
    this.rttTiming = false;
  }

  // ------------------------------------------------------------------------------- sending

  /**
   * Choose the next segment to send (data and/or FIN) into `plan`; false if nothing may be sent
   * now. Does not change any state: call `sent` once the segment is out.
   */
  next(plan: SendPlan): boolean {
    plan.kind = SendKind.NONE;
    plan.gsoSize = 0;
    if (this.fastRtxPending) {
      // RFC 5681 §3.2 step 2 / RFC 6582 / RFC 6675 (4.3): the first lost segment goes at once,
      // whatever cwnd says.
      if (this.sackOk && this.recovery === Recovery.SACK && this.sb.nextHole(this.una, this.una, this.mss, HOLE, true)) {
        return this.planRange(plan, SendKind.FAST, HOLE[0]!, HOLE[1]!);
      }
      return this.planRange(plan, SendKind.FAST, this.una, this.mss);
    }
    if (this.recovery === Recovery.SACK) return this.nextSack(plan);
    return this.nextNew(plan, this.cwnd - this.flight);
  }

  /** RFC 6675 §5 (C): while cwnd − pipe ≥ 1 SMSS, NextSeg(). */
  private nextSack(plan: SendPlan): boolean {
    const pipe = this.sb.pipe(this.una, this.nxt, this.highRxt, this.mss);
    const room = this.cc.cwnd - pipe;
    if (room < this.mss) return false;
    const hole = HOLE;
    // NextSeg rule (1): a lost hole above HighRxt.
    if (this.sb.nextHole(this.una, this.highRxt, this.mss, hole, false)) {
      return this.planRange(plan, SendKind.FAST, hole[0]!, hole[1]!);
    }
    // Rule (2): new data, as the receive window allows.
    if (this.nextNew(plan, room)) return true;
    // Rule (3): any un-SACKed hole above HighRxt.
    if (this.sb.nextHole(this.una, this.highRxt, this.mss, hole, true)) {
      return this.planRange(plan, SendKind.FAST, hole[0]!, hole[1]!);
    }
    return false;
  }

  /**
   * New data (or go-back-N resends) at SND.NXT within `cwndRoom` and the peer's window, with
   * sender silly-window avoidance (RFC 9293 §3.8.6.2.1) and no Nagle: a segment goes out if it is
   * full-sized, or carries everything queued, or at least half the largest window offered.
   */
  private nextNew(plan: SendPlan, cwndRoom: number): boolean {
    const nxt = this.nxt;
    const avail = seqDiff(this.dataEnd, nxt);
    const rwndRoom = seqDiff(seqAdd(this.una, this.wnd), nxt);
    const finPending = this.finQueued && seqLeq(nxt, this.finSeq);
    if (avail <= 0) {
      // Only a FIN (RFC 9293 §3.10.4): it takes one unit of the peer's window.
      if (!finPending || nxt !== this.finSeq) return false;
      if (rwndRoom < 1 || (cwndRoom < 1 && this.flight > 0)) return false;
      return this.plan(plan, nxt, 0, true);
    }
    const usable = rwndRoom < cwndRoom ? rwndRoom : cwndRoom;
    if (usable <= 0) return false;
    const mss = this.mss;
    let len = avail < usable ? avail : usable;
    let gso = 0;
    const maxSeg = this.gsoMax > 0 && this.recovery === Recovery.NONE ? this.gsoMax : mss;
    if (len > maxSeg) len = maxSeg;
    if (len > mss) {
      // One TSO/GSO segment: whole MSS pieces, except a final short piece that ends the data.
      if (len < avail) len -= len % mss;
      gso = mss;
    } else if (len < mss && len < avail && len * 2 < this.maxWnd) {
      // RFC 9293 §3.8.6.2.1: neither full-sized, nor all queued data, nor ≥ Fs·max window.
      return false;
    }
    const fin = finPending && seqAdd(nxt, len) === this.finSeq;
    this.plan(plan, nxt, len, fin);
    plan.gsoSize = gso;
    return true;
  }

  /**
   * A zero-window probe or SWS override (RFC 9293 §3.8.6.1 / §3.8.6.2.1): send what the window
   * allows, at least one octet of new data (or the FIN) even into a zero window.
   */
  probe(plan: SendPlan): boolean {
    plan.gsoSize = 0;
    const nxt = this.nxt;
    const avail = seqDiff(this.dataEnd, nxt);
    if (avail <= 0) {
      if (!this.finQueued || nxt !== this.finSeq) return false;
      this.plan(plan, nxt, 0, true);
      plan.kind = SendKind.PROBE;
      return true;
    }
    const rwndRoom = seqDiff(seqAdd(this.una, this.wnd), nxt);
    let len = rwndRoom > 1 ? rwndRoom : 1;
    if (len > avail) len = avail;
    if (len > this.mss) len = this.mss;
    this.plan(plan, nxt, len, false);
    plan.kind = SendKind.PROBE;
    return true;
  }

  /** A retransmission of the sequence range [seq, seq + seqLen) (data, possibly ending in the FIN). */
  private planRange(plan: SendPlan, kind: SendKind, seq: number, seqLen: number): boolean {
    let len = seqDiff(this.dataEnd, seq);
    if (len < 0) len = 0;
    if (len > seqLen) len = seqLen;
    if (len > this.mss) len = this.mss;
    const fin = this.finQueued && seqAdd(seq, len) === this.finSeq && seqGt(this.max, this.finSeq);
    if (len === 0 && !fin) return false;
    plan.kind = kind;
    plan.seq = seq;
    plan.len = len;
    plan.fin = fin;
    return true;
  }

  private plan(plan: SendPlan, seq: number, len: number, fin: boolean): boolean {
    plan.kind = seqLt(seq, this.rtoRewindEnd) ? SendKind.RTO : SendKind.NEW;
    plan.seq = seq;
    plan.len = len;
    plan.fin = fin;
    return true;
  }

  /** Payload offset of `seq` from SND.UNA's data (for copyPayload). */
  offsetOf(seq: number): number {
    return seqDiff(seq, this.dataStart);
  }

  /** Commit a planned segment that the stack has taken. */
  sent(plan: SendPlan, now: number): void {
    const end = seqAdd(plan.seq, plan.len + (plan.fin ? 1 : 0));
    switch (plan.kind) {
      case SendKind.FAST:
        this.fastRtxPending = false;
        if (seqLt(this.highRxt, end)) this.highRxt = end;
        break;
      case SendKind.PROBE:
        // The probe does not advance SND.NXT (nothing counts as in flight while probing), but
        // an ACK for it must be acceptable.
        if (seqGt(end, this.max)) this.max = end;
        break;
      default: {
        const isNew = !seqLt(plan.seq, this.max);
        this.nxt = end;
        if (seqGt(end, this.max)) this.max = end;
        // Karn (RFC 6298 §3): time only data sent for the first time.
        if (isNew && !this.rttTiming) {
          this.rttTiming = true;
          this.rttSeq = plan.seq;
          this.rttSentAt = now;
        }
      }
    }
    if (plan.kind !== SendKind.NEW && this.rttTiming && seqLeq(plan.seq, this.rttSeq) && seqLt(this.rttSeq, end)) {
      // The timed segment was retransmitted: its ACK would be ambiguous.
      this.rttTiming = false;
    }
    this.lastSendAt = now;
  }

  /** RFC 5681 §4.1: before sending after an idle period longer than an RTO, restart cwnd. */
  maybeIdleRestart(now: number): void {
    if (this.max === this.una && now - this.lastSendAt > this.rtt.rto) this.cc.onIdleRestart(now);
  }

  /** SND.MAX − SND.UNA is 0: nothing is unacknowledged. */
  get idle(): boolean {
    return this.max === this.una;
  }
}
