/**
 * A binary min-heap of deadlines with lazy deletion, the core of the stack's timer scheduler.
 *
 * Every schedulable item carries `heapAt`: the deadline under which it currently sits in the heap
 * (Infinity when it is not in the heap). Re-arming to a LATER time leaves the old entry where it
 * is (it fires early, the owner finds nothing due and re-arms: gVisor's "orphaned timer" trade),
 * re-arming to an EARLIER time pushes a new entry. So the common case on the hot path, an ACK
 * that pushes the retransmission deadline later, costs nothing, and idle connections with no
 * deadline cost nothing at all: the heap's size follows armed timers, not connections.
 *
 * A stale entry still references its item, though, until its time comes: a connection closed
 * with a retransmission deadline a second away would stay reachable (with its socket and
 * buffers) for that second. At thousands of short connections a second, that keeps megabytes alive
 * through young-generation collections, which then copy and promote them (long scavenges and a
 * steadily growing old generation). So once stale entries outnumber live ones (plus
 * COMPACT_SLACK), the heap drops them all and is rebuilt: O(n) work at most once per n/2 stale
 * entries, and nothing outlives its timer by more than that.
 */

/** Stale entries tolerated beyond the number of live ones before the heap is compacted. */
const COMPACT_SLACK = 64;
export interface Schedulable {
  /** Deadline of this item's live heap entry, Infinity when none. Owned by the heap. */
  heapAt: number;
}

export class DeadlineHeap<T extends Schedulable> {
  private times: Float64Array;
  private items: (T | undefined)[];
  private n = 0;
  /** Items with a live entry (heapAt finite); the other n - live entries are stale. */
  private live = 0;

  constructor(initialCapacity = 1024) {
    this.times = new Float64Array(initialCapacity);
    this.items = new Array<T | undefined>(initialCapacity).fill(undefined);
  }

  /** Entries in the heap, stale ones included. */
  get size(): number {
    return this.n;
  }

  /** Items scheduled (each has exactly one live entry). */
  get liveCount(): number {
    return this.live;
  }

  /** The earliest deadline in the heap, Infinity when empty. */
  peekTime(): number {
    return this.n > 0 ? (this.times[0] as number) : Infinity;
  }

  /**
   * Ensure `item` is woken no later than `at`. No-op if it already sits at or before `at`.
   */
  schedule(item: T, at: number): void {
    if (!(at < item.heapAt)) return;
    if (item.heapAt === Infinity) this.live++;
    item.heapAt = at;
    this.push(at, item);
    if (this.n - this.live > this.live + COMPACT_SLACK) this.compact();
  }

  /**
   * Pop every entry due at `now`, calling `fire(item)` for live ones (entries whose time equals the
   * item's current `heapAt`); stale entries are discarded. `fire` may re-schedule the item.
   */
  popDue(now: number, fire: (item: T) => void): void {
    while (this.n > 0 && (this.times[0] as number) <= now) {
      const at = this.times[0] as number;
      const item = this.items[0] as T;
      this.removeTop();
      if (item.heapAt === at) {
        item.heapAt = Infinity;
        this.live--;
        fire(item);
      }
    }
    // Firing makes live entries go and leaves others' stale ones behind: without this check a
    // heap that is only popped (no schedule or cancel follows) would keep them, and their items,
    // until their times came.
    if (this.n - this.live > this.live + COMPACT_SLACK) this.compact();
  }

  /** Forget `item`: its entries become stale. */
  cancel(item: T): void {
    if (item.heapAt === Infinity) return;
    item.heapAt = Infinity;
    this.live--;
    if (this.n - this.live > this.live + COMPACT_SLACK) this.compact();
  }

  /** Drops every stale entry (releasing its item) and restores the heap order. */
  private compact(): void {
    const times = this.times;
    const items = this.items;
    const n = this.n;
    let k = 0;
    for (let i = 0; i < n; i++) {
      const item = items[i]!;
      const at = times[i] as number;
      if (item.heapAt !== at) continue;
      times[k] = at;
      items[k] = item;
      k++;
    }
    for (let i = k; i < n; i++) items[i] = undefined;
    this.n = k;
    // Floyd's heap construction: sift down every parent, last first.
    for (let i = (k >> 1) - 1; i >= 0; i--) this.siftDown(i, times[i] as number, items[i]!, k);
  }

  private push(at: number, item: T): void {
    if (this.n === this.times.length) this.grow();
    let i = this.n++;
    // Sift up.
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const pt = this.times[parent] as number;
      if (pt <= at) break;
      this.times[i] = pt;
      this.items[i] = this.items[parent];
      i = parent;
    }
    this.times[i] = at;
    this.items[i] = item;
  }

  private removeTop(): void {
    const last = --this.n;
    const at = this.times[last] as number;
    const item = this.items[last];
    this.items[last] = undefined;
    if (last === 0) return;
    // Sift the former last element down from the root.
    this.siftDown(0, at, item!, last);
  }

  /** Places (at, item) at index i or below, among the first `n` entries. */
  private siftDown(i: number, at: number, item: T, n: number): void {
    const half = n >> 1;
    while (i < half) {
      let child = 2 * i + 1;
      const right = child + 1;
      if (right < n && (this.times[right] as number) < (this.times[child] as number)) child = right;
      const ct = this.times[child] as number;
      if (at <= ct) break;
      this.times[i] = ct;
      this.items[i] = this.items[child];
      i = child;
    }
    this.times[i] = at;
    this.items[i] = item;
  }

  private grow(): void {
    const times = new Float64Array(this.times.length * 2);
    times.set(this.times);
    this.times = times;
    const items = new Array<T | undefined>(this.times.length).fill(undefined);
    for (let i = 0; i < this.n; i++) items[i] = this.items[i];
    this.items = items;
  }
}
