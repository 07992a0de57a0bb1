/**
 * The stack: demultiplexes packets from the link to connections by 4-tuple, answers what belongs
 * to no connection (RFC 9293 §3.10.7.1), runs the listener (every SYN, whatever its destination,
 * is offered to the forwarder; SYN cookies when half-open connections reach their bound,
 * RFC 4987), keeps TIME-WAIT as compact records, owns the one timer of all connections, and
 * flushes outgoing segments to the link in batches.
 *
 * It does no socket I/O and reads time only through the injected clock, so tests drive it with
 * an in-memory link and a manual clock.
 */
import { randomBytes } from 'node:crypto';
import type { MemoryBudget } from '../tcp/memory-budget.js';
import { TcpConn, rstForUnknown, type ConnHandler } from '../tcp/conn.js';
import type { TcpConfig } from '../tcp/config.js';
import type { ConnFlow, ConnIdentity, ResetReason } from '../tcp/events.js';
import { IsnGenerator } from '../tcp/isn.js';
import { OutSegment, Segment, TcpFlag } from '../wire/segment.js';
import { State } from '../tcp/state.js';
import { deriveKey } from '../tcp/siphash.js';
import { SynCookies } from '../tcp/syncookie.js';
import {
  cookieMss,
  cookieSynAck,
  fixedIss,
  listenVerdict,
  mayBeCookieAck,
  opensConnection,
  offerFromCookieAck,
  offerFromSyn,
  refusalRst,
  replayCookieAck,
  replaySyn,
  rstAbortsOffer,
  type SynOffer,
} from '../tcp/listener.js';
import {
  buildTimeWaitAck,
  reportTimeWaitClosed,
  timeWaitProcess,
  type TimeWaitGate,
  TimeWaitRecord,
} from '../tcp/time-wait.js';
import { PacketParser, FlowKey } from '../wire/packet.js';
import type { Clock } from './clock.js';
import { DeadlineHeap, type Schedulable } from './deadline-heap.js';
import { EventHub } from './events.js';
import { FlowHasher, FlowTable, FlowTuple, SlotColumns, type FlowEntry, type FlowKeyLike } from './flow-table.js';
import { PacketWriter } from './packet-writer.js';
import type { CaptureRing, CaptureSink } from './capture.js';
import type { LinkRx, LinkTx } from '../wire/link.js';

/** Domain word of the flow table's key, derived from the stack's secret: "FLW1". */
const FLOW_KEY_DOMAIN = 0x464c5731;

/** Which of the table's entries an entry is (`entry.kind`): a connection, a pending SYN, a TIME-WAIT record. */
export const KIND_CONN = 1;
export const KIND_SYN = 2;
export const KIND_TIME_WAIT = 3;

/** What a bare ACK for no connection turned out to be, while cookies may be outstanding. */
const COOKIE_ACCEPTED = 0;
const COOKIE_INVALID = 1;
const COOKIE_LIMIT = 2;
type CookieVerdict = typeof COOKIE_ACCEPTED | typeof COOKIE_INVALID | typeof COOKIE_LIMIT;

/**
 * The table's columns (Stack.columns): per slot, the code is the connection's State (TIME_WAIT for
 * a TIME-WAIT record) or ROW_PENDING_SYN, and the numbers are these times (ms).
 */
export const ROW_PENDING_SYN = 255;
export const COL_CREATED_AT = 0;
export const COL_LAST_ACTIVITY_AT = 1;
export const COL_STATE_SINCE = 2;
/** The flow's service index (FlowTuple.service). */
export const COL_SERVICE = 3;
export const ROW_WIDTH = 4;

/** A live connection in the table. */
export class ConnEntry implements FlowEntry, Schedulable {
  readonly kind = KIND_CONN;
  nextInBucket: FlowEntry | null = null;
  slotInTable = -1;
  heapAt = Infinity;
  /** Queued in the stack's dirty list for the next flush. */
  dirty = false;
  /** Still counted as half-open (SYN_RECEIVED, our SYN-ACK not yet acknowledged). */
  halfOpen = true;
  /** Waiting for the link's transmit ring to drain. */
  blocked = false;
  /** Admitted to TIME-WAIT (Stack.admitTimeWait) and not yet swapped for its record. */
  timeWaitReserved = false;
  constructor(
    readonly flow: FlowTuple,
    readonly conn: TcpConn,
  ) {}

  writeRow(columns: SlotColumns, slot: number): void {
    const conn = this.conn;
    columns.code[slot] = conn.state;
    const v = columns.values;
    const at = slot * ROW_WIDTH;
    v[at + COL_CREATED_AT] = conn.createdAt;
    v[at + COL_LAST_ACTIVITY_AT] = conn.lastActivityAt;
    v[at + COL_STATE_SINCE] = conn.stateSince;
    v[at + COL_SERVICE] = this.flow.service;
  }
}

/** How a pending SYN is turned down. */
export type RejectHow =
  /** RST|ACK to the SYN: the app sees "connection refused", as if there were no proxy. */
  | 'refused'
  /** ICMP destination unreachable (host): the app sees "no route to host". */
  | 'unreachable'
  /** ICMP destination unreachable (administratively prohibited): policy denial. */
  | 'prohibited'
  /** Say nothing: the app's connect() times out. */
  | 'silent';

/**
 * A SYN waiting for the forwarder's decision (the deferred handshake: the upstream is dialled
 * first, the SYN-ACK only sent once it connected). Holds what the SYN negotiated, compactly
 * (SynOffer, filled by the listener's rules: tcp/listener.ts).
 */
export class PendingSyn implements FlowEntry, Schedulable, SynOffer {
  readonly kind = KIND_SYN;
  nextInBucket: FlowEntry | null = null;
  slotInTable = -1;
  heapAt = Infinity;
  /** Decided (accepted or rejected): later calls are ignored. */
  settled = false;
  clientIsn = 0;
  window = 0;
  mss = 0;
  wscale = -1;
  sackPermitted = false;
  tsPresent = false;
  tsVal = 0;
  fromCookie = false;
  cookieIss = 0;
  issOverride = -1;
  /**
   * The forwarder's own record of this SYN's dial (UpstreamForwarder: its Dial), or null: found
   * from the SYN without a Map keyed by it (a Map with entries coming and going per connection
   * grows and shrinks its table over and over).
   */
  forwarderState: object | null = null;
  constructor(
    readonly id: number,
    readonly flow: FlowTuple,
    /** When the (first) SYN arrived; handshake latency counts from here. */
    readonly synAt: number,
  ) {}

