/**
 * The send buffer: the bytes of the outgoing stream from SND.UNA on (sent-but-unacknowledged, then
 * not-yet-sent), kept as the caller's own chunks. `write()` keeps a reference to each chunk (the
 * proxy hands over fresh socket reads, which nobody else touches), so queuing costs no copy; the
 * one copy of a byte happens when the stack serializes a segment straight from here into the TUN
 * write batch (`copy`).
 *
 * Chunks sit in a power-of-two ring of references. Acknowledged bytes are released from the
 * front (`consume`). A cursor remembers where the last copy ended so that the usual pattern —
 * segment after segment, in order — finds its chunk in O(1) instead of walking from the front.
 */
import { SendBufferError } from '../errors.js';

export { SendBufferError };

const INITIAL_SLOTS = 8;
/**
 * An empty buffer holds no ring: an idle connection would keep ~100 bytes of heap for eight empty
 * slots. The first push takes a ring of INITIAL_SLOTS from FREE_RINGS (or allocates one); a
 * buffer emptied by consume() or clear() gives a ring of that size back (all slots undefined)
 * and drops a larger one, so request/response traffic reuses rings instead of allocating them,
 * and memory taken by a burst of writes goes back once they are acknowledged.
 */
const NO_SLOTS: (Buffer | undefined)[] = [];
const FREE_RINGS: (Buffer | undefined)[][] = [];
/** Rings kept for reuse at most (~100 bytes each). */
const MAX_FREE_RINGS = 256;

/** Rings waiting in the pool (for tests). */
export function freeSendRings(): number {
  return FREE_RINGS.length;
}

/** Told when a chunk given to push() leaves the buffer (ConnHandler.onChunkReleased). */
export interface ChunkReleaseSink {
  onChunkReleased(chunk: Buffer): void;
}

/** Where attach() hands slices: a link's transmit ring (LinkTx.txAttach). */
export interface ViewSink {
  txAttach?(slot: number, buf: Buffer, off: number, len: number): boolean;
}

export class SendBuffer {
  private slots: (Buffer | undefined)[];
  private mask: number;
  /** Ring index of the first chunk. */
  private head: number;
  /** Number of chunks held. */
  private count: number;
  /** Bytes of the first chunk already consumed. */
  private headOffset: number;
  /** Total bytes held (from SND.UNA). */
  private bytes: number;
  /** Copy cursor: chunk index relative to head, and the stream offset where that chunk starts. */
  private curIndex: number;
  private curStart: number;
  /** Told of every chunk dropped by consume() or clear(), so its owner may reuse the memory. */
  releaseSink: ChunkReleaseSink | null = null;

  constructor() {
    this.slots = NO_SLOTS;
    this.mask = 0;
    this.head = 0;
    this.count = 0;
    this.headOffset = 0;
    this.bytes = 0;
    this.curIndex = 0;
    this.curStart = 0;
  }

  /** Bytes held: unacknowledged plus unsent. */
  get length(): number {
    return this.bytes;
  }

  /** Number of chunks held (for tests and bounds checks). */
  get chunks(): number {
    return this.count;
  }

  /** Whether the buffer holds a ring of slots (false when empty: see NO_SLOTS). */
  get holdsRing(): boolean {
    return this.slots !== NO_SLOTS;
  }

  /** Append a chunk (kept by reference). Empty chunks are ignored. */
  push(buf: Buffer): void {
    if (buf.length === 0) return;
    if (this.count === this.slots.length) this.grow();
    this.slots[(this.head + this.count) & this.mask] = buf;
    this.count++;
    this.bytes += buf.length;
  }

  /** Release the first `n` bytes (acknowledged). */
  consume(n: number): void {
    if (n <= 0) return;
    if (n > this.bytes) throw new SendBufferError(`consume(${n}) with only ${this.bytes} bytes buffered`);
    this.bytes -= n;
    let left = n;
    while (left > 0) {
      const chunk = this.slots[this.head]!;
      const avail = chunk.length - this.headOffset;
      if (left < avail) {
        this.headOffset += left;
        break;
      }
      left -= avail;
      this.slots[this.head] = undefined;
      this.head = (this.head + 1) & this.mask;
      this.count--;
      this.headOffset = 0;
      if (this.releaseSink !== null) this.releaseSink.onChunkReleased(chunk);
    }
    if (this.count === 0) this.releaseRing();
    // The cursor's stream offsets are relative to the front: start over from it.
    this.curIndex = 0;
    this.curStart = 0;
  }

