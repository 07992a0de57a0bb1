/**
 * The kernel's TCP sockets of this network namespace, and which of them are synfin's upstream
 * sockets (live, and closed ones until their TIME_WAIT is over): the state behind
 * synfin_upstream_sockets and, in the sidecar topology, the app socket's true state (appState).
 *
 * The table lives in the native addon (native/socket-table/socket-table.cc): a refresh dumps the kernel's
 * table over sock_diag netlink in libuv's thread pool (falling back to /proc/net/tcp{,6} where
 * sock_diag is unavailable) and only swaps the result in on the event loop. Measured here with
 * 18,000 sockets in the namespace: ~15 ms in the thread pool and well under a millisecond on the
 * loop, against 20-60 ms for the kernel to render /proc/net/tcp plus ~10 ms to parse it in
 * JavaScript. Counting synfin's sockets by state is a walk in C++ of whichever side is smaller.
 */
import { loadAddon, type NativeSocketTable } from '../native/addon.js';
import { parseAddress } from '../wire/address.js';
import { KERNEL_TCP_STATES } from './metrics.js';

export type KernelState = (typeof KERNEL_TCP_STATES)[number];

/** Kernel state names by number (include/net/tcp_states.h; 12 = TCP_NEW_SYN_RECV, a request socket still SYN-RECEIVED). */
const STATE_BY_NUMBER: readonly (KernelState | undefined)[] = [undefined, ...KERNEL_TCP_STATES, 'SYN_RECEIVED'];

/** Numbers per queued watch or release (NativeSocketTable.apply): kind, id, time, the tuple's 11 words. */
const OP_STRIDE = 14;
const OP_WATCH = 1;
const OP_RELEASE = 2;
/** Watches and releases queued before they are applied (in one native call). */
export const OPS_QUEUED = 64;

/** How long a closed upstream socket's tuple is remembered for TIME_WAIT matching (Linux TIME_WAIT is 60 s). */
export const CLOSED_TUPLE_MEMORY_MS = 5 * 60_000;
/** At most this many closed tuples are remembered (the oldest are forgotten first). */
export const MAX_CLOSED_TUPLES = 200_000;

export interface KernelSocketsOptions {
  closedMemoryMs?: number;
  maxClosed?: number;
  /** Read /proc/net/tcp{,6} even where sock_diag works (tests of the fallback). */
  forceProc?: boolean;
  /**
   * The table of another network namespace (`/var/run/netns/NAME`, `/proc/PID/ns/net`): the app's,
   * when synfin stands in front of a namespace rather than inside it. Its sock_diag socket is made
   * in that namespace at construction, which needs CAP_SYS_ADMIN then (not later).
   */
  netns?: string;
}

export class KernelSockets {
  private readonly table: NativeSocketTable;
  private takenAt = -Infinity;
  private pending: Promise<void> | null = null;
  private readonly tuple = new Uint32Array(11);
  private readonly countBuf = new Float64Array(13);
  /** The last refresh's error (the previous snapshot stays in use), or null. */
  lastError: Error | null = null;
  /** Counts watch() and release() calls: a snapshot is current only if none happened since it was taken. */
  changes = 0;
  /**
   * watch() and release() calls not yet applied to the native table: every connection makes one
   * of each, and two N-API calls per connection cost more than the table's work. Applied in order
   * when the queue is full and before anything reads the table (refresh, counts, stateOf,
   * inodeOf, watched), so no reader sees the difference; the native table counts what it was
   * given since its snapshot against that snapshot (SocketTable::Counts), as it would have had
   * each call reached it at once. The queue is bounded, so waiting costs no memory.
   */
  private readonly ops = new Float64Array(OPS_QUEUED * OP_STRIDE);
  private queued = 0;
  /** Native calls that applied queued watches and releases (tests). */
  applyCalls = 0;

  constructor(
    private readonly now: () => number,
    opts: KernelSocketsOptions = {},
  ) {
    const Table = loadAddon().SocketTable;
    const closedMemoryMs = opts.closedMemoryMs ?? CLOSED_TUPLE_MEMORY_MS;
    const maxClosed = opts.maxClosed ?? MAX_CLOSED_TUPLES;
    this.table =
      opts.netns === undefined
        ? new Table(closedMemoryMs, maxClosed, opts.forceProc ?? false)
        : new Table(closedMemoryMs, maxClosed, false, opts.netns);
  }

  /** Sockets in the latest snapshot (0 before the first refresh). */
  get size(): number {
    return this.table.size;
  }

  /** Tuples watched: synfin's live upstream sockets and the closed ones still remembered. */
  get watched(): number {
    this.applyQueued();
    return this.table.watched;
  }

  /** Where the last snapshot came from: 'sock_diag', 'proc', or 'none' before the first. */
  get source(): string {
    return this.table.source;
  }

  /** How old the snapshot is (ms; Infinity before the first). */
  age(): number {
    return this.now() - this.takenAt;
  }

  /**
   * A snapshot no older than `maxAgeMs`: resolves at once when the current one is fresh enough,
   * else after a read (shared with any read already under way that started late enough).
   */
  async fresh(maxAgeMs = 0): Promise<void> {
    if (this.age() <= maxAgeMs && this.takenAt > -Infinity) return;
    const requestedAt = this.now();
    if (this.pending !== null) {
      await this.pending;
      if (this.takenAt >= requestedAt || this.age() <= maxAgeMs) return;
    }
    await this.refresh();
  }

  /** Start a read in the background when the snapshot is older than `maxAgeMs` (for views that accept a stale one). */
  refreshIfOlder(maxAgeMs: number): void {
    if (this.pending === null && this.age() > maxAgeMs) void this.refresh();
  }

