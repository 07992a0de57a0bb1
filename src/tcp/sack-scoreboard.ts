/**
 * The sender's SACK scoreboard (RFC 6675 §3–§4, SACK blocks per RFC 2018).
 *
 * The scoreboard remembers which bytes above SND.UNA the receiver has SACKed, as a sorted list of
 * disjoint, non-adjacent ranges [start, end) held in two preallocated Uint32Arrays, and answers the
 * RFC 6675 questions the sender asks during loss recovery: IsLost(), SetPipe() and NextSeg().
 * Nothing here allocates after construction.
 *
 * Conventions:
 * - Sequence numbers are u32; all comparisons go through seq.ts. Every stored range lies in
 *   [una, nxt], which is always less than 2^31 wide, so offsets from una order them.
 * - HighRxt is taken as an EXCLUSIVE end: the bytes [una, highRxt) have been retransmitted in the
 *   current recovery (highRxt = una when nothing has been). RFC 6675 §2 defines HighRxt as the
 *   highest retransmitted sequence number, so its "S ≤ HighRxt" / "S2 > HighRxt" tests become
 *   "S < highRxt" / "S2 ≥ highRxt" here. After retransmitting [s, s+len) the sender sets
 *   highRxt = seqAdd(s, len).
 * - SACK information is advisory (RFC 2018 §8): forgetting some only costs a needless
 *   retransmission, while remembering a byte as SACKed that was not would stall it until the RTO.
 *   So when more than `maxRanges` separate ranges would be needed, the HIGHEST range (the one
 *   least relevant to repairing the lowest holes) is discarded and counted in `evictions`.
 *   Ranges are never merged across a gap.
 */
import { seqAdd, seqGt, seqInWindow, seqLeq, seqLt, seqMax } from './seq.js';
import { SackScoreboardError } from '../errors.js';

export { SackScoreboardError };

/** RFC 6675 §2: DupThresh = 3. */
export const DUP_THRESH = 3;


/** The ranges of a scoreboard that has never held one (never indexed: n is 0). */
const NO_RANGES = new Uint32Array(0);

export class SackScoreboard {
  /** The most ranges kept; see the class comment for what happens beyond it. */
  readonly maxRanges: number;

  // Allocated by the first SACK block: most connections never see one, and two 256-byte typed
  // arrays per connection were malloc'd backing stores the garbage collector had to track.
  private starts: Uint32Array;
  private ends: Uint32Array;
  private n: number;
  private total: number;
  private evicted: number;
  /** The cumulative ACK point the ranges are above (from the last update/advance). */
  private una: number;

  constructor(maxRanges = 64) {
    if (!Number.isInteger(maxRanges) || maxRanges < 1) {
      throw new SackScoreboardError(`maxRanges must be a positive integer, got ${maxRanges}`);
    }
    this.maxRanges = maxRanges;
    this.evicted = 0;
    this.starts = NO_RANGES;
    this.ends = NO_RANGES;
    this.n = 0;
    this.total = 0;
    this.una = 0;
  }

  /**
   * Forget all SACK information (e.g. RFC 6675 §5.1 after an RTO, or RFC 2018 §8 reneging).
   * `una`, when given, becomes the reference point that `highestSacked` reports while empty.
   */
  clear(una?: number): void {
    this.n = 0;
    this.total = 0;
    if (una !== undefined) this.una = una >>> 0;
  }

  /** Total SACKed bytes above una. */
  get sackedBytes(): number {
    return this.total;
  }

  /** How many ranges were discarded because the scoreboard was full (see the class comment). */
  get evictions(): number {
    return this.evicted;
  }

  /** Number of disjoint SACKed ranges. */
  get rangeCount(): number {
    return this.n;
  }

  /**
   * The highest right edge SACKed (exclusive end), or, when nothing is SACKed, una as last given
   * to update/advance/pipe/nextHole/clear (0 before any).
   */
  get highestSacked(): number {
    return this.n === 0 ? this.una : this.ends[this.n - 1]!;
  }

