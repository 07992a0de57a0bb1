/**
 * The receiving half of a connection (gVisor's rcv.go): RCV.NXT, the advertised window, segment
 * trimming and the reassembly of out-of-order data.
 *
 * Window accounting. `unconsumed` bytes have been delivered to the owner (`onData`) but not yet
 * released with `consume()`; they still occupy the receive buffer. The window we offer is the
 * rest of the buffer, measured from RCV.NXT: right edge ≤ RCV.NXT + rcvBuf − unconsumed. Out-of-
 * order bytes lie inside that window, so they are covered by it: unconsumed + out-of-order bytes
 * never exceed the buffer (plus less than one window-scale unit, see below). Delivering in-order
 * data moves RCV.NXT and `unconsumed` by the same amount, so the bound — and the right edge —
 * stay put; only `consume()` moves the bound right. Hence the right edge never has to move left
 * (RFC 9293 §3.8.6.2.2: the receiver SHOULD NOT shrink the window; RFC 7323 §2.4).
 *
 * Window scaling granularity (RFC 7323 §2.4). With a shift s the wire can only say multiples of
 * 2^s. When the current right edge is not such a multiple away from RCV.NXT, rounding down would
 * retract it; we round up instead, which may promise up to 2^s − 1 bytes beyond the buffer. That
 * overshoot is allowed once (never on top of a previous one); in that rare case the edge is
 * rounded down, retracting by less than 2^s, which RFC 7323 §2.4 accepts. Data is accepted up to
 * the furthest edge ever advertised (`maxEdge`), so even then nothing we offered is refused.
 * Bound: buffered ≤ rcvBufBytes + 2^s − 1.
 *
 * Reassembly. Out-of-order bytes are copied (the segment's payload is not ours to keep) into
 * blocks of REASSEMBLY_BLOCK bytes, allocated for the part of the sequence space that holds some
 * and given back as RCV.NXT passes them: memory follows the bytes held (one out-of-order byte
 * costs one block), not the window. Block k covers [blockBase + k·B, blockBase + (k+1)·B), with
 * blockBase ≤ RCV.NXT < blockBase + B; the blocks that exist sit in a Map by block number (a
 * slot table sized to the window would cost more than the block itself for a lone byte). Which bytes are held is a sorted list of
 * disjoint ranges in a preallocated Uint32Array. Only bytes inside the window are ever stored; the
 * number of ranges is bounded too (`MAX_OOO_RANGES`). With a MemoryBudget every block and every
 * delivered-but-unconsumed byte is charged to it: a block it refuses is a segment dropped (the
 * peer retransmits it); under pressure the window stops growing (see selectWindow).
 */
import type { MemoryBudget } from './memory-budget.js';
import { MemoryKind } from './memory-budget.js';
import { MAX_SACK_BLOCKS } from '../wire/segment.js';
import { seqAdd, seqDiff, seqGt, seqInWindow, seqLeq, seqLt } from './seq.js';

/** Bytes per reassembly block: a full-sized Ethernet segment spans at most two. */
export const REASSEMBLY_BLOCK = 4096;
const BLOCK_SHIFT = 12;
const BLOCK_MASK = REASSEMBLY_BLOCK - 1;
/** Free blocks kept for reuse across connections (256 KiB at most). */
const MAX_FREE_BLOCKS = 64;
const FREE_BLOCKS: Buffer[] = [];

function takeBlock(): Buffer {
  return FREE_BLOCKS.pop() ?? Buffer.allocUnsafeSlow(REASSEMBLY_BLOCK);
}

function giveBlock(b: Buffer): void {
  if (FREE_BLOCKS.length < MAX_FREE_BLOCKS) FREE_BLOCKS.push(b);
}

/** Most disjoint out-of-order ranges kept; new data that would need another range is dropped. */
export const MAX_OOO_RANGES = 32;
/** The reassembly ranges of a receiver that has never queued one (never indexed: rangeCount is 0). */
const NO_RANGES = new Uint32Array(0);

/** The largest 16-bit window field (RFC 9293 §3.1). */
const MAX_FIELD = 0xffff;

