/**
 * The proxy's kernel sockets toward the destinations, without net.Socket.
 *
 * With a net.Socket a short connection would pay more for the socket than for its own work: the stream object
 * and its two states, a dozen listeners, libuv's connect sequence (epoll ADD, SO_ERROR, an ADD that
 * fails with EEXIST and a MOD), one callback into JavaScript per readiness event, the close
 * callback a turn later. Here every upstream socket sits in one epoll set of the addon's
 * (native/upstream/upstream.cc), registered once, edge-triggered; the event loop polls the set, and the
 * ready sockets of a turn come to `UpstreamSockets.onEvents` in one call, as TUN packets do. A
 * connect is one call into the addon (connect on a socket made ahead, TCP_INFO,
 * and the epoll ADD with getsockname, which a dial connected within the call may leave until its
 * app's SYN-ACK is out: register()), a read or a write is one system call, and nothing is
 * allocated per event. TCP_NODELAY comes with a socket's second write (a socket written once, as
 * a Connection: close request's, or never, costs no setsockopt; see `nagle`).
 *
 * Edge-triggered (epoll(7)): each change is reported once, so a socket is read until a read comes
 * back short, empty or with EAGAIN. A socket that is paused (the app's send buffer is full) is not
 * read; it remembers the edge (readPending) and is read when resumed. A short read after the peer's
 * FIN was reported (EPOLLRDHUP) has reached the FIN: the EOF is taken without another read.
 *
 * What the app sends is written with one writev(2) per flush from views into the TUN batch; what
 * the kernel does not take is copied (the views die with the batch) and queued here, and written
 * when the socket reports room (EPOLLOUT). Bytes queued here keep the app's window closed (the
 * pipe reopens it as they leave), so a slow destination shrinks the window, not our memory.
 */
// Imported, not the global: `globalThis.Buffer` is an accessor in Node.js, read through its
// getter on every use (Buffer.allocUnsafe per small read).
import { Buffer } from 'node:buffer';
import { getSystemErrorName } from 'node:util';
import {
  loadAddon,
  UPSTREAM_CONNECT_RECHECK,
  UPSTREAM_CONNECT_REGISTER_NOW,
  UPSTREAM_IO_BIND_FAMILY,
  UPSTREAM_IO_BIND_WORDS,
  UPSTREAM_IO_FAMILY,
  UPSTREAM_IO_LENGTH,
  UPSTREAM_IO_OUT,
  UPSTREAM_IO_PORT,
  UPSTREAM_IO_WORDS,
  type NativeAddon,
  type NativeUpstreamPoller,
} from '../native/addon.js';
import type { Clock } from '../stack/clock.js';
import { formatAddress, internAddressWords } from '../wire/address.js';
import { ReadBufferPool } from './read-buffer-pool.js';
import { MemoryKind, type MemoryBudget } from '../tcp/memory-budget.js';

/** What an upstream socket reports, to whoever owns it (the dial, then the pipe). */
export interface UpstreamHandler {
  /** The connect completed. */
  onUpstreamConnect(socket: UpstreamSocket): void;
  /** The connect failed: an errno name (ECONNREFUSED, ETIMEDOUT, EHOSTUNREACH...). The socket is closed. */
  onUpstreamConnectFailed(socket: UpstreamSocket, code: string): void;
  /** Bytes from the destination: the chunk is the receiver's (a copy, or a pooled buffer given away). */
  onUpstreamData(chunk: Buffer): void;
  /** The destination's FIN, after all its data. */
  onUpstreamEnd(): void;
  /** The connection failed (ECONNRESET, EPIPE...): the socket is closed; onUpstreamClose follows. */
  onUpstreamError(code: string): void;
  /** Bytes queued by write() have all gone to the kernel. */
  onUpstreamDrain(): void;
  /** The socket is closed (reported once, after the call that closed it returns). */
  onUpstreamClose(): void;
  /** Nothing was read or written for the idle timeout. */
  onUpstreamIdle(): void;
}

/**
 * Told when the events of one poll begin and end (the stack): what the handlers make due in
 * between (responses, window updates) goes to the app in one flush at the end, in this turn of
 * the event loop, rather than from a setImmediate queued by the first of them.
 */
export interface EventBatchSink {
  openBatch(): void;
  closeBatch(): void;
}