  /**
   * Hand `len` bytes starting `offset` bytes after the front to `sink` as slices of the held
   * chunks, without copying (sink.txAttach, for a packet being written). Nothing is handed over and
   * false is returned when the range spans more than `maxViews` chunks: the caller copies instead.
   */
  attach(sink: ViewSink, slot: number, offset: number, len: number, maxViews: number): boolean {
    if (len <= 0) return true;
    if (maxViews <= 0) return false;
    if (offset < 0 || offset + len > this.bytes) {
      throw new SendBufferError(`attach of [${offset}, ${offset + len}) outside the ${this.bytes} buffered bytes`);
    }
    this.seek(offset);
    const first = this.curIndex;
    const firstStart = this.curStart;
    // Count the chunks first: a packet is attached whole or not at all.
    let index = first;
    let start = firstStart;
    let views = 0;
    for (;;) {
      views++;
      const end = start + this.chunkLength(index);
      if (offset + len <= end) break;
      if (views === maxViews) return false;
      start = end;
      index++;
    }
    index = first;
    start = firstStart;
    let pos = offset;
    let left = len;
    for (;;) {
      const chunk = this.slots[(this.head + index) & this.mask]!;
      const base = index === 0 ? this.headOffset : 0;
      const chunkLen = chunk.length - base;
      const within = pos - start;
      const take = chunkLen - within < left ? chunkLen - within : left;
      sink.txAttach!(slot, chunk, base + within, take);
      left -= take;
      pos += take;
      if (left === 0) {
        this.advanceCursor(index, start, pos, chunkLen);
        return true;
      }
      start += chunkLen;
      index++;
    }
  }

  /** Point the cursor at the chunk holding stream offset `offset` (from the cursor if it is behind). */
  private seek(offset: number): void {
    let index: number;
    let start: number;
    if (offset >= this.curStart && this.curIndex < this.count) {
      index = this.curIndex;
      start = this.curStart;
    } else {
      index = 0;
      start = 0;
    }
    for (;;) {
      const chunkLen = this.chunkLength(index);
      if (offset < start + chunkLen) break;
      start += chunkLen;
      index++;
    }
    this.curIndex = index;
    this.curStart = start;
  }

  /** After a copy or attach that ended at `pos` inside chunk `index` (starting at `start`): where the next one starts. */
  private advanceCursor(index: number, start: number, pos: number, chunkLen: number): void {
    if (pos === start + chunkLen && index + 1 < this.count) {
      this.curIndex = index + 1;
      this.curStart = start + chunkLen;
    } else {
      this.curIndex = index;
      this.curStart = start;
    }
  }

  /**
   * Copy `len` bytes starting `offset` bytes after the front into dst[dstOffset...]. Throws when
   * the range is not held (a caller bug: segments only ever describe buffered bytes).
   */
  copy(dst: Buffer, dstOffset: number, offset: number, len: number): void {
    if (len <= 0) return;
    if (offset < 0 || offset + len > this.bytes) {
      throw new SendBufferError(`copy of [${offset}, ${offset + len}) outside the ${this.bytes} buffered bytes`);
    }
    this.seek(offset);
    let index = this.curIndex;
    let start = this.curStart;
    let out = dstOffset;
    let left = len;
    let pos = offset;
    for (;;) {
      const chunk = this.slots[(this.head + index) & this.mask]!;
      const base = index === 0 ? this.headOffset : 0;
      const chunkLen = chunk.length - base;
      const within = pos - start;
      const take = chunkLen - within < left ? chunkLen - within : left;
      chunk.copy(dst, out, base + within, base + within + take);
      out += take;
      left -= take;
      pos += take;
      if (left === 0) {
        // Remember where we are; if this chunk is used up, the next copy starts at the next one.
        this.advanceCursor(index, start, pos, chunkLen);
        return;
      }
      start += chunkLen;
      index++;
    }
  }


  /** Drop everything. */
  clear(): void {
    const sink = this.releaseSink;
    for (let i = 0; i < this.count; i++) {
      const at = (this.head + i) & this.mask;
      const chunk = this.slots[at]!;
      this.slots[at] = undefined;
      if (sink !== null) sink.onChunkReleased(chunk);
    }
    this.count = 0;
    this.releaseRing();
    this.head = 0;
    this.headOffset = 0;
    this.bytes = 0;
    this.curIndex = 0;
    this.curStart = 0;
  }

  private chunkLength(index: number): number {
    const chunk = this.slots[(this.head + index) & this.mask]!;
    return index === 0 ? chunk.length - this.headOffset : chunk.length;
  }

  /** Empty: give the ring back (all its slots are undefined by now). */
  private releaseRing(): void {
    const ring = this.slots;
    if (ring === NO_SLOTS) return;
    if (ring.length === INITIAL_SLOTS && FREE_RINGS.length < MAX_FREE_RINGS) FREE_RINGS.push(ring);
    this.slots = NO_SLOTS;
    this.mask = 0;
    this.head = 0;
  }

  private grow(): void {
    const old = this.slots;
    if (old === NO_SLOTS) {
      this.slots = FREE_RINGS.pop() ?? new Array<Buffer | undefined>(INITIAL_SLOTS).fill(undefined);
      this.mask = INITIAL_SLOTS - 1;
      this.head = 0;
      return;
    }
    const size = old.length * 2;
    const next = new Array<Buffer | undefined>(size).fill(undefined);
    for (let i = 0; i < this.count; i++) next[i] = old[(this.head + i) & this.mask];
    this.slots = next;
    this.mask = size - 1;
    this.head = 0;
  }
}
