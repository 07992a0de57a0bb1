/**
 * synfin's one native binding (native/, built by `node-gyp rebuild` into build/Release/synfin.node):
 * the TUN device (native/device), the upstream sockets (native/upstream), TCP_INFO and getsockname
 * of a socket (native/sockets), the kernel's socket table (native/socket-table) and capabilities
 * (native/process). This file is its TypeScript face and loader; it knows nothing of its users.
 */
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { SynfinError } from '../errors.js';

/** An open TUN fd as the addon exposes it. */
export interface NativeTunDevice {
  readonly fd: number;
  /** The name the kernel gave the device (a `%d` in the requested name is expanded). */
  readonly name: string;
  readonly vnetHdr: boolean;
  /** The device was opened with IFF_MULTI_QUEUE: this fd is one of its queues. */
  readonly multiQueue: boolean;
  /**
   * Poll the fd for reading on the event loop. On readable, packets are read into `batch` slot by
   * slot (slot i at i * slotSize, length into lengths[i], vnet header included) until EAGAIN or
   * `maxPackets`, then onBatch(count) is called once; repeated up to a few batches per event.
   * A read error other than EAGAIN/EINTR stops reading and is passed to onError.
   */
  startReading(
    batch: Buffer,
    lengths: Int32Array,
    slotSize: number,
    maxPackets: number,
    onBatch: (count: number) => void,
    onError: (err: NodeJS.ErrnoException) => void,
  ): void;
  stopReading(): void;
  /**
   * One write() per packet of ring slots start, start+1, … (modulo the ring length). Returns the
   * number of packets consumed (written or refused); `result` receives
   * [written, refused, errno of the last refused packet, 1 if it stopped at EAGAIN, bytes written].
   */
  writeBatch(
    buf: Buffer,
    offsets: Int32Array,
    lengths: Int32Array,
    start: number,
    count: number,
    result: Int32Array,
    /** Payload views per slot (Tun.txAttach): written after the slot's bytes with one writev(). */
    views?: readonly (Buffer | undefined)[],
    viewOffsets?: Int32Array,
    viewLengths?: Int32Array,
    viewCounts?: Int32Array,
  ): number;
  /**
   * The tx ring writeBound writes from, given once (the device keeps a reference to each array):
   * writeBatch's arrays in its order, without start and count.
   */
  bindTx(
    buf: Buffer,
    offsets: Int32Array,
    lengths: Int32Array,
    result: Int32Array,
    views?: readonly (Buffer | undefined)[],
    viewOffsets?: Int32Array,
    viewLengths?: Int32Array,
    viewCounts?: Int32Array,
  ): void;
  /** writeBatch over the ring given to bindTx: two numbers to pass, not ten arrays to look up. */
  writeBound(start: number, count: number): number;
  /** One-shot: cb runs once the fd is writable. */
  onWritable(cb: () => void): void;
  /** Let an active device keep the event loop alive (the default), or not. */
  ref(): void;
  unref(): void;
  /** Stop polling and close the fd. Idempotent. */
  close(): void;
}

/**
 * The kernel's TCP sockets of this namespace and the tuples synfin watches in it
 * (native/socket-table/socket-table.cc). A tuple is a Uint32Array of 11: [family 4|6, four local address
 * words, local port, four remote address words, remote port], words in network order (an IPv4
 * address in word 3).
 */
export interface NativeSocketTable {
  /** Watch connection `id`'s live upstream socket. */
  watch(id: number, tuple: Uint32Array): void;
  /** Connection `id`'s upstream socket closed at `nowMs`: still watched for its TIME_WAIT, for a while. */
  release(id: number, nowMs: number): void;
  /**
   * Watch and release calls queued in `ops` (14 numbers each: [1, id, 0, the tuple's 11 words]
   * for a watch, [2, id, nowMs, …] for a release), applied in order in one call.
   */
  apply(ops: Float64Array, count: number): void;
  /** Dump the kernel's table in the thread pool; `done` runs on the event loop once it is swapped in. One at a time. */
  refresh(nowMs: number, done: (err: Error | null) => void): void;
  /** Watched sockets by kernel state number (out[1] = ESTABLISHED ... out[12]) as of the last refresh. */
  counts(out: Float64Array): void;
  /** The kernel state number of one socket in the last snapshot, 0 if absent. */
  stateOf(tuple: Uint32Array): number;
  /** One socket's inode in the last snapshot: 0 when no file holds it (an orphan, TIME_WAIT), -1 if absent. */
  inodeOf(tuple: Uint32Array): number;
  readonly size: number;
  readonly watched: number;
  readonly source: 'sock_diag' | 'proc' | 'none';
}