// epoll(7) event bits (include/uapi/linux/eventpoll.h).
const EPOLLIN = 0x001;
const EPOLLOUT = 0x004;
const EPOLLERR = 0x008;
const EPOLLHUP = 0x010;
const EPOLLRDHUP = 0x2000;
const EAGAIN = 11;
/** UpstreamSocket.nagle: no write yet; one write (Nagle still on); TCP_NODELAY set. */
const NAGLE_FRESH = 0;
const NAGLE_WRITTEN_ONCE = 1;
const NAGLE_OFF = 2;
const EBADF = 9;

/**
 * Reads go into one shared buffer and are copied out at their own length (from Node's buffer
 * pool when small): a socket doing small reads, or none, holds no memory of its own. A read this
 * large suggests a bulk transfer: the socket then reads into buffers of its own from a pool, each
 * handed to the connection as it is (no copy; the connection's send buffer keeps chunks until the
 * app acknowledges them, then gives them back: read-buffer-pool.ts). A read that no longer looks
 * like bulk sends the socket back to the shared buffer.
 */
/** The local address of a socket whose local end is not known yet. */
const NO_WORDS = new Uint32Array(4);
const SHARED_READ_BUFFER = Buffer.allocUnsafe(64 * 1024);
const OWN_BUFFER_MIN_READ = 16 * 1024;
const OWN_BUFFER_BYTES = 64 * 1024;
/** At most 4 MiB of idle read buffers kept for reuse. */
export const READ_BUFFERS = new ReadBufferPool(OWN_BUFFER_BYTES, 64);
/** Buffers per writev(2), as the addon caps them (native/upstream/upstream.cc kMaxIov). */
const MAX_IOV = 64;
/** Reads of one socket per event before it waits its turn again (fairness between sockets). */
const MAX_READS_PER_EVENT = 16;

const enum Phase {
  Connecting,
  Open,
  Closed,
}

export class UpstreamSocket {
  handler: UpstreamHandler;
  fd = -1;
  /** Where the socket sits in its set's table, and that slot's generation when it was taken. */
  slot = -1;
  generation = 0;
  private phase = Phase.Connecting;
  /** Not read while paused (a new socket is paused until its pipe's app leg is established). */
  paused = true;
  /** An input edge (or the FIN, or an error) came while paused, or reading stopped early. */
  private readPending = false;
  private readEnded = false;
  private ending = false;
  private writeShut = false;
  /** The peer's FIN was reported with the last event: a short read has reached it. */
  private peerFinSeen = false;
  /** Bytes the kernel did not take yet, in order; copies. */
  private queue: Buffer[] | null = null;
  private queueHead = 0;
  /** Bytes in queue. */
  writableLength = 0;
  /**
   * Write system calls so far, counted up to NAGLE_OFF: TCP_NODELAY is set with the second (before
   * its bytes). Nagle (RFC 1122 4.2.3.4) holds a sub-MSS segment only behind unacknowledged data,
   * and Linux's variant (Minshall's, tcp_nagle_check) only behind an unacknowledged *sub-MSS*
   * segment: the first write's segments, its last partial one included, all go at once (cwnd
   * permitting), so Nagle is off before any byte it could hold. A socket written once (a
   * Connection: close request, most dials of a request/response protocol) is spared the setsockopt.
   */
  private nagle = NAGLE_FRESH;
  private nextReadBuffer: Buffer = SHARED_READ_BUFFER;
  /**
   * The local end as getsockname read it: family (0 until known), the four address words (IPv4
   * in word 3; shared with every socket of the same address, read only: internAddressWords), port.
   */
  localFamily = 0;
  localWords: Uint32Array = NO_WORDS;
  localPort = 0;
  /**
   * In the set's epoll set, its local end read. A connect that completed within connect(2) may
   * leave both for register(), after the app's SYN-ACK (UpstreamSockets.connect's registerLater).
   */
  registered = true;
  /** Idle list links and last activity (UpstreamSockets' idle timeout). */
  idlePrev: UpstreamSocket | null = null;
  idleNext: UpstreamSocket | null = null;
  idleSince = 0;
  /** Deferred notifications (see UpstreamSockets.defer). */
  deferredClose = false;
  deferredError: string | null = null;
  inDeferred = false;
  inResumed = false;

  constructor(
    private readonly set: UpstreamSockets,
    handler: UpstreamHandler,
    /** The destination as dialled. */
    readonly remoteFamily: 4 | 6,
    readonly remoteWords: Uint32Array,
    readonly remotePort: number,
  ) {
    this.handler = handler;
  }

