/**
 * Demultiplexing by 4-tuple without allocating per packet.
 *
 * Incoming packets are parsed into one reused key object (source = the app's side, destination =
 * the address the app dialled, which the stack impersonates). Lookup hashes the key's numbers
 * (keyed: FlowHasher) into an array of chain heads, and entries that share a head are chained
 * through `nextInBucket`, so a lookup allocates nothing. Each stored entry owns an immutable copy
 * of its tuple, which it hands on (with its hash) to the entry that replaces it.
 *
 * Every entry also sits in a dense array (its index in `slotInTable`, removal swaps the last
 * entry in), so a walk of the whole table is a plain indexed loop. Beside that array the table can
 * keep a few numbers per slot (SlotColumns), moved with their entry: a /metrics scrape walks
 * 10,000 connections, and reading contiguous typed arrays costs it microseconds where visiting
 * each entry object (scattered over the heap, its times boxed) cost ~300 ns per entry in cache
 * misses (measured in the benchmark's profile).
 */

import { randomBytes } from 'node:crypto';
import type { ConnFlow } from '../tcp/events.js';
import { sipKeyWords, sipWords } from '../tcp/siphash.js';
import { internAddressWords } from '../wire/address.js';

/** The shape of the parser's reused flow key (src/wire/packet.ts). IPv4 lives in word 3. */
export interface FlowKeyLike {
  family: 4 | 6;
  src: Uint32Array;
  dst: Uint32Array;
  srcPort: number;
  dstPort: number;
}

/** A connection's addresses, as the app sees them: `remote` is the app, `local` what it dialled. */
export class FlowTuple implements ConnFlow {
  readonly family: 4 | 6;
  /** Shared with every tuple of the same address (wire/address.ts internAddressWords): read only. */
  readonly remote: Uint32Array;
  readonly remotePort: number;
  /** Shared like `remote`: read only. */
  readonly local: Uint32Array;
  readonly localPort: number;
  /** The hash of the table it was last inserted into (set by FlowTable.insert). */
  hash = -1;
  /**
   * The connection's service (an index into the named services, 0 = `other`), set once when its
   * SYN arrives by whoever names destinations (src/observability/services.ts); the stack only
   * copies it into its columns (COL_SERVICE) for the scrape's walk.
   */
  service = 0;

