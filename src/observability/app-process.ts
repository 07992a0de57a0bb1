/**
 * Which process holds the app's socket (`appProcess` in /api/connections, the live page and the
 * flight recorder): pid, command and file descriptor, as `ss -tnp` prints them.
 *
 * Where synfin shares the app's network namespace, the app's socket is in synfin's kernel table
 * (kernel-sockets.ts), and sock_diag names its inode. The owner is the process with a file
 * descriptor linking to `socket:[INODE]` in /proc/PID/fd (fs/proc/fd.c): found the way ss and
 * lsof find it, by reading the fd tables of every process synfin can see. That needs the app's
 * processes in synfin's pid namespace (Kubernetes `shareProcessNamespace: true`, or one pid
 * namespace for both), and reading another user's fd table needs the same uid or CAP_SYS_PTRACE
 * (a ptrace read check, proc_fd_access_allowed), which the user grants on purpose (--keep-sys-ptrace).
 *
 * Cost: a walk reads one link per open file of every visible process; it runs in libuv's thread
 * pool (native/socket-owners/), never on the event loop, and only for the sockets asked for (the
 * rows an API call returns, the connections waiting on the app). Owners are cached by inode.
 * A socket not yet known is first looked for among the processes that held app sockets before,
 * or any socket at the last walk (a few fd tables: the same app's next connection, or the next
 * slice of an API page); the walk of every process runs at most once
 * per `minWalkIntervalMs` (5 s), and an inode it did not find is not looked for again before the
 * next one.
 */
import { loadAddon, type NativeSocketOwners } from '../native/addon.js';

/**
 * Where `appProcess` comes from, or why it is null:
 * - `kernel`: read from /proc/PID/fd (the socket's inode from the kernel's socket table);
 * - `not_visible`: the socket is in synfin's table, but no process synfin can see holds it (the
 *   app runs in another pid namespace: no shareProcessNamespace);
 * - `not_permitted`: no readable fd table holds it, and some could not be read (another uid,
 *   and synfin has no CAP_SYS_PTRACE);
 * - `no_socket`: no such socket in synfin's kernel table (the app is in another network
 *   namespace, or the socket is gone);
 * - `inferred`: the socket is in the kernel, but no file holds it any more (inode 0: the app
 *   closed it and the kernel finishes the close alone, or TIME_WAIT): there is no process to read,
 *   only the app's close to infer;
 * - `pending`: not looked for yet (opened after the last walk of every process, which runs at
 *   most once per 5 s).
 */
export const APP_PROCESS_SOURCES = ['kernel', 'not_visible', 'not_permitted', 'no_socket', 'inferred', 'pending'] as const;
export type AppProcessSource = (typeof APP_PROCESS_SOURCES)[number];

export interface AppProcess {
  pid: number;
  /** /proc/PID/comm: the name ss prints (at most 15 bytes). */
  command: string;
  fd: number;
}

export interface AppProcessInfo {
  appProcess: AppProcess | null;
  appProcessSource: AppProcessSource;
}

/** A walk of every visible process at most this often. */
export const MIN_WALK_INTERVAL_MS = 5000;
/** Owners not asked for in this long are forgotten. */
const CACHE_TTL_MS = 60_000;
/** Processes remembered as holders of app sockets (read first for a socket not yet known). */
const MAX_KNOWN_OWNERS = 64;
/** Processes holding any socket at the last walk of every process, read next (an API page resolved in slices finds its later rows' owners there). */
const MAX_SOCKET_HOLDERS = 256;

export const NO_SOCKET: AppProcessInfo = Object.freeze({ appProcess: null, appProcessSource: 'no_socket' });
export const ORPHANED: AppProcessInfo = Object.freeze({ appProcess: null, appProcessSource: 'inferred' });
export const PENDING: AppProcessInfo = Object.freeze({ appProcess: null, appProcessSource: 'pending' });

/** The native walk as a promise (tests substitute it). */
export type FindOwners = (procRoot: string, inodes: Float64Array, pids: Int32Array | null) => Promise<NativeSocketOwners>;

export function nativeFindOwners(procRoot: string, inodes: Float64Array, pids: Int32Array | null): Promise<NativeSocketOwners> {
  return new Promise((resolve, reject) => {
    loadAddon().findSocketOwners(procRoot, inodes, pids, (err, r) => (err === null ? resolve(r) : reject(err)));
  });
}

export interface SocketOwnersOptions {
  /** Where the processes are (default /proc; tests point it elsewhere). */
  procRoot?: string;
  minWalkIntervalMs?: number;
  find?: FindOwners;
}

interface Entry {
  info: AppProcessInfo;
  usedAt: number;
}

/** What one walk read, for the README's cost figures and tests. */
export interface WalkStats {
  full: boolean;
  processes: number;
  denied: number;
  fds: number;
  ms: number;
}

export class SocketOwners {
  private readonly procRoot: string;
  private readonly minWalkIntervalMs: number;
  private readonly find: FindOwners;
  private readonly cache = new Map<number, Entry>();
  /** Pids that held an app socket, with when they last did. */
  private readonly owners = new Map<number, number>();
  /** Pids that held any socket at the last walk of every process. */
  private socketHolders: Int32Array = new Int32Array(0);
  private lastFullWalkAt = -Infinity;
  private lastPruneAt = 0;
  private pending: Promise<void> | null = null;
  /** Walks of every process, and of the known owners only. */
  fullWalks = 0;
  ownerWalks = 0;
  lastWalk: WalkStats | null = null;
  lastError: Error | null = null;

