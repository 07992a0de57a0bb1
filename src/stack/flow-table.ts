/**
 * Demultiplexing by 4-tuple without allocating per packet.
 *
 * Incoming packets are parsed into one reused key object (source = the app's side, destination =
 * the address the app dialled, which the stack impersonates). Lookup hashes the key's numbers
 * into a Map<number, entry>, and entries that collide are chained through `nextInBucket`, so a
 * lookup allocates nothing. Each stored entry owns an immutable copy of its tuple.
 *
 * Every entry also sits in a dense array (its index in `slotInTable`, removal swaps the last
 * entry in), so a walk of the whole table is a plain indexed loop. Beside that array the table can
 * keep a few numbers per slot (SlotColumns), moved with their entry: a /metrics scrape walks
 * 10,000 connections, and reading contiguous typed arrays costs it microseconds where visiting
 * each entry object (scattered over the heap, its times boxed) cost ~300 ns per entry in cache
 * misses (measured in the benchmark's profile).
 */

/** The shape of the parser's reused flow key (src/wire/packet.ts). IPv4 lives in word 3. */
export interface FlowKeyLike {
  family: 4 | 6;
  src: Uint32Array;
  dst: Uint32Array;
  srcPort: number;
  dstPort: number;
}

/** A connection's addresses, as the app sees them: `remote` is the app, `local` what it dialled. */
export class FlowTuple {
  readonly family: 4 | 6;
  readonly remote = new Uint32Array(4);
  readonly remotePort: number;
  readonly local = new Uint32Array(4);
  readonly localPort: number;
  readonly hash: number;

  constructor(key: FlowKeyLike) {
    this.family = key.family;
    this.remote.set(key.src);
    this.remotePort = key.srcPort;
    this.local.set(key.dst);
    this.localPort = key.dstPort;
    this.hash = flowHash(key);
  }

  matches(key: FlowKeyLike): boolean {
    const r = this.remote;
    const l = this.local;
    const s = key.src;
    const d = key.dst;
    return (
      this.remotePort === key.srcPort &&
      this.localPort === key.dstPort &&
      r[3] === s[3] &&
      l[3] === d[3] &&
      this.family === key.family &&
      r[0] === s[0] && r[1] === s[1] && r[2] === s[2] &&
      l[0] === d[0] && l[1] === d[1] && l[2] === d[2]
    );
  }
}

/** A 31-bit mix of the tuple (not keyed: the table is not exposed to collision attacks beyond chaining cost; the ISN hash is the keyed one). */
export function flowHash(key: FlowKeyLike): number {
  let h = 0x9e3779b1 ^ key.family;
  const s = key.src;
  const d = key.dst;
  h = mix(h, (s[0] as number) ^ (d[0] as number));
  h = mix(h, (s[1] as number) ^ Math.imul(d[1] as number, 3));
  h = mix(h, (s[2] as number) ^ Math.imul(d[2] as number, 5));
  h = mix(h, s[3] as number);
  h = mix(h, d[3] as number);
  h = mix(h, (key.srcPort << 16) | key.dstPort);
  return h & 0x7fffffff;
}

function mix(h: number, v: number): number {
  h ^= v;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return h ^ (h >>> 16);
}

export interface FlowEntry {
  readonly flow: FlowTuple;
  /** Next entry with the same hash; owned by the table. */
  nextInBucket: FlowEntry | null;
  /** Index in the table's dense array, -1 while not in a table; owned by the table. */
  slotInTable: number;
  /** Fill this entry's row of the table's columns (called on insert; the owner calls it again when the numbers change). */
  writeRow?(columns: SlotColumns, slot: number): void;
}

/** A small code and `width` numbers per table slot. */
export class SlotColumns {
  code: Uint8Array;
  values: Float64Array;

  constructor(
    readonly width: number,
    capacity = 256,
  ) {
    this.code = new Uint8Array(capacity);
    this.values = new Float64Array(capacity * width);
  }

  /** Room for `slots` rows, kept. */
  reserve(slots: number): void {
    if (slots <= this.code.length) return;
    const capacity = Math.max(slots, this.code.length * 2);
    const code = new Uint8Array(capacity);
    code.set(this.code);
    const values = new Float64Array(capacity * this.width);
    values.set(this.values);
    this.code = code;
    this.values = values;
  }

  move(from: number, to: number): void {
    this.code[to] = this.code[from] as number;
    const w = this.width;
    this.values.copyWithin(to * w, from * w, from * w + w);
  }
}

export class FlowTable<E extends FlowEntry> {
  private readonly buckets = new Map<number, E>();
  private readonly dense: E[] = [];

  constructor(readonly columns: SlotColumns | null = null) {}

  /** The entry in `slot` (0 ≤ slot < size). */
  entryAt(slot: number): E {
    return this.dense[slot] as E;
  }

  get size(): number {
    return this.dense.length;
  }

  get(key: FlowKeyLike): E | undefined {
    let e = this.buckets.get(flowHash(key));
    while (e !== undefined) {
      if (e.flow.matches(key)) return e;
      e = (e.nextInBucket ?? undefined) as E | undefined;
    }
    return undefined;
  }

  /** Insert an entry whose tuple is not yet in the table. */
  insert(entry: E): void {
    const head = this.buckets.get(entry.flow.hash);
    entry.nextInBucket = head ?? null;
    this.buckets.set(entry.flow.hash, entry);
    const slot = this.dense.length;
    entry.slotInTable = slot;
    this.dense.push(entry);
    const columns = this.columns;
    if (columns !== null) {
      columns.reserve(slot + 1);
      entry.writeRow?.(columns, slot);
    }
  }

  /** Remove exactly this entry object (no-op if it is not in the table). */
  remove(entry: E): boolean {
    const h = entry.flow.hash;
    let e = this.buckets.get(h);
    let prev: E | null = null;
    while (e !== undefined) {
      if (e === entry) {
        const next = (e.nextInBucket ?? undefined) as E | undefined;
        if (prev === null) {
          if (next === undefined) this.buckets.delete(h);
          else this.buckets.set(h, next);
        } else {
          prev.nextInBucket = next ?? null;
        }
        entry.nextInBucket = null;
        this.removeSlot(entry);
        return true;
      }
      prev = e;
      e = (e.nextInBucket ?? undefined) as E | undefined;
    }
    return false;
  }

  private removeSlot(entry: E): void {
    const dense = this.dense;
    const slot = entry.slotInTable;
    const last = dense.pop() as E;
    if (last !== entry) {
      dense[slot] = last;
      last.slotInTable = slot;
      this.columns?.move(dense.length, slot);
    }
    entry.slotInTable = -1;
  }

  /** Swap `oldEntry` for `newEntry` with the same tuple (e.g. a connection for its TIME-WAIT record). */
  replace(oldEntry: E, newEntry: E): void {
    this.remove(oldEntry);
    this.insert(newEntry);
  }

  /**
   * Every entry, last inserted first. The loop may remove the entry it was given (the one swapped
   * into its slot has been visited already), but no other.
   */
  *values(): IterableIterator<E> {
    const dense = this.dense;
    for (let i = dense.length - 1; i >= 0; i--) {
      // An entry removed by the caller since it was yielded shortens the array under us.
      if (i < dense.length) yield dense[i] as E;
    }
  }
}