  /** ConnIdentity: when the SYN arrived. */
  get openedAt(): number {
    return this.synAt;
  }
  /** ConnIdentity: still where its SYN put it (no state of the state machine yet). */
  get stateSince(): number {
    return this.synAt;
  }
  /** ConnIdentity: no byte moves before the handshake, nothing is retransmitted by a pending SYN. */
  get bytesIn(): number {
    return 0;
  }
  get bytesOut(): number {
    return 0;
  }
  get retransmits(): number {
    return 0;
  }
  get handshakeMs(): number {
    return -1;
  }

  writeRow(columns: SlotColumns, slot: number): void {
    columns.code[slot] = ROW_PENDING_SYN;
  }
}

/** What a pooled TIME-WAIT entry points at while it waits: no connection's tuple. */
const NO_FLOW = new FlowTuple({ family: 4, src: new Uint32Array(4), srcPort: 0, dst: new Uint32Array(4), dstPort: 0 });

/**
 * A connection in TIME-WAIT: its compact record (protocol state only) plus the facts its events
 * still carry (ConnIdentity), copied from the connection it replaced. Entries are reused (the
 * stack's pool, `Stack.takeTimeWaitEntry`): a record outlives many young-generation collections,
 * so a new object per closed connection would be copied and promoted each time, with its record
 * and the boxed numbers of both.
 */
export class TimeWaitEntry implements FlowEntry, Schedulable, ConnIdentity {
  readonly kind = KIND_TIME_WAIT;
  nextInBucket: FlowEntry | null = null;
  slotInTable = -1;
  heapAt = Infinity;
  flow: FlowTuple = NO_FLOW;
  /** The entry's own record: `fill` copies the connection's into it. */
  readonly rec = new TimeWaitRecord({ id: 0, sndNxt: 0, rcvNxt: 0, window: 0, tsEnabled: false, tsRecent: 0, tsRecentAt: 0, tsOffset: 0, enteredAt: 0, expiresAt: 0 });
  /** When the connection's SYN arrived (connection duration is measured to CLOSED). */
  createdAt = 0;
  bytesIn = 0;
  bytesOut = 0;
  retransmits = 0;
  handshakeMs = 0;

  /** Become the TIME-WAIT of `conn`, whose record is `rec` and tuple `flow`. */
  fill(flow: FlowTuple, rec: TimeWaitRecord, createdAt: number, conn: ConnIdentity): this {
    this.flow = flow;
    this.rec.assign(rec);
    this.createdAt = createdAt;
    this.bytesIn = conn.bytesIn;
    this.bytesOut = conn.bytesOut;
    this.retransmits = conn.retransmits;
    this.handshakeMs = conn.handshakeMs;
    return this;
  }

  /** Let go of the connection's tuple (the entry waits in the pool). */
  empty(): void {
    this.flow = NO_FLOW;
  }

  get id(): number {
    return this.rec.id;
  }
  /** ConnIdentity: when the connection's SYN arrived. */
  get openedAt(): number {
    return this.createdAt;
  }
  /** ConnIdentity: when it entered TIME-WAIT (a restarted 2×MSL timer does not move it). */
  get stateSince(): number {
    return this.rec.enteredAt;
  }

  /** Fixed for the record's life: a restarted 2×MSL timer does not move when it entered TIME-WAIT. */
  writeRow(columns: SlotColumns, slot: number): void {
    columns.code[slot] = State.TIME_WAIT;
    const v = columns.values;
    const at = slot * ROW_WIDTH;
    v[at + COL_CREATED_AT] = this.createdAt;
    v[at + COL_LAST_ACTIVITY_AT] = this.rec.enteredAt;
    v[at + COL_STATE_SINCE] = this.rec.enteredAt;
    v[at + COL_SERVICE] = this.flow.service;
  }
}

/**
 * How many ended TIME-WAIT entries the stack keeps for reuse. Under a steady close rate entries
 * end as fast as new ones start, so a small pool serves it; the bound keeps what a burst of
 * closes leaves behind small (~250 B each).
 */
const TIME_WAIT_POOL_MAX = 1024;

type Entry = ConnEntry | PendingSyn | TimeWaitEntry;

/** Work to run once a flush has put the current batch's segments on the link (Stack.runAfterFlush). */
export interface AfterFlush {
  /** Owned by the stack: true while queued. */
  afterFlushQueued: boolean;
  afterFlush(): void;
}

/** The proxy's side of the listener. */
export interface Forwarder {
  /**
   * A new connection attempt arrived (or a valid SYN cookie came back). Decide, within the call
   * (a dial that connected inside connect(2)) or later: `stack.acceptPending(req, handler)` once
   * the upstream connected, or `stack.rejectPending(req, how, reason)`. The SYN's segment is
   * consumed by then (its offer holds what it negotiated), so a decision within the call is safe.
   */
  onSyn(req: PendingSyn): void;
  /** The app gave up on a pending attempt (RST) before it was decided: cancel the dial. */
  onSynAborted(req: PendingSyn): void;
  /**
   * Whether a SYN's 4-tuple (src = its sender) is one of the forwarder's own upstream sockets:
   * a dial the kernel routed back into the device. Asked for every SYN for no connection, before
   * any state is taken: it must be cheap.
   */
  isOwnConnection?(key: FlowKeyLike): boolean;
}

export interface StackOptions {
  link: LinkTx;
  clock: Clock;
  tcp: TcpConfig;
  forwarder: Forwarder;
  events?: EventHub;
  /** Half-open connections (pending SYNs and SYN_RECEIVED) before SYN cookies engage. */
  synBacklog?: number;
  /** Connections (TIME-WAIT records excluded) above which new SYNs are refused with RST. */
  maxConnections?: number;
  /**
   * TIME-WAIT records kept at most (--max-time-wait, Linux's tcp_max_tw_buckets); a connection
   * closing beyond it skips TIME-WAIT (TimeWaitGate). Unbounded by default.
   */
  maxTimeWait?: number;
  /** Called at each TIME-WAIT skipped for the bound, with the clock's time (the runtime's throttled warning). */
  onTimeWaitOverflow?: (now: number) => void;
  /**
   * 16 secret bytes behind ISNs, timestamp offsets, SYN cookies and the flow table's hash key
   * (domain-separated); random by default. Tests pass one to make runs reproducible.
   */
  secret?: Uint8Array;
  /** --memory-limit: every connection's buffers are charged to it; under pressure SYNs get RST. */
  budget?: MemoryBudget | null;
  /** Timer hooks, replaceable for tests that drive timers by hand. */
  setTimer?: (callback: () => void, delayMs: number) => unknown;
  clearTimer?: (handle: unknown) => void;
}

