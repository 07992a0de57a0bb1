/**
 * The process-wide buffer budget (--memory-limit): one small accounting object that every buffer
 * of every connection is charged to, and that says when to stop taking more.
 *
 * What is charged (`MemoryKind`): bytes the receivers hold (delivered to the proxy and not yet
 * taken by the upstream socket, `receive`), reassembly blocks of out-of-order data
 * (`reassembly`), bytes read from destinations and not yet acknowledged by the app (`send`), and
 * the read buffers the upstream sockets own (`upstream`). Charges are the bytes really allocated
 * (whole reassembly blocks, whole pooled read buffers), so `used` is what the connections cost in
 * buffers, not what they carry.
 *
 * Three marks, as Linux's tcp_mem (pressure) and sk_rmem_schedule (per-socket minimum):
 * - below `softMark` (5/8 of the limit) nothing is held back;
 * - at or above it the budget is under pressure: receivers stop moving their right edges for
 *   connections holding `CONN_FLOOR` or more (`CONN_MINIMUM` past 3/4; the edge already advertised is never retracted,
 *   RFC 9293 §3.8.6.2.2 / RFC 7323 §2.4: the window closes as data arrives), upstream sockets of
 *   such connections are not read, and new SYNs are refused with RST (drop reason memory_limit);
 * - `tryCharge` refuses a charge that would take `used` past 3/4 of the limit, or past the limit
 *   itself for a connection still holding less than `CONN_FLOOR`: the last quarter is kept for
 *   small connections (and for what the runtime itself takes with traffic: garbage not yet
 *   collected, a young generation that grows with the allocation rate; see BENCHMARKS.md).
 * - A connection that holds less than `CONN_MINIMUM` in one direction may always take in-order
 *   bytes or read its destination (`chargeMinimum`; Linux's sk_rmem_schedule grants tcp_rmem[0]
 *   the same way): a connection that moves its bytes on keeps moving while others sit on the
 *   budget. This is the one way past the limit, bounded by connections × CONN_MINIMUM per
 *   direction (what README "Limits" sizes with --max-connections).
 * What is refused is a segment dropped (the peer retransmits it), never memory taken unaccounted.
 * Bytes that already exist are charged without asking (`charge`: a read the kernel already
 * handed over, in-order bytes moving out of the reassembly blocks).
 *
 * Pure: no clock, no I/O, no timers. Whoever paused something for memory registers a `Relief`
 * and is told once `used` falls back below `resumeMark`.
 */
import { MemoryLimitError } from '../errors.js';

export const MemoryKind = {
  RECEIVE: 0,
  REASSEMBLY: 1,
  SEND: 2,
  UPSTREAM: 3,
} as const;
export type MemoryKind = (typeof MemoryKind)[keyof typeof MemoryKind];
export const MEMORY_KIND_NAMES = ['receive', 'reassembly', 'send', 'upstream'] as const;

/**
 * What one connection may always hold per direction while the budget is under pressure (and
 * charge into the last eighth of the limit): 64 KiB, one unscaled window (RFC 9293 §3.1).
 */
export const CONN_FLOOR = 64 * 1024;
/** What one connection may always hold per direction, whatever the budget (see chargeMinimum). */
export const CONN_MINIMUM = 16 * 1024;

/** Told when memory is available again after a pause for memory. */
export interface Relief {
  onMemoryRelief(): void;
}

export class MemoryBudget {
  readonly limit: number;
  /** Pressure starts here (5/8): windows stop growing, reads pause, new connections are refused. */
  readonly softMark: number;
  /** Connections holding CONN_FLOOR or more are refused beyond this (3/4 of the limit). */
  readonly bulkMark: number;
  /** Paused work resumes once `used` is back below this (1/2). */
  readonly resumeMark: number;
  /** Bytes charged now, in all. */
  used: number;
  /** The most ever charged at once. */
  peak: number;
  /** Charges refused (segments dropped, for tests and logs). */
  refused: number;
  /** Bytes released since the start (what may now be garbage awaiting collection). */
  releasedTotal: number;
  private readonly byKind: Float64Array;
  private readonly waiting = new Set<Relief>();

  constructor(limit: number) {
    if (!Number.isFinite(limit) || limit <= 0) throw new MemoryLimitError(`memory limit ${limit} must be > 0`);
    this.limit = limit;
    this.softMark = Math.floor(limit * 0.625);
    this.bulkMark = Math.floor(limit * 0.75);
    this.resumeMark = Math.floor(limit * 0.5);
    this.used = 0;
    this.peak = 0;
    this.refused = 0;
    this.releasedTotal = 0;
    this.byKind = new Float64Array(MEMORY_KIND_NAMES.length);
  }

  /** Bytes charged now of one kind. */
  usedBy(kind: MemoryKind): number {
    return this.byKind[kind]!;
  }

  /** Under pressure: at or above the soft mark. */
  get pressure(): boolean {
    return this.used >= this.softMark;
  }

  /** Whether a new connection may be admitted (RST with memory_limit otherwise). */
  admits(): boolean {
    return this.used < this.softMark;
  }

  /**
   * The most a connection holding `held` bytes may hold in all after a new window, or Infinity
   * when the budget is not under pressure.
   */
  growthCap(held: number): number {
    if (this.used < this.softMark) return Infinity;
    // Past the bulk mark (3/4) only the per-connection minimum is offered: what the window lets in
    // then is what chargeMinimum will take (a larger window would invite segments to drop).
    const floor = this.used < this.bulkMark ? CONN_FLOOR : CONN_MINIMUM;
    return held < floor ? floor : held;
  }

