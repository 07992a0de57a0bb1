/**
 * The deferred handshake (gVisor's forwarder pattern): every SYN the stack sees becomes a dial of
 * its original destination (or the mapped one) over a kernel socket, and the app gets its SYN-ACK
 * only once that connect succeeded. A refused destination gives the app a RST to its SYN, an
 * unreachable one an ICMP unreachable, a policy denial an ICMP "administratively prohibited": the
 * app sees what it would have seen without a proxy, never an accepted connection reset a moment later.
 */
import net from 'node:net';
import type { Clock } from '../stack/clock.js';
import type { EventHub } from '../stack/events.js';
import type { Forwarder, PendingSyn, RejectHow, Stack } from '../stack/stack.js';
import { formatAddress } from '../wire/packet.js';
import { TCP_INFO_FIELDS, TCP_INFO_STATE, tcpInfo } from '../tun/tcp-info.js';
import { Pipe, upstreamSocketOptions, type PipeOptions } from './pipe.js';
import type { DestinationPolicy } from './policy.js';

export type UpstreamResult = 'ok' | 'refused' | 'timeout' | 'unreachable' | 'error';

export interface UpstreamObserver {
  /** A kernel connect finished (metrics: synfin_upstream_connect_duration_seconds). */
  upstreamConnect?(req: PendingSyn, result: UpstreamResult, durationMs: number): void;
  /** A pipe was created for an accepted connection (the API joins both legs through it). */
  pipeOpened?(req: PendingSyn, pipe: Pipe): void;
  pipeClosed?(pipe: Pipe): void;
}

export interface ProxyOptions {
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
  observer?: UpstreamObserver;
  events?: EventHub;
}

/** Where a pending connection is being dialled, and its socket. */
interface Dial {
  socket: DialSocket;
  startedAt: number;
  /** When the dial counts as timed out (--connect-timeout), ms on the injected clock. */
  deadline: number;
  host: string;
  port: number;
  /** host as an address (null for a host name). */
  address: { family: 4 | 6; words: Uint32Array } | null;
  req: PendingSyn;
}

/** tcpi_state of an established socket (include/net/tcp_states.h). */
const TCP_ESTABLISHED = 1;
/** Upstream sockets kept built ahead of the dials that will use them. */
const SPARE_SOCKETS = 8;
/** Settled dials tolerated in the deadline queue beyond the number of live ones (trimDialQueue). */
const DIAL_QUEUE_SLACK = 64;

/** The dial an upstream socket is for, while it is being dialled (null before and after). */
const DIAL = Symbol('synfin.dial');
type DialSocket = net.Socket & { [DIAL]: { proxy: Proxy; dial: Dial } | null };

function newUpstreamSocket(): DialSocket {
  // allowHalfOpen: the app's FIN becomes our end() while the destination may still answer.
  // noDelay: set on the handle before connect(2), so the pipe's own setNoDelay finds it done and
  // no system call sits between the destination's SYN-ACK and the app's.
  // onread: how its reads are buffered (see pipe.ts).
  const socket = new net.Socket(upstreamSocketOptions() as net.SocketConstructorOpts) as DialSocket;
  socket[DIAL] = null;
  return socket;
}

// The dial's listeners: shared functions that find their dial on the socket (`this`), attached for
// the socket's life and inert once the dial is settled. Per-dial closures through once() cost
// their wrappers, and removing a socket's last listener of an event deletes a property of its
// _events object, which V8 then turns into a slower dictionary (measured: ~500 bytes per
// connection, the largest single allocation in the connection-rate benchmark's heap profile).
function onDialConnect(this: DialSocket): void {
  const d = this[DIAL];
  if (d !== null) d.proxy.dialConnected(d.dial);
}
function onDialError(this: DialSocket, err: NodeJS.ErrnoException): void {
  const d = this[DIAL];
  if (d !== null) d.proxy.dialFailed(d.dial, classify(err), err);
}