  get connecting(): boolean {
    return this.phase === Phase.Connecting;
  }
  get destroyed(): boolean {
    return this.phase === Phase.Closed;
  }
  /** Whether write() still takes bytes (open, and end() not called). */
  get writable(): boolean {
    return this.phase !== Phase.Closed && !this.ending;
  }
  get localAddress(): string | undefined {
    return this.localFamily === 4 || this.localFamily === 6 ? formatAddress(this.localFamily, this.localWords) : undefined;
  }
  get remoteAddress(): string {
    return formatAddress(this.remoteFamily, this.remoteWords);
  }

  pause(): void {
    this.paused = true;
  }

  /** Read again; what came while paused is read after the current call stack (never inside it). */
  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    if (this.readPending && this.phase === Phase.Open) this.set.scheduleRead(this);
  }

  /**
   * Write `chunks[0..count)`: one writev(2) straight from them when nothing is queued, the rest
   * copied into one Buffer and queued. Views may be passed: nothing keeps them after the call.
   * Returns the bytes that went to the kernel at once.
   */
  write(chunks: readonly Buffer[], count: number, totalBytes: number): number {
    if (this.phase === Phase.Closed || this.ending) return 0;
    let written = 0;
    if (this.writableLength === 0 && this.phase === Phase.Open) {
      // At most MAX_IOV buffers per writev: go on while the kernel takes whole groups (the rest
      // may only be queued after a short write, which is what arms the EPOLLOUT edge).
      for (let first = 0; first < count; first += MAX_IOV) {
        const n = Math.min(count - first, MAX_IOV);
        const r = this.set.native.upstreamWritev(this.fd, chunks, first, n, this.nagle === NAGLE_WRITTEN_ONCE);
        if (this.nagle !== NAGLE_OFF) this.nagle++;
        if (r < 0) {
          if (r !== -EAGAIN) {
            this.fail(-r, true);
            return 0;
          }
          break;
        }
        written += r;
        this.set.touch(this);
        let attempted = 0;
        for (let i = first; i < first + n; i++) attempted += chunks[i]!.length;
        if (r < attempted) break;
      }
    }
    const rest = totalBytes - written;
    if (rest > 0) {
      const copy = Buffer.allocUnsafe(rest);
      let skip = written;
      let at = 0;
      for (let i = 0; i < count; i++) {
        const chunk = chunks[i]!;
        if (skip >= chunk.length) {
          skip -= chunk.length;
          continue;
        }
        at += chunk.copy(copy, at, skip);
        skip = 0;
      }
      this.enqueue(copy);
    }
    return written;
  }

  /**
   * write() of one chunk (most flushes deliver one segment of one request): one write(2) with the
   * Buffer itself, where writev would have the addon walk an array for it (a quarter of a
   * microsecond per request in N-API element reads and checks). Same contract as write().
   */
  writeOne(chunk: Buffer): number {
    if (this.phase === Phase.Closed || this.ending) return 0;
    let written = 0;
    if (this.writableLength === 0 && this.phase === Phase.Open) {
      const r = this.set.native.upstreamWrite(this.fd, chunk, this.nagle === NAGLE_WRITTEN_ONCE);
      if (this.nagle !== NAGLE_OFF) this.nagle++;
      if (r < 0) {
        if (r !== -EAGAIN) {
          this.fail(-r, true);
          return 0;
        }
      } else {
        written = r;
        this.set.touch(this);
      }
    }
    const rest = chunk.length - written;
    if (rest > 0) {
      const copy = Buffer.allocUnsafe(rest);
      chunk.copy(copy, 0, written);
      this.enqueue(copy);
    }
    return written;
  }

  /** Queues bytes the kernel did not take, behind what is queued (a copy: views are not kept). */
  private enqueue(copy: Buffer): void {
    (this.queue ??= []).push(copy);
    this.writableLength += copy.length;
  }

  /** Our FIN once everything queued is written (RFC 9293 half-close: the peer may go on sending). */
  end(): void {
    if (this.phase === Phase.Closed || this.ending) return;
    this.ending = true;
    if (this.writableLength === 0 && this.phase === Phase.Open) {
      // The peer's FIN was read already (it closed first, as a server does after its answer):
      // close(2) alone sends our FIN (nothing is unread, so no RST) and the kernel keeps the
      // LAST-ACK and TIME-WAIT as after shutdown(2): one system call per connection fewer.
      if (this.readEnded) this.closeFd(false);
      else this.shutdownWrite();
    }
  }

  /** Close now (a FIN if nothing is unread, the kernel's RST otherwise). */
  destroy(): void {
    this.closeFd(false);
  }

  /**
   * The rest of a connect made with registerLater: the socket joins the epoll set (which reports
   * whatever came meanwhile: an ADD reports the current readiness) and its local end is read. A
   * failed registration (epoll_ctl: ENOMEM, ENOSPC) fails the socket like a hard error, after the
   * current call.
   */
  register(): void {
    if (this.registered) return;
    this.registered = true;
    if (this.phase === Phase.Closed) return;
    const err = this.set.registerSocket(this);
    if (err !== 0) this.fail(err, true);
  }

  /** Close with a RST (SO_LINGER 0): the destination must not take a cut stream for a complete one. */
  resetAndDestroy(): void {
    this.closeFd(true);
  }

  // ------------------------------------------------------------ from the set

  /** The connect returned: established already, or in progress. */
  connected(fd: number, established: boolean): void {
    this.fd = fd;
    if (established) this.phase = Phase.Open;
  }

  onEvent(mask: number): void {
    if (this.phase === Phase.Closed) return;
    if (this.phase === Phase.Connecting) {
      if ((mask & (EPOLLOUT | EPOLLERR | EPOLLHUP)) === 0) return;
      // Writable without an error or hangup: the handshake completed (tcp_poll reports no
      // EPOLLOUT in SYN-SENT, and a failed connect sets sk_err, i.e. EPOLLERR, with EPOLLHUP), so
      // SO_ERROR is read only when there is one to read.
      const err = (mask & (EPOLLERR | EPOLLHUP)) === 0 ? 0 : this.set.native.upstreamSocketError(this.fd);
      if (err !== 0 || (mask & EPOLLOUT) === 0) {
        const code = err !== 0 ? errnoName(err) : 'ECONNRESET';
        this.closeFd(false);
        this.handler.onUpstreamConnectFailed(this, code);
        return;
      }
      this.phase = Phase.Open;
      this.set.connectedLater();
      this.handler.onUpstreamConnect(this);
      if (this.phase !== Phase.Open) return;
      // end() before the connect completed, with nothing to write first.
      if (this.ending && this.writableLength === 0 && !this.writeShut) this.shutdownWrite();
    }
    if ((mask & EPOLLRDHUP) !== 0) this.peerFinSeen = true;
    if ((mask & (EPOLLIN | EPOLLRDHUP | EPOLLERR | EPOLLHUP)) !== 0) {
      if (this.paused || this.readEnded) {
        this.readPending = !this.readEnded;
        // A reset while paused is not left until the app reads again.
        if ((mask & EPOLLERR) !== 0) this.failFromSocketError();
      } else this.readAvailable();
    }
    if ((mask & EPOLLOUT) !== 0 && this.writableLength > 0 && this.phase === Phase.Open) this.flushQueue();
  }

  /** Read until a short read, EAGAIN, EOF, an error, a pause, or the per-event limit. */
  readAvailable(): void {
    this.readPending = false;
    const native = this.set.native;
    for (let reads = 0; reads < MAX_READS_PER_EVENT; reads++) {
      const buf = this.nextReadBuffer;
      const n = buf === SHARED_READ_BUFFER ? native.upstreamReadBound(this.fd) : native.upstreamRead(this.fd, buf, 0, buf.length);
      if (n > 0) {
        let chunk: Buffer;
        const budget = this.set.budget;
        if (buf !== SHARED_READ_BUFFER && n >= OWN_BUFFER_MIN_READ) {
          chunk = n === buf.length ? buf : buf.subarray(0, n);
          // Handed over: the pipe charges it to the send buffer from now on.
          budget?.release(MemoryKind.UPSTREAM, OWN_BUFFER_BYTES);
          this.nextReadBuffer = READ_BUFFERS.take();
          budget?.charge(MemoryKind.UPSTREAM, OWN_BUFFER_BYTES);
        } else {
          chunk = Buffer.allocUnsafe(n);
          buf.copy(chunk, 0, 0, n);
          // A buffer of the socket's own that is not handed over goes straight back.
          if (buf !== SHARED_READ_BUFFER) {
            READ_BUFFERS.give(buf);
            budget?.release(MemoryKind.UPSTREAM, OWN_BUFFER_BYTES);
          }
          if (n >= OWN_BUFFER_MIN_READ) {
            this.nextReadBuffer = READ_BUFFERS.take();
            budget?.charge(MemoryKind.UPSTREAM, OWN_BUFFER_BYTES);
          } else this.nextReadBuffer = SHARED_READ_BUFFER;
        }
        this.set.touch(this);
        const full = n === buf.length;
        this.handler.onUpstreamData(chunk);
        if (this.phase !== Phase.Open) return;
        if (!full && !this.peerFinSeen) return; // drained: the next arrival is a new edge
        if (this.paused) {
          this.readPending = true;
          return;
        }
        if (!full) {
          this.onEof();
          return;
        }
        continue;
      }
      if (n === 0) {
        this.onEof();
        return;
      }
      if (n === -EAGAIN) return;
      this.fail(-n, false);
      return;
    }
    // More may be waiting and no new edge will say so: read again after the others.
    this.readPending = true;
    this.set.scheduleRead(this);
  }

  private onEof(): void {
    this.readEnded = true;
    this.releaseReadBuffer();
    this.handler.onUpstreamEnd();
    this.maybeClose();
  }

  private flushQueue(): void {
    const q = this.queue!;
    const native = this.set.native;
    while (this.queueHead < q.length) {
      const count = Math.min(q.length - this.queueHead, MAX_IOV);
      let attempted = 0;
      for (let i = 0; i < count; i++) attempted += q[this.queueHead + i]!.length;
      const r = native.upstreamWritev(this.fd, q, this.queueHead, count, this.nagle === NAGLE_WRITTEN_ONCE);
      if (this.nagle !== NAGLE_OFF) this.nagle++;
      if (r < 0) {
        if (r !== -EAGAIN) this.fail(-r, false);
        return;
      }
      this.set.touch(this);
      this.writableLength -= r;
      let left = r;
      while (left > 0) {
        const head = q[this.queueHead]!;
        if (left >= head.length) {
          left -= head.length;
          q[this.queueHead++] = undefined as unknown as Buffer;
        } else {
          q[this.queueHead] = head.subarray(left);
          left = 0;
        }
      }
      // A short write means the socket buffer is full: the next EPOLLOUT edge says when to go on
      // (another writev now would only return EAGAIN).
      if (r < attempted) return;
    }
    q.length = 0;
    this.queueHead = 0;
    this.handler.onUpstreamDrain();
    if (this.ending && !this.writeShut && this.phase === Phase.Open) this.shutdownWrite();
  }

  private shutdownWrite(): void {
    this.writeShut = true;
    // ENOTCONN after a reset: the error (if any) comes with the next event.
    this.set.native.upstreamShutdown(this.fd);
    this.maybeClose();
  }

  /** Both directions are finished: close (the kernel keeps the socket for its TIME-WAIT). */
  private maybeClose(): void {
    if (this.writeShut && this.readEnded) this.closeFd(false);
  }

  private failFromSocketError(): void {
    const err = this.set.native.upstreamSocketError(this.fd);
    if (err !== 0) this.fail(err, false);
  }

  /** A hard error: closed at once; the handler hears of it now (from an event) or after the current call (from a write). */
  private fail(errno: number, deferred: boolean): void {
    const code = errnoName(errno);
    this.closeFd(false);
    if (deferred) this.set.deferError(this, code);
    else this.handler.onUpstreamError(code);
  }

  private releaseReadBuffer(): void {
    if (this.nextReadBuffer !== SHARED_READ_BUFFER) {
      READ_BUFFERS.give(this.nextReadBuffer);
      this.set.budget?.release(MemoryKind.UPSTREAM, OWN_BUFFER_BYTES);
      this.nextReadBuffer = SHARED_READ_BUFFER;
    }
  }

  private closeFd(reset: boolean): void {
    if (this.phase === Phase.Closed) return;
    this.phase = Phase.Closed;
    this.readPending = false;
    if (this.fd >= 0) this.set.native.upstreamClose(this.fd, reset);
    this.fd = -1;
    this.queue = null;
    this.queueHead = 0;
    this.writableLength = 0;
    this.releaseReadBuffer();
    this.set.release(this);
  }
}

