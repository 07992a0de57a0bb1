/**
 * One proxied connection: the app leg (a TcpConn of the userspace stack) joined to the upstream
 * leg (a kernel net.Socket), with backpressure both ways, half-close both ways and resets both ways.
 *
 *   app → upstream: conn.onData queues the bytes (views into the TUN batch, not copies); once the
 *   stack has sent the batch's ACKs it calls afterFlush, which writes everything the batch
 *   delivered with one writev straight from the TUN buffer into the socket (the app's ACKs never
 *   wait behind our upstream writes). Only what the kernel does not take at once is copied, and
 *   queued in the socket as usual.
 *   Bytes still queued in the socket keep the receive window closed (conn.consume is called only
 *   as the socket flushes them), so a slow upstream shrinks the app's window instead of growing
 *   our memory.
 *   upstream → app: socket 'data' → conn.write; when the send buffer is full the socket is
 *   paused until onSendSpace.
 *   FIN: app FIN → socket.end(); upstream 'end' → conn.close() (our FIN).
 *   RST: app RST → socket.resetAndDestroy(); upstream error → conn.abort() (our RST).
 */
import { writevSync } from 'node:fs';
import type { Socket } from 'node:net';
import type { ConnHandler, TcpConn } from '../tcp/conn.js';
import type { Clock } from '../stack/clock.js';
import type { AfterFlush, Stack } from '../stack/stack.js';
import { ReadBufferPool } from './read-buffer-pool.js';

export interface PipeOptions {
  stack: Stack;
  clock: Clock;
  /** Close both legs after this long without a byte in either direction; 0 = never. */
  idleTimeoutMs: number;
  /** Called once when both legs are done. */
  onDone?: (pipe: Pipe) => void;
}

/** Where the pipes count proxied bytes (synfin_tcp_bytes_total), as they flow. */
export interface ByteCounters {
  bytesClientToUpstream: number;
  bytesUpstreamToClient: number;
}

const NO_COUNTERS: ByteCounters = { bytesClientToUpstream: 0, bytesUpstreamToClient: 0 };

/** The pipe an upstream socket belongs to. */
const PIPE = Symbol('synfin.pipe');
type PipeSocket = Socket & { [PIPE]: Pipe | undefined };

/**
 * Upstream sockets read through net.Socket's `onread` option: Node's own reads go through the
 * Readable stream machinery and allocate a 64 KiB backing store per read (then shrunk and
 * wrapped in a new ArrayBuffer), which dominated the JavaScript cost of small request/response
 * reads. Here every socket starts on one shared buffer, and a read there is copied out at its own
 * length (under 4 KiB from Node's buffer pool): a socket doing small reads, or none, holds no
 * memory of its own. A large read suggests a bulk transfer: the socket then gets a buffer of its
 * own, which each read hands to the connection as it is (no copy; the connection's send buffer
 * keeps chunks until the app acknowledges them) before taking another; a read that does not
 * look like bulk any more sends it back to the shared buffer. Those buffers come from one pool and
 * return to it once acknowledged (read-buffer-pool.ts says why).
 */
const SHARED_READ_BUFFER = Buffer.allocUnsafe(64 * 1024);
/** Reads at least this large move a socket to buffers of its own (and are given away from them). */
const OWN_BUFFER_MIN_READ = 16 * 1024;
const OWN_BUFFER_BYTES = 64 * 1024;
/** At most 4 MiB of idle read buffers kept for reuse. */
export const READ_BUFFERS = new ReadBufferPool(OWN_BUFFER_BYTES, 64);

export interface UpstreamSocketOptions {
  allowHalfOpen: true;
  noDelay: true;
  onread: { buffer: () => Buffer; callback: (this: Socket, nread: number, buf: Buffer) => boolean };
}

/** Options for an upstream net.Socket: half-open allowed, no Nagle, and the reads above. */
export function upstreamSocketOptions(): UpstreamSocketOptions {
  // Node asks for the buffer of the next read when the socket starts reading and after each read.
  let next: Buffer = SHARED_READ_BUFFER;
  return {
    allowHalfOpen: true,
    noDelay: true,
    onread: {
      buffer: () => next,
      callback(this: Socket, nread: number, buf: Buffer): boolean {
        let chunk: Buffer;
        if (buf !== SHARED_READ_BUFFER && nread >= OWN_BUFFER_MIN_READ) {
          chunk = nread === buf.length ? buf : buf.subarray(0, nread);
          next = READ_BUFFERS.take();
        } else {
          chunk = Buffer.allocUnsafe(nread);
          buf.copy(chunk, 0, 0, nread);
          // A buffer of the socket's own that is not handed over goes straight back.
          if (buf !== SHARED_READ_BUFFER) READ_BUFFERS.give(buf);
          next = nread >= OWN_BUFFER_MIN_READ ? READ_BUFFERS.take() : SHARED_READ_BUFFER;
        }
        const pipe = (this as PipeSocket)[PIPE];
        if (pipe === undefined) {
          // Reading only starts once a pipe resumes the socket; data before that would be lost.
          this.destroy(new Error('upstream data arrived before its pipe existed'));
          return false;
        }
        pipe.onUpstreamData(chunk);
        return true;
      },
    },
  };
}