export class Proxy implements Forwarder {
  stack!: Stack;
  readonly pipes = new Set<Pipe>();
  private readonly dials = new Map<PendingSyn, Dial>();
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
  private readonly checkEarlyConnectBound = (req: PendingSyn, dial: Dial): void => this.checkEarlyConnect(req, dial);
  private readonly info = new Float64Array(TCP_INFO_FIELDS);
  /** Sockets built ahead for the next dials (no handle, no descriptor until connect). */
  private readonly spareSockets: DialSocket[] = [];
  /** What every pipe is built with (one object, one onDone for all). */
  private pipeOptions: PipeOptions | null = null;
  private readonly onPipeDoneBound = (p: Pipe): void => {
    this.pipes.delete(p);
    this.opts.observer?.pipeClosed?.(p);
  };
  private refillScheduled = false;
  private readonly refillBound = (): void => this.refillSpareSockets();

  constructor(private readonly opts: ProxyOptions) {}

  attach(stack: Stack): void {
    this.stack = stack;
  }

  get dialsInFlight(): number {
    return this.dials.size;
  }

  /** Entries of the connect-deadline queue, settled dials not yet dropped included. */
  get dialQueueSize(): number {
    return this.dialQueue.length - this.dialQueueHead;
  }

  /** Stop taking new connections (shutdown): pending SYNs are refused from now on. */
  stopAccepting(): void {
    this.accepting = false;
    this.spareSockets.length = 0;
  }

  onSyn(req: PendingSyn): void {
    const stack = this.stack;
    if (!this.accepting) {
      stack.rejectPending(req, 'refused', 'upstream_refused');
      return;
    }
    const f = req.flow;
    const original = formatAddress(f.family, f.local);
    const target = this.opts.policy.resolveAddress(f.family, f.local, original, f.localPort);
    if (target === null) {
      stack.rejectPending(req, 'prohibited', 'upstream_unreachable');
      return;
    }
    if (this.dials.size >= this.opts.maxDialsInFlight) {
      // Drop the SYN silently: the app retransmits it (RFC 9293 §3.8.1) and we try again then.
      stack.dropPendingQuietly(req);
      return;
    }
    const startedAt = this.opts.clock.now();
    const socket = this.takeSocket();
    socket.connect(
      this.opts.upstreamBind !== undefined
        ? { host: target.host, port: target.port, localAddress: this.opts.upstreamBind }
        : { host: target.host, port: target.port },
    );
    const dial: Dial = { socket, startedAt, deadline: startedAt + this.opts.connectTimeoutMs, host: target.host, port: target.port, address: target.address ?? null, req };
    this.dials.set(req, dial);
    this.dialQueue.push(dial);
    this.armDialTimer();
    socket[DIAL] = { proxy: this, dial };
    socket.on('connect', onDialConnect);
    socket.on('error', onDialError);
    // Runs after the tick in which net.connect issues connect(2) (it queued that tick first).
    process.nextTick(this.checkEarlyConnectBound, req, dial);
  }

  /**
   * A destination on this host or a veth away has often completed the handshake by the time
   * connect(2) returns: the kernel ran the peer's side in the same system call. Node would still
   * report it one event-loop turn later (epoll, then 'connect'); asking the kernel now (TCP_INFO:
   * ESTABLISHED, a read that clears nothing, unlike SO_ERROR) lets the app's SYN-ACK go out that
   * much sooner (~30 µs measured here). Node's own 'connect' follows and finds the dial settled;
   * what the pipe writes meanwhile, Node queues until then.
   */
  private checkEarlyConnect(req: PendingSyn, dial: Dial): void {
    if (this.dials.get(req) !== dial) return;
    const handle = (dial.socket as unknown as { _handle?: { fd?: number } | null })._handle;
    const fd = handle?.fd ?? -1;
    if (fd >= 0 && tcpInfo(fd, this.info) && this.info[TCP_INFO_STATE] === TCP_ESTABLISHED) this.onConnected(req, dial);
  }

  /**
   * An unconnected socket for a dial. Building a net.Socket costs ~6 µs here, on the path from the
   * app's SYN to its SYN-ACK: a few are built ahead, after the events that used them.
   */
  private takeSocket(): DialSocket {
    const socket = this.spareSockets.pop() ?? newUpstreamSocket();
    if (!this.refillScheduled) {
      this.refillScheduled = true;
      setImmediate(this.refillBound);
    }
    return socket;
  }