/** Bound of UpstreamSockets.nearness: this many dials completed later in a row stop the second look. */
const NEAR_MAX = 8;

/** Made-ahead sockets kept per family (each is an fd and an unconnected kernel socket). */
const SPARE_SOCKETS = 4;

/** UpstreamSockets.io. */
const IO = new Uint32Array(UPSTREAM_IO_LENGTH);

/** Tops `spare` up to SPARE_SOCKETS; stops at the first failure (EMFILE...: the connect will say). */
function fill(native: NativeAddon, family: 4 | 6, spare: number[]): void {
  while (spare.length < SPARE_SOCKETS) {
    const fd = native.upstreamSocket(family);
    if (fd < 0) return;
    spare.push(fd);
  }
}

function errnoName(errno: number): string {
  try {
    return getSystemErrorName(-errno);
  } catch {
    return `E${errno}`;
  }
}

export interface UpstreamSocketsOptions {
  clock: Clock;
  /** Close after this long without a byte read or written (onUpstreamIdle); 0 = never. */
  idleTimeoutMs: number;
  /** --memory-limit: read buffers a socket owns are charged here while it owns them. */
  budget?: MemoryBudget | null;
}

/**
 * The set of upstream sockets: the addon's epoll set, a table of sockets by slot, the idle
 * timeout (one timer for all: every socket has the same timeout, so a list kept in order of last
 * activity has the next to expire at its head), and notifications deferred past the current call.
 */
