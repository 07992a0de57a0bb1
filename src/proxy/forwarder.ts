/**
 * The deferred handshake (gVisor's forwarder pattern): every SYN the stack sees becomes a dial of
 * its original destination (or the mapped one) over a kernel socket, and the app gets its SYN-ACK
 * only once that connect succeeded. A refused destination gives the app a RST to its SYN, an
 * unreachable one an ICMP unreachable, a policy denial an ICMP "administratively prohibited": the
 * app sees what it would have seen without a proxy, never an accepted connection reset a moment later.
 */
import type { MemoryBudget } from '../tcp/memory-budget.js';
import { lookup } from 'node:dns';
import type { Clock } from '../stack/clock.js';
import type { EventHub } from '../stack/events.js';
import type { AfterFlush, Forwarder, PendingSyn, RejectHow, Stack } from '../stack/stack.js';
import { formatAddress } from '../wire/packet.js';
import { parseAddress } from '../wire/address.js';
import { Pipe, type PipeOptions } from './pipe.js';
import type { FlowKeyLike, FlowTuple } from '../stack/flow-table.js';
import { ListenGuard, type DestinationPolicy } from './policy.js';
import { UpstreamSockets, type UpstreamHandler, type UpstreamSocket } from './upstream.js';
import type { UpstreamResult } from '../stack/upstream-leg.js';

export type { UpstreamResult } from '../stack/upstream-leg.js';

export interface ForwarderOptions {
  clock: Clock;
  policy: DestinationPolicy;
  /** Kernel connect timeout, ms. */
  connectTimeoutMs: number;
  /** Idle timeout of a proxied connection, ms; 0 = none. */
  idleTimeoutMs: number;
  /** Source address for upstream sockets (--upstream-bind). */
  upstreamBind?: string | undefined;
  /** Bound on dials in flight; SYNs beyond it wait for the app's retransmission. */
  maxDialsInFlight: number;
  /** Where the upstream legs' facts are published (connect, open, end, close) and their bytes counted. */
  events?: EventHub;
  /** --memory-limit: the budget the pipes and upstream read buffers are charged to. */
  budget?: MemoryBudget | null;
}

/**
 * A pending connection being dialled: the handler of its upstream socket until the connect
 * settles (the pipe takes the socket over then).
 */
class Dial implements UpstreamHandler {
  socket: UpstreamSocket | null = null;
  /** The destination's address, once known (the connect made after the SYN's batch uses it). */
  family: 4 | 6 = 4;
  words: Uint32Array | null = null;
  /** Settled (connected, failed, timed out or aborted): later reports are ignored. */
  settled = false;
  /** Next dial in the same chain of UpstreamForwarder.dialsByPort, and whether it is in that index. */
  nextInPortChain: Dial | null = null;
  indexed = false;

  constructor(
    readonly proxy: UpstreamForwarder,
    readonly req: PendingSyn,
    readonly startedAt: number,
    /** When the dial counts as timed out (--connect-timeout), ms on the injected clock. */
    readonly deadline: number,
    readonly host: string,
    readonly port: number,
  ) {}

  onUpstreamConnect(): void {
    this.proxy.dialConnected(this);
  }
  onUpstreamConnectFailed(_socket: UpstreamSocket, code: string): void {
    this.proxy.dialFailed(this, classify(code));
  }
  // Until the pipe takes the socket, a connected socket is paused: data and the FIN wait for it.
  onUpstreamData(): void {}
  onUpstreamEnd(): void {}
  onUpstreamError(code: string): void {
    this.proxy.dialFailed(this, classify(code));
  }
  onUpstreamDrain(): void {}
  onUpstreamClose(): void {}
  onUpstreamIdle(): void {}
}

/** Settled dials tolerated in the deadline queue beyond the number of live ones (trimDialQueue). */
const DIAL_QUEUE_SLACK = 64;