type TimerSocket = Socket & { _unrefTimer?: () => void };

/**
 * Restarts a socket's idle timer (socket.setTimeout). Node's own reads and writes do it with
 * socket._unrefTimer(), which refreshes the timer in place; calling setTimeout() again would build
 * a new timer and a bound closure per write. Falls back to setTimeout() on a Node without it.
 */
function refreshIdleTimer(socket: Socket, ms: number): void {
  const s = socket as TimerSocket;
  if (typeof s._unrefTimer === 'function') s._unrefTimer();
  else socket.setTimeout(ms);
}

export class Pipe implements ConnHandler, AfterFlush {
  /** onData gets views into the TUN batch: they are written or copied by afterFlush. */
  readonly acceptsViews = true;
  conn: TcpConn | null = null;
  /** The connection id (the stack's), for joining the two legs. */
  id = 0;
  stats: ByteCounters = NO_COUNTERS;
  /**
   * Where the upstream socket was dialled: its remote end while Node still reports none (a dial
   * taken as soon as the kernel completed it, before Node's 'connect', see Proxy.checkEarlyConnect).
   */
  dialedHost = '';
  dialedPort = 0;
  /** dialedHost as an address, or null (a host name, or not dialled by the forwarder). */
  dialedAddress: { family: 4 | 6; words: Uint32Array } | null = null;
  /** When the connection became half-closed (one side finished), ms; 0 while neither has. */
  waitingSince = 0;
  upstreamClosed = false;
  afterFlushQueued = false;
  /** Bytes delivered by the conn (written to the socket or waiting in `pending`). */
  private delivered = 0;
  /** Delivered chunks (views into the TUN batch) not yet written, and their bytes. */
  private readonly pending: Buffer[] = [];
  private pendingBytes = 0;
  /** Pooled read buffers the connection released, given back after the flush (onChunkReleased). */
  private released: Buffer[] | null = null;
  private consumed = 0;
  private upstreamEnded = false;
  private appFinished = false;
  private done = false;

  // The socket's listeners are shared by every pipe and find theirs through the socket (`this`
  // in an EventEmitter listener): six closures per connection less to build and collect.
  private static onData(this: PipeSocket, chunk: Buffer): void {
    this[PIPE]!.onSocketData(chunk);
  }
  private static onEnd(this: PipeSocket): void {
    this[PIPE]!.onSocketEnd();
  }
  private static onError(this: PipeSocket, err: Error): void {
    this[PIPE]!.onSocketError(err);
  }
  private static onClose(this: PipeSocket): void {
    this[PIPE]!.onSocketClose();
  }
  private static onDrain(this: PipeSocket): void {
    this[PIPE]!.reportFlushed();
  }
  private static onTimeout(this: PipeSocket): void {
    this[PIPE]!.onIdle();
  }

  constructor(
    readonly socket: Socket,
    private readonly opts: PipeOptions,
  ) {
    (socket as PipeSocket)[PIPE] = this;
    // Nothing flows upstream → app until the app's handshake completes.
    socket.pause();
    socket.setNoDelay(true);
    socket.on('data', Pipe.onData);
    socket.on('end', Pipe.onEnd);
    socket.on('error', Pipe.onError);
    socket.on('close', Pipe.onClose);
    socket.on('drain', Pipe.onDrain);
    if (opts.idleTimeoutMs > 0) {
      socket.setTimeout(opts.idleTimeoutMs);
      socket.on('timeout', Pipe.onTimeout);
    }
  }

  // ------------------------------------------------------------ ConnHandler (app leg)

  onEstablished(_conn: TcpConn): void {
    if (!this.upstreamEnded) this.socket.resume();
  }

  onData(_conn: TcpConn, data: Buffer): void {
    if (this.socket.destroyed) return;
    this.delivered += data.length;
    this.stats.bytesClientToUpstream += data.length;
    this.pending.push(data);
    this.pendingBytes += data.length;
    this.opts.stack.runAfterFlush(this);
  }

  /** The stack has sent this batch's segments: write what the batch delivered. */
  afterFlush(): void {
    this.writePending();
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
    if (!READ_BUFFERS.isLent(chunk)) return;
    (this.released ??= []).push(chunk);
    this.opts.stack.runAfterFlush(this);
  }