export class UpstreamSockets {
  readonly native: NativeAddon;
  private poller: NativeUpstreamPoller | null;
  private readonly events: Int32Array;
  private readonly table: (UpstreamSocket | null)[] = [];
  private readonly generations: number[] = [];
  private readonly freeSlots: number[] = [];
  private liveCount = 0;
  /**
   * The addon's io array (upstreamBindIo, one per module instance and so per environment): a
   * connect's destination and bind address go in, its results come out (UPSTREAM_IO_*), and the
   * calls pass only a few integers. Calls are synchronous and read it back at once, so every set
   * shares it.
   */
  private readonly io = IO;
  /**
   * The poller's epoll descriptor, read once: `poller.epfd` is a native accessor, one N-API call
   * (and an unwrap of the poller) per connect otherwise.
   */
  private readonly epfd: number;
  /**
   * Sockets made ahead (socket(2), not connected), per family, so a SYN's dial is
   * only its connect(2): up to SPARE_SOCKETS each, refilled after the turn that took them
   * (setImmediate, behind the SYN-ACKs of its batch), kept only for a family dialled before.
   */
  private readonly spare4: number[] = [];
  private readonly spare6: number[] = [];
  private used6 = false;
  /**
   * How near the destinations are, 0..NEAR_MAX: up for a dial found ESTABLISHED by the connect
   * call, down for one completed by a later epoll event. While above 0, a dial still connecting
   * after connect(2) and its registration is looked at once more (TCP_INFO) before the call
   * returns: a veth or loopback destination whose SYN-ACK was handled on another CPU has often
   * answered by then, and its app's SYN-ACK need not wait for a turn of the event loop. For far
   * destinations the counter stays at 0 and costs nothing.
   */
  private nearness = NEAR_MAX;
  private refillScheduled = false;
  private readonly refillBound = (): void => this.refillSpares();
  private idleHead: UpstreamSocket | null = null;
  private idleTail: UpstreamSocket | null = null;
  private idleTimer: NodeJS.Timeout | null = null;
  private readonly onIdleTimerBound = (): void => this.onIdleTimer();
  /**
   * Sockets with deferred notifications, and sockets to read after the current call stack: slots
   * [0, count), emptied (null) as they are taken. Never cut back with `length = 0` or replaced by
   * splice(0): V8 would free or copy the backing store, and the next push allocate one, once per
   * turn with a close (every short connection's).
   */
  private readonly deferred: (UpstreamSocket | null)[] = [];
  private deferredCount = 0;
  private deferredScheduled = false;
  private readonly runDeferredBound = (): void => this.runDeferred();
  /** Reads due now (`resumed`) and the list the previous walk used, swapped at each walk. */
  private resumed: (UpstreamSocket | null)[] = [];
  private resumedCount = 0;
  private resumedSpare: (UpstreamSocket | null)[] = [];
  private resumedScheduled = false;
  private readonly runResumedBound = (): void => this.runResumed();
  private readonly onEventsBound = (count: number): void => this.onEvents(count);

