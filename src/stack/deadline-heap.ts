/**
 * A binary min-heap of deadlines with lazy deletion, the core of the stack's timer scheduler.
 *
 * Every schedulable item carries `heapAt`: the deadline under which it currently sits in the heap
 * (Infinity when it is not in the heap). Re-arming to a LATER time leaves the old entry where it
 * is (it fires early, the owner finds nothing due and re-arms: gVisor's "orphaned timer" trade),
 * re-arming to an EARLIER time pushes a new entry. So the common case on the hot path, an ACK
 * that pushes the retransmission deadline later, costs nothing, and idle connections with no
 * deadline cost nothing at all: the heap's size follows armed timers, not connections.
 */
export interface Schedulable {
  /** Deadline of this item's live heap entry, Infinity when none. Owned by the heap. */
  heapAt: number;
}

export class DeadlineHeap<T extends Schedulable> {
  private times: Float64Array;
  private items: (T | undefined)[];
  private n = 0;

  constructor(initialCapacity = 1024) {
    this.times = new Float64Array(initialCapacity);
    this.items = new Array<T | undefined>(initialCapacity).fill(undefined);
  }

  get size(): number {
    return this.n;
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
    item.heapAt = at;
    this.push(at, item);
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
        fire(item);
      }
    }
  }

  /** Forget `item`: its entries become stale. */
  cancel(item: T): void {
    item.heapAt = Infinity;
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
    let i = 0;
    const half = last >> 1;
    while (i < half) {
      let child = 2 * i + 1;
      const right = child + 1;
      if (right < last && (this.times[right] as number) < (this.times[child] as number)) child = right;
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