  /**
   * Merge the SACK blocks of one ACK (RFC 2018 §3: blocks = [left0, right0, left1, right1, ...],
   * left inclusive, right exclusive). Blocks whose right edge is not in (una, nxt] are ignored:
   * at or below una they are D-SACKs (RFC 2883) or stale, above nxt they SACK data never sent.
   * A block straddling una is clipped to una. Ranges below `una` are dropped first (`advance`).
   * Returns the number of bytes that were not SACKed before this call.
   */
  update(una: number, nxt: number, blocks: Uint32Array, count: number): number {
    this.advance(una);
    const window = (nxt - una) >>> 0;
    const max = blocks.length >>> 1;
    const c = count < max ? count : max;
    let added = 0;
    for (let b = 0; b < c; b++) {
      let left = blocks[2 * b]!;
      const right = blocks[2 * b + 1]!;
      const rightOff = (right - una) >>> 0;
      if (rightOff === 0 || rightOff > window) continue;
      if (((left - una) >>> 0) >= rightOff) {
        // left is not in [una, right): either below una (clip) or at/after right (empty block).
        if (seqLt(left, una)) left = una;
        else continue;
      }
      added += this.insert(left, right);
    }
    return added;
  }

  /** Drop everything below the new cumulative ACK `una` (RFC 6675 §5: HighACK advanced). */
  advance(una: number): void {
    this.una = una;
    const starts = this.starts;
    const ends = this.ends;
    let drop = 0;
    while (drop < this.n && seqLeq(ends[drop]!, una)) {
      this.total -= (ends[drop]! - starts[drop]!) >>> 0;
      drop++;
    }
    if (drop > 0) {
      starts.copyWithin(0, drop, this.n);
      ends.copyWithin(0, drop, this.n);
      this.n -= drop;
    }
    if (this.n > 0 && seqLt(starts[0]!, una)) {
      this.total -= (una - starts[0]!) >>> 0;
      starts[0] = una;
    }
  }

  /** Whether byte `seq` has been SACKed. */
  isSacked(seq: number): boolean {
    for (let i = 0; i < this.n; i++) {
      const s = this.starts[i]!;
      if (seqInWindow(seq, s, (this.ends[i]! - s) >>> 0)) return true;
      if (seqLt(seq, s)) return false;
    }
    return false;
  }

  /**
   * RFC 6675 §4 IsLost(SeqNum): true when DupThresh or more discontiguous SACKed ranges lie above
   * `seq`, or more than (DupThresh − 1) × SMSS bytes above `seq` have been SACKed.
   */
  isLost(seq: number, smss: number): boolean {
    let ranges = 0;
    let bytes = 0;
    const limit = (DUP_THRESH - 1) * smss;
    for (let i = this.n - 1; i >= 0; i--) {
      const s = this.starts[i]!;
      const e = this.ends[i]!;
      if (seqLeq(e, seqAdd(seq, 1))) break; // this range and all below hold nothing above seq
      ranges++;
      bytes += seqGt(s, seq) ? (e - s) >>> 0 : (e - seq - 1) >>> 0;
      if (ranges >= DUP_THRESH || bytes > limit) return true;
    }
    return false;
  }

  /**
   * RFC 6675 §4 SetPipe(), in bytes: for every byte in [una, nxt) that is not SACKed,
   * (a) count it if it is not lost (IsLost false: the original may still be in flight), and
   * (b) count it (again) if it has been retransmitted (below `highRxt`, see the class comment).
   * Also advances the scoreboard to `una`.
   */
  pipe(una: number, nxt: number, highRxt: number, smss: number): number {
    this.advance(una);
    const lostEnd = this.lostEnd(smss);
    let pipe = this.unsackedBetween(lostEnd, nxt);
    const rxtEnd = seqLeq(highRxt, una) ? una : seqLt(highRxt, nxt) ? highRxt : nxt;
    pipe += this.unsackedBetween(una, rxtEnd);
    return pipe;
  }

  /**
   * RFC 6675 §4 NextSeg() rules (1) and (3), the retransmission candidates (rule (2), new data,
   * is the caller's):
   *  (1) the lowest un-SACKed S2 ≥ highRxt with S2 < HighSACK and IsLost(S2);
   *  (3) failing that, and only if `includeRule3`, the lowest un-SACKed S3 ≥ highRxt below HighSACK.
   * RFC 6675 orders rule (3) AFTER rule (2): a sender with new data to send should ask with
   * `includeRule3 = false` first, send new data if rule (1) gave nothing, and ask again with
   * `includeRule3 = true` only when it has none.
   * On success writes out[0] = start, out[1] = length (≤ smss, never into SACKed data), and
   * out[2] = the rule (1 or 3) when `out` has room, and returns true. Also advances to `una`.
   */
  nextHole(una: number, highRxt: number, smss: number, out: Uint32Array, includeRule3 = true): boolean {
    this.advance(una);
    if (this.n === 0) return false;
    const from = seqMax(una, highRxt);
    if (this.findHole(from, this.lostEnd(smss), smss, out)) {
      if (out.length > 2) out[2] = 1;
      return true;
    }
    if (includeRule3 && this.findHole(from, this.ends[this.n - 1]!, smss, out)) {
      if (out.length > 2) out[2] = 3;
      return true;
    }
    return false;
  }