  readonly budget: MemoryBudget | null;
  /** Hears of each poll's events beginning and ending (the stack, once attached). */
  batchSink: EventBatchSink | null = null;

  constructor(private readonly opts: UpstreamSocketsOptions) {
    this.budget = opts.budget ?? null;
    this.native = loadAddon();
    this.events = new Int32Array(3 * this.native.UpstreamPoller.MAX_EVENTS);
    this.poller = new this.native.UpstreamPoller(this.events, this.onEventsBound);
    this.epfd = this.poller.epfd;
    this.native.upstreamBindIo(IO);
    this.native.upstreamBindReadBuffer(SHARED_READ_BUFFER);
    // With no socket open the set does not keep the process alive (connect() refs it).
    this.poller.unref();
  }

  /** Sockets open (connecting or connected). */
  get size(): number {
    return this.liveCount;
  }

  /** Sockets made ahead, not yet used by a connect. */
  get spareSockets(): number {
    return this.spare4.length + this.spare6.length;
  }

  /**
   * Connect to family/words/port (bound to `bind` if given). Returns the socket, or an errno name
   * when the connect failed at once (the socket then never existed). The socket reports to
   * `handler`; one not `connecting` any more completed its handshake within the call.
   */
  connect(
    handler: UpstreamHandler,
    family: 4 | 6,
    words: Uint32Array,
    port: number,
    bind: { family: 4 | 6; words: Uint32Array } | null,
    registerLater = false,
  ): UpstreamSocket | string {
    const poller = this.poller;
    if (poller === null) return 'EBADF';
    const slot = this.freeSlots.pop() ?? this.table.length;
    const generation = ((this.generations[slot] ?? 0) + 1) | 0;
    const io = this.io;
    io[UPSTREAM_IO_FAMILY] = family;
    for (let i = 0; i < 4; i++) io[UPSTREAM_IO_WORDS + i] = words[i]!;
    io[UPSTREAM_IO_PORT] = port;
    if (bind === null) io[UPSTREAM_IO_BIND_FAMILY] = 0;
    else {
      io[UPSTREAM_IO_BIND_FAMILY] = bind.family;
      for (let i = 0; i < 4; i++) io[UPSTREAM_IO_BIND_WORDS + i] = bind.words[i]!;
    }
    const made = this.takeSpare(family);
    const flags = (registerLater ? 0 : UPSTREAM_CONNECT_REGISTER_NOW) | (this.nearness > 0 ? UPSTREAM_CONNECT_RECHECK : 0);
    const fd = this.native.upstreamConnectIo(this.epfd, slot, generation, made, flags);
    if (fd < 0) {
      if (slot === this.table.length) this.table.push(null);
      this.freeSlots.push(slot);
      return errnoName(-fd);
    }
    const socket = new UpstreamSocket(this, handler, family, words, port);
    socket.slot = slot;
    socket.generation = generation;
    this.generations[slot] = generation;
    this.table[slot] = socket;
    // out[0]: 0 connecting, 1 established, 2 established within connect(2) and, as registerLater
    // asked, not in the epoll set yet, its local end unread.
    const state = io[UPSTREAM_IO_OUT]!;
    if (state !== 0 && this.nearness < NEAR_MAX) this.nearness++;
    if (state === 2) socket.registered = false;
    else this.readLocalEnd(socket);
    socket.connected(fd, state !== 0);
    if (this.liveCount++ === 0) poller.ref();
    this.touch(socket);
    return socket;
  }