export class UpstreamForwarder implements Forwarder {
  stack!: Stack;
  /** The pipes open (shutdown walks them): a list with O(1) add and delete, no hash table. */
  readonly pipes = new PipeList();
  /**
   * Dials in flight. Each is found from its SYN (PendingSyn.forwarderState) and lives in the
   * deadline queue until settled: no Map keyed by the SYN. With 50 connections in flight, a Map
   * whose entries come and go per connection grew and shrank its table over and over (V8's
   * MapGrow/MapShrink, with the Set of pipes and the Map of ports: ~3 % of the relay's samples in
   * the shortconn profile, BENCHMARKS.md "Cutting the CPU of a short connection, round 3").
   */
  private liveDials = 0;
  private accepting = true;
  /**
   * Connect timeouts: every dial has the same timeout, so deadlines come in the order dials
   * start and a FIFO with one timer (for its head) replaces a timer per socket. Settled dials
   * are skipped when they reach the head.
   */
  private readonly dialQueue: Dial[] = [];
  private dialQueueHead = 0;
  private dialTimer: NodeJS.Timeout | null = null;
  private readonly onDialTimerBound = (): void => this.onDialTimer();
  private expiringDials = false;
  /**
   * Dials in flight by their socket's local port: chain heads indexed by the port's low bits,
   * chained through Dial.nextInPortChain (ports are shared across destinations, and several ports
   * share a head): what isOwnConnection looks a SYN up in. A power of two at least as large as
   * the bound on dials in flight (at most 65536), so chains stay about one dial long.
   */
  private readonly dialsByPort: (Dial | null)[];
  private readonly portMask: number;
  /** The destination address last formatted by onSyn, and its text. */
  private formattedWords: Uint32Array | null = null;
  private formattedFamily = 0;
  private formattedText = '';
  /** synfin's own --listen address, never a destination (set once the server listens). */
  readonly listenGuard = new ListenGuard();
  /** The kernel sockets toward the destinations (one epoll set, made with the proxy). */
  private readonly upstream: UpstreamSockets;
  private readonly bind: { family: 4 | 6; words: Uint32Array } | null;
  /** What every pipe is built with (one object, one onDone for all). */
  private pipeOptions: PipeOptions | null = null;
  /**
   * Dials whose SYNs came in the input batch under way, connected when it ends (runQueuedDials,
   * an after-flush task); then, in the same array, those the destination accepted within their
   * connect(2). Emptied after each batch, never cut back (reused).
   */
  private readonly queuedDials: (Dial | null)[] = [];
  private queuedCount = 0;
  /** The pipes of the batch's accepted dials, between their acceptance and their registration. */
  private readonly acceptedPipes: (Pipe | null)[] = [];
  private readonly dialsTask: AfterFlush = { afterFlushQueued: false, afterFlush: () => this.runQueuedDials() };
  private readonly onPipeDoneBound = (p: Pipe): void => {
    this.pipes.delete(p);
    this.opts.events?.upstreamClosed(p, this.opts.clock.now());
  };

  constructor(private readonly opts: ForwarderOptions) {
    if (opts.upstreamBind === undefined) this.bind = null;
    else {
      const parsed = parseAddress(opts.upstreamBind);
      if (parsed === null) throw new TypeError(`upstream bind address "${opts.upstreamBind}" is not an IP address`);
      this.bind = parsed;
    }
    this.upstream = new UpstreamSockets({ clock: opts.clock, idleTimeoutMs: opts.idleTimeoutMs, budget: opts.budget ?? null });
    let heads = 16;
    while (heads < opts.maxDialsInFlight && heads < 65536) heads *= 2;
    this.dialsByPort = new Array<Dial | null>(heads).fill(null);
    this.portMask = heads - 1;
  }

  attach(stack: Stack): void {
    this.stack = stack;
    // The responses one poll of the upstream sockets brings go to the app in one flush.
    this.upstream.batchSink = stack;
  }

  get dialsInFlight(): number {
    return this.liveDials;
  }

  /** Upstream sockets made ahead of their dial (at most 4 per address family, not connections). */
  get spareSockets(): number {
    return this.upstream.spareSockets;
  }

  /** Entries of the connect-deadline queue, settled dials not yet dropped included. */
  get dialQueueSize(): number {
    return this.dialQueue.length - this.dialQueueHead;
  }

  /** Upstream sockets open (dialling or proxying). */
  get upstreamSockets(): number {
    return this.upstream.size;
  }

  /** Stop taking new connections (shutdown): pending SYNs are refused from now on. */
  stopAccepting(): void {
    this.accepting = false;
  }

  /** Release the upstream poller (after shutdown: every socket closed). */
  close(): void {
    this.upstream.close();
  }

