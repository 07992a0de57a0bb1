/**
 * Demultiplexing by 4-tuple without allocating per packet.
 *
 * Incoming packets are parsed into one reused key object (source = the app's side, destination =
 * the address the app dialled, which the stack impersonates). Lookup hashes the key's numbers
 * (keyed: FlowHasher) into a Map<number, entry>, and entries that collide are chained through `nextInBucket`, so a
 * lookup allocates nothing. Each stored entry owns an immutable copy of its tuple.
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

export class FlowTable<E extends FlowEntry> {
  private readonly buckets = new Map<number, E>();
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

  get(key: FlowKeyLike): E | undefined {
    let e = this.buckets.get(this.hasher.ofKey(key));
    while (e !== undefined) {
      if (e.flow.matches(key)) return e;
      e = (e.nextInBucket ?? undefined) as E | undefined;
    }
    return undefined;
  }

  /**
   * The number of chains and the longest one (entries sharing a hash). Walks every chain: for
   * tests and diagnostics, never the packet path.
   */
  chainStats(): { chains: number; longest: number } {
    let longest = 0;
    for (const head of this.buckets.values()) {
      let n = 0;
      for (let e: FlowEntry | null = head; e !== null; e = e.nextInBucket) n++;
      if (n > longest) longest = n;
    }
    return { chains: this.buckets.size, longest };
  }

  /** Insert an entry whose tuple is not yet in the table. */
  insert(entry: E): void {
    // Hashed here, not when the tuple is made: the key is the table's. A tuple moving between
    // entries (pending SYN → connection → TIME-WAIT record) is rehashed on each insert: three
    // hashes per connection, against one per packet for lookups.
    entry.flow.hash = this.hasher.ofTuple(entry.flow);
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