/** What `ingest` did with a segment's text and FIN (bit set). */
export const RcvFlag = {
  /** In-order bytes were delivered: take them from `delivered`. */
  DATA: 1,
  /** Bytes were stored above a hole (RFC 5681 §4.2: ACK at once, a duplicate ACK). */
  OUT_OF_ORDER: 2,
  /** The segment filled all or part of a hole (RFC 5681 §4.2: ACK at once). */
  FILLED: 4,
  /** The peer's FIN is now in order; RCV.NXT has moved past it. */
  FIN: 8,
  /** Nothing new: the text was entirely at or below RCV.NXT (an old duplicate). */
  DUPLICATE: 16,
  /** New out-of-order bytes could not be stored (range limit) and were dropped. */
  DROPPED: 32,
  /** The memory budget refused the bytes: the segment was dropped (drop reason memory_limit). */
  NO_MEMORY: 64,
} as const;

export class Receiver {
  /** IRS: the peer's initial sequence number. */
  irs: number;
  /** RCV.NXT. */
  nxt: number;
  /** The receive buffer (bytes): delivered-but-unconsumed plus window. */
  bufBytes: number;
  /** Rcv.Wind.Shift (RFC 7323 §2.3); 0 when window scaling is off. */
  shift: number;
  /** The segment size the peer sends us at most (our advertised MSS), for SWS avoidance. */
  mss: number;
  /** Bytes delivered to the owner and not yet consumed. */
  unconsumed: number;
  /** Right edge of the window in the last segment we sent (RCV.NXT + RCV.WND then). */
  advEdge: number;
  /** The furthest right edge ever advertised: data is accepted up to here. */
  maxEdge: number;
  /** RFC 7323 §4.3 Last.ACK.sent: the ACK field of the last segment we sent. */
  lastAckSent: number;
  /**
   * The in-order bytes of the last `ingest` for `onData` (null when none): an owned copy, or with
   * `deliverViews` a view into the segment's own buffer when they all come from it.
   */
  delivered: Buffer | null;
  /**
   * Deliver in-order bytes as a view into the caller's segment buffer instead of a copy (the
   * owner asked for it: ConnHandler.acceptsViews). Bytes joined up from the reassembly blocks are
   * always copied: the blocks are reused by the next out-of-order segment.
   */
  deliverViews: boolean;
  /** A FIN has been seen out of order at `finSeq` (nothing is accepted beyond it). */
  finSeen: boolean;
  finSeq: number;

  /** The budget every held byte is charged to (null: unaccounted, as in most unit tests). */
  readonly budget: MemoryBudget | null;
  /** Reassembly blocks by block number (blockHead is the number of the block at blockBase). */
  private blocks: Map<number, Buffer> | null;
  private blockHead: number;
  private blockBase: number;
  private blockSlots: number;
  private blocksHeld: number;
  /** Bytes of `unconsumed` charged to the budget. */
  private charged: number;
  private ranges: Uint32Array;
  private rangeCount: number;
  private oooTotal: number;
  /** Starts of the most recently stored out-of-order segments, newest first (RFC 2018 §4). */
  private recent: Uint32Array;
  private recentCount: number;

  constructor(bufBytes: number, mss: number, budget: MemoryBudget | null = null) {
    this.irs = 0;
    this.nxt = 0;
    this.bufBytes = bufBytes;
    this.shift = 0;
    this.mss = mss;
    this.unconsumed = 0;
    this.advEdge = 0;
    this.maxEdge = 0;
    this.lastAckSent = 0;
    this.delivered = null;
    this.deliverViews = false;
    this.finSeen = false;
    this.finSeq = 0;
    this.budget = budget;
    this.blocks = null;
    this.blockHead = 0;
    this.blockBase = 0;
    this.blockSlots = 0;
    this.blocksHeld = 0;
    this.charged = 0;
    // Allocated by the first out-of-order segment (most connections never see one).
    this.ranges = NO_RANGES;
    this.rangeCount = 0;
    this.oooTotal = 0;
    // Allocated with the first out-of-order segment too: a typed array costs an idle connection
    // ~220 bytes of heap (the view, its ArrayBuffer, the backing store).
    this.recent = NO_RANGES;
    this.recentCount = 0;
  }