  /**
   * The end of the lost region: every un-SACKed byte below it satisfies IsLost, none at or above.
   * IsLost is constant across a hole (all SACKed bytes above it are whole ranges) and monotone in
   * the sequence number, so the answer is the start of the highest range whose hole is lost.
   */
  private lostEnd(smss: number): number {
    const limit = (DUP_THRESH - 1) * smss;
    let bytes = 0;
    for (let i = this.n - 1; i >= 0; i--) {
      bytes += (this.ends[i]! - this.starts[i]!) >>> 0;
      // The hole just below range i has (n − i) ranges and `bytes` SACKed bytes above it.
      if (this.n - i >= DUP_THRESH || bytes > limit) return this.starts[i]!;
    }
    return this.una;
  }

  /** The lowest un-SACKed byte in [from, limit) and its hole, clipped to smss; false if none. */
  private findHole(from: number, limit: number, smss: number, out: Uint32Array): boolean {
    let s = from;
    for (let i = 0; i < this.n; i++) {
      if (!seqLt(s, limit)) return false;
      const rs = this.starts[i]!;
      const re = this.ends[i]!;
      if (seqLeq(re, s)) continue;
      if (seqLt(s, rs)) {
        const hole = (rs - s) >>> 0;
        out[0] = s;
        out[1] = hole < smss ? hole : smss;
        return true;
      }
      s = re; // s is inside this range: skip past it
    }
    return false;
  }

  /** Bytes in [a, b) not covered by any range (0 when b ≤ a). */
  private unsackedBetween(a: number, b: number): number {
    if (!seqLt(a, b)) return 0;
    let len = (b - a) >>> 0;
    for (let i = 0; i < this.n; i++) {
      const s = this.starts[i]!;
      const e = this.ends[i]!;
      if (seqLeq(e, a)) continue;
      if (!seqLt(s, b)) break;
      const lo = seqLt(s, a) ? a : s;
      const hi = seqLt(b, e) ? b : e;
      len -= (hi - lo) >>> 0;
    }
    return len;
  }

  /** Insert [left, right) (left < right, both in [una, nxt]); returns newly covered bytes. */
  private insert(left: number, right: number): number {
    if (this.starts.length === 0) {
      this.starts = new Uint32Array(this.maxRanges);
      this.ends = new Uint32Array(this.maxRanges);
    }
    const una = this.una;
    const starts = this.starts;
    const ends = this.ends;
    const lo = (left - una) >>> 0;
    const hi = (right - una) >>> 0;
    // First range ending at or after `left` (overlapping or adjacent on the left).
    let i = 0;
    while (i < this.n && ((ends[i]! - una) >>> 0) < lo) i++;
    // First range starting strictly after `right` (not overlapping, not adjacent).
    let j = i;
    while (j < this.n && ((starts[j]! - una) >>> 0) <= hi) j++;

    if (i === j) {
      // A new separate range at index i.
      const len = hi - lo;
      if (this.n === this.maxRanges) {
        this.evicted++;
        if (i === this.n) return 0; // the new range is the highest: it is the one discarded
        this.n--; // discard the current highest range
        this.total -= (ends[this.n]! - starts[this.n]!) >>> 0;
      }
      starts.copyWithin(i + 1, i, this.n);
      ends.copyWithin(i + 1, i, this.n);
      starts[i] = left;
      ends[i] = right;
      this.n++;
      this.total += len;
      return len;
    }

    // Merge [left, right) with ranges i..j-1 into range i.
    let covered = 0;
    for (let k = i; k < j; k++) covered += (ends[k]! - starts[k]!) >>> 0;
    const newLo = ((starts[i]! - una) >>> 0) < lo ? starts[i]! : left;
    const newHi = ((ends[j - 1]! - una) >>> 0) > hi ? ends[j - 1]! : right;
    const merged = (newHi - newLo) >>> 0;
    starts[i] = newLo;
    ends[i] = newHi;
    if (j - i > 1) {
      starts.copyWithin(i + 1, j, this.n);
      ends.copyWithin(i + 1, j, this.n);
      this.n -= j - i - 1;
    }
    this.total += merged - covered;
    return merged - covered;
  }
}
