/**
 * Fixed-size read buffers for upstream sockets in bulk transfers, lent out and given back.
 *
 * A bulk read is handed to the connection as it is (no copy) and lives in its send buffer until
 * the app acknowledges it; a fresh buffer per read would mean a new 64 KiB ArrayBuffer every ~50 µs at
 * 10 Gbit/s. V8 answers that much external memory with a scavenge every few megabytes ("external
 * memory pressure"), and buffers that live through two of them are promoted, after which it keeps
 * running full mark-compacts (BENCHMARKS.md: the bulk server→client GC storm). Given back once
 * acknowledged, the same few buffers carry the whole transfer.
 *
 * Who may give a buffer back: only someone who knows nobody reads it any more. The pipe does it
 * for chunks its connection released (acknowledged or dropped), after the flush that ends the
 * batch and only when the link holds no packet pointing into them (Stack.linkHoldsNoViews).
 */
export class ReadBufferPool {
  private readonly free: Buffer[] = [];
  /** Backing stores lent out and not yet given back: guards against foreign and double returns. */
  private readonly lent = new WeakSet<ArrayBuffer>();

  /**
   * @param bufferBytes size of every buffer
   * @param maxFree buffers kept for reuse at most; more are left to the garbage collector
   */
  constructor(
    readonly bufferBytes: number,
    readonly maxFree: number,
  ) {}

  /** Buffers waiting to be lent (for tests and metrics). */
  get available(): number {
    return this.free.length;
  }

  /** A buffer of bufferBytes, reused if one is free. Its contents are whatever was there. */
  take(): Buffer {
    const buf = this.free.pop() ?? Buffer.allocUnsafeSlow(this.bufferBytes);
    this.lent.add(buf.buffer as ArrayBuffer);
    return buf;
  }

  /** Whether `chunk` is (a view into) a buffer this pool lent and has not had back. */
  isLent(chunk: Buffer): boolean {
    return this.lent.has(chunk.buffer as ArrayBuffer);
  }

  /**
   * Takes back the buffer `chunk` is a view of. Chunks of other memory, and buffers already given
   * back, are ignored.
   */
  give(chunk: Buffer): void {
    const store = chunk.buffer as ArrayBuffer;
    if (!this.lent.delete(store)) return;
    if (this.free.length >= this.maxFree) return;
    this.free.push(chunk.byteOffset === 0 && chunk.length === this.bufferBytes ? chunk : Buffer.from(store, 0, this.bufferBytes));
  }
}
