/**
 * Something per live connection, found by its id, on the path of every connection event (the
 * flight recorder's row, the registry's upstream leg): a Map<number, T> costs a hash lookup per
 * event, and with connections opening and closing at thousands a second its table is rebuilt over
 * and over as entries come and go (measured: the recorder's Map was ~5 % of the JavaScript of a
 * short connection, bench/connection-floor-js.mjs).
 *
 * The stack hands out ids in increasing order and the live ones sit in a window of recent ids,
 * so the id's low bits are a slot of their own: a lookup is one indexed load and a compare, and
 * nothing is allocated per entry. The slots are kept at least twice the live entries, so ids
 * that are live together collide only when one is older than the newest by the table's size (a
 * connection that outlives tens of thousands of others); those go to a Map beside it.
 */
const MIN_SLOTS = 256;
const EMPTY = -1;

export class IdMap<T> {
  private ids = new Float64Array(MIN_SLOTS).fill(EMPTY);
  private values: (T | undefined)[] = new Array<T | undefined>(MIN_SLOTS).fill(undefined);
  private mask = MIN_SLOTS - 1;
  /** Entries whose slot another live id holds. */
  private readonly overflow = new Map<number, T>();
  private count = 0;

  /** Live entries. */
  get size(): number {
    return this.count;
  }

  /** Slots (tests: they follow the number of entries). */
  get slots(): number {
    return this.ids.length;
  }

  /** Entries kept beside the slots (tests). */
  get overflowSize(): number {
    return this.overflow.size;
  }

  get(id: number): T | undefined {
    const i = id & this.mask;
    if (this.ids[i] === id && id >= 0) return this.values[i];
    return this.overflow.size === 0 ? undefined : this.overflow.get(id);
  }

  has(id: number): boolean {
    const i = id & this.mask;
    return (this.ids[i] === id && id >= 0) || (this.overflow.size > 0 && this.overflow.has(id));
  }

  /** Any number; the stack's ids (integers ≥ 0) are the ones that take slots. */
  set(id: number, value: T): void {
    const i = id & this.mask;
    const held = id >= 0 ? this.ids[i] : NaN; // a negative id (EMPTY among them) goes beside the slots
    if (held === id) {
      this.values[i] = value;
      return;
    }
    // An id already beside the slots stays there (its slot may have been freed since).
    if (held === EMPTY && !(this.overflow.size > 0 && this.overflow.has(id))) {
      this.ids[i] = id;
      this.values[i] = value;
    } else {
      if (this.overflow.has(id)) this.count--; // replaced, not added
      this.overflow.set(id, value);
    }
    if (++this.count > this.ids.length >>> 1) this.resize(this.ids.length * 2);
  }

  delete(id: number): boolean {
    const i = id & this.mask;
    if (this.ids[i] === id && id >= 0) {
      this.ids[i] = EMPTY;
      this.values[i] = undefined;
    } else if (this.overflow.size === 0 || !this.overflow.delete(id)) {
      return false;
    }
    this.count--;
    const n = this.ids.length;
    if (n > MIN_SLOTS && this.count < n >>> 3) this.resize(n >>> 1);
    return true;
  }

  private resize(n: number): void {
    const ids = this.ids;
    const values = this.values;
    const moved = [...this.overflow];
    this.ids = new Float64Array(n).fill(EMPTY);
    this.values = new Array<T | undefined>(n).fill(undefined);
    this.mask = n - 1;
    this.overflow.clear();
    this.count = 0;
    for (let i = 0; i < ids.length; i++) if (ids[i] !== EMPTY) this.set(ids[i]!, values[i] as T);
    for (const [id, value] of moved) this.set(id, value);
  }
}