  /**
   * Start receiving after the peer's SYN (IRS = `irs`) with our window shift (0 when window
   * scaling is off). The window of our SYN / SYN-ACK is recorded separately (`commitSynWindow`).
   */
  init(irs: number, shift: number): void {
    this.irs = irs;
    this.nxt = seqAdd(irs, 1);
    this.shift = shift;
    // Stored bytes lie in [RCV.NXT, RCV.NXT + maxWindow + 2^shift): one block more for blockBase
    // lagging behind RCV.NXT, one for the partial block at the end.
    this.blockSlots = Math.ceil((this.maxWindow + (1 << shift)) / REASSEMBLY_BLOCK) + 2;
    this.lastAckSent = this.nxt;
    this.advEdge = this.nxt;
    this.maxEdge = this.nxt;
  }

  /** The window a SYN or SYN-ACK offers: unscaled, so at most 65535 (RFC 7323 §2.2). */
  synWindow(): number {
    return this.bufBytes < MAX_FIELD ? this.bufBytes : MAX_FIELD;
  }

  /** Record the window of our SYN/SYN-ACK as advertised. */
  commitSynWindow(window: number): void {
    this.advEdge = seqAdd(this.nxt, window);
    if (seqGt(this.advEdge, this.maxEdge)) this.maxEdge = this.advEdge;
    this.lastAckSent = this.nxt;
  }

  /** The largest window we can express: min(buffer, 65535 × 2^shift). */
  get maxWindow(): number {
    // 1 << shift, not 2 ** shift: a variable exponent is a call to pow() per segment (shift ≤ 14).
    const field = MAX_FIELD * (1 << this.shift);
    return this.bufBytes < field ? this.bufBytes : field;
  }

  /** RCV.WND for the acceptability test: up to the furthest edge advertised (≥ 0). */
  get window(): number {
    const w = seqDiff(this.maxEdge, this.nxt);
    return w > 0 ? w : 0;
  }

  /** The window in the last segment we sent (≥ 0). */
  get advertisedWindow(): number {
    const w = seqDiff(this.advEdge, this.nxt);
    return w > 0 ? w : 0;
  }

  /** Bytes held out of order. */
  get oooBytes(): number {
    return this.oooTotal;
  }

  /** Whether out-of-order data is held (SACK blocks to report). */
  get hasOutOfOrder(): boolean {
    return this.rangeCount > 0;
  }

  /** Bytes held in total: delivered-but-unconsumed plus out-of-order. */
  get buffered(): number {
    return this.unconsumed + this.oooTotal;
  }

  /** Whether reassembly blocks are currently allocated (for tests of the memory bound). */
  get ringAllocated(): boolean {
    return this.blocks !== null;
  }

  /** Bytes of reassembly blocks allocated now (one block per REASSEMBLY_BLOCK of sequence space holding data). */
  get reassemblyBytes(): number {
    return this.blocksHeld * REASSEMBLY_BLOCK;
  }

  /** What this receiver costs in buffers now: unconsumed bytes plus reassembly blocks. */
  get heldBytes(): number {
    return this.unconsumed + this.blocksHeld * REASSEMBLY_BLOCK;
  }

  /**
   * RFC 9293 §3.10.7.4 segment acceptability (the four cases of the table), against the furthest
   * right edge we advertised.
   */
  acceptable(seq: number, segLen: number): boolean {
    const wnd = this.window;
    if (segLen === 0) return wnd === 0 ? seq === this.nxt : seqInWindow(seq, this.nxt, wnd);
    if (wnd === 0) return false;
    return seqInWindow(seq, this.nxt, wnd) || seqInWindow(seqAdd(seq, segLen - 1), this.nxt, wnd);
  }