  constructor(key: FlowKeyLike) {
    this.family = key.family;
    this.remote = internAddressWords(key.src);
    this.remotePort = key.srcPort;
    this.local = internAddressWords(key.dst);
    this.localPort = key.dstPort;
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

/**
 * The table's hash: keyed SipHash-1-3 (siphash.ts sipWords) of the 4-tuple, 31 bits.
 *
 * Keyed because the tuples are chosen by whoever sends packets into the device: with an unkeyed,
 * invertible mix an app could compute 5,000 tuples of one hash value (pick any
 * address, solve for the port word) and put them on one chain, turning each lookup from ~1 µs into
 * ~21 µs and making TIME-WAIT expiry walk the chain. Under a secret key an attacker who cannot
 * observe the hash has no better way to collide than chance: 31 bits of output, so n tuples put
 * about n²/2³² pairs on a shared chain (0.006 for 5,000). The same secrecy protects V8's own Map
 * buckets, whose hash of a number key is unseeded. SipHash-1-3 rather than 2-4: a hash table needs
 * unpredictability, not a MAC (Linux's hsiphash and Rust's HashMap make the same choice); it costs
 * 5 SipRounds for IPv4 (12 bytes: two blocks, then 3 finalization rounds), 8 for IPv6.
 * Cost (bench/flow-hash.mjs, this VM): ~60-95 ns more per lookup than the unkeyed mix (~160-210
 * against ~95-115 ns for a whole FlowTable.get); 5,000 chosen tuples cost ~200 ns per lookup
 * instead of ~16-21 µs.
 */
export class FlowHasher {
  private readonly k: Uint32Array;
  private readonly msg = new Uint32Array(9);

  /** `key`: 16 bytes (the stack derives it from its secret); random when not given. */
  constructor(key: Uint8Array = randomBytes(16)) {
    this.k = sipKeyWords(key);
  }

  /** Hash of the tuple src:srcPort → dst:dstPort (IPv4 in word 3); 0 ≤ result < 2³¹. */
  hash(family: 4 | 6, src: Uint32Array, dst: Uint32Array, srcPort: number, dstPort: number): number {
    const m = this.msg;
    const k = this.k;
    let n: number;
    if (family === 4) {
      // 12 bytes; the message length (12 vs 36) keeps the families apart.
      m[0] = src[3]!;
      m[1] = dst[3]!;
      m[2] = (srcPort << 16) | dstPort;
      n = 3;
    } else {
      m[0] = src[0]!;
      m[1] = src[1]!;
      m[2] = src[2]!;
      m[3] = src[3]!;
      m[4] = dst[0]!;
      m[5] = dst[1]!;
      m[6] = dst[2]!;
      m[7] = dst[3]!;
      m[8] = (srcPort << 16) | dstPort;
      n = 9;
    }
    return sipWords(k[0]!, k[1]!, k[2]!, k[3]!, m, n, 1, 3) & 0x7fffffff;
  }

  /** Hash of a packet's key. */
  ofKey(key: FlowKeyLike): number {
    return this.hash(key.family, key.src, key.dst, key.srcPort, key.dstPort);
  }

  /** Hash of a stored tuple (the same value as ofKey of the packets it matches). */
  ofTuple(t: FlowTuple): number {
    return this.hash(t.family, t.remote, t.local, t.remotePort, t.localPort);
  }
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

/** Chain heads at first; the array doubles past one entry per head and halves below one in eight. */
const MIN_BUCKETS = 256;

export class FlowTable<E extends FlowEntry> {
  /**
   * Chain heads by the hash's low bits (an array of 2^k, not a Map: a lookup is one indexed load,
   * and inserting or removing a head allocates nothing and leaves no deleted entry for the Map to
   * compact). The hash stays keyed (FlowHasher), so its low bits are as unpredictable as all 31.
   */
  private buckets: (E | undefined)[] = new Array<E | undefined>(MIN_BUCKETS).fill(undefined);
  private mask = MIN_BUCKETS - 1;
  private readonly dense: E[] = [];

  constructor(
    readonly columns: SlotColumns | null = null,
    readonly hasher: FlowHasher = new FlowHasher(),
  ) {}

  /** The entry in `slot` (0 ≤ slot < size). */
  entryAt(slot: number): E {
    return this.dense[slot] as E;
  }

  get size(): number {
    return this.dense.length;
  }

  /** Chain heads (tests: the array follows the table's size). */
  get bucketCount(): number {
    return this.buckets.length;
  }

  get(key: FlowKeyLike): E | undefined {
    const h = this.hasher.ofKey(key);
    let e = this.buckets[h & this.mask];
    while (e !== undefined) {
      // The full hash first: a bucket also holds entries whose hashes differ in higher bits.
      if (e.flow.hash === h && e.flow.matches(key)) return e;
      e = (e.nextInBucket ?? undefined) as E | undefined;
    }
    return undefined;
  }

  /**
   * The number of distinct hashes and the most entries sharing one. Walks every entry: for tests
   * and diagnostics, never the packet path.
   */
  chainStats(): { chains: number; longest: number } {
    const perHash = new Map<number, number>();
    let longest = 0;
    for (const e of this.dense) {
      const n = (perHash.get(e.flow.hash) ?? 0) + 1;
      perHash.set(e.flow.hash, n);
      if (n > longest) longest = n;
    }
    return { chains: perHash.size, longest };
  }

  /** Insert an entry whose tuple is not yet in the table. */
  insert(entry: E): void {
    // Hashed here, not when the tuple is made: the key is the table's. A tuple that moves to
    // another entry (pending SYN → connection → TIME-WAIT record) keeps it: see replace().
    const h = this.hasher.ofTuple(entry.flow);
    entry.flow.hash = h;
    this.link(entry, h);
    const slot = this.dense.length;
    entry.slotInTable = slot;
    this.dense.push(entry);
    const columns = this.columns;
    if (columns !== null) {
      columns.reserve(slot + 1);
      entry.writeRow?.(columns, slot);
    }
    if (this.dense.length > this.buckets.length) this.rehash(this.buckets.length * 2);
  }

  /** Remove exactly this entry object (no-op if it is not in the table). */
  remove(entry: E): boolean {
    if (!this.unlink(entry, null)) return false;
    this.removeSlot(entry);
    const n = this.buckets.length;
    if (n > MIN_BUCKETS && this.dense.length < n >>> 3) this.rehash(n >>> 1);
    return true;
  }

  private link(entry: E, h: number): void {
    const i = h & this.mask;
    entry.nextInBucket = this.buckets[i] ?? null;
    this.buckets[i] = entry;
  }

  /** Take `entry` off its chain, putting `by` (same hash) in its place when given. */
  private unlink(entry: E, by: E | null): boolean {
    const i = entry.flow.hash & this.mask;
    let e = this.buckets[i];
    let prev: E | null = null;
    while (e !== undefined) {
      if (e === entry) {
        let next = (e.nextInBucket ?? undefined) as E | undefined;
        if (by !== null) {
          by.nextInBucket = next ?? null;
          next = by;
        }
        if (prev === null) this.buckets[i] = next;
        else prev.nextInBucket = next ?? null;
        entry.nextInBucket = null;
        return true;
      }
      prev = e;
      e = (e.nextInBucket ?? undefined) as E | undefined;
    }
    return false;
  }

  /** Chains rebuilt over `n` heads from the hashes the entries carry (none is hashed again). */
  private rehash(n: number): void {
    this.buckets = new Array<E | undefined>(n).fill(undefined);
    this.mask = n - 1;
    const dense = this.dense;
    for (let i = 0; i < dense.length; i++) this.link(dense[i] as E, dense[i]!.flow.hash);
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

  /**
   * Swap `oldEntry` for `newEntry` with the same tuple (a pending SYN for its connection, a
   * connection for its TIME-WAIT record). With the same tuple object, as the stack passes it, the
   * new entry takes the old one's place on its chain and in the dense array: the tuple is not
   * hashed again and nothing else moves. A different tuple object is removed and inserted.
   */
  replace(oldEntry: E, newEntry: E): void {
    if (newEntry.flow !== oldEntry.flow || oldEntry.slotInTable < 0 || !this.unlink(oldEntry, newEntry)) {
      this.remove(oldEntry);
      this.insert(newEntry);
      return;
    }
    const slot = oldEntry.slotInTable;
    oldEntry.slotInTable = -1;
    newEntry.slotInTable = slot;
    this.dense[slot] = newEntry;
    const columns = this.columns;
    if (columns !== null) newEntry.writeRow?.(columns, slot);
  }

  /**
   * Every entry, from the last slot to the first (the last inserted first, but an entry that
   * replaced another holds its slot). The loop may remove the entry it was given (the one swapped
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
