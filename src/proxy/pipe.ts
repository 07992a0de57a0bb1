/**
 * One proxied connection: the app leg (a TcpConn of the userspace stack) joined to the upstream
 * leg (a kernel socket, upstream.ts), with backpressure both ways, half-close both ways and resets both ways.
 *
 *   app → upstream: conn.onData queues the bytes (views into the TUN batch, not copies); once the
 *   stack has sent the batch's ACKs it calls afterFlush, which writes everything the batch
 *   delivered with one writev straight from the TUN buffer into the socket (the app's ACKs never
 *   wait behind our upstream writes). Only what the kernel does not take at once is copied, and
 *   queued in the socket.
 *   Bytes still queued in the socket keep the receive window closed (conn.consume is called only
 *   as the socket flushes them), so a slow upstream shrinks the app's window instead of growing
 *   our memory.
 *   upstream → app: socket data → conn.write; when the send buffer is full the socket is
 *   paused until onSendSpace.
 *   FIN: app FIN → socket.end() after the batch's flush; upstream EOF → conn.close() (our FIN).
 *   RST: app RST → socket.resetAndDestroy(); upstream error → conn.abort() (our RST).
 */
import type { ConnHandler, TcpConn } from '../tcp/conn.js';
import type { Clock } from '../stack/clock.js';
import type { AfterFlush, Stack } from '../stack/stack.js';
import { MemoryKind, type MemoryBudget, type Relief } from '../tcp/memory-budget.js';
import { READ_BUFFERS, type UpstreamHandler, type UpstreamSocket } from './upstream.js';
import type { EventHub } from '../stack/events.js';
import type { ByteCounters, UpstreamCloser, UpstreamLeg, UpstreamTuple } from '../stack/upstream-leg.js';

export { READ_BUFFERS };

export interface PipeOptions {
  stack: Stack;
  clock: Clock;
  /** Called once when both legs are done. */
  onDone?: (pipe: Pipe) => void;
  /** --memory-limit: bytes read from the destination are charged here until the app ACKs them. */
  budget?: MemoryBudget | null;
  /** Where the leg's facts are published (upstreamEnded); its byte counters are counted into. */
  events?: EventHub | null;
}


const NO_COUNTERS: ByteCounters = { bytesClientToUpstream: 0, bytesUpstreamToClient: 0 };

export class Pipe implements ConnHandler, AfterFlush, UpstreamHandler, Relief, UpstreamLeg {
  /** onData gets views into the TUN batch: they are written or copied by afterFlush. */
  readonly acceptsViews = true;
  conn: TcpConn | null = null;
  /** The connection id (the stack's), for joining the two legs. */
  id = 0;
  /** Where the pipe sits in its forwarder's PipeList while open, else -1. */
  liveIndex = -1;
  stats: ByteCounters = NO_COUNTERS;
  /** The connection's service's byte counts (synfin_service_bytes_total), besides `stats`. */
  serviceStats: ByteCounters = NO_COUNTERS;
  /** Where the upstream socket was dialled (as the policy gave it: a host name stays a name). */
  dialedHost = '';
  dialedPort = 0;
  /** When the connection became half-closed (one side finished), ms; 0 while neither has. */
  waitingSince = 0;
  upstreamClosed = false;
  /** UpstreamLeg: the kernel connect's duration, ms. */
  connectMs = 0;
  /** UpstreamLeg: payload bytes read from the destination. */
  bytesFromUpstream = 0;
  /** UpstreamLeg: who ended the upstream leg first. */
  closedBy: UpstreamCloser | null = null;
  afterFlushQueued = false;
  /** Bytes delivered by the conn (written to the socket or waiting in `pending`). */
  private delivered = 0;
  /**
   * Delivered chunks (views into the TUN batch) not yet written, and their bytes. A batch's only
   * chunk (the common case: one request, one segment) waits in `single`, not in the array: no
   * array store and cut back per request, and one write(2) of it (UpstreamSocket.writeOne).
   * `single` is non-null only while `pending` is empty.
   */
  private single: Buffer | null = null;
  private readonly pending: Buffer[] = [];
  private pendingBytes = 0;
  /** Pooled read buffers the connection released, given back after the flush (onChunkReleased). */
  private released: Buffer[] | null = null;
  /** The app's FIN is to be passed upstream (socket.end) by the next afterFlush, behind `pending`. */
  private finToUpstream = false;
  private consumed = 0;
  /** Bytes of the send buffer charged to the budget (whole pooled read buffers count whole). */
  private sendCharged = 0;
  /** The upstream socket is paused until the budget has room again (not for a full send buffer). */
  private memoryPaused = false;
  private upstreamEnded = false;
  private appFinished = false;
  private done = false;