  /**
   * Take an acceptable segment's text (and FIN): trim what lies before RCV.NXT or beyond the
   * window (RFC 9293 §3.10.7.4 "segments with higher beginning sequence numbers ... trimmed"),
   * deliver what is in order (with anything it joins up from the reassembly queue) into
   * `delivered`, store what is not. Returns RcvFlag bits. `payload` is not kept.
   */
  ingest(seq: number, payload: Buffer, fin: boolean): number {
    this.delivered = null;
    let start = seq;
    let off = 0;
    let len = payload.length;
    let hasFin = fin;

    const behind = seqDiff(this.nxt, start);
    if (behind > 0) {
      // Everything before RCV.NXT is a duplicate; a FIN before RCV.NXT is impossible here.
      if (behind > len) return RcvFlag.DUPLICATE;
      off = behind;
      len -= behind;
      start = this.nxt;
      if (len === 0 && !hasFin) return RcvFlag.DUPLICATE;
    }
    if (this.finSeen) {
      // Nothing exists beyond the peer's FIN: ignore bytes past it (and a second, different FIN).
      const room = seqDiff(this.finSeq, start);
      if (room < 0) return 0;
      if (len > room) len = room;
      if (hasFin && seqAdd(start, len) !== this.finSeq) hasFin = false;
    }
    // Never take more than we advertised (RFC 9293 §3.10.7.4: trim to the window). A FIN right at
    // the edge occupies no buffer and is kept, unless data in front of it was cut.
    const room = seqDiff(this.maxEdge, start);
    if (len > room) {
      len = room > 0 ? room : 0;
      hasFin = false;
    }
    if (len === 0 && !hasFin) return 0;
    if (start === this.nxt) return this.inOrder(start, payload, off, len, hasFin);
    return this.outOfOrder(start, payload, off, len, hasFin);
  }

  /** The owner has passed on `n` delivered bytes: they no longer occupy the buffer. */
  consume(n: number): void {
    this.unconsumed = n < this.unconsumed ? this.unconsumed - n : 0;
    if (this.charged > this.unconsumed) {
      this.budget!.release(MemoryKind.RECEIVE, this.charged - this.unconsumed);
      this.charged = this.unconsumed;
    }
  }

  /** RFC 9293 §3.8.6.2.2: the right edge moves only by at least min(RCV.BUFF/2, MSS). */
  get swsThreshold(): number {
    const half = Math.floor(this.bufBytes / 2);
    return half < this.mss ? half : this.mss;
  }

  /**
   * Free buffer space measured from RCV.NXT, limited to what the window field can say and, under
   * memory pressure, to what the budget lets this connection grow to (MemoryBudget.growthCap: the
   * edge already advertised stays, selectWindow never retracts it).
   */
  private available(): number {
    let free = this.bufBytes - this.unconsumed;
    if (this.budget !== null) {
      const cap = this.budget.growthCap(this.heldBytes) - this.unconsumed;
      if (cap < free) free = cap;
    }
    if (free <= 0) return 0;
    const max = this.maxWindow;
    return free < max ? free : max;
  }

  /**
   * The window field for the next segment we send (scaled down by our shift; not committed).
   * Receiver SWS avoidance (RFC 9293 §3.8.6.2.2) holds the right edge until it can move by at
   * least `swsThreshold`; the edge never retracts (see the module comment for the one exception).
   */
  selectWindow(): number {
    const avail = this.available();
    const cur = this.advertisedWindow;
    let wnd = avail;
    if (wnd - cur < this.swsThreshold) wnd = cur;
    const unit = 1 << this.shift;
    let field = Math.floor(wnd / unit);
    if (field * unit < cur && (field + 1) * unit <= avail + unit - 1) field++;
    return field < MAX_FIELD ? field : MAX_FIELD;
  }

  /** Record that a segment carrying window field `field` and ACK = RCV.NXT went out. */
  commitWindow(field: number): void {
    this.advEdge = seqAdd(this.nxt, field * (1 << this.shift));
    if (seqGt(this.advEdge, this.maxEdge)) this.maxEdge = this.advEdge;
    this.lastAckSent = this.nxt;
  }

  /**
   * Whether a window update is worth sending now: the right edge could move by at least the SWS
   * threshold (RFC 9293 §3.8.6.2.2), which also covers re-opening a zero window.
   */
  windowUpdateDue(): boolean {
    return this.available() - this.advertisedWindow >= this.swsThreshold;
  }