export class Stack implements LinkRx, TimeWaitGate, CaptureSink {
  readonly events: EventHub;
  readonly tcp: TcpConfig;
  private readonly link: LinkTx;
  private readonly clock: Clock;
  private readonly forwarder: Forwarder;
  private readonly table: FlowTable<Entry>;
  /** Deadlines of connections (ConnEntry). */
  private readonly heap = new DeadlineHeap<Entry>();
  /**
   * Deadlines of TIME-WAIT records, apart: the connection heap compacts its stale entries once
   * they outnumber its live ones, and thousands of live 2×MSL records in the same heap would let
   * as many stale entries of closed connections (each holding the whole connection, its socket
   * and buffers) wait for their times, to be copied and promoted by every young-generation
   * collection (BENCHMARKS.md, "Where the tail comes from").
   */
  private readonly twHeap = new DeadlineHeap<Entry>();
  /** Ended TIME-WAIT entries for reuse (TimeWaitEntry, TIME_WAIT_POOL_MAX). */
  private readonly timeWaitPool: TimeWaitEntry[] = [];
  /**
   * The connections to dispatch at the next flush, and the tasks to run after it: slots [0, count),
   * emptied (null) as they are taken. Never cut back with `length = 0`: V8 then drops the array's
   * backing store and the next push allocates a new one, once per flush (~100 B a connection each
   * in bench/alloc-sites.mjs).
   */
  private readonly dirtyList: (ConnEntry | null)[] = [];
  private dirtyCount = 0;
  private readonly afterFlushList: (AfterFlush | null)[] = [];
  private afterFlushCount = 0;
  /** Tasks that run ahead of afterFlushList's (runAfterFlushFirst): the proxy's dials. */
  private readonly firstAfterFlushList: (AfterFlush | null)[] = [];
  private firstAfterFlushCount = 0;
  /** Connections that had more to send when the transmit ring filled: resumed on drain. */
  private blockedList: ConnEntry[] = [];
  private readonly parser = new PacketParser();
  private readonly seg = new Segment();
  private readonly key = new FlowKey();
  private readonly out = new OutSegment();
  private readonly writer: PacketWriter;
  private readonly isn: IsnGenerator;
  private readonly cookies: SynCookies;
  /** When the last cookie SYN-ACK went out; a cookie is valid for `cookieLifetimeMs` after it. */
  private lastCookieSentAt = -Infinity;
  private readonly cookieLifetimeMs: number;
  private readonly synBacklog: number;
  private readonly maxConnections: number;
  private readonly maxTimeWait: number;
  private readonly onTimeWaitOverflow: ((now: number) => void) | null;
  readonly budget: MemoryBudget | null;
  private readonly setTimer: (callback: () => void, delayMs: number) => unknown;
  private readonly clearTimer: (handle: unknown) => void;
  private timerHandle: unknown = null;
  private timerAt = Infinity;
  private readonly onTimerBound = (): void => this.onTimer();
  private readonly emitBound = (conn: TcpConn, out: OutSegment): boolean => this.emitConnSegment(conn, out);
  private readonly fireBound = (entry: Entry): void => this.fire(entry);
  /** TCP segments parsed from the link (synfin_tcp_segments_total{direction="in"}). */
  segmentsIn = 0;
  /** SYN-ACKs answered statelessly with a cookie (synfin_tcp_syn_cookies_total{result="sent"}). */
  synCookiesSent = 0;
  /** Final ACKs that brought back a valid cookie (synfin_tcp_syn_cookies_total{result="accepted"}). */
  synCookiesAccepted = 0;
  /** Connections that skipped TIME-WAIT for --max-time-wait (synfin_tcp_time_wait_overflow_total). */
  timeWaitOverflows = 0;
  /** Connections admitted to TIME-WAIT whose record is not made yet (counted against the bound). */
  private timeWaitReserved = 0;
  private nextId = 1;
  /** The capture ring (--capture-buffer, src/stack/capture.ts), or null when capture is off. */
  private capture: CaptureRing | null = null;
  private halfOpen = 0;
  private pendingCount = 0;
  private connCount = 0;
  private timeWaitCount = 0;
  private txBlocked = false;
  private flushing = false;
  /** input() was called and the flush that ends its batch has not started yet. */
  private batchOpen = false;
  /** Between openBatch() and closeBatch(): the flush at closeBatch() sends what is due. */
  private eventBatchOpen = false;
  /** flushSoon() was called during the open event batch: closeBatch() flushes. */
  private eventBatchFlush = false;
  private stopped = false;

  constructor(opts: StackOptions) {
    this.link = opts.link;
    this.clock = opts.clock;
    this.tcp = opts.tcp;
    this.forwarder = opts.forwarder;
    this.events = opts.events ?? new EventHub();
    this.synBacklog = opts.synBacklog ?? 1024;
    this.maxConnections = opts.maxConnections ?? Infinity;
    this.maxTimeWait = opts.maxTimeWait ?? Infinity;
    this.onTimeWaitOverflow = opts.onTimeWaitOverflow ?? null;
    this.budget = opts.budget ?? null;
    this.setTimer = opts.setTimer ?? ((cb, ms) => setTimeout(cb, ms));
    this.clearTimer = opts.clearTimer ?? ((h) => clearTimeout(h as NodeJS.Timeout));
    this.writer = new PacketWriter(this.link);
    // One secret behind everything an outsider must not predict: ISNs and timestamp offsets
    // (RFC 6528), SYN cookies (RFC 4987) and, through a derived key, the flow table's hash.
    const secret = opts.secret ?? randomBytes(16);
    this.isn = new IsnGenerator(secret);
    this.cookies = new SynCookies(secret);
    this.cookieLifetimeMs = this.cookies.tickMs * (this.cookies.maxAgeTicks + 1);
    this.table = new FlowTable<Entry>(new SlotColumns(ROW_WIDTH), new FlowHasher(deriveKey(secret, FLOW_KEY_DOMAIN)));
  }