  constructor(
    readonly socket: UpstreamSocket,
    private readonly opts: PipeOptions,
  ) {
    // The socket reports to the pipe from now on; nothing flows upstream → app until the app's
    // handshake completes (a new socket is paused).
    socket.handler = this;
    socket.pause();
  }

  // ------------------------------------------------------------ ConnHandler (app leg)

  onEstablished(_conn: TcpConn): void {
    if (!this.upstreamEnded) this.socket.resume();
  }

  onData(_conn: TcpConn, data: Buffer): void {
    if (this.socket.destroyed) return;
    this.delivered += data.length;
    this.stats.bytesClientToUpstream += data.length;
    this.serviceStats.bytesClientToUpstream += data.length;
    if (this.single === null && this.pending.length === 0) this.single = data;
    else {
      if (this.single !== null) {
        this.pending.push(this.single);
        this.single = null;
      }
      this.pending.push(data);
    }
    this.pendingBytes += data.length;
    this.opts.stack.runAfterFlush(this);
  }

  /** The stack has sent this batch's segments: write what the batch delivered. */
  afterFlush(): void {
    this.writePending();
    if (this.finToUpstream) {
      this.finToUpstream = false;
      if (!this.socket.destroyed) this.socket.end();
    }
    const released = this.released;
    if (released !== null && released.length > 0) {
      // The batch's packets are written: unless the device held some back (full), nothing points
      // into these buffers any more. Otherwise they are left to the garbage collector.
      if (this.opts.stack.linkHoldsNoViews) for (let i = 0; i < released.length; i++) READ_BUFFERS.give(released[i]!);
      released.length = 0;
    }
  }

  /** The connection dropped a chunk (acknowledged or discarded): a pooled one goes back after the flush. */
  onChunkReleased(chunk: Buffer): void {
    const lent = READ_BUFFERS.isLent(chunk);
    if (this.sendCharged > 0) {
      const cost = lent ? chunk.buffer.byteLength : chunk.length;
      const n = cost < this.sendCharged ? cost : this.sendCharged;
      this.sendCharged -= n;
      this.opts.budget!.release(MemoryKind.SEND, n);
    }
    // The app acknowledged bytes: a connection paused for memory that now holds less than the
    // per-connection minimum reads again (it would otherwise wait for others to free memory).
    if (this.memoryPaused) this.resumeIfSmall();
    if (!lent) return;
    (this.released ??= []).push(chunk);
    this.opts.stack.runAfterFlush(this);
  }

  /**
   * Write the queued views: one writev(2) straight from the TUN buffer while nothing is queued in
   * the socket; what the kernel leaves, and everything while the socket still has bytes queued,
   * the socket copies and queues behind what it holds, so the order is kept (UpstreamSocket.write).
   */
  private writePending(): void {
    const socket = this.socket;
    const single = this.single;
    if (single !== null) {
      this.single = null;
      if (socket.writable) socket.writeOne(single);
    } else {
      const pending = this.pending;
      const n = pending.length;
      if (n === 0) return;
      if (socket.writable) socket.write(pending, n, this.pendingBytes);
      pending.length = 0;
    }
    this.pendingBytes = 0;
    if (!socket.destroyed) this.reportFlushed();
  }