  onSyn(req: PendingSyn): void {
    const stack = this.stack;
    if (!this.accepting) {
      stack.rejectPending(req, 'refused', 'upstream_refused');
      return;
    }
    const f = req.flow;
    const original = this.destinationText(f);
    const target = this.opts.policy.resolveAddress(f.family, f.local, original, f.localPort);
    if (target === null) {
      stack.rejectPending(req, 'prohibited', 'upstream_unreachable');
      return;
    }
    if (target.address != null && this.listenGuard.isListener(target.address.family, target.address.words, target.port)) {
      this.refuseLoop(req);
      return;
    }
    if (this.liveDials >= this.opts.maxDialsInFlight) {
      // Drop the SYN silently: the app retransmits it (RFC 9293 §3.8.1) and we try again then.
      stack.dropPendingQuietly(req);
      return;
    }
    const startedAt = this.opts.clock.now();
    const dial = new Dial(this, req, startedAt, startedAt + this.opts.connectTimeoutMs, target.host, target.port);
    req.forwarderState = dial;
    this.liveDials++;
    this.dialQueue.push(dial);
    this.armDialTimer();
    const address = target.address ?? parseAddress(target.host);
    if (address === null) {
      this.resolveAndConnect(dial);
      return;
    }
    // The connect(2) is made after the batch that brought the SYN has been handled and its
    // segments flushed, with the other dials of that batch, back to back: each one runs the
    // destination's side of the handshake inside the call (~25 µs of kernel code), and made in
    // the middle of the batch it left the next packet's JavaScript to run from cold caches. The
    // SYN-ACK still leaves in the same turn of the event loop (Stack.sendHandshake). The dials go
    // ahead of the batch's other after-flush work (runAfterFlushFirst): before, the close(2) of
    // the connection the app had just closed, queued by its FIN earlier in the same batch, ran
    // between the SYN and its connect(2) (bench/connect-breakdown.mjs --trace).
    dial.family = address.family;
    dial.words = address.words;
    this.queuedDials[this.queuedCount++] = dial;
    stack.runAfterFlushFirst(this.dialsTask);
  }

  /**
   * The dials of the input batch that just ended (its segments flushed), in passes over all of
   * them, so that each kind of work runs back to back: the connect(2) calls; the acceptance of
   * each dial the destination took within its call (JavaScript only: the pipe, the connection,
   * its SYN-ACK queued); the SYN-ACKs written; those sockets' epoll registrations and local ends
   * (two system calls each); then their upstreamOpened events.
   */
  private runQueuedDials(): void {
    const dials = this.queuedDials;
    const n = this.queuedCount;
    this.queuedCount = 0;
    let connected = 0;
    for (let i = 0; i < n; i++) {
      const dial = dials[i]!;
      dials[i] = null;
      // Settled meanwhile: the app reset its SYN, or the proxy is shutting down.
      if (!dial.settled && this.startConnect(dial, dial.family, dial.words!)) dials[connected++] = dial;
    }
    const pipes = this.acceptedPipes;
    let accepted = 0;
    for (let i = 0; i < connected; i++) {
      const pipe = this.acceptDial(dials[i]!);
      dials[i] = null;
      if (pipe !== null) pipes[accepted++] = pipe;
    }
    // The SYN-ACKs leave before the registrations: they are what the apps' connect() waits for.
    if (accepted > 0) this.stack.sendDueNow();
    for (let i = 0; i < accepted; i++) pipes[i]!.socket.register();
    for (let i = 0; i < accepted; i++) {
      this.openedPipe(pipes[i]!);
      pipes[i] = null;
    }
  }

  /**
   * A mapped destination given by name: resolved first (the connect timeout covers the lookup),
   * then held to --allow / --deny and the listen guard like an address would have been: a name
   * must not be a way around them.
   */
  private resolveAndConnect(dial: Dial): void {
    lookup(dial.host, (err, addr) => {
      if (dial.settled) return;
      const parsed = err === null ? parseAddress(addr) : null;
      if (parsed === null) {
        this.dialFailed(dial, classify((err as NodeJS.ErrnoException | null)?.code ?? 'ENOTFOUND'));
        return;
      }
      if (!this.opts.policy.permits(parsed.family, parsed.words)) {
        this.settle(dial);
        this.stack.rejectPending(dial.req, 'prohibited', 'upstream_unreachable');
        return;
      }
      if (this.listenGuard.isListener(parsed.family, parsed.words, dial.port)) {
        this.settle(dial);
        this.refuseLoop(dial.req);
        return;
      }
      this.connect(dial, parsed.family, parsed.words);
    });
  }