  /** Read the kernel's table now (concurrent callers share one read). Never rejects: see lastError. */
  refresh(): Promise<void> {
    if (this.pending !== null) return this.pending;
    this.applyQueued();
    const startedAt = this.now();
    this.pending = new Promise<void>((resolve) => {
      this.table.refresh(startedAt, (err) => {
        this.pending = null;
        this.lastError = err;
        if (err === null) this.takenAt = startedAt;
        resolve();
      });
    });
    return this.pending;
  }

  /** Watch connection `id`'s live upstream socket by its endpoints as text; false if they are not addresses. */
  watch(id: number, localAddress: string, localPort: number, remoteAddress: string, remotePort: number): boolean {
    const l = parseAddress(localAddress);
    const r = parseAddress(remoteAddress);
    if (l === null || r === null) return false;
    this.watchWords(id, l.family, l.words, localPort, r.words, remotePort);
    return true;
  }

  /** watch() from numbers: each address as four words (IPv4 in word 3). */
  watchWords(id: number, family: 4 | 6, local: Uint32Array, localPort: number, remote: Uint32Array, remotePort: number): void {
    const o = this.op(OP_WATCH, id, 0);
    const ops = this.ops;
    ops[o + 3] = family;
    for (let i = 0; i < 4; i++) {
      ops[o + 4 + i] = family === 4 && i < 3 ? 0 : local[i]!;
      ops[o + 9 + i] = family === 4 && i < 3 ? 0 : remote[i]!;
    }
    ops[o + 8] = localPort;
    ops[o + 13] = remotePort;
  }

  /**
   * watch() from numbers: `local` as localEndpoint() fills it ([family, four words, port]), the
   * remote address's four words (IPv4 in word 3) and port.
   */
  watchEndpoints(id: number, local: Uint32Array, remote: Uint32Array, remotePort: number): void {
    const t = this.tuple;
    const family = local[0] === 6 ? 6 : 4;
    t[0] = family;
    for (let i = 0; i < 4; i++) {
      t[1 + i] = family === 4 && i < 3 ? 0 : local[1 + i]!;
      t[6 + i] = family === 4 && i < 3 ? 0 : remote[i]!;
    }
    t[5] = local[5]!;
    t[10] = remotePort;
    this.applyQueued();
    this.table.watch(id, t);
    this.changes++;
  }

  /** Connection `id`'s upstream socket closed: its tuple stays watched (for its TIME_WAIT) for a while. */
  release(id: number): void {
    this.op(OP_RELEASE, id, this.now());
  }

  /** Queue one watch or release; returns its offset in `ops` (the caller fills a watch's tuple). */
  private op(kind: number, id: number, now: number): number {
    if (this.queued === OPS_QUEUED) this.applyQueued();
    const o = this.queued++ * OP_STRIDE;
    const ops = this.ops;
    ops[o] = kind;
    ops[o + 1] = id;
    ops[o + 2] = now;
    this.changes++;
    return o;
  }

  /** Apply the queued watches and releases (one native call). */
  applyQueued(): void {
    const n = this.queued;
    if (n === 0) return;
    this.queued = 0;
    this.applyCalls++;
    this.table.apply(this.ops, n);
  }

  /** Watched sockets by kernel state as of the last refresh (states with none are omitted). */
  counts(): Partial<Record<KernelState, number>> {
    this.applyQueued();
    this.table.counts(this.countBuf);
    const out: Partial<Record<KernelState, number>> = {};
    for (let s = 1; s < this.countBuf.length; s++) {
      const n = this.countBuf[s]!;
      const name = STATE_BY_NUMBER[s];
      if (n > 0 && name !== undefined) out[name] = (out[name] ?? 0) + n;
    }
    return out;
  }

  /** The kernel state of the socket local → remote in the last snapshot (address words in network order, as in FlowTuple). */
  stateOf(family: 4 | 6, local: Uint32Array, localPort: number, remote: Uint32Array, remotePort: number): KernelState | undefined {
    this.applyQueued();
    this.fill(family, local, localPort, remote, remotePort);
    return STATE_BY_NUMBER[this.table.stateOf(this.tuple)];
  }

  /**
   * The inode of the socket local → remote in the last snapshot (its file's name in its owners'
   * /proc/PID/fd is socket:[INODE]): 0 when no file holds it any more, -1 when it is not there.
   */
  inodeOf(family: 4 | 6, local: Uint32Array, localPort: number, remote: Uint32Array, remotePort: number): number {
    this.applyQueued();
    this.fill(family, local, localPort, remote, remotePort);
    return this.table.inodeOf(this.tuple);
  }

  /** inodeOf from textual addresses; -1 if either is not an address. */
  inodeOfAddresses(localAddress: string, localPort: number, remoteAddress: string, remotePort: number): number {
    const l = parseAddress(localAddress);
    const r = parseAddress(remoteAddress);
    if (l === null || r === null) return -1;
    return this.inodeOf(l.family, l.words, localPort, r.words, remotePort);
  }

  /** stateOf from textual addresses; undefined if either is not an address. */
  stateOfAddresses(localAddress: string, localPort: number, remoteAddress: string, remotePort: number): KernelState | undefined {
    const l = parseAddress(localAddress);
    const r = parseAddress(remoteAddress);
    if (l === null || r === null) return undefined;
    return this.stateOf(l.family, l.words, localPort, r.words, remotePort);
  }

  private fill(family: 4 | 6, local: Uint32Array, localPort: number, remote: Uint32Array, remotePort: number): void {
    const t = this.tuple;
    t[0] = family;
    for (let i = 0; i < 4; i++) {
      t[1 + i] = family === 4 && i < 3 ? 0 : local[i]!;
      t[6 + i] = family === 4 && i < 3 ? 0 : remote[i]!;
    }
    t[5] = localPort;
    t[10] = remotePort;
  }
}