  /** Segments written to the link (synfin_tcp_segments_total{direction="out"}). */
  get segmentsOut(): number {
    return this.writer.segmentsOut;
  }

  /** Connections in the table (pending SYNs and TIME-WAIT records excluded). */
  get connectionCount(): number {
    return this.connCount;
  }
  get timeWaitRecords(): number {
    return this.timeWaitCount;
  }
  get halfOpenCount(): number {
    return this.halfOpen;
  }

  /**
   * The table's columns (codes and times per slot, see ROW_WIDTH), valid for slots below
   * tableSize: what a walk of every connection reads instead of the entries themselves.
   */
  get columns(): SlotColumns {
    return this.table.columns!;
  }
  get tableSize(): number {
    return this.table.size;
  }
  /** Chains of the flow table and the longest (tests and diagnostics: walks the table). */
  flowChainStats(): { chains: number; longest: number } {
    return this.table.chainStats();
  }
  /** Rewrite every row of the columns from its entry: after the flows' services were renamed (a reload of the named services). */
  rewriteRows(): void {
    const table = this.table;
    const columns = table.columns!;
    for (let slot = 0; slot < table.size; slot++) table.entryAt(slot).writeRow(columns, slot);
  }
  /** The connection in `slot`, or null for a TIME-WAIT record or a pending SYN. */
  connAt(slot: number): TcpConn | null {
    const e = this.table.entryAt(slot);
    return e.kind === KIND_CONN ? e.conn : null;
  }
  /**
   * The table's entry holding this very tuple object (a pending SYN, connection or TIME-WAIT
   * record of one incarnation; a new SYN for the same 4-tuple gets a new tuple), or undefined
   * once it left the table. A hash lookup: what a page of /api/connections costs per row.
   */
  entryFor(flow: ConnFlow): ConnEntry | PendingSyn | TimeWaitEntry | undefined {
    const k = this.lookupKey;
    k.family = flow.family;
    k.src = flow.remote;
    k.srcPort = flow.remotePort;
    k.dst = flow.local;
    k.dstPort = flow.localPort;
    const e = this.table.get(k);
    return e !== undefined && e.flow === flow ? e : undefined;
  }
  private readonly lookupKey: FlowKeyLike = { family: 4, src: new Uint32Array(4), dst: new Uint32Array(4), srcPort: 0, dstPort: 0 };
  *connections(): IterableIterator<{ flow: FlowTuple; conn: TcpConn }> {
    for (const e of this.table.values()) if (e.kind === KIND_CONN) yield e;
  }
  *timeWaits(): IterableIterator<{ flow: FlowTuple; rec: TimeWaitRecord }> {
    for (const e of this.table.values()) if (e.kind === KIND_TIME_WAIT) yield e;
  }
  *pendingSyns(): IterableIterator<PendingSyn> {
    for (const e of this.table.values()) if (e.kind === KIND_SYN) yield e;
  }

  /** CaptureSink: every packet read from or written to the link goes into `ring` from now on (null: none). */
  setCapture(ring: CaptureRing | null): void {
    this.capture = ring;
    this.writer.capture = ring;
  }

  // ---------------------------------------------------------------- ingress

  input(buf: Buffer, off: number, len: number, checksumKnownGood: boolean): void {
    if (this.capture !== null) this.inputCaptured(this.capture, buf, off, len, checksumKnownGood);
    else this.demux(buf, off, len, checksumKnownGood);
  }

  /**
   * input() with capture on: the packet is recorded before it is processed (what it makes us send
   * comes after it in the ring), and tagged with its connection afterwards: the entry demux found
   * for it, or for a segment that had none (a SYN), the entry its 4-tuple finds once processed
   * (the SYN's new pending connection).
   */
  private inputCaptured(cap: CaptureRing, buf: Buffer, off: number, len: number, checksumKnownGood: boolean): void {
    const n = cap.recordIn(buf, off, len);
    const at = cap.lastOffset;
    const parsed = this.segmentsIn;
    this.demuxed = undefined;
    this.demux(buf, off, len, checksumKnownGood);
    if (this.segmentsIn === parsed) return;
    const entry = this.demuxed ?? this.table.get(this.key);
    if (entry !== undefined) cap.tagConnection(n, at, entry.kind === KIND_CONN ? entry.conn.id : entry.id);
  }
  /** The entry the last segment was demultiplexed to (read by inputCaptured only). */
  private demuxed: Entry | undefined = undefined;

  private demux(buf: Buffer, off: number, len: number, checksumKnownGood: boolean): void {
    // LinkRx contract: a flush() ends every batch of input().
    this.batchOpen = true;
    const seg = this.seg;
    const key = this.key;
    const verdict = this.parser.parse(buf, off, len, checksumKnownGood, seg, key);
    if (verdict === 'tcp') this.segmentsIn++;
    else {
      if (verdict === 'checksum' || verdict === 'malformed') this.events.drop(null, verdict);
      // Fragments, IPv6 routing headers in transit, jumbograms: TCP we do not take.
      else if (verdict === 'fragment' || verdict === 'unsupported') this.events.drop(null, 'unsupported');
      // Other protocols (ICMP, UDP) are not ours: the TUN device only carries what is routed to it.
      return;
    }
    let entry = this.table.get(key);
    if (entry === undefined) {
      this.onUnknown(seg, key);
      return;
    }
    const now = this.clock.now();
    if (entry.kind === KIND_CONN && entry.conn.state === State.TIME_WAIT) {
      // Only the stack acts on TIME-WAIT verdicts, on the compact record: a connection that
      // reached TIME-WAIT earlier in this batch is swapped for its record before this segment.
      this.retireToRecord(entry, now);
      entry = this.table.get(key);
      if (entry === undefined) {
        this.onUnknown(seg, key);
        return;
      }
    }
    this.demuxed = entry;
    switch (entry.kind) {
      case KIND_CONN: {
        entry.conn.process(seg, now);
        this.markDirty(entry);
        return;
      }
      case KIND_TIME_WAIT:
        this.onTimeWaitSegment(entry, seg, now);
        return;
      case KIND_SYN:
        this.onPendingSegment(entry, seg);
        return;
    }
  }