  onFin(_conn: TcpConn): void {
    // RFC 9293 half-close: the app will send no more; the upstream may still answer.
    this.appFinished = true;
    if (!this.upstreamEnded) this.waitingSince = this.opts.clock.now();
    if (!this.socket.destroyed) {
      this.closedBy ??= 'synfin';
      // Passed on after the batch's flush, as the data before it is (afterFlush writes that
      // first): the end is a shutdown(2) or close(2) that pushes our FIN through the kernel, and
      // the segments the batch made due (its ACKs, a new connection's SYN-ACK: the app's close
      // and its next SYN often arrive together) need not wait for it.
      this.finToUpstream = true;
      this.opts.stack.runAfterFlush(this);
    }
  }

  onSendSpace(conn: TcpConn): void {
    if (this.upstreamEnded || this.socket.destroyed || this.memoryPaused) return;
    if (this.pauseForMemory(conn)) return;
    this.socket.resume();
  }

  private resumeIfSmall(): void {
    const conn = this.conn;
    if (conn === null || this.opts.budget!.shouldPause(conn.sendBuffered)) return;
    this.opts.budget!.cancelRelief(this);
    this.onMemoryRelief();
  }

  /** The budget has room again: read the destination unless the send buffer is still full. */
  onMemoryRelief(): void {
    this.memoryPaused = false;
    const conn = this.conn;
    if (conn === null || this.upstreamEnded || this.socket.destroyed) return;
    if (conn.sendBuffered < this.opts.stack.tcp.sndBufBytes) this.socket.resume();
  }

  /**
   * Near --memory-limit a connection holding CONN_FLOOR or more stops reading its destination
   * (the kernel's receive buffer and window then hold the destination back) until memory frees.
   */
  private pauseForMemory(conn: TcpConn): boolean {
    const budget = this.opts.budget;
    if (budget === undefined || budget === null || !budget.shouldPause(conn.sendBuffered)) return false;
    this.socket.pause();
    this.memoryPaused = true;
    budget.waitForRelief(this);
    return true;
  }

  onClosed(conn: TcpConn): void {
    const reason = conn.closeReason;
    if (!this.socket.destroyed) {
      this.closedBy ??= 'synfin';
      if (reason !== 'fin') {
        this.pending.length = 0;
        this.single = null;
        this.pendingBytes = 0;
        // Propagate the abort (a reset either way, a timeout, shutdown after the grace period, the
        // device lost): the destination sees a reset, never a clean close that would pass a cut
        // stream off as complete (RFC 9293 §3.10.7.4).
        this.socket.resetAndDestroy();
      } else if (!this.appFinished || !this.upstreamEnded) {
        // Closed (e.g. TIME-WAIT after a normal close) with the socket still open: finish it.
        this.writePending();
        this.socket.end();
      }
    }
    this.conn = null;
    this.finish();
  }

  // ------------------------------------------------------------ upstream leg (UpstreamHandler)

  onUpstreamConnect(_socket: UpstreamSocket): void {}
  onUpstreamConnectFailed(_socket: UpstreamSocket, _code: string): void {}

  onUpstreamData(chunk: Buffer): void {
    const conn = this.conn;
    if (conn === null) return;
    this.stats.bytesUpstreamToClient += chunk.length;
    this.serviceStats.bytesUpstreamToClient += chunk.length;
    this.bytesFromUpstream += chunk.length;
    const before = conn.sendBuffered;
    const room = conn.write(chunk);
    const budget = this.opts.budget;
    if (budget !== undefined && budget !== null && conn.sendBuffered > before) {
      // The read happened: its memory exists and is charged whatever the budget says; a pooled
      // read buffer costs all of it however little of it the read filled.
      const cost = READ_BUFFERS.isLent(chunk) ? chunk.buffer.byteLength : chunk.length;
      budget.charge(MemoryKind.SEND, cost);
      this.sendCharged += cost;
    }
    if (!room) this.socket.pause();
    else this.pauseForMemory(conn);
    this.sendSoon(conn);
  }

