/**
 * Live connections in id order: what a page of /api/connections walks. The stack hands out ids in
 * increasing order, so appending keeps the array sorted; a page starts after its cursor's id with
 * a binary search and reads forward, touching only the rows it returns (plus those a filter
 * skips), instead of building, filtering and sorting every row of the table per request.
 *
 * Removal leaves a hole (the item becomes null) that is squeezed out once holes outnumber live
 * entries: amortized O(1) per removal, and positions stay valid for the length of one
 * synchronous page walk (nothing removes during it).
 */
export class IdIndex<T> {
  private ids: number[] = [];
  private items: Array<T | null> = [];
  private live = 0;
  private holes = 0;

  /** Live entries. */
  get size(): number {
    return this.live;
  }

  /** Positions, holes included: walk 0 ≤ i < length with at() and idAt(). */
  get length(): number {
    return this.ids.length;
  }

  at(i: number): T | null {
    return this.items[i] ?? null;
  }

  idAt(i: number): number {
    return this.ids[i]!;
  }

  add(id: number, item: T): void {
    const ids = this.ids;
    const n = ids.length;
    if (n === 0 || id > ids[n - 1]!) {
      ids.push(id);
      this.items.push(item);
      this.live++;
      return;
    }
    // Not the next id (never from the stack, whose ids only grow): insert in place.
    const i = this.firstAtOrAfter(id);
    if (ids[i] === id) {
      if (this.items[i] === null) {
        this.live++;
        this.holes--;
      }
      this.items[i] = item;
      return;
    }
    ids.splice(i, 0, id);
    this.items.splice(i, 0, item);
    this.live++;
  }

  get(id: number): T | undefined {
    const i = this.firstAtOrAfter(id);
    return this.ids[i] === id ? (this.items[i] ?? undefined) : undefined;
  }

  delete(id: number): boolean {
    const i = this.firstAtOrAfter(id);
    if (this.ids[i] !== id || this.items[i] === null) return false;
    this.items[i] = null;
    this.live--;
    this.holes++;
    if (this.holes > 64 && this.holes > this.live) this.compact();
    return true;
  }

  /** The first position whose id is above `id` (length if none). */
  firstAfter(id: number): number {
    return this.firstAtOrAfter(Math.floor(id) + 1);
  }

  private firstAtOrAfter(id: number): number {
    const ids = this.ids;
    let lo = 0;
    let hi = ids.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (ids[mid]! < id) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  private compact(): void {
    const ids = this.ids;
    const items = this.items;
    let w = 0;
    for (let r = 0; r < ids.length; r++) {
      const item = items[r]!;
      if (item === null) continue;
      ids[w] = ids[r]!;
      items[w] = item;
      w++;
    }
    ids.length = w;
    items.length = w;
    this.holes = 0;
  }
}