/** findSocketOwners' answer: per wanted inode (same index) its owner's pid (0: none found), fd (-1) and command (null). */
export interface NativeSocketOwners {
  pid: Int32Array;
  fd: Int32Array;
  command: (string | null)[];
  /** Processes whose fd table was read. */
  processes: number;
  /** Processes whose fd table could not be read (EACCES: another uid, without CAP_SYS_PTRACE). */
  denied: number;
  /** File descriptors read. */
  fds: number;
  /** Processes read that hold at least one socket (where the next socket of an app may be). */
  socketHolders: Int32Array;
}

/** The epoll set of the proxy's upstream sockets, polled on the event loop (native/upstream/upstream.cc). */
export interface NativeUpstreamPoller {
  readonly epfd: number;
  /** Keep the event loop alive while sockets are open (the default), or not. */
  ref(): void;
  unref(): void;
  /** Stop polling and close the epoll fd (not the sockets). Idempotent. */
  close(): void;
}

/** The io array of upstreamConnectIo and upstreamRegisterIo (native/upstream/upstream.cc kIo*): where each number goes. */
export const UPSTREAM_IO_FAMILY = 0;
export const UPSTREAM_IO_WORDS = 1;
export const UPSTREAM_IO_PORT = 5;
export const UPSTREAM_IO_BIND_FAMILY = 6;
export const UPSTREAM_IO_BIND_WORDS = 7;
export const UPSTREAM_IO_OUT = 11;
/** Its length (the addon's UPSTREAM_IO_LENGTH). */
export const UPSTREAM_IO_LENGTH = 18;
export const UPSTREAM_CONNECT_REGISTER_NOW = 1;
export const UPSTREAM_CONNECT_RECHECK = 2;