  /** The local end the last connect or register wrote to io (out[1..6]: family, four words, port). */
  private readLocalEnd(socket: UpstreamSocket): void {
    const io = this.io;
    socket.localFamily = io[UPSTREAM_IO_OUT + 1]!;
    socket.localWords = internAddressWords(io, UPSTREAM_IO_OUT + 2);
    socket.localPort = io[UPSTREAM_IO_OUT + 6]!;
  }

  /** UpstreamSocket.register: epoll ADD and getsockname. 0, or the errno of a failed epoll_ctl. */
  registerSocket(socket: UpstreamSocket): number {
    const poller = this.poller;
    if (poller === null) return EBADF;
    const r = this.native.upstreamRegisterIo(this.epfd, socket.fd, socket.slot, socket.generation);
    if (r < 0) return -r;
    this.readLocalEnd(socket);
    return 0;
  }

  /** A dial completed by an epoll event, after its connect call: the destinations look far. */
  connectedLater(): void {
    if (this.nearness > 0) this.nearness--;
  }

  /** A socket made ahead for `family`, or -1 (upstreamConnectIo makes one); schedules the refill. */
  private takeSpare(family: 4 | 6): number {
    const spare = family === 4 ? this.spare4 : this.spare6;
    if (family === 6) this.used6 = true;
    if (!this.refillScheduled) {
      this.refillScheduled = true;
      setImmediate(this.refillBound);
    }
    return spare.pop() ?? -1;
  }

  private refillSpares(): void {
    this.refillScheduled = false;
    if (this.poller === null) return;
    fill(this.native, 4, this.spare4);
    if (this.used6) fill(this.native, 6, this.spare6);
  }

  private onEvents(count: number): void {
    const ev = this.events;
    const table = this.table;
    const sink = this.batchSink;
    sink?.openBatch();
    try {
      for (let i = 0; i < count; i++) {
        const socket = table[ev[3 * i]!];
        // A socket closed earlier in this batch (its slot empty, or taken again by a new one).
        if (socket == null || socket.generation !== ev[3 * i + 1]) continue;
        socket.onEvent(ev[3 * i + 2]!);
      }
    } finally {
      sink?.closeBatch();
    }
  }