  onUpstreamEnd(): void {
    this.upstreamEnded = true;
    if (!this.appFinished) this.waitingSince = this.opts.clock.now();
    this.closedBy ??= 'destination';
    this.opts.events?.upstreamEnded(this, 'fin', this.opts.clock.now());
    const conn = this.conn;
    if (conn === null) return;
    // The destination closed its side: our FIN follows the data still queued toward the app.
    conn.close(this.opts.clock.now());
    this.sendSoon(conn);
  }

  onUpstreamError(_code: string): void {
    this.closedBy ??= 'destination';
    this.opts.events?.upstreamEnded(this, 'reset', this.opts.clock.now());
    const conn = this.conn;
    if (conn === null) return;
    // The destination reset the connection (or its host vanished): reset the app's side too.
    this.resetApp(conn, 'upstream_reset');
  }

  onUpstreamDrain(): void {
    this.reportFlushed();
  }

  onUpstreamClose(): void {
    this.upstreamClosed = true;
    // A close without an EOF or an error (closed locally) leaves nothing to propagate.
    this.finish();
  }

  onUpstreamIdle(): void {
    this.closedBy ??= 'synfin';
    const conn = this.conn;
    if (conn !== null) this.resetApp(conn, 'idle_timeout');
    this.socket.destroy();
  }

  /** UpstreamLeg: payload bytes delivered by the app leg toward the destination. */
  get bytesToUpstream(): number {
    return this.delivered;
  }

  /** The upstream socket's fd for TCP_INFO, or -1. */
  upstreamFd(): number {
    return this.socket.fd;
  }

  watchedTuple(): UpstreamTuple | null {
    const s = this.socket;
    return s.localFamily === s.remoteFamily ? s : null;
  }

  upstreamEndpoints(): { local: string; remote: string } | null {
    const s = this.socket;
    const local = s.localAddress;
    if (local === undefined) return null;
    return { local: endpoint(local, s.localPort), remote: endpoint(s.remoteAddress, s.remotePort) };
  }

  /** Reset both legs (shutdown after the grace period). */
  abort(reason: 'shutdown' | 'idle_timeout'): void {
    if (!this.socket.destroyed) this.closedBy ??= 'synfin';
    const conn = this.conn;
    if (conn !== null) this.resetApp(conn, reason);
    if (!this.socket.destroyed) this.socket.resetAndDestroy();
  }

  /** Reset the app's leg (our RST) and send it now. */
  private resetApp(conn: TcpConn, reason: 'upstream_reset' | 'shutdown' | 'idle_timeout'): void {
    conn.abort(reason, this.opts.clock.now());
    this.sendSoon(conn);
  }

  /** The conn has something new to send (data, a window, a FIN, a RST): the stack sends it this turn. */
  private sendSoon(conn: TcpConn): void {
    this.opts.stack.wake(conn);
    this.opts.stack.flushSoon();
  }

  /** Tell the conn how many delivered bytes have left the socket's queue (reopens the window). */
  private reportFlushed(): void {
    const conn = this.conn;
    if (conn === null) return;
    const flushed = this.delivered - this.pendingBytes - this.socket.writableLength;
    if (flushed > this.consumed) {
      const n = flushed - this.consumed;
      this.consumed = flushed;
      // Most of the time the window update is not worth a segment of its own yet (RFC 9293
      // §3.8.6.2.2): then the connection has nothing to send and is not dispatched again.
      if (conn.consume(n, this.opts.clock.now())) this.sendSoon(conn);
    }
  }

  private finish(): void {
    if (this.done) return;
    if (this.conn !== null && !this.socket.destroyed) return;
    this.done = true;
    const budget = this.opts.budget;
    if (budget !== undefined && budget !== null) {
      budget.cancelRelief(this);
      // Chunks the connection dropped without telling (none expected): nothing stays charged.
      budget.release(MemoryKind.SEND, this.sendCharged);
      this.sendCharged = 0;
    }
    this.opts.onDone?.(this);
  }
}

function endpoint(addr: string, port: number): string {
  return addr.includes(':') ? `[${addr}]:${port}` : `${addr}:${port}`;
}