  private refillSpareSockets(): void {
    this.refillScheduled = false;
    while (this.accepting && this.spareSockets.length < SPARE_SOCKETS) this.spareSockets.push(newUpstreamSocket());
  }

  private armDialTimer(): void {
    if (this.dialTimer !== null) return;
    const q = this.dialQueue;
    let head = this.dialQueueHead;
    while (head < q.length && this.dials.get(q[head]!.req) !== q[head]) head++;
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
        if (this.dials.get(dial.req) === dial) {
          if (dial.deadline > now) break;
          this.onDialFailed(dial.req, dial, 'timeout', null);
        }
        this.dialQueueHead++;
      }
    } finally {
      this.expiringDials = false;
    }
    this.trimDialQueue();
    this.armDialTimer();
  }

  onSynAborted(req: PendingSyn): void {
    const dial = this.dials.get(req);
    if (dial === undefined) return;
    this.settle(dial);
    dial.socket.destroy();
  }

  /** The dial is over, whichever way: its socket's dial listeners go inert. */
  private settle(dial: Dial): void {
    this.dials.delete(dial.req);
    dial.socket[DIAL] = null;
    this.trimDialQueue();
  }

  /**
   * Settled dials stay in the deadline queue until the timer passes them, and each one holds its
   * socket, pipe and SYN: with a 10 s connect timeout that kept the last 10 s of connections
   * reachable (a heap snapshot 5 s into the benchmark's connection workload: 20,281 sockets for
   * 178 live connections; heap peak 122 MB, 36 MB without them). Once settled entries outnumber
   * live dials (plus slack), keep only the live ones.
   */
  private trimDialQueue(): void {
    if (this.expiringDials) return;
    const q = this.dialQueue;
    const queued = q.length - this.dialQueueHead;
    if (queued - this.dials.size <= this.dials.size + DIAL_QUEUE_SLACK) return;
    let k = 0;
    for (let i = this.dialQueueHead; i < q.length; i++) {
      const dial = q[i]!;
      if (this.dials.get(dial.req) === dial) q[k++] = dial;
    }
    q.length = k;
    this.dialQueueHead = 0;
  }

  /** Node's 'connect' for a dial (see onDialConnect). */
  dialConnected(dial: Dial): void {
    this.onConnected(dial.req, dial);
  }

  /** A dial's socket failed before it connected (see onDialError). */
  dialFailed(dial: Dial, result: UpstreamResult, err: Error): void {
    this.onDialFailed(dial.req, dial, result, err);
  }

  private onConnected(req: PendingSyn, dial: Dial): void {
    if (this.dials.get(req) !== dial) return;
    this.settle(dial);
    const socket = dial.socket;
    this.opts.observer?.upstreamConnect?.(req, 'ok', this.opts.clock.now() - dial.startedAt);
    this.pipeOptions ??= {
      stack: this.stack,
      clock: this.opts.clock,
      idleTimeoutMs: this.opts.idleTimeoutMs,
      onDone: this.onPipeDoneBound,
    };
    const pipe = new Pipe(socket, this.pipeOptions);
    pipe.id = req.id;
    pipe.dialedHost = dial.host;
    pipe.dialedPort = dial.port;
    pipe.dialedAddress = dial.address;
    const conn = this.stack.acceptPending(req, pipe);
    if (conn === null) {
      socket.destroy();
      return;
    }
    pipe.conn = conn;
    this.pipes.add(pipe);
    this.opts.observer?.pipeOpened?.(req, pipe);
  }

  private onDialFailed(req: PendingSyn, dial: Dial, result: UpstreamResult, _err: Error | null): void {
    if (this.dials.get(req) !== dial) return;
    this.settle(dial);
    dial.socket.destroy();
    this.opts.observer?.upstreamConnect?.(req, result, this.opts.clock.now() - dial.startedAt);
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
    for (const [req, dial] of this.dials) {
      dial.socket[DIAL] = null;
      dial.socket.destroy();
      this.stack.rejectPending(req, 'refused', 'upstream_refused');
    }
    this.dials.clear();
  }
}

function classify(err: NodeJS.ErrnoException): UpstreamResult {
  switch (err.code) {
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