  /** A socket closed: its slot is free, and its owner hears of it after the current call. */
  release(socket: UpstreamSocket): void {
    const slot = socket.slot;
    if (slot >= 0 && this.table[slot] === socket) {
      this.table[slot] = null;
      this.freeSlots.push(slot);
      if (--this.liveCount === 0) this.poller?.unref();
    }
    this.unlinkIdle(socket);
    socket.deferredClose = true;
    this.defer(socket);
  }

  deferError(socket: UpstreamSocket, code: string): void {
    socket.deferredError = code;
    this.defer(socket);
  }

  private defer(socket: UpstreamSocket): void {
    if (!socket.inDeferred) {
      socket.inDeferred = true;
      this.deferred[this.deferredCount++] = socket;
    }
    if (!this.deferredScheduled) {
      this.deferredScheduled = true;
      process.nextTick(this.runDeferredBound);
    }
  }

  private runDeferred(): void {
    this.deferredScheduled = false;
    const list = this.deferred;
    // Handlers may close more sockets meanwhile: they join this walk.
    for (let i = 0; i < this.deferredCount; i++) {
      const s = list[i]!;
      list[i] = null;
      s.inDeferred = false;
      const err = s.deferredError;
      if (err !== null) {
        s.deferredError = null;
        s.handler.onUpstreamError(err);
      }
      if (s.deferredClose) {
        s.deferredClose = false;
        s.handler.onUpstreamClose();
      }
    }
    this.deferredCount = 0;
  }

  /** Read `socket` after the current call stack (resumed, or stopped at the per-event limit). */
  scheduleRead(socket: UpstreamSocket): void {
    if (socket.inResumed) return;
    socket.inResumed = true;
    this.resumed[this.resumedCount++] = socket;
    if (!this.resumedScheduled) {
      this.resumedScheduled = true;
      setImmediate(this.runResumedBound);
    }
  }

  private runResumed(): void {
    this.resumedScheduled = false;
    // Reads these schedule (a socket stopped at the per-event limit) wait for the next walk: they
    // go to the other list.
    const list = this.resumed;
    const n = this.resumedCount;
    this.resumed = this.resumedSpare;
    this.resumedCount = 0;
    this.resumedSpare = list;
    for (let i = 0; i < n; i++) {
      const s = list[i]!;
      list[i] = null;
      s.inResumed = false;
      if (!s.destroyed && !s.paused) s.readAvailable();
    }
  }

  // ------------------------------------------------------------ idle timeout

  /** Activity on `socket`: it moves to the tail of the idle list. */
  touch(socket: UpstreamSocket): void {
    if (this.opts.idleTimeoutMs <= 0) return;
    socket.idleSince = this.opts.clock.now();
    if (this.idleTail === socket) return;
    this.unlinkIdle(socket);
    socket.idlePrev = this.idleTail;
    if (this.idleTail !== null) this.idleTail.idleNext = socket;
    else this.idleHead = socket;
    this.idleTail = socket;
    if (this.idleTimer === null) this.armIdleTimer();
  }

  private unlinkIdle(socket: UpstreamSocket): void {
    const prev = socket.idlePrev;
    const next = socket.idleNext;
    if (prev === null && next === null && this.idleHead !== socket) return;
    if (prev !== null) prev.idleNext = next;
    else this.idleHead = next;
    if (next !== null) next.idlePrev = prev;
    else this.idleTail = prev;
    socket.idlePrev = socket.idleNext = null;
  }

  private armIdleTimer(): void {
    const head = this.idleHead;
    if (head === null) return;
    const delay = Math.max(1, Math.ceil(head.idleSince + this.opts.idleTimeoutMs - this.opts.clock.now()));
    this.idleTimer = setTimeout(this.onIdleTimerBound, delay);
    // Like a socket timeout: it does not keep the process alive by itself.
    this.idleTimer.unref();
  }

  private onIdleTimer(): void {
    this.idleTimer = null;
    const now = this.opts.clock.now();
    let s = this.idleHead;
    while (s !== null && s.idleSince + this.opts.idleTimeoutMs <= now) {
      this.unlinkIdle(s);
      s.handler.onUpstreamIdle();
      s = this.idleHead;
    }
    this.armIdleTimer();
  }

  /** Stop polling (shutdown, once every socket is closed). */
  close(): void {
    if (this.idleTimer !== null) clearTimeout(this.idleTimer);
    this.idleTimer = null;
    for (const spare of [this.spare4, this.spare6]) {
      for (const fd of spare) this.native.upstreamClose(fd, false);
      spare.length = 0;
    }
    this.poller?.close();
    this.poller = null;
  }
}