  flush(): void {
    if (this.flushing) return;
    this.flushing = true;
    this.batchOpen = false;
    try {
      this.dispatchDirty();
      this.link.txFlush();
      if (this.afterFlushCount > 0 || this.firstAfterFlushCount > 0) {
        // The batch's ACKs are on the link: the app can go on sending while the upstream writes
        // (the slow part: each one pushes bytes through the kernel) happen here. A task may queue
        // others, of either list: they run in this flush too.
        do {
          const first = this.firstAfterFlushList;
          for (let i = 0; i < this.firstAfterFlushCount; i++) {
            const task = first[i]!;
            first[i] = null;
            task.afterFlushQueued = false;
            task.afterFlush();
          }
          this.firstAfterFlushCount = 0;
          const after = this.afterFlushList;
          for (let i = 0; i < this.afterFlushCount; i++) {
            const task = after[i]!;
            after[i] = null;
            task.afterFlushQueued = false;
            task.afterFlush();
          }
          this.afterFlushCount = 0;
        } while (this.firstAfterFlushCount > 0 || this.afterFlushCount > 0);
        // Window updates the writes made due (bytes left for the upstream) and the SYN-ACKs of the
        // dials made here go out now, not a tick later; so does a segment written to the link
        // directly (rejectPending's RST, whose flushSoon does nothing while we flush).
        this.sendDue();
      }
      this.armTimer();
    } finally {
      this.flushing = false;
    }
  }

  private dispatchDirty(): void {
    const now = this.clock.now();
    const list = this.dirtyList;
    // The list may grow while we dispatch (a handler writes to another connection): index loop.
    for (let i = 0; i < this.dirtyCount; i++) {
      const e = list[i]!;
      list[i] = null;
      e.dirty = false;
      // Left the table since it was queued (retireToRecord swapped it for its TIME-WAIT record).
      if (e.conn.tableEntry !== e) continue;
      this.dispatchEntry(e, now);
    }
    this.dirtyCount = 0;
  }

  /**
   * Run `task.afterFlush()` at the end of the next flush (the one that ends the current input
   * batch), after the segments the batch made due are on the link. The proxy defers its upstream
   * writes here, so that the app's ACKs are not held behind them and the writes of one batch go
   * out together (corked). Queuing a task that is already queued does nothing.
   */
  runAfterFlush(task: AfterFlush): void {
    if (task.afterFlushQueued) return;
    task.afterFlushQueued = true;
    this.afterFlushList[this.afterFlushCount++] = task;
    // Outside an input batch nobody else will flush.
    if (!this.batchOpen) this.flushSoon();
  }

  /**
   * runAfterFlush, ahead of every task queued with runAfterFlush in the same batch (in the order
   * these were queued). For work that someone is waiting on: the proxy's connect(2) calls, which
   * an app's connect() waits for, go before the upstream ends and closes of finished connections
   * (each close(2) runs the destination's side of the FIN inside the call) and the batch's
   * upstream writes.
   */
  runAfterFlushFirst(task: AfterFlush): void {
    if (task.afterFlushQueued) return;
    task.afterFlushQueued = true;
    this.firstAfterFlushList[this.firstAfterFlushCount++] = task;
    if (!this.batchOpen) this.flushSoon();
  }

  /**
   * From an after-flush task: send now what the task made due so far (connections woken, segments
   * written to the link) rather than after the remaining tasks. The proxy's dials call it between
   * their acceptance and the sockets' registration, so the SYN-ACKs do not wait for two system
   * calls per dial. Within an input batch it does nothing: the flush that ends the batch sends.
   */
  sendDueNow(): void {
    if (this.batchOpen || !this.flushing) return;
    this.sendDue();
  }

  /** Dispatch the woken connections and write out the link's queue. */
  private sendDue(): void {
    if (this.dirtyCount > 0) this.dispatchDirty();
    this.link.txFlush();
  }

  /**
   * No packet on the link refers to outside memory: the link copies payloads into its own slots
   * (no txAttach), or every packet it was given has been written. Then a chunk a connection has
   * released (ConnHandler.onChunkReleased) may be reused; run from an after-flush task, this is
   * the state right after the batch's packets went out.
   */
  get linkHoldsNoViews(): boolean {
    const link = this.link;
    return link.txAttach === undefined || link.txQueued === 0;
  }

  /** Ask for `conn` to be dispatched at the next flush (the proxy calls this after write/close/consume). */
  wake(conn: TcpConn): void {
    const entry = conn.tableEntry as ConnEntry | null;
    if (entry !== null && entry.kind === KIND_CONN) this.markDirty(entry);
  }

  /** Schedule a flush on the next turn of the event loop (for calls from outside an input batch). */
  private flushScheduled = false;
  private readonly flushSoonBound = (): void => {
    this.flushScheduled = false;
    this.flush();
  };
  flushSoon(): void {
    if (this.eventBatchOpen) {
      this.eventBatchFlush = true;
      return;
    }
    if (this.flushScheduled || this.flushing) return;
    this.flushScheduled = true;
    setImmediate(this.flushSoonBound);
  }

  /**
   * EventBatchSink: the upstream sockets' events of one poll begin. What their handlers make due
   * (flushSoon, runAfterFlush) waits for closeBatch(), which flushes once for all of them in this
   * turn: no setImmediate turn per poll (its callback costs about as much as a small flush), and
   * the responses of several connections leave in one batch of writes.
   */
  openBatch(): void {
    this.eventBatchOpen = true;
  }

  /** EventBatchSink: the poll's events are handled; send what they made due. */
  closeBatch(): void {
    this.eventBatchOpen = false;
    // Whatever asked for a flush: a connection woken, an after-flush task, or a segment written
    // to the link directly (rejectPending's RST to a refused SYN, which no dispatch would send).
    if (!this.eventBatchFlush) return;
    this.eventBatchFlush = false;
    this.flushNow();
  }

  /**
   * Send what is due now: at once when called from outside the stack (an upstream socket's event),
   * else at the end of the batch or flush under way. Saves the setImmediate turn of flushSoon,
   * which a SYN-ACK or a response would otherwise wait for behind the rest of the event loop.
   */
  flushNow(): void {
    // Within an input batch (a SYN whose dial completed inside connect(2)), the flush that ends
    // the batch (LinkRx contract) sends it: a turn scheduled now would only flush nothing.
    if (this.batchOpen) return;
    if (this.flushing) this.flushSoon();
    else this.flush();
  }