  /**
   * Fill `out` with up to `max` SACK blocks [left, right) (RFC 2018 §4): the block holding the most
   * recently received segment first, then the other recently reported ones, then the rest from
   * the lowest up. Returns the number of blocks.
   */
  sackBlocks(out: Uint32Array, max: number): number {
    let count = 0;
    const limit = max < MAX_SACK_BLOCKS ? max : MAX_SACK_BLOCKS;
    for (let r = 0; r < this.recentCount && count < limit; r++) {
      const i = this.rangeHolding(this.recent[r]!);
      if (i >= 0) count = this.addBlock(out, count, i);
    }
    for (let i = 0; i < this.rangeCount && count < limit; i++) count = this.addBlock(out, count, i);
    return count;
  }

  /** Drop all reassembly state (connection closed or reset) and give its memory back. */
  reset(): void {
    this.freeBlocks();
    if (this.charged > 0) {
      this.budget!.release(MemoryKind.RECEIVE, this.charged);
      this.charged = 0;
    }
    this.unconsumed = 0;
    this.rangeCount = 0;
    this.oooTotal = 0;
    this.recentCount = 0;
    this.delivered = null;
  }

  // ------------------------------------------------------------------------------ internals

  private inOrder(start: number, payload: Buffer, off: number, len: number, hasFin: boolean): number {
    let flags = 0;
    const budget = this.budget;
    if (budget !== null && len > 0 && !budget.tryCharge(MemoryKind.RECEIVE, len, this.heldBytes) && !budget.chargeMinimum(MemoryKind.RECEIVE, len, this.unconsumed)) {
      // Over budget: give up what is held out of order first (Linux's tcp_prune_ofo_queue; the
      // peer's RTO resends it, RFC 2018 §8), so the hole can fill; else drop the segment.
      if (this.rangeCount === 0) return RcvFlag.NO_MEMORY;
      this.pruneOutOfOrder();
      if (!budget.tryCharge(MemoryKind.RECEIVE, len, this.heldBytes)) return RcvFlag.NO_MEMORY;
    }
    const end = seqAdd(start, len);
    if (hasFin && !this.finSeen) {
      this.finSeen = true;
      this.finSeq = end;
    }
    // Join up with the reassembly queue: every range starting at or before the new RCV.NXT.
    let newNxt = end;
    const ranges = this.ranges;
    let joined = 0;
    if (this.rangeCount > 0) flags |= RcvFlag.FILLED;
    while (joined < this.rangeCount && seqLeq(ranges[2 * joined]!, newNxt)) {
      const re = ranges[2 * joined + 1]!;
      if (seqGt(re, newNxt)) newNxt = re;
      joined++;
    }
    if (this.finSeen && seqGt(newNxt, this.finSeq)) newNxt = this.finSeq;
    const fromRing = seqDiff(newNxt, end);
    const total = len + fromRing;
    if (total > 0) {
      let buf: Buffer;
      if (fromRing === 0 && this.deliverViews) {
        // No copy and, for a whole payload, no allocation: the segment's bytes as they lie.
        buf = off === 0 && len === payload.length ? payload : payload.subarray(off, off + len);
      } else {
        buf = Buffer.allocUnsafe(total);
        if (len > 0) payload.copy(buf, 0, off, off + len);
        if (fromRing > 0) this.blockRead(end, buf, len, fromRing);
      }
      this.delivered = buf;
      this.unconsumed += total;
      flags |= RcvFlag.DATA;
    }
    if (budget !== null) {
      // The joined bytes exist already (in blocks given back below): charged without asking.
      if (fromRing > 0) budget.charge(MemoryKind.RECEIVE, fromRing);
      this.charged += total;
    }
    if (joined > 0) this.dropRanges(joined);
    this.nxt = newNxt;
    if (this.finSeen && this.nxt === this.finSeq) {
      // RFC 9293 §3.10.7.4 eighth: the FIN is in order; advance RCV.NXT over it.
      this.nxt = seqAdd(this.nxt, 1);
      this.finSeen = false;
      this.rangeCount = 0;
      this.oooTotal = 0;
      flags |= RcvFlag.FIN;
    }
    if (this.rangeCount === 0) {
      this.freeBlocks();
      this.recentCount = 0;
    } else {
      this.advanceBlocks();
    }
    return flags;
  }