  /** A destination that is synfin itself: refused with RST, counted as a 'loop' drop. */
  private refuseLoop(req: PendingSyn): void {
    this.opts.events?.drop(req, 'loop');
    this.stack.rejectPending(req, 'refused', 'upstream_refused');
  }

  /**
   * Forwarder.isOwnConnection: the SYN comes from the local end of one of our dials in flight, to
   * its destination. That is exactly a dial the kernel routed into the device, whatever did it
   * (a --route, a policy rule, an address of the device's subnet, a --map or a DNS answer pointing
   * there), found at the cost of one array lookup per SYN, where asking the kernel for the route of
   * each destination (netlink RTM_GETROUTE) would cost a round trip per SYN and a snapshot of the
   * routes would go stale. The dial's SYN reaches the device only after connect() returned, by
   * which time its local address is known (the addon's getsockname, done within the connect call
   * for every dial still connecting: one routed into the device cannot have connected), so none
   * slips through.
   */
  isOwnConnection(key: FlowKeyLike): boolean {
    let d: Dial | null = this.dialsByPort[key.srcPort & this.portMask]!;
    while (d !== null) {
      const s = d.socket!;
      const local = s.localWords;
      if (
        s.localPort === key.srcPort &&
        s.localFamily === key.family &&
        s.remotePort === key.dstPort &&
        local[3] === key.src[3] &&
        s.remoteWords[3] === key.dst[3] &&
        (key.family === 4 ||
          (local[0] === key.src[0] && local[1] === key.src[1] && local[2] === key.src[2] &&
            s.remoteWords[0] === key.dst[0] && s.remoteWords[1] === key.dst[1] && s.remoteWords[2] === key.dst[2]))
      ) {
        return true;
      }
      d = d.nextInPortChain;
    }
    return false;
  }

  private indexDial(dial: Dial): void {
    const i = dial.socket!.localPort & this.portMask;
    dial.nextInPortChain = this.dialsByPort[i]!;
    this.dialsByPort[i] = dial;
    dial.indexed = true;
  }

  private unindexDial(dial: Dial): void {
    dial.indexed = false;
    const i = dial.socket!.localPort & this.portMask;
    let d: Dial | null = this.dialsByPort[i]!;
    let prev: Dial | null = null;
    while (d !== null) {
      if (d === dial) {
        if (prev !== null) prev.nextInPortChain = d.nextInPortChain;
        else this.dialsByPort[i] = d.nextInPortChain;
        dial.nextInPortChain = null;
        return;
      }
      prev = d;
      d = d.nextInPortChain;
    }
  }

  private connect(dial: Dial, family: 4 | 6, words: Uint32Array): void {
    if (this.startConnect(dial, family, words)) this.dialConnected(dial);
  }

  /**
   * The dial's connect(2). True when the destination completed the handshake within the call (a
   * destination on this host or a veth away often has: the kernel ran its side in the same
   * system call); the caller accepts it then, and its SYN-ACK leaves in the flush under way.
   */
  private startConnect(dial: Dial, family: 4 | 6, words: Uint32Array): boolean {
    // registerLater: a dial that connects within connect(2) joins the epoll set and has its local
    // end read after its acceptance (two system calls off the app's connect path). One still
    // connecting is registered at once: the loop guard needs its local end before the device's
    // next SYN, and its completion is an epoll event.
    const socket = this.upstream.connect(dial, family, words, dial.port, this.bind, true);
    if (typeof socket === 'string') {
      // Refused or unreachable within connect(2) itself: answered after the current call (the
      // error path, not worth a decision inside the batch's dials).
      process.nextTick(() => this.dialFailed(dial, classify(socket)));
      return false;
    }
    dial.socket = socket;
    if (!socket.connecting) return true;
    this.indexDial(dial);
    return false;
  }

  private armDialTimer(): void {
    if (this.dialTimer !== null) return;
    const q = this.dialQueue;
    let head = this.dialQueueHead;
    while (head < q.length && q[head]!.settled) head++;
    if (head === q.length) {
      q.length = 0;
      this.dialQueueHead = 0;
      return;
    }
    if (head > 1024 && head * 2 > q.length) {
      q.splice(0, head);
      head = 0;
    }
    this.dialQueueHead = head;
    const delay = Math.max(0, Math.ceil(q[head]!.deadline - this.opts.clock.now()));
    this.dialTimer = setTimeout(this.onDialTimerBound, delay);
    // Like a socket timeout: it does not keep the process alive by itself.
    this.dialTimer.unref();
  }