  /**
   * Write the queued views. While nothing is queued in the socket, one writev(2) takes them
   * straight from the TUN buffer; what the kernel leaves (a full socket buffer) and everything
   * while the socket still has bytes queued is copied into one Buffer (the views die with the
   * batch) and handed to socket.write, behind what it already holds, so the order is kept.
   */
  private writePending(): void {
    const pending = this.pending;
    const n = pending.length;
    if (n === 0) return;
    const socket = this.socket;
    if (socket.destroyed || !socket.writable) {
      pending.length = 0;
      this.pendingBytes = 0;
      return;
    }
    let written = 0;
    const fd = socket.writableLength === 0 && !socket.connecting ? this.upstreamFd() : -1;
    if (fd >= 0) {
      try {
        written = writevSync(fd, pending);
      } catch {
        // EAGAIN (socket buffer full) or an error node will report itself on its own write below.
        written = 0;
      }
      // Bytes that bypass the stream do not refresh its idle timer: re-arm it.
      if (written > 0 && this.opts.idleTimeoutMs > 0) refreshIdleTimer(socket, this.opts.idleTimeoutMs);
    }
    const rest = this.pendingBytes - written;
    if (rest > 0) {
      const copy = Buffer.allocUnsafe(rest);
      let skip = written;
      let at = 0;
      for (let i = 0; i < n; i++) {
        const chunk = pending[i]!;
        if (skip >= chunk.length) {
          skip -= chunk.length;
          continue;
        }
        at += chunk.copy(copy, at, skip);
        skip = 0;
      }
      socket.write(copy);
    }
    pending.length = 0;
    this.pendingBytes = 0;
    this.reportFlushed();
  }

  onFin(_conn: TcpConn): void {
    // RFC 9293 half-close: the app will send no more; the upstream may still answer.
    this.appFinished = true;
    if (!this.upstreamEnded) this.waitingSince = this.opts.clock.now();
    if (!this.socket.destroyed) {
      // The data before the FIN first.
      this.writePending();
      this.socket.end();
    }
  }

  onSendSpace(_conn: TcpConn): void {
    if (!this.upstreamEnded && !this.socket.destroyed) this.socket.resume();
  }

  onClosed(conn: TcpConn): void {
    const reason = conn.closeReason;
    if (!this.socket.destroyed) {
      if (reason !== 'fin') {
        this.pending.length = 0;
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

  // ------------------------------------------------------------ upstream leg

  /** A read of the upstream socket, for sockets built with upstreamSocketOptions (others emit 'data'). */
  onUpstreamData(chunk: Buffer): void {
    this.onSocketData(chunk);
  }

  private onSocketData(chunk: Buffer): void {
    const conn = this.conn;
    if (conn === null) return;
    this.stats.bytesUpstreamToClient += chunk.length;
    if (!conn.write(chunk)) this.socket.pause();
    this.opts.stack.wake(conn);
    this.opts.stack.flushSoon();
  }

  private onSocketEnd(): void {
    this.upstreamEnded = true;
    if (!this.appFinished) this.waitingSince = this.opts.clock.now();
    const conn = this.conn;
    if (conn === null) return;
    // The destination closed its side: our FIN follows the data still queued toward the app.
    conn.close(this.opts.clock.now());
    this.opts.stack.wake(conn);
    this.opts.stack.flushSoon();
  }

  private onSocketError(_err: Error): void {
    const conn = this.conn;
    if (conn === null) return;
    // The destination reset the connection (or its host vanished): reset the app's side too.
    conn.abort('upstream_reset', this.opts.clock.now());
    this.opts.stack.wake(conn);
    this.opts.stack.flushSoon();
  }

  /** The upstream socket's fd for TCP_INFO, or -1. */
  upstreamFd(): number {
    const handle = (this.socket as unknown as { _handle?: { fd?: number } | null })._handle;
    return handle?.fd ?? -1;
  }

  upstreamEndpoints(): { local: string; remote: string } | null {
    const s = this.socket;
    const remote = s.remoteAddress ?? (this.dialedHost !== '' ? this.dialedHost : undefined);
    if (s.localAddress === undefined || remote === undefined) return null;
    return { local: endpoint(s.localAddress, s.localPort ?? 0), remote: endpoint(remote, s.remotePort ?? this.dialedPort) };
  }

  /** Reset both legs (shutdown after the grace period). */
  abort(reason: 'shutdown' | 'idle_timeout'): void {
    const conn = this.conn;
    if (conn !== null) {
      conn.abort(reason, this.opts.clock.now());
      this.opts.stack.wake(conn);
      this.opts.stack.flushSoon();
    }
    if (!this.socket.destroyed) this.socket.resetAndDestroy();
  }

  private onSocketClose(): void {
    this.upstreamClosed = true;
    // A close without 'end' or 'error' (destroyed locally) leaves nothing to propagate.
    this.finish();
  }

  private onIdle(): void {
    const conn = this.conn;
    if (conn !== null) {
      conn.abort('idle_timeout', this.opts.clock.now());
      this.opts.stack.wake(conn);
      this.opts.stack.flushSoon();
    }
    this.socket.destroy();
  }

  /** Tell the conn how many delivered bytes have left the socket's queue (reopens the window). */
  private reportFlushed(): void {
    const conn = this.conn;
    if (conn === null) return;
    const flushed = this.delivered - this.pendingBytes - this.socket.writableLength;
    if (flushed > this.consumed) {
      const n = flushed - this.consumed;
      this.consumed = flushed;
      conn.consume(n, this.opts.clock.now());
      this.opts.stack.wake(conn);
      this.opts.stack.flushSoon();
    }
  }

  private finish(): void {
    if (this.done) return;
    if (this.conn !== null && !this.socket.destroyed) return;
    this.done = true;
    this.opts.onDone?.(this);
  }
}

function endpoint(addr: string, port: number): string {
  return addr.includes(':') ? `[${addr}]:${port}` : `${addr}:${port}`;
}
