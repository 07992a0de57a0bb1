/**
 * The kernel's TCP sockets of this network namespace (/proc/net/tcp and tcp6), as a snapshot read
 * off the event loop: "local>remote" → kernel state name.
 *
 * Why a snapshot and an asynchronous read: with 10,000 sockets the kernel takes some 20-30 ms to
 * render /proc/net/tcp, and a synchronous read would stall every connection for that long on
 * every scrape, API call and live-page update. The read runs in libuv's thread pool; parsing is
 * fixed-column (the kernel prints fixed-width hex, net/ipv4/tcp_ipv4.c get_tcp4_sock) with no
 * regular expression per line. Concurrent refreshes share one read.
 */
import fs from 'node:fs';
import { formatEndpoint } from '../wire/packet.js';
import type { KERNEL_TCP_STATES } from './metrics.js';

export type KernelState = (typeof KERNEL_TCP_STATES)[number];

/** /proc/net/tcp `st` field (include/net/tcp_states.h), by its numeric value. */
const PROC_STATES: readonly (KernelState | undefined)[] = [
  undefined,
  'ESTABLISHED',
  'SYN_SENT',
  'SYN_RECEIVED',
  'FIN_WAIT_1',
  'FIN_WAIT_2',
  'TIME_WAIT',
  'CLOSED',
  'CLOSE_WAIT',
  'LAST_ACK',
  'LISTEN',
  'CLOSING',
];

const EMPTY: ReadonlyMap<string, KernelState> = new Map();

export class KernelSockets {
  private current: ReadonlyMap<string, KernelState> = EMPTY;
  private takenAt = -Infinity;
  private pending: Promise<void> | null = null;

  constructor(
    private readonly now: () => number,
    private readonly files: readonly string[] = ['/proc/net/tcp', '/proc/net/tcp6'],
  ) {}

  /** The latest snapshot (empty before the first refresh). */
  get snapshot(): ReadonlyMap<string, KernelState> {
    return this.current;
  }

  /** How old the snapshot is (ms; Infinity before the first). */
  age(): number {
    return this.now() - this.takenAt;
  }

  /**
   * A snapshot no older than `maxAgeMs`: resolves at once when the current one is fresh enough,
   * else after a read (shared with any read already under way that started late enough).
   */
  async fresh(maxAgeMs = 0): Promise<ReadonlyMap<string, KernelState>> {
    if (this.age() <= maxAgeMs && this.takenAt > -Infinity) return this.current;
    const requestedAt = this.now();
    if (this.pending !== null) {
      await this.pending;
      if (this.takenAt >= requestedAt || this.age() <= maxAgeMs) return this.current;
    }
    await this.refresh();
    return this.current;
  }

  /** Start a read in the background when the snapshot is older than `maxAgeMs` (for views that accept a stale one). */
  refreshIfOlder(maxAgeMs: number): void {
    if (this.pending === null && this.age() > maxAgeMs) void this.refresh();
  }

  refresh(): Promise<void> {
    if (this.pending !== null) return this.pending;
    const startedAt = this.now();
    this.pending = Promise.all(this.files.map((f) => fs.promises.readFile(f, 'latin1').catch(() => '')))
      .then((texts) => {
        const sockets = new Map<string, KernelState>();
        for (const text of texts) parseProcNetTcp(text, sockets);
        this.current = sockets;
        this.takenAt = startedAt;
      })
      .finally(() => {
        this.pending = null;
      });
    return this.pending;
  }
}

/**
 * Adds the sockets of one /proc/net/tcp{,6} text to `into`. Lines look like
 * "   0: 0100007F:1F90 0100007F:D2A4 01 ..." (IPv4: 8 hex digits of address; IPv6: 32).
 */
export function parseProcNetTcp(text: string, into: Map<string, KernelState>): void {
  let lineStart = text.indexOf('\n') + 1; // skip the header
  while (lineStart > 0 && lineStart < text.length) {
    let lineEnd = text.indexOf('\n', lineStart);
    if (lineEnd < 0) lineEnd = text.length;
    const colon = text.indexOf(': ', lineStart);
    if (colon > 0 && colon < lineEnd) {
      const local = colon + 2;
      const sep = text.indexOf(' ', local);
      const width = sep - local; // 13 for IPv4 ("AAAAAAAA:PPPP"), 37 for IPv6
      if (width === 13 || width === 37) {
        const remote = sep + 1;
        const st = remote + width + 1;
        if (st + 2 <= lineEnd) {
          const state = PROC_STATES[parseInt(text.slice(st, st + 2), 16)];
          const key = procTupleKey(text.slice(local, sep), text.slice(remote, remote + width));
          if (key !== null && state !== undefined) into.set(key, state);
        }
      }
    }
    lineStart = lineEnd + 1;
  }
}

/**
 * A tuple key from /proc/net/tcp columns "0100007F:1F90" (little-endian hex address words, hex
 * port): normalised to "a.b.c.d:port>e.f.g.h:port" / "[v6]:port>..." like Pipe.upstreamTuple.
 */
export function procTupleKey(local: string, remote: string): string | null {
  const l = procEndpoint(local);
  const r = procEndpoint(remote);
  return l === null || r === null ? null : `${l}>${r}`;
}

const words = new Uint32Array(4);

function procEndpoint(text: string): string | null {
  const colon = text.indexOf(':');
  if (colon < 0) return null;
  const port = parseInt(text.slice(colon + 1), 16);
  if (colon === 8) {
    const v = parseInt(text.slice(0, 8), 16);
    // The word is in host (little-endian) order.
    return `${v & 0xff}.${(v >>> 8) & 0xff}.${(v >>> 16) & 0xff}.${v >>> 24}:${port}`;
  }
  if (colon === 32) {
    for (let w = 0; w < 4; w++) {
      const le = parseInt(text.slice(w * 8, w * 8 + 8), 16);
      // Each 32-bit word is little-endian: swap to network order.
      words[w] = (((le & 0xff) << 24) | (((le >>> 8) & 0xff) << 16) | (((le >>> 16) & 0xff) << 8) | (le >>> 24)) >>> 0;
    }
    // IPv4-mapped (::ffff:a.b.c.d) sockets are keyed as IPv4, as Node reports them.
    if (words[0] === 0 && words[1] === 0 && words[2] === 0xffff) {
      const v = words[3]!;
      return `${v >>> 24}.${(v >>> 16) & 0xff}.${(v >>> 8) & 0xff}.${v & 0xff}:${port}`;
    }
    return formatEndpoint(6, words, port);
  }
  return null;
}
