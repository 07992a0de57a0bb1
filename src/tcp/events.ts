/**
 * The one event stream of the TCP stack. The state machine knows nothing of metrics, logs or
 * the HTTP API: it reports what happened to a `TcpEventSink`, and everything observable
 * (src/observability, /api/events, debug logs) subscribes to the stack's implementation of it.
 *
 * The sink is a plain object with one method per event kind so that reporting costs a method
 * call and no allocation on the hot path; subscribers that want objects get them from the
 * stack's event hub, which only builds them when somebody listens.
 */
import type { State } from './state.js';

/** Why a segment was dropped. Values are metric label values: a bounded set, never addresses. */
export type DropReason =
  | 'checksum'
  | 'malformed'
  | 'out_of_window'
  | 'no_connection'
  | 'syn_limit'
  | 'paws'
  | 'bad_ack'
  | 'rst_invalid'
  | 'syn_in_window'   // a SYN on a synchronized connection: answered with a challenge ACK (RFC 5961 §4)
  | 'time_wait'
  | 'unsupported'
  | 'rcv_buffer_full'
  | 'challenge_ack_limit'
  | 'bad_cookie'
  | 'loop'          // a SYN from one of synfin's own upstream sockets (a dial routed back into the device)
  | 'memory_limit'; // --memory-limit: the buffer budget refused the segment or the new connection

export type RetransmitKind = 'rto' | 'fast' | 'probe';

export type ResetDirection = 'sent' | 'received';

/** Why a reset was sent or received (metric label values). */
export type ResetReason =
  | 'peer'              // received from the peer
  | 'no_connection'     // RFC 9293 §3.10.7.1: segment for no connection
  | 'bad_ack'           // unacceptable ACK in a non-synchronized state (§3.10.7.3)
  | 'abort'             // the owner aborted the connection (e.g. the upstream was reset)
  | 'upstream_refused'  // the deferred handshake found the destination refusing
  | 'loop'              // a SYN of synfin's own upstream socket, refused (no loop through the device)
  | 'upstream_reset'    // the upstream socket failed or was reset mid-stream
  | 'retransmit_timeout'
  | 'idle_timeout'
  | 'data_after_close'  // RFC 9293 §3.10.7.4: data arrived after the receiving side closed
  | 'shutdown';

export type HandshakeResult =
  | 'ok'
  | 'reset'
  | 'timeout'
  | 'upstream_refused'
  | 'upstream_timeout'
  | 'upstream_unreachable';

export type CloseReason =
  | 'fin'
  | 'reset_received'
  | 'reset_sent'
  | 'idle_timeout'
  | 'retransmit_timeout'
  | 'upstream_failed'
  | 'shutdown';

/**
 * A connection's 4-tuple as numbers, as the app's packets carry it: `remote` is the app's end
 * (the connection table's `client`), `local` the address the app dialled (its `destination`).
 * Address words as wire/address.ts keeps them (IPv4 in word 3). The stack's FlowTuple is one.
 */
export interface ConnFlow {
  readonly family: 4 | 6;
  readonly remote: Uint32Array;
  readonly remotePort: number;
  readonly local: Uint32Array;
  readonly localPort: number;
  /**
   * The connection's service (an index into the named services, 0 = `other`), set once when its
   * SYN is announced (`opened`) by whoever names destinations (src/observability/services.ts);
   * the stack copies it into its columns for the scrape's walk.
   */
  service: number;
}

/**
 * What every event says of its connection, whatever stage it is at (a SYN being dialled, a
 * connection, a TIME-WAIT record): subscribers read these and never downcast. They are fields or
 * getters of the objects the stack already has, so reporting allocates nothing.
 */
export interface ConnIdentity {
  readonly id: number;
  /** When its SYN arrived (ms on the stack's clock): the start of synfin_tcp_connection_duration_seconds. */
  readonly openedAt: number;
  /** Its 4-tuple; null only for a connection outside a stack's table (the state machine's own tests). */
  readonly flow: ConnFlow | null;
  /**
   * When its current state was entered (ms); a pending SYN's is its arrival. During a
   * stateChange it is still the old state's (the event's `sinceMs`).
   */
  readonly stateSince: number;
  /** Payload bytes received from the app in order and delivered to the owner (app → upstream). */
  readonly bytesIn: number;
  /** Payload bytes sent to the app and acknowledged by it (upstream → app). */
  readonly bytesOut: number;
  /** Segments retransmitted toward the app (RTO, fast and probes). */
  readonly retransmits: number;
  /** SYN to the handshake's final ACK, ms; -1 while it has not completed (and for one that failed). */
  readonly handshakeMs: number;
}

/**
 * How a connection's initial slow start ended (synfin_tcp_slow_start_exits_total): `delay`,
 * HyStart++ saw the RTT rise and its Conservative Slow Start ran its rounds (RFC 9406 §4.2);
 * `loss`, duplicate ACKs or SACK (RFC 5681 §3.2, RFC 6675); `timeout`, a retransmission timeout
 * (RFC 5681 §3.1), the handshake's included.
 */
export type SlowStartExitReason = 'delay' | 'loss' | 'timeout';
/** By SlowStartEnd (src/tcp/cc/controller.ts) minus one. */
export const SLOW_START_EXIT_REASONS: readonly SlowStartExitReason[] = ['delay', 'loss', 'timeout'];

export interface TcpEventSink {
  /** A state transition; `sinceMs` is when the old state was entered. */
  stateChange(conn: ConnIdentity, from: State, to: State, now: number, sinceMs: number): void;
  /** The passive handshake ended (final ACK received, or failed). */
  handshake(conn: ConnIdentity, result: HandshakeResult, durationMs: number): void;
  /** A segment was retransmitted. */
  retransmit(conn: ConnIdentity, kind: RetransmitKind): void;
  /** A reset was sent or received. `conn` is null for resets to segments of no connection. */
  reset(conn: ConnIdentity | null, direction: ResetDirection, reason: ResetReason): void;
  /** A segment was dropped. */
  drop(conn: ConnIdentity | null, reason: DropReason): void;
  /** A new smoothed RTT (RFC 6298), in milliseconds. */
  rtt(conn: ConnIdentity, srttMs: number): void;
  /** The connection's initial slow start ended (once per connection; most short ones never leave it). */
  slowStartExit(conn: ConnIdentity, reason: SlowStartExitReason): void;
  /** The connection reached CLOSED and will never be used again. */
  closed(conn: ConnIdentity, reason: CloseReason, now: number): void;
}

/** A sink that ignores everything: the default for tests that do not care. */
export const NULL_EVENT_SINK: TcpEventSink = {
  stateChange() {},
  handshake() {},
  retransmit() {},
  reset() {},
  drop() {},
  rtt() {},
  slowStartExit() {},
  closed() {},
};