  /** Whether a connection holding `held` bytes should stop reading its upstream socket. */
  shouldPause(held: number): boolean {
    if (this.used >= this.limit) return held >= CONN_MINIMUM;
    return this.used >= this.softMark && held >= CONN_FLOOR;
  }

  /**
   * Charge `n` bytes for a connection holding `held` in this direction when that stays within
   * CONN_MINIMUM, whatever the budget says (the per-connection minimum); false otherwise.
   */
  chargeMinimum(kind: MemoryKind, n: number, held: number): boolean {
    if (held + n > CONN_MINIMUM) return false;
    this.charge(kind, n);
    return true;
  }

  /**
   * Charge `n` bytes for a connection that holds `held` already, if the budget allows (see the
   * module comment); false, and nothing charged, otherwise.
   */
  tryCharge(kind: MemoryKind, n: number, held: number): boolean {
    const mark = held + n <= CONN_FLOOR ? this.limit : this.bulkMark;
    if (this.used + n > mark) {
      this.refused++;
      return false;
    }
    this.charge(kind, n);
    return true;
  }

  /** Charge bytes that already exist (they must be accounted for whatever the budget says). */
  charge(kind: MemoryKind, n: number): void {
    if (n <= 0) return;
    this.byKind[kind] = this.byKind[kind]! + n;
    this.used += n;
    if (this.used > this.peak) this.peak = this.used;
  }

  release(kind: MemoryKind, n: number): void {
    if (n <= 0) return;
    this.byKind[kind] = this.byKind[kind]! - n;
    this.used -= n;
    this.releasedTotal += n;
    if (this.waiting.size > 0 && this.used < this.resumeMark) this.relieve();
  }

  /** Tell `r` (once) when memory is available again. */
  waitForRelief(r: Relief): void {
    this.waiting.add(r);
  }

  cancelRelief(r: Relief): void {
    this.waiting.delete(r);
  }

  private relieve(): void {
    const list = [...this.waiting];
    this.waiting.clear();
    for (const r of list) r.onMemoryRelief();
  }
}

/** Without --memory-limit and without a cgroup limit: a fixed 256 MiB. */
export const DEFAULT_MEMORY_LIMIT = 256 * 1024 * 1024;
/** With a cgroup limit: half of it (the rest is Node.js itself, connection state and the kernel's share). */
export const CGROUP_SHARE = 0.5;

const UNITS: Record<string, number> = {
  '': 1,
  b: 1,
  k: 1024,
  kb: 1000,
  kib: 1024,
  m: 1024 ** 2,
  mb: 1000 ** 2,
  mib: 1024 ** 2,
  g: 1024 ** 3,
  gb: 1000 ** 3,
  gib: 1024 ** 3,
};

/** "64MiB", "512M", "1GiB", "65536" → bytes; NaN when it is none of these. */
export function parseByteSize(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(text);
  if (m === null) return NaN;
  const unit = UNITS[m[2]!.toLowerCase()];
  if (unit === undefined) return NaN;
  return Math.floor(Number(m[1]) * unit);
}

/**
 * The cgroup's memory limit in bytes, or null when there is none: cgroup v2 memory.max ("max" =
 * none) of the process's own cgroup (/proc/self/cgroup "0::/PATH"; in a container with its own
 * cgroup namespace PATH is "/"), else cgroup v1 memory.limit_in_bytes of its memory cgroup
 * ("N:memory:/PATH"; a huge value = none).
 * `read` returns a file's text or null (injected for tests).
 */
export function cgroupMemoryLimit(read: (path: string) => string | null): number | null {
  const cgroups = read('/proc/self/cgroup') ?? '';
  const own = /^0::(\/.*)$/m.exec(cgroups)?.[1];
  const dir = own === undefined || own === '/' ? '' : own.replace(/\/+$/, '');
  const v2 = (dir !== '' ? read(`/sys/fs/cgroup${dir}/memory.max`) : null) ?? read('/sys/fs/cgroup/memory.max');
  if (v2 !== null) {
    const t = v2.trim();
    if (t === 'max' || t === '') return null;
    const n = Number(t);
    return Number.isFinite(n) && n > 0 ? n : null;
  }
  const ownV1 = /^\d+:(?:[^:]*,)?memory(?:,[^:]*)?:(\/.*)$/m.exec(cgroups)?.[1];
  const dirV1 = ownV1 === undefined || ownV1 === '/' ? '' : ownV1.replace(/\/+$/, '');
  const v1 = (dirV1 !== '' ? read(`/sys/fs/cgroup/memory${dirV1}/memory.limit_in_bytes`) : null) ?? read('/sys/fs/cgroup/memory/memory.limit_in_bytes');
  if (v1 !== null) {
    const n = Number(v1.trim());
    // v1 says "no limit" with PAGE_COUNTER_MAX pages (9223372036854771712 on 64-bit).
    return Number.isFinite(n) && n > 0 && n < 2 ** 60 ? n : null;
  }
  return null;
}

/** The default --memory-limit: CGROUP_SHARE of the cgroup's limit, or DEFAULT_MEMORY_LIMIT. */
export function defaultMemoryLimit(read: (path: string) => string | null): { bytes: number; source: 'cgroup' | 'default' } {
  const cg = cgroupMemoryLimit(read);
  if (cg !== null) return { bytes: Math.floor(cg * CGROUP_SHARE), source: 'cgroup' };
  return { bytes: DEFAULT_MEMORY_LIMIT, source: 'default' };
}