  private markDirty(entry: ConnEntry): void {
    // Every change to a connection from outside (a segment, the app, a timer) ends here, and its
    // dispatch in afterDispatch: the two places its row of the table's columns is rewritten.
    if (entry.slotInTable >= 0) entry.writeRow(this.table.columns!, entry.slotInTable);
    if (!entry.dirty) {
      entry.dirty = true;
      this.dirtyList[this.dirtyCount++] = entry;
    }
  }

  private onUnknown(seg: Segment, key: FlowKey): void {
    const flags = seg.flags;
    if (flags & TcpFlag.RST) {
      // RFC 9293 §3.10.7.1: an incoming RST for no connection is discarded.
      this.events.drop(null, 'no_connection');
      return;
    }
    if (opensConnection(flags)) {
      this.onListenSyn(seg, key);
      return;
    }
    let reason: 'no_connection' | 'bad_cookie' | 'syn_limit' = 'no_connection';
    // An ACK that fails the check while cookies may be outstanding is a forged or stale cookie.
    if (mayBeCookieAck(flags, this.clock.now(), this.lastCookieSentAt, this.cookieLifetimeMs)) {
      const verdict = this.tryCookie(seg, key);
      if (verdict === COOKIE_ACCEPTED) return;
      reason = verdict === COOKIE_LIMIT ? 'syn_limit' : 'bad_cookie';
    }
    // RFC 9293 §3.10.7.1: anything else for no connection is answered with a reset.
    this.events.drop(null, reason);
    this.sendRstFor(seg, key, 'no_connection');
  }

  private onListenSyn(seg: Segment, key: FlowKey, replaced: TimeWaitRecord | null = null): void {
    const now = this.clock.now();
    const own = this.forwarder.isOwnConnection !== undefined && this.forwarder.isOwnConnection(key);
    const admits = this.budget === null || this.budget.admits();
    switch (listenVerdict(own, this.connCount + this.pendingCount, this.maxConnections, admits, this.halfOpen, this.synBacklog)) {
      case 'loop':
        // Our own dial came back through the device (a route, a rule or an address sends the
        // destination into it): refused before it takes a place in the SYN backlog or a dial.
        // The dial then fails with ECONNREFUSED and the app's SYN gets a RST.
        this.events.drop(null, 'loop');
        this.sendRstFor(seg, key, 'loop');
        return;
      case 'conn_limit':
        // Refuse cleanly: the app sees ECONNREFUSED at once rather than a hanging connect().
        this.events.drop(null, 'syn_limit');
        this.sendRstFor(seg, key, 'no_connection');
        return;
      case 'memory_limit':
        // A new connection would only take memory from the open ones.
        this.events.drop(null, 'memory_limit');
        this.sendRstFor(seg, key, 'no_connection');
        return;
      case 'cookie':
        this.sendCookieSynAck(seg, key, now);
        return;
      case 'pending':
        this.openPending(seg, key, now, -1, replaced);
        return;
    }
  }

  /**
   * Take a place for a SYN in the table and offer it to the forwarder: a SYN (`cookieMss` -1;
   * `replaced`, the TIME-WAIT record it replaced), or the ACK that brought a valid cookie back
   * (`cookieMss` the MSS it carried).
   */
  private openPending(seg: Segment, key: FlowKey, now: number, cookieMss: number, replaced: TimeWaitRecord | null): void {
    const req = new PendingSyn(this.nextId++, new FlowTuple(key), now);
    if (cookieMss < 0) offerFromSyn(req, seg, replaced);
    else offerFromCookieAck(req, seg, cookieMss, this.cookies);
    this.table.insert(req);
    this.halfOpen++;
    this.pendingCount++;
    this.events.opened(req, key.family, now);
    this.forwarder.onSyn(req);
  }

  /** RFC 4987 §3.6: answer without state; the ISS carries what we need to rebuild it. */
  private sendCookieSynAck(seg: Segment, key: FlowKey, now: number): void {
    cookieSynAck(this.out, seg, key, now, this.tcp, this.cookies, this.isn);
    this.lastCookieSentAt = now;
    this.writer.writeSegment(key.family, key.dst, key.dstPort, key.src, key.srcPort, this.out, null);
    this.synCookiesSent++;
    this.flushSoon();
  }

  private tryCookie(seg: Segment, key: FlowKey): CookieVerdict {
    const now = this.clock.now();
    const mss = cookieMss(seg, key, now, this.cookies);
    if (mss < 0) return COOKIE_INVALID;
    if (this.connCount + this.pendingCount >= this.maxConnections) return COOKIE_LIMIT;
    this.synCookiesAccepted++;
    this.openPending(seg, key, now, mss, null);
    return COOKIE_ACCEPTED;
  }

  private onPendingSegment(req: PendingSyn, seg: Segment): void {
    if (seg.flags & TcpFlag.RST) {
      // The app gave up (or a stray RST): only an RST that matches the SYN counts (RFC 5961 §3
      // spirit: the RST must carry an ACK of nothing we sent, so check its sequence number).
      if (rstAbortsOffer(req, seg)) {
        req.settled = true;
        this.removePending(req);
        this.events.reset(req, 'received', 'peer');
        this.events.handshake(req, 'reset', this.clock.now() - req.synAt);
        this.events.closed(req, 'reset_received', this.clock.now());
        this.forwarder.onSynAborted(req);
      } else {
        this.events.drop(req, 'rst_invalid');
      }
      return;
    }
    // Retransmitted SYNs while the upstream is being dialled are absorbed: the SYN-ACK follows
    // the dial. Data after a cookie handshake is dropped; the app retransmits it.
    this.events.drop(req, req.fromCookie ? 'syn_limit' : 'unsupported');
  }

