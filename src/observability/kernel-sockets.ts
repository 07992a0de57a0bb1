/**
 * The kernel's TCP sockets of this network namespace (/proc/net/tcp and tcp6), as a snapshot read
 * off the event loop: kernelKey(local, remote) → kernel state name.
 *
 * Why a snapshot and an asynchronous read: with 10,000 sockets the kernel takes 20-60 ms to
 * render /proc/net/tcp (measured here), and a synchronous read would stall every connection for that long on
 * every scrape, API call and live-page update. The read runs in libuv's thread pool; parsing is
 * fixed-column (the kernel prints fixed-width hex, net/ipv4/tcp_ipv4.c get_tcp4_sock), and the key
 * is the kernel's own text of the two endpoints: one slice per line, no address formatting (10,000
 * sockets parse in about 8 ms, against 25 ms with split and regular expressions). Concurrent refreshes share one read.
 */
import fs from 'node:fs';
import { parseAddress } from '../wire/address.js';
import { KERNEL_TCP_STATES } from './metrics.js';

export type KernelState = (typeof KERNEL_TCP_STATES)[number];

/** /proc/net/tcp `st` field (include/net/tcp_states.h: 1 = ESTABLISHED ... 11 = CLOSING), by its numeric value. */
const PROC_STATES: readonly (KernelState | undefined)[] = [undefined, ...KERNEL_TCP_STATES];

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
 * Adds the sockets of one /proc/net/tcp{,6} text to `into`, keyed by the kernel's own text of the
 * two endpoints ("0100007F:D2A4 0100007F:1F90": one slice per line, nothing formatted; see
 * kernelKey). Lines look like "   1: 0100007F:D2A4 0100007F:1F90 01 ..." (IPv4: 8 hex digits of
 * address; IPv6: 32). IPv4-mapped IPv6 sockets are keyed as IPv4, as Node reports them.
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
          if (state !== undefined) {
            let key: string;
            if (width === 13) key = text.slice(local, remote + 13);
            else if (text.startsWith(V4_MAPPED_HEX, local) && text.startsWith(V4_MAPPED_HEX, remote)) {
              key = `${text.slice(local + 24, local + 37)} ${text.slice(remote + 24, remote + 37)}`;
            } else key = text.slice(local, remote + 37);
            into.set(key, state);
          }
        }
      }
    }
    lineStart = lineEnd + 1;
  }
}

/** ::ffff:0:0/96 as /proc/net/tcp6 prints it (each 32-bit word in host, little-endian, order). */
const V4_MAPPED_HEX = '0000000000000000FFFF0000';

/** An address word (network order, as in FlowTuple and parseAddress) as the kernel prints it: %08X of the little-endian word. */
function hexWord(v: number): string {
  const le = (((v & 0xff) << 24) | (((v >>> 8) & 0xff) << 16) | (((v >>> 16) & 0xff) << 8) | (v >>> 24)) >>> 0;
  return le.toString(16).toUpperCase().padStart(8, '0');
}

function hexAddress(family: 4 | 6, words: Uint32Array): string {
  if (family === 4 || (words[0] === 0 && words[1] === 0 && words[2] === 0xffff)) return hexWord(words[3]!);
  return hexWord(words[0]!) + hexWord(words[1]!) + hexWord(words[2]!) + hexWord(words[3]!);
}

/** The key of a socket in a KernelSockets snapshot: its two endpoints as /proc/net/tcp prints them. */
export function kernelKey(family: 4 | 6, local: Uint32Array, localPort: number, remote: Uint32Array, remotePort: number): string {
  const lp = localPort.toString(16).toUpperCase().padStart(4, '0');
  const rp = remotePort.toString(16).toUpperCase().padStart(4, '0');
  return `${hexAddress(family, local)}:${lp} ${hexAddress(family, remote)}:${rp}`;
}

/** kernelKey from textual addresses (a Node socket's localAddress/remoteAddress); null if either is not an address. */
export function kernelKeyOf(localAddress: string, localPort: number, remoteAddress: string, remotePort: number): string | null {
  const l = parseAddress(localAddress);
  const r = parseAddress(remoteAddress);
  if (l === null || r === null) return null;
  const lp = localPort.toString(16).toUpperCase().padStart(4, '0');
  const rp = remotePort.toString(16).toUpperCase().padStart(4, '0');
  return `${hexAddress(l.family, l.words)}:${lp} ${hexAddress(r.family, r.words)}:${rp}`;
}