export interface NativeAddon {
  /** events receives [slot, generation, epoll mask] per ready socket; onEvents(count) once per epoll_wait. */
  UpstreamPoller: { new (events: Int32Array, onEvents: (count: number) => void): NativeUpstreamPoller; readonly MAX_EVENTS: number };
  /**
   * The io array of upstreamConnectIo and upstreamRegisterIo from now on (UPSTREAM_IO_*; one per
   * environment: a worker's is its own). Through it they take a few integers, not twelve arguments
   * and two typed arrays read back on every call (~0.3 us of user time each).
   */
  upstreamBindIo(io: Uint32Array): void;
  /**
   * A non-blocking TCP socket (TCP_NODELAY with its first upstreamWrite or upstreamWritev; `fd` if
   * one was made ahead by upstreamSocket, else a new one for -1) connecting to the destination in
   * the bound io array (family, four words, port; bound when its bind family is 4 or 6, to its four
   * words), added to epfd under slot and generation. Its fd, or -errno (`fd` is closed then).
   * io[UPSTREAM_IO_OUT..] receives [1 if ESTABLISHED already, the local family, four words, port].
   * Without UPSTREAM_CONNECT_REGISTER_NOW, a socket ESTABLISHED within connect(2) is not added nor
   * its local end read (out[0] 2, the rest 0): upstreamRegisterIo does both later. With
   * UPSTREAM_CONNECT_RECHECK, one still connecting once registered has TCP_INFO read again.
   */
  upstreamConnectIo(epfd: number, slot: number, generation: number, fd: number, flags: number): number;
  /** The rest of a connect made without UPSTREAM_CONNECT_REGISTER_NOW: epoll ADD, getsockname into io[UPSTREAM_IO_OUT + 1..]. 0 or -errno (the socket stays open). */
  upstreamRegisterIo(epfd: number, fd: number, slot: number, generation: number): number;
  readonly UPSTREAM_IO_LENGTH: number;
  /** A new non-blocking TCP socket (TCP_NODELAY with its first upstreamWrite or upstreamWritev), not connected: its fd, or -errno. */
  upstreamSocket(family: 4 | 6): number;
  /** SO_ERROR (cleared by the read): 0 or an errno. */
  upstreamSocketError(fd: number): number;
  /** read(2): bytes, 0 at EOF, or -errno. */
  upstreamRead(fd: number, buf: Buffer, offset: number, length: number): number;
  /** The buffer upstreamReadBound reads into from now on (kept alive by the addon). */
  upstreamBindReadBuffer(buf: Buffer): void;
  /** read(2) into the whole bound buffer: bytes, 0 at EOF, or -errno. */
  upstreamReadBound(fd: number): number;
  /**
   * writev(2) of chunks[first..first+count) (at most 64): bytes written or -errno. With noDelay
   * (the socket's second write: UpstreamSocket.nagle), TCP_NODELAY is set before it.
   */
  upstreamWritev(fd: number, chunks: readonly Buffer[], first: number, count: number, noDelay?: boolean): number;
  /** The socket's TCP_NODELAY: 1 or 0, or -errno (tests, diagnostics). */
  upstreamNoDelay(fd: number): number;
  /** write(2) of one Buffer: bytes written or -errno (upstreamWritev of one chunk, without the array; noDelay as there). */
  upstreamWrite(fd: number, buf: Buffer, noDelay?: boolean): number;
  /** shutdown(SHUT_WR): 0 or -errno. */
  upstreamShutdown(fd: number): number;
  /** close(2), with SO_LINGER 0 first (a RST) when reset: 0 or -errno. */
  upstreamClose(fd: number, reset: boolean): number;
  /** Opens /dev/net/tun and attaches to (or creates) `name`; with `fd`, adopts that TUN fd instead (src/tun/caps.ts). */
  open(name: string, opts: { vnetHdr: boolean; multiQueue?: boolean; fd?: number; dup?: boolean }): NativeTunDevice;
  /**
   * The calling thread keeps only the capabilities numbered in `keep` (and holds): bounding set
   * (when CAP_SETPCAP allows), ambient, inheritable, permitted, effective; sets no_new_privs.
   * Other threads are untouched: see native/process/caps.cc for why an exec follows.
   */
  dropCapabilities(keep: readonly number[]): void;
  /** execve(2) with `keepFd` (one fd or several) left open across it; throws the errno when it fails (never returns otherwise). */
  execve(file: string, argv: readonly string[], env: readonly string[], keepFd: number | readonly number[]): never;
  tcpInfo(fd: number, out: Float64Array): boolean;
  localEndpoint(fd: number, out: Uint32Array): boolean;
  /** `netnsPath`: read that network namespace's table instead (sock_diag; needs CAP_SYS_ADMIN at construction). */
  SocketTable: new (closedMemoryMs: number, maxClosed: number, forceProc: boolean, netnsPath?: string) => NativeSocketTable;
  /**
   * The processes holding the sockets `inodes` (native/socket-owners/socket-owners.cc): walks
   * `procRoot`'s processes (only `pids` when given) in the thread pool, reading /proc/PID/fd.
   */
  findSocketOwners(procRoot: string, inodes: Float64Array, pids: Int32Array | null, done: (err: Error | null, r: NativeSocketOwners) => void): void;
  readonly IFNAMSIZ: number;
  readonly VNET_HDR_LEN: number;
}

const here = path.dirname(fileURLToPath(import.meta.url));
// src/native/ in development and tests, dist/native/ once compiled: both sit two levels below the root.
const addonPath = path.resolve(here, '..', '..', 'build', 'Release', 'synfin.node');

let addon: NativeAddon | undefined;

/** Loads the addon on first use (so modules that only import types never need it built). */
export function loadAddon(): NativeAddon {
  if (addon === undefined) {
    const require = createRequire(import.meta.url);
    try {
      // A copy with fast properties: the addon's exports object is created property by property
      // from C++ and V8 keeps it in dictionary mode, so every `native.upstreamRead` and the like
      // on the data path was a LoadIC call the optimizer could not inline (a profile's
      // Builtins_LoadIC under readAvailable, onEvents and the upstream write). The spread's
      // object literal gets a map like any other.
      addon = { ...(require(addonPath) as NativeAddon) };
    } catch (err) {
      throw new SynfinError(
        'ERR_TUN_ADDON',
        `cannot load the native addon ${addonPath} (run npm ci, or npx node-gyp rebuild): ${(err as Error).message}`,
        { cause: err },
      );
    }
  }
  return addon;
}

/** Path of the compiled addon, for child processes that load it directly. */
export const ADDON_PATH = addonPath;