  constructor(
    private readonly now: () => number,
    opts: SocketOwnersOptions = {},
  ) {
    this.procRoot = opts.procRoot ?? '/proc';
    this.minWalkIntervalMs = opts.minWalkIntervalMs ?? MIN_WALK_INTERVAL_MS;
    this.find = opts.find ?? nativeFindOwners;
  }

  /** Cached owners (inodes found or not found). */
  get size(): number {
    return this.cache.size;
  }

  /**
   * What is known of a socket from its inode in the kernel's table (-1: not there, 0: held by no
   * file), from the cache: never reads /proc.
   */
  lookup(inode: number): AppProcessInfo {
    if (inode < 0) return NO_SOCKET;
    if (inode === 0) return ORPHANED;
    const e = this.cache.get(inode);
    if (e === undefined) return PENDING;
    e.usedAt = this.now();
    return e.info;
  }

  /**
   * Look for the owners of `inodes` not yet known (see the module's comment for how often).
   * Concurrent callers share walks. Never rejects: see lastError.
   */
  async resolve(inodes: Iterable<number>): Promise<void> {
    while (this.pending !== null) await this.pending;
    const now = this.now();
    const fullDue = now - this.lastFullWalkAt >= this.minWalkIntervalMs;
    const want: number[] = [];
    const seen = new Set<number>();
    for (const inode of inodes) {
      if (inode <= 0 || seen.has(inode)) continue;
      seen.add(inode);
      const e = this.cache.get(inode);
      // Found owners are kept; one not found is looked for again by the next walk of every process.
      if (e === undefined || (e.info.appProcess === null && fullDue)) want.push(inode);
    }
    if (want.length === 0) return;
    const walk = this.walk(want).finally(() => {
      this.pending = null;
    });
    this.pending = walk;
    await walk;
  }

  private async walk(want: number[]): Promise<void> {
    let left = want;
    try {
      if (this.owners.size > 0 || this.socketHolders.length > 0) {
        const pids = Int32Array.from(new Set([...this.owners.keys(), ...this.socketHolders]));
        const t0 = performance.now();
        const r = await this.find(this.procRoot, Float64Array.from(left), pids).catch((err: unknown) => {
          this.lastError = err as Error;
          return null;
        });
        this.ownerWalks++;
        if (r !== null) {
          this.lastWalk = { full: false, processes: r.processes, denied: r.denied, fds: r.fds, ms: performance.now() - t0 };
          left = this.record(left, r, false);
        }
      }
      if (left.length === 0 || this.now() - this.lastFullWalkAt < this.minWalkIntervalMs) return;
      this.lastFullWalkAt = this.now();
      const t0 = performance.now();
      const r = await this.find(this.procRoot, Float64Array.from(left), null).catch((err: unknown) => {
        // No /proc to walk (not mounted, or refused as a whole): no process is visible.
        this.lastError = err as Error;
        return { pid: new Int32Array(left.length), fd: new Int32Array(left.length).fill(-1), command: [], processes: 0, denied: 0, fds: 0, socketHolders: new Int32Array(0) };
      });
      this.fullWalks++;
      this.lastWalk = { full: true, processes: r.processes, denied: r.denied, fds: r.fds, ms: performance.now() - t0 };
      this.socketHolders = r.socketHolders.length > MAX_SOCKET_HOLDERS ? r.socketHolders.slice(0, MAX_SOCKET_HOLDERS) : r.socketHolders;
      this.record(left, r, true);
    } catch (err) {
      this.lastError = err as Error;
    } finally {
      this.prune();
    }
  }

  /** Caches what a walk found; returns the inodes it did not find. Those of a full walk are cached as not found. */
  private record(inodes: number[], r: NativeSocketOwners, full: boolean): number[] {
    const now = this.now();
    const missing: number[] = [];
    for (let i = 0; i < inodes.length; i++) {
      const inode = inodes[i]!;
      const pid = r.pid[i]!;
      if (pid > 0) {
        const info: AppProcessInfo = { appProcess: { pid, command: r.command[i] ?? '', fd: r.fd[i]! }, appProcessSource: 'kernel' };
        this.cache.set(inode, { info, usedAt: now });
        this.owners.delete(pid);
        this.owners.set(pid, now);
        continue;
      }
      missing.push(inode);
      if (full) {
        const source: AppProcessSource = r.denied > 0 ? 'not_permitted' : 'not_visible';
        this.cache.set(inode, { info: { appProcess: null, appProcessSource: source }, usedAt: now });
      }
    }
    while (this.owners.size > MAX_KNOWN_OWNERS) this.owners.delete(this.owners.keys().next().value!);
    return missing;
  }

  /** Forget owners nobody asked for lately, and processes that held no app socket lately. */
  private prune(): void {
    const now = this.now();
    if (now - this.lastPruneAt < this.minWalkIntervalMs) return;
    this.lastPruneAt = now;
    for (const [inode, e] of this.cache) if (now - e.usedAt > CACHE_TTL_MS) this.cache.delete(inode);
    for (const [pid, at] of this.owners) if (now - at > CACHE_TTL_MS) this.owners.delete(pid);
  }
}