  private onDialTimer(): void {
    this.dialTimer = null;
    const now = this.opts.clock.now();
    const q = this.dialQueue;
    // The walk moves the head itself: no trimming under it (each timeout settles a dial).
    this.expiringDials = true;
    try {
      while (this.dialQueueHead < q.length) {
        const dial = q[this.dialQueueHead]!;
        if (!dial.settled) {
          if (dial.deadline > now) break;
          this.dialFailed(dial, 'timeout');
        }
        this.dialQueueHead++;
      }
    } finally {
      this.expiringDials = false;
    }
    this.trimDialQueue();
    this.armDialTimer();
  }

  /**
   * The destination address as text. A tuple's address words are shared by every tuple with the
   * same address (FlowTuple, internAddressWords): the text of the last one is reused, not
   * formatted again per SYN (~170 bytes of strings per connection, bench/alloc-sites.mjs).
   */
  private destinationText(f: FlowTuple): string {
    if (f.local !== this.formattedWords || f.family !== this.formattedFamily) {
      this.formattedWords = f.local;
      this.formattedFamily = f.family;
      this.formattedText = formatAddress(f.family, f.local);
    }
    return this.formattedText;
  }

  onSynAborted(req: PendingSyn): void {
    const dial = (req.forwarderState ?? null) as Dial | null;
    if (dial === null || dial.settled) return;
    this.settle(dial)?.destroy();
  }

  /**
   * The dial is over, whichever way: its socket's reports to it are ignored from now on. Returns
   * the socket and lets go of it: a settled dial waits in the deadline queue (up to 64 beyond the
   * live ones, trimDialQueue), and through its socket it would hold the whole finished connection
   * (socket, pipe, TcpConn and their parts) for the young-generation collections to copy.
   */
  private settle(dial: Dial): UpstreamSocket | null {
    dial.settled = true;
    if (dial.indexed) this.unindexDial(dial);
    dial.req.forwarderState = null;
    this.liveDials--;
    this.trimDialQueue();
    const socket = dial.socket;
    dial.socket = null;
    return socket;
  }

  /**
   * Settled dials stay in the deadline queue until the timer passes them, and each one holds its
   * socket, pipe and SYN: with a 10 s connect timeout that would keep the last 10 s of
   * connections reachable (BENCHMARKS.md has the heap snapshot that found it). Once settled
   * entries outnumber live dials (plus slack), keep only the live ones.
   */
  private trimDialQueue(): void {
    if (this.expiringDials) return;
    const q = this.dialQueue;
    const queued = q.length - this.dialQueueHead;
    if (queued - this.liveDials <= this.liveDials + DIAL_QUEUE_SLACK) return;
    let k = 0;
    for (let i = this.dialQueueHead; i < q.length; i++) {
      const dial = q[i]!;
      if (!dial.settled) q[k++] = dial;
    }
    q.length = k;
    this.dialQueueHead = 0;
  }

  /** The dial's socket connected (Dial.onUpstreamConnect, or within the connect call: connect). */
  dialConnected(dial: Dial): void {
    const pipe = this.acceptDial(dial);
    if (pipe === null) return;
    // The SYN-ACK is queued: now the socket's epoll registration and local end (for the events below).
    pipe.socket.register();
    this.openedPipe(pipe);
  }

  /** A connected dial becomes a pipe and its connection (SYN-ACK queued); null if that failed. */
  private acceptDial(dial: Dial): Pipe | null {
    if (dial.settled) return null;
    const socket = dial.socket!;
    if (socket.destroyed) {
      // Failed between an early ESTABLISHED and its acceptance (reset at once).
      this.dialFailed(dial, 'error');
      return null;
    }
    this.settle(dial);
    const req = dial.req;
    const now = this.opts.clock.now();
    const events = this.opts.events;
    events?.upstreamConnect(req.id, 'ok', now - dial.startedAt, now);
    this.pipeOptions ??= {
      stack: this.stack,
      clock: this.opts.clock,
      onDone: this.onPipeDoneBound,
      budget: this.opts.budget ?? null,
      events: events ?? null,
    };
    const pipe = new Pipe(socket, this.pipeOptions);
    pipe.id = req.id;
    pipe.dialedHost = dial.host;
    pipe.dialedPort = dial.port;
    pipe.connectMs = now - dial.startedAt;
    if (events !== undefined) {
      pipe.stats = events.bytes;
      const serviceBytes = events.serviceBytes;
      if (serviceBytes !== null) pipe.serviceStats = serviceBytes(req.flow.service);
    }
    const conn = this.stack.acceptPending(req, pipe);
    if (conn === null) {
      socket.destroy();
      return null;
    }
    pipe.conn = conn;
    return pipe;
  }