  private outOfOrder(start: number, payload: Buffer, off: number, len: number, hasFin: boolean): number {
    const end = seqAdd(start, len);
    if (hasFin && !this.finSeen) {
      this.finSeen = true;
      this.finSeq = end;
    }
    if (len === 0) return RcvFlag.OUT_OF_ORDER;
    if (this.ranges.length === 0) this.ranges = new Uint32Array(MAX_OOO_RANGES * 2);
    const ranges = this.ranges;
    const n = this.rangeCount;
    // i: first range ending at or after `start` (overlapping or adjacent on the left);
    // j: first range starting after `end` (neither overlapping nor adjacent).
    let i = 0;
    while (i < n && seqLt(ranges[2 * i + 1]!, start)) i++;
    let j = i;
    while (j < n && seqLeq(ranges[2 * j]!, end)) j++;
    if (i === j && n === MAX_OOO_RANGES) return RcvFlag.DROPPED;
    if (!this.blockWrite(start, payload, off, len)) return RcvFlag.NO_MEMORY;

    if (i === j) {
      ranges.copyWithin(2 * i + 2, 2 * i, 2 * n);
      ranges[2 * i] = start;
      ranges[2 * i + 1] = end;
      this.rangeCount = n + 1;
      this.oooTotal += len;
    } else {
      let covered = 0;
      for (let k = i; k < j; k++) covered += seqDiff(ranges[2 * k + 1]!, ranges[2 * k]!);
      const lo = seqLt(ranges[2 * i]!, start) ? ranges[2 * i]! : start;
      const hi = seqGt(ranges[2 * (j - 1) + 1]!, end) ? ranges[2 * (j - 1) + 1]! : end;
      ranges[2 * i] = lo;
      ranges[2 * i + 1] = hi;
      if (j - i > 1) {
        ranges.copyWithin(2 * i + 2, 2 * j, 2 * n);
        this.rangeCount = n - (j - i - 1);
      }
      this.oooTotal += seqDiff(hi, lo) - covered;
    }
    this.noteRecent(start);
    return RcvFlag.OUT_OF_ORDER;
  }

  /** Remove the first `k` ranges (now in order). */
  private dropRanges(k: number): void {
    const ranges = this.ranges;
    for (let i = 0; i < k; i++) this.oooTotal -= seqDiff(ranges[2 * i + 1]!, ranges[2 * i]!);
    ranges.copyWithin(0, 2 * k, 2 * this.rangeCount);
    this.rangeCount -= k;
  }

  private noteRecent(start: number): void {
    if (this.recent.length === 0) this.recent = new Uint32Array(MAX_SACK_BLOCKS);
    const recent = this.recent;
    let n = this.recentCount < recent.length ? this.recentCount : recent.length - 1;
    recent.copyWithin(1, 0, n);
    recent[0] = start;
    n++;
    this.recentCount = n;
  }

  private rangeHolding(seq: number): number {
    const ranges = this.ranges;
    for (let i = 0; i < this.rangeCount; i++) {
      const s = ranges[2 * i]!;
      if (seqInWindow(seq, s, seqDiff(ranges[2 * i + 1]!, s))) return i;
    }
    return -1;
  }

  private addBlock(out: Uint32Array, count: number, i: number): number {
    const s = this.ranges[2 * i]!;
    for (let k = 0; k < count; k++) if (out[2 * k] === s) return count;
    out[2 * count] = s;
    out[2 * count + 1] = this.ranges[2 * i + 1]!;
    return count + 1;
  }

  /** Drop everything held out of order (memory pressure): the ranges and their blocks. */
  private pruneOutOfOrder(): void {
    this.rangeCount = 0;
    this.oooTotal = 0;
    this.recentCount = 0;
    this.freeBlocks();
  }

  /** Give back every reassembly block (and the slot ring). */
  private freeBlocks(): void {
    const blocks = this.blocks;
    if (blocks === null) return;
    for (const b of blocks.values()) giveBlock(b);
    if (this.blocksHeld > 0) this.budget?.release(MemoryKind.REASSEMBLY, this.blocksHeld * REASSEMBLY_BLOCK);
    this.blocksHeld = 0;
    this.blocks = null;
  }

