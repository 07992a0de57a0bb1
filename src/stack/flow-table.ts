/**
 * Demultiplexing by 4-tuple without allocating per packet.
 *
 * Incoming packets are parsed into one reused key object (source = the app's side, destination =
 * the address the app dialled, which the stack impersonates). Lookup hashes the key's numbers
 * into a Map<number, entry>, and entries that collide are chained through `nextInBucket`, so a
 * lookup allocates nothing. Each stored entry owns an immutable copy of its tuple.
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
}

export class FlowTable<E extends FlowEntry> {
  private readonly buckets = new Map<number, E>();
  private count = 0;

  get size(): number {
    return this.count;
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
    this.count++;
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
        this.count--;
        return true;
      }
      prev = e;
      e = (e.nextInBucket ?? undefined) as E | undefined;
    }
    return false;
  }

  /** Swap `oldEntry` for `newEntry` with the same tuple (e.g. a connection for its TIME-WAIT record). */
  replace(oldEntry: E, newEntry: E): void {
    this.remove(oldEntry);
    this.insert(newEntry);
  }

  *values(): IterableIterator<E> {
    for (const head of this.buckets.values()) {
      let e: E | undefined = head;
      while (e !== undefined) {
        const next = (e.nextInBucket ?? undefined) as E | undefined;
        yield e;
        e = next;
      }
    }
  }
}