  /** An accepted pipe whose socket is registered: it is open. */
  private openedPipe(pipe: Pipe): void {
    this.pipes.add(pipe);
    this.opts.events?.upstreamOpened(pipe, this.opts.clock.now());
  }

  /** The dial failed: refused, unreachable, timed out (Dial's reports, the deadline queue, a lookup). */
  dialFailed(dial: Dial, result: UpstreamResult): void {
    if (dial.settled) return;
    const req = dial.req;
    this.settle(dial)?.destroy();
    const now = this.opts.clock.now();
    this.opts.events?.upstreamConnect(req.id, result, now - dial.startedAt, now);
    let how: RejectHow;
    let handshake: 'upstream_refused' | 'upstream_timeout' | 'upstream_unreachable';
    switch (result) {
      case 'refused':
        how = 'refused';
        handshake = 'upstream_refused';
        break;
      case 'timeout':
        how = 'unreachable';
        handshake = 'upstream_timeout';
        break;
      default:
        how = 'unreachable';
        handshake = 'upstream_unreachable';
    }
    this.stack.rejectPending(req, how, handshake);
  }

  /** Destroy every dial in flight (shutdown). */
  abortDials(): void {
    // Every dial in flight is in the deadline queue from its head on (settled ones leave only
    // from there or by trimDialQueue, which keeps the live ones). A copy: the walk settles them.
    const live = this.dialQueue.slice(this.dialQueueHead).filter((d) => !d.settled);
    for (const dial of live) {
      dial.settled = true;
      if (dial.indexed) this.unindexDial(dial);
      dial.req.forwarderState = null;
      this.liveDials--;
      dial.socket?.destroy();
      dial.socket = null;
      this.stack.rejectPending(dial.req, 'refused', 'upstream_refused');
    }
  }
}

function classify(code: string): UpstreamResult {
  switch (code) {
    case 'ECONNREFUSED':
      return 'refused';
    case 'ETIMEDOUT':
      return 'timeout';
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
    case 'EHOSTDOWN':
    case 'ENETDOWN':
    case 'EADDRNOTAVAIL':
      return 'unreachable';
    default:
      return 'error';
  }
}

/**
 * The open pipes: an array with each pipe's place in it (Pipe.liveIndex), the last moved into a
 * deleted one's place. add and delete are O(1) and touch no hash table (a Set did, with its table
 * growing and shrinking as connections came and went). The slots past `size` are emptied, never
 * cut off (pop() to empty, like `length = 0`, lets V8 drop the backing store, and the next add
 * allocates it again). Iteration walks a copy, so a pipe may be deleted (aborted) during it, as
 * from a Set.
 */
export class PipeList implements Iterable<Pipe> {
  private readonly list: (Pipe | null)[] = [];
  private count = 0;

  get size(): number {
    return this.count;
  }

  add(p: Pipe): void {
    if (p.liveIndex >= 0) return;
    p.liveIndex = this.count;
    this.list[this.count++] = p;
  }

  delete(p: Pipe): boolean {
    const i = p.liveIndex;
    const list = this.list;
    if (i < 0 || i >= this.count || list[i] !== p) return false;
    const last = list[--this.count]!;
    list[this.count] = null;
    if (last !== p) {
      list[i] = last;
      last.liveIndex = i;
    }
    p.liveIndex = -1;
    return true;
  }

  has(p: Pipe): boolean {
    const i = p.liveIndex;
    return i >= 0 && i < this.count && this.list[i] === p;
  }

  [Symbol.iterator](): Iterator<Pipe> {
    return (this.list.slice(0, this.count) as Pipe[])[Symbol.iterator]();
  }
}