  private onTimeWaitSegment(entry: TimeWaitEntry, seg: Segment, now: number): void {
    const verdict = timeWaitProcess(entry.rec, seg, now, this.tcp);
    switch (verdict) {
      case 'ack':
        // RFC 9293 §3.10.7.4 TIME-WAIT: an unacceptable segment is answered with an ACK and
        // dropped: a rejection, counted like every other (time-wait.ts 'ack' verdict).
        this.sendTimeWaitAck(entry, now);
        this.events.drop(null, 'time_wait');
        return;
      case 'ack_restart':
        this.sendTimeWaitAck(entry, now);
        this.twHeap.schedule(entry, entry.rec.expiresAt);
        return;
      case 'accept_syn': {
        // RFC 9293 §3.10.7.4 / RFC 6191: a new incarnation may reuse the 4-tuple at once.
        this.removeTimeWait(entry, now, false);
        this.onListenSyn(seg, this.key, entry.rec);
        this.recycleTimeWait(entry);
        return;
      }
      default:
        this.events.drop(null, 'time_wait');
        return;
    }
  }

  // ---------------------------------------------------------------- the forwarder's decisions

  /** The upstream connected: finish the handshake toward the app. */
  acceptPending(req: PendingSyn, handler: ConnHandler): TcpConn | null {
    if (req.settled || this.stopped) return null;
    req.settled = true;
    const now = this.clock.now();
    const conn = new TcpConn(req.id, this.tcp, this.events, handler, now, this.budget);
    const entry = new ConnEntry(req.flow, conn);
    conn.tableEntry = entry;
    conn.flow = req.flow;
    conn.timeWaitGate = this;
    const f = req.flow;
    const syn = this.seg;
    replaySyn(req, syn);
    const fixed = fixedIss(req);
    // One SipHash gives both: the ISN's F (low half) and the timestamp offset (high half).
    let iss = fixed;
    let tsOffset: number;
    if (fixed >= 0) tsOffset = this.isn.tsOffset(f.family, f.local, f.localPort, f.remote, f.remotePort);
    else {
      iss = this.isn.isn(f.family, f.local, f.localPort, f.remote, f.remotePort, now);
      tsOffset = this.isn.lastTsOffset;
    }
    // Still half-open until the app's final ACK: the SYN backlog bounds SYN_RECEIVED too.
    this.table.replace(req, entry);
    this.pendingCount--;
    this.connCount++;
    conn.accept(syn, iss, req.synAt, now, tsOffset, f.family);
    if (req.fromCookie) {
      // The app already completed the handshake against the cookie: replay its final ACK.
      replayCookieAck(req, iss, syn);
      conn.process(syn, now);
    }
    this.sendHandshake(entry, now);
    return conn;
  }

  /**
   * The SYN-ACK is what the app's connect() waits for: no extra turn of the event loop. Within an
   * input batch (a forwarder that accepts during the SYN's handling) it is written at once, ahead
   * of what the rest of the batch makes due: connections are independent, and a TUN write costs
   * one write(2) per packet however the packets are grouped. From an after-flush task (synfin's
   * forwarder dials there, after the batch) the flush under way sends it once the tasks are done.
   */
  private sendHandshake(entry: ConnEntry, now: number): void {
    if (this.batchOpen && !this.flushing && !this.txBlocked) {
      this.dispatchEntry(entry, now);
      this.link.txFlush();
      return;
    }
    this.markDirty(entry);
    this.flushNow();
  }

  /** The upstream failed: answer the SYN the way the app would have seen the destination fail. */
  rejectPending(req: PendingSyn, how: RejectHow, result: 'upstream_refused' | 'upstream_timeout' | 'upstream_unreachable'): void {
    if (req.settled) return;
    req.settled = true;
    const now = this.clock.now();
    this.removePending(req);
    this.events.handshake(req, result, now - req.synAt);
    const f = req.flow;
    if (how === 'refused') {
      const out = this.out;
      refusalRst(req, out);
      this.writer.writeSegment(f.family, f.local, f.localPort, f.remote, f.remotePort, out, null, req.id);
      this.events.reset(req, 'sent', 'upstream_refused');
    } else if (how === 'unreachable' || how === 'prohibited') {
      this.writer.writeUnreachable(f, req.clientIsn, how === 'prohibited', req.id);
    }
    this.events.closed(req, 'upstream_failed', now);
    this.flushSoon();
  }

  /**
   * Forget a pending SYN without answering (e.g. too many dials in flight): the app's SYN
   * retransmission (RFC 9293 §3.8.1) will offer it again.
   */
  dropPendingQuietly(req: PendingSyn): void {
    if (req.settled) return;
    req.settled = true;
    this.removePending(req);
    this.events.drop(req, 'syn_limit');
    this.events.forgotten(req, this.clock.now());
  }

  private removePending(req: PendingSyn): void {
    if (this.table.remove(req)) {
      this.halfOpen--;
      this.pendingCount--;
    }
  }

  // ---------------------------------------------------------------- egress and timers

  private dispatchEntry(entry: ConnEntry, now: number): void {
    if (this.txBlocked) {
      // The ring is full: park the connection until the drain (cost bounded by what waits).
      if (!entry.blocked) {
        entry.blocked = true;
        this.blockedList.push(entry);
      }
      return;
    }
    entry.conn.dispatch(now, this.emitBound);
    this.afterDispatch(entry, now);
  }

  /**
   * Swap a connection in TIME_WAIT for its record now rather than at the end of the batch: what
   * it still owes (the ACK of the peer's FIN) goes out first, unless the transmit ring is full.
   */
  private retireToRecord(entry: ConnEntry, now: number): void {
    if (!this.txBlocked) entry.conn.dispatch(now, this.emitBound);
    this.afterDispatch(entry, now);
  }

  /**
   * TimeWaitGate (--max-time-wait): a connection about to enter TIME-WAIT takes a place if records
   * plus those admitted and not yet made are below the bound; otherwise it skips TIME-WAIT (its
   * conn goes to CLOSED), counted and reported to onTimeWaitOverflow.
   */
  admitTimeWait(conn: ConnIdentity): boolean {
    const entry = conn instanceof TcpConn ? (conn.tableEntry as ConnEntry | null) : null;
    if (this.timeWaitCount + this.timeWaitReserved < this.maxTimeWait) {
      if (entry !== null && !entry.timeWaitReserved) {
        entry.timeWaitReserved = true;
        this.timeWaitReserved++;
      }
      return true;
    }
    this.timeWaitOverflows++;
    this.onTimeWaitOverflow?.(this.clock.now());
    return false;
  }

