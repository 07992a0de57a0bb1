/**
 * The upstream leg as the rest of synfin sees it: what the proxy (src/proxy/) tells its observers
 * about a connection's kernel socket, in words that belong to neither. The connection table and the
 * metrics (src/observability/) read the leg through these interfaces only, so a change inside the
 * pipe cannot silently change /api/connections, and observability imports nothing of the proxy.
 */

/** How a kernel connect to the destination ended (synfin_upstream_connect_duration_seconds{result}). */
export type UpstreamResult = 'ok' | 'refused' | 'timeout' | 'unreachable' | 'error';

/** Payload bytes moved by all pipes, counted as they flow (synfin_tcp_bytes_total). */
export interface ByteCounters {
  bytesClientToUpstream: number;
  bytesUpstreamToClient: number;
}

/** One connection's upstream leg while it is open: its socket's facts, read when a row is built. */
export interface UpstreamLeg {
  /** The stack's connection id: both legs share it. */
  readonly id: number;
  /** When the connection became half-closed (one side finished), ms on the stack's clock; 0 while neither has. */
  readonly waitingSince: number;
  /** The kernel socket has been closed (its fd is gone). */
  readonly upstreamClosed: boolean;
  /** The kernel socket's fd for TCP_INFO, or -1. */
  upstreamFd(): number;
  /** Both ends of the kernel socket, formatted, or null before the local end is known. */
  upstreamEndpoints(): { local: string; remote: string } | null;
  /** The 4-tuple to find the socket by in the kernel's table, as numbers, or null when the families differ. */
  watchedTuple(): UpstreamTuple | null;
}

/** An upstream socket's 4-tuple as numbers: the local end as getsockname read it, the remote as dialled. */
export interface UpstreamTuple {
  /** [family, four address words (IPv4 in word 3), port]. */
  readonly local: Uint32Array;
  readonly remoteWords: Uint32Array;
  readonly remotePort: number;
}

/** What the proxy reports of upstream legs as they open, connect and close. */
export interface UpstreamObserver {
  /** A kernel connect finished (metrics: synfin_upstream_connect_duration_seconds). */
  upstreamConnect?(connId: number, result: UpstreamResult, durationMs: number): void;
  /** An accepted connection's upstream leg is open (the API joins both legs by id). */
  legOpened?(leg: UpstreamLeg): void;
  legClosed?(leg: UpstreamLeg): void;
  /** Where every pipe counts its bytes. */
  readonly byteCounters?: ByteCounters;
  /** Where connection `connId`'s pipe also counts its bytes (its service's counters), if anywhere. */
  byteCountersOf?(connId: number): ByteCounters | undefined;
}
