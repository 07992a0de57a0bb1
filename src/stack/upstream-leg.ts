/**
 * The upstream leg as the rest of synfin sees it: what the proxy (src/proxy/) publishes on the
 * stack's event hub about a connection's kernel socket, in words that belong to neither. The
 * connection table, the metrics and the flight recorder (src/observability/) read the leg through
 * these interfaces only, so a change inside the pipe cannot silently change /api/connections, and
 * observability imports nothing of the proxy.
 */

/** How a kernel connect to the destination ended (synfin_upstream_connect_duration_seconds{result}). */
export type UpstreamResult = 'ok' | 'refused' | 'timeout' | 'unreachable' | 'error';

/** Payload bytes moved by all pipes, counted as they flow (synfin_tcp_bytes_total). */
export interface ByteCounters {
  bytesClientToUpstream: number;
  bytesUpstreamToClient: number;
}

/** Who ended the upstream leg first: the destination (its EOF or reset), or synfin (its FIN or reset). */
export type UpstreamCloser = 'destination' | 'synfin';

/** One connection's upstream leg while it is open: its socket's facts, read when a row is built. */
export interface UpstreamLeg {
  /** The stack's connection id: both legs share it. */
  readonly id: number;
  /** When the connection became half-closed (one side finished), ms on the stack's clock; 0 while neither has. */
  readonly waitingSince: number;
  /** The kernel socket has been closed (its fd is gone). */
  readonly upstreamClosed: boolean;
  /** The kernel connect's duration, ms. */
  readonly connectMs: number;
  /** Payload bytes written toward the destination (delivered by the app leg). */
  readonly bytesToUpstream: number;
  /** Payload bytes read from the destination. */
  readonly bytesFromUpstream: number;
  /** Who ended the upstream leg first; null while neither has. */
  readonly closedBy: UpstreamCloser | null;
  /** The kernel socket's fd for TCP_INFO, or -1. */
  upstreamFd(): number;
  /** Both ends of the kernel socket, formatted, or null before the local end is known. */
  upstreamEndpoints(): { local: string; remote: string } | null;
  /** The 4-tuple to find the socket by in the kernel's table, as numbers, or null when the families differ. */
  watchedTuple(): UpstreamTuple | null;
}

/** An upstream socket's 4-tuple as numbers: the local end as getsockname read it, the remote as dialled. */
export interface UpstreamTuple {
  readonly localFamily: number;
  /** Four address words (IPv4 in word 3). */
  readonly localWords: Uint32Array;
  readonly localPort: number;
  readonly remoteWords: Uint32Array;
  readonly remotePort: number;
}

/**
 * What the proxy publishes of upstream legs as they connect, end and close (on the stack's event
 * hub: EventHub implements it, subscribers implement what they need). Each is once per
 * connection at most, never per packet.
 */
export interface UpstreamEvents {
  /** A kernel connect finished, whichever way (synfin_upstream_connect_duration_seconds{result}). */
  upstreamConnect(connId: number, result: UpstreamResult, durationMs: number, now: number): void;
  /** An accepted connection's upstream leg is open: both ends known (leg.upstreamEndpoints()). */
  upstreamOpened(leg: UpstreamLeg, now: number): void;
  /**
   * The destination ended its side before synfin ended it: its EOF (`fin`), or a reset or
   * socket error (`reset`). Published as it arrives, before the app leg is told.
   */
  upstreamEnded(leg: UpstreamLeg, how: 'fin' | 'reset', now: number): void;
  /** The leg is done (both sides finished, its socket closed): its final bytes and closedBy. */
  upstreamClosed(leg: UpstreamLeg, now: number): void;
}