  private afterDispatch(entry: ConnEntry, now: number): void {
    const conn = entry.conn;
    const state = conn.state;
    if (entry.timeWaitReserved && state !== State.TIME_WAIT) {
      // Closed some other way after its admission (an abort): the place is free again.
      entry.timeWaitReserved = false;
      this.timeWaitReserved--;
    }
    if (entry.halfOpen && state !== State.SYN_RECEIVED) {
      entry.halfOpen = false;
      this.halfOpen--;
    }
    if (state === State.CLOSED) {
      if (this.table.remove(entry)) this.connCount--;
      this.heap.cancel(entry);
      conn.tableEntry = null;
      return;
    }
    if (state === State.TIME_WAIT) {
      this.swapForRecord(entry);
      return;
    }
    if (entry.slotInTable >= 0) entry.writeRow(this.table.columns!, entry.slotInTable);
    const at = conn.pollAt();
    if (at <= now) this.markDirty(entry);
    else if (at !== Infinity) this.heap.schedule(entry, at);
  }

  /** Linux minisocks: swap the full connection for a compact record (RFC 9293 §3.10.7.4 TIME-WAIT). */
  private swapForRecord(entry: ConnEntry): void {
    const conn = entry.conn;
    const rec = conn.toTimeWait();
    const tw = (this.timeWaitPool.pop() ?? new TimeWaitEntry()).fill(entry.flow, rec, conn.createdAt, conn);
    if (entry.timeWaitReserved) {
      entry.timeWaitReserved = false;
      this.timeWaitReserved--;
    }
    this.table.replace(entry, tw);
    this.heap.cancel(entry);
    conn.tableEntry = null;
    this.connCount--;
    this.timeWaitCount++;
    this.twHeap.schedule(tw, rec.expiresAt);
  }

  private emitConnSegment(conn: TcpConn, out: OutSegment): boolean {
    const entry = conn.tableEntry as ConnEntry;
    const f = entry.flow;
    const ok = this.writer.writeSegment(f.family, f.local, f.localPort, f.remote, f.remotePort, out, conn, conn.id);
    if (!ok) this.blockTx();
    return ok;
  }

  private sendTimeWaitAck(entry: TimeWaitEntry, now: number): void {
    const out = this.out;
    out.clear();
    buildTimeWaitAck(entry.rec, now, out);
    const f = entry.flow;
    this.writer.writeSegment(f.family, f.local, f.localPort, f.remote, f.remotePort, out, null, entry.id);
    this.flushSoon();
  }

  private sendRstFor(seg: Segment, key: FlowKey, reason: ResetReason): void {
    const out = this.out;
    out.clear();
    if (!rstForUnknown(seg, out)) return;
    this.writer.writeSegment(key.family, key.dst, key.dstPort, key.src, key.srcPort, out, null);
    this.events.reset(null, 'sent', reason);
    this.flushSoon();
  }

  /**
   * End TIME-WAIT for a record: its 2×MSL expired, or a new incarnation of the 4-tuple replaced it
   * (RFC 6191). Either way the connection leaves TIME_WAIT for CLOSED after an orderly close.
   */
  private removeTimeWait(entry: TimeWaitEntry, now: number, recycle = true): void {
    if (this.table.remove(entry)) this.timeWaitCount--;
    this.twHeap.cancel(entry);
    reportTimeWaitClosed(entry, entry.rec, this.events, now);
    if (recycle) this.recycleTimeWait(entry);
  }

  /** An entry out of the table and the heap, its events reported: into the pool (if it has room). */
  private recycleTimeWait(entry: TimeWaitEntry): void {
    entry.empty();
    if (this.timeWaitPool.length < TIME_WAIT_POOL_MAX) this.timeWaitPool.push(entry);
  }

  private blockTx(): void {
    if (this.txBlocked) return;
    this.txBlocked = true;
    this.link.onTxDrain(() => {
      this.txBlocked = false;
      const waiting = this.blockedList;
      this.blockedList = [];
      for (const e of waiting) {
        e.blocked = false;
        if (e.conn.tableEntry === e) this.markDirty(e);
      }
      this.flush();
    });
  }

  private fire(entry: Entry): void {
    const now = this.clock.now();
    switch (entry.kind) {
      case KIND_CONN:
        this.markDirty(entry);
        return;
      case KIND_TIME_WAIT:
        if (entry.rec.expiresAt <= now) this.removeTimeWait(entry, now);
        else this.twHeap.schedule(entry, entry.rec.expiresAt);
        return;
      case KIND_SYN:
        return;
    }
  }

  private onTimer(): void {
    this.timerHandle = null;
    this.timerAt = Infinity;
    if (this.stopped) return;
    const now = this.clock.now();
    this.heap.popDue(now, this.fireBound);
    this.twHeap.popDue(now, this.fireBound);
    this.flush();
  }

  /** Run every timer that is due at the clock's current time (tests with a manual clock call this). */
  runTimers(): void {
    const now = this.clock.now();
    this.heap.popDue(now, this.fireBound);
    this.twHeap.popDue(now, this.fireBound);
    this.flush();
  }

  private armTimer(): void {
    if (this.stopped) return;
    const at = Math.min(this.heap.peekTime(), this.twHeap.peekTime());
    if (at === Infinity || at >= this.timerAt) return;
    if (this.timerHandle !== null) this.clearTimer(this.timerHandle);
    this.timerAt = at;
    // Timers are kept to 1 ms resolution: the stack's clock granularity (RFC 6298 G).
    const delay = Math.max(0, Math.ceil(at - this.clock.now()));
    this.timerHandle = this.setTimer(this.onTimerBound, delay);
    const h = this.timerHandle as { unref?: () => void } | null;
    if (h !== null && typeof h.unref === 'function') h.unref();
  }

  /** Abort every connection with RST (shutdown after the grace period) and stop the timer. */
  abortAll(reason: ResetReason): void {
    for (const e of [...this.table.values()]) {
      if (e.kind === KIND_CONN) {
        e.conn.abort(reason, this.clock.now());
        this.markDirty(e);
      } else if (e.kind === KIND_SYN) {
        this.rejectPending(e, 'refused', 'upstream_refused');
      }
    }
    this.flush();
  }

  stop(): void {
    this.stopped = true;
    if (this.timerHandle !== null) this.clearTimer(this.timerHandle);
    this.timerHandle = null;
  }
}