  /**
   * RCV.NXT moved: give back the blocks wholly behind it (nothing stored is below RCV.NXT) and
   * move blockBase up so that blockBase ≤ RCV.NXT < blockBase + B again.
   */
  private advanceBlocks(): void {
    const blocks = this.blocks;
    if (blocks === null) return;
    let d = seqDiff(this.nxt, this.blockBase);
    let freed = 0;
    while (d >= REASSEMBLY_BLOCK) {
      const b = blocks.get(this.blockHead);
      if (b !== undefined) {
        giveBlock(b);
        blocks.delete(this.blockHead);
        freed++;
      }
      this.blockHead++;
      this.blockBase = seqAdd(this.blockBase, REASSEMBLY_BLOCK);
      d -= REASSEMBLY_BLOCK;
    }
    // The block RCV.NXT is in holds nothing more once the first range starts beyond it.
    const head = blocks.get(this.blockHead);
    if (head !== undefined && seqDiff(this.ranges[0]!, this.blockBase) >= REASSEMBLY_BLOCK) {
      giveBlock(head);
      blocks.delete(this.blockHead);
      freed++;
    }
    if (freed > 0) {
      this.blocksHeld -= freed;
      this.budget?.release(MemoryKind.REASSEMBLY, freed * REASSEMBLY_BLOCK);
    }
  }

  /** The number of the block holding `seq` (at or after blockBase, within the window). */
  private slotOf(seq: number): number {
    return this.blockHead + (seqDiff(seq, this.blockBase) >>> BLOCK_SHIFT);
  }

  /**
   * Copy [seq, seq + len) into the blocks, allocating the missing ones; false, and nothing
   * written, when the budget refuses them.
   */
  private blockWrite(seq: number, src: Buffer, off: number, len: number): boolean {
    if (this.blocks === null) {
      if (this.blockSlots === 0) this.blockSlots = Math.ceil((this.maxWindow + (1 << this.shift)) / REASSEMBLY_BLOCK) + 2;
      this.blocks = new Map();
      this.blockHead = 0;
      this.blockBase = this.nxt;
    }
    const blocks = this.blocks;
    const rel = seqDiff(seq, this.blockBase);
    const first = rel >>> BLOCK_SHIFT;
    const last = (rel + len - 1) >>> BLOCK_SHIFT;
    if (last >= this.blockSlots) return false;
    let missing = 0;
    for (let k = first; k <= last; k++) if (!blocks.has(this.blockHead + k)) missing++;
    if (missing > 0) {
      const budget = this.budget;
      if (budget !== null && !budget.tryCharge(MemoryKind.REASSEMBLY, missing * REASSEMBLY_BLOCK, this.heldBytes)) {
        if (this.rangeCount === 0) this.freeBlocks();
        return false;
      }
      this.blocksHeld += missing;
    }
    let s = seq;
    let o = off;
    let left = len;
    while (left > 0) {
      const slot = this.slotOf(s);
      let b = blocks.get(slot);
      if (b === undefined) {
        b = takeBlock();
        blocks.set(slot, b);
      }
      const at = seqDiff(s, this.blockBase) & BLOCK_MASK;
      const n = REASSEMBLY_BLOCK - at < left ? REASSEMBLY_BLOCK - at : left;
      src.copy(b, at, o, o + n);
      s = seqAdd(s, n);
      o += n;
      left -= n;
    }
    return true;
  }

  /** Copy [seq, seq + len) out of the blocks (every byte of it is held). */
  private blockRead(seq: number, dst: Buffer, dstOff: number, len: number): void {
    const blocks = this.blocks!;
    let s = seq;
    let o = dstOff;
    let left = len;
    while (left > 0) {
      const b = blocks.get(this.slotOf(s))!;
      const at = seqDiff(s, this.blockBase) & BLOCK_MASK;
      const n = REASSEMBLY_BLOCK - at < left ? REASSEMBLY_BLOCK - at : left;
      b.copy(dst, o, at, at + n);
      s = seqAdd(s, n);
      o += n;
      left -= n;
    }
  }
}
