/**
 * The messages between the main thread of `--workers N` (supervisor.ts) and each worker thread
 * (worker.ts), over the worker's MessagePort (structured clone: no functions, no class instances).
 */
import type { Config } from '../config.js';
import type { ConnectionFilter, ConnectionRow } from '../observability/table.js';
import type { Family } from './merge.js';
import type { HistoryQuery, HistoryRecord } from '../observability/history.js';
import type { RelayedTransition } from './history.js';
import type { SummaryParts } from '../observability/summary.js';

export interface WorkerData {
  config: Config;
  /** This worker's index (0..N-1): its queue, and the remainder of its connections' ids modulo N. */
  index: number;
  /** N. */
  workers: number;
  /** The queue's fd in the main thread (the worker adopts a duplicate of it). */
  fd: number;
  /** The device's name (the adoption checks the fd is attached to it). */
  name: string;
  /** The namespace the device was moved to, where its ip commands run (tests); null: synfin's own. */
  netns: string | null;
  /** The stack's secret, the same for every worker (SYN cookies, ISNs, flow keys). */
  secret: Uint8Array;
  /** The main thread's performance.timeOrigin: every worker reads the main thread's clock. */
  timeOrigin: number;
  /** The main thread's HTTP listener, never a destination. */
  listenGuard: { host: string; port: number };
}

/** One worker's slice of /api/connections: rows with a local id above `afterId`, at most `limit`. */
export interface ConnectionsQuery {
  filter: ConnectionFilter;
  afterId: number;
  limit: number;
  /** A first page (the kernel snapshot may be 100 ms old) or a following one (1 s). */
  first: boolean;
}

export interface ConnectionsAnswer {
  rows: ConnectionRow[];
  /** More matching rows follow the last one. */
  more: boolean;
}

export type MainToWorker =
  | { type: 'metrics'; seq: number }
  | { type: 'connections'; seq: number; query: ConnectionsQuery }
  | { type: 'history'; seq: number; query: HistoryQuery; limit: number }
  /** The live page's summary parts (handshake seconds after `since` only). */
  | { type: 'summary'; seq: number; since?: number }
  /** The capture ring's status, after applying `configure` when given (POST /api/capture). */
  | { type: 'capture'; seq: number; configure: { enabled: boolean; bufferBytes?: number; snaplen?: number } | null }
  /** The pcap of the worker's connection `id` (its own id) from its capture ring. */
  | { type: 'pcap'; seq: number; id: number }
  /** Relay transitions (while the main thread has /api/events readers), or stop. */
  | { type: 'events'; on: boolean }
  /** A live capture (GET /api/capture.pcap): open a tap on the ring, take what came since the last take, close it. */
  | { type: 'liveOpen'; tap: number; service?: string }
  | { type: 'liveTake'; seq: number; tap: number; skip: boolean }
  | { type: 'liveClose'; tap: number }
  | { type: 'reload' }
  | { type: 'shutdown'; reason: string }
  /** A second SIGTERM during the shutdown: the grace period ends now. */
  | { type: 'endGrace'; reason: string };

export type WorkerMetrics = Family[];

/** GET /api/capture's fields (src/http/capture.ts status()). */
export interface CaptureStatus {
  enabled: boolean;
  active: boolean;
  bufferBytes: number;
  snaplen: number;
  records: number;
  overwritten: number;
}

/**
 * A worker's answer to `liveTake`: pcap records oldest first (empty: none), and the worker's
 * capture clock when it took them (every record it takes later is no older than that).
 */
export interface LiveRecords {
  records: Uint8Array;
  takenAtUs: number;
}

/** A worker's answer to `pcap`: `off` (its capture is off), or the file and how many packets it holds. */
export type PcapAnswer = { off: true } | { off: false; file: Uint8Array; packets: number };

export type WorkerToMain =
  | { type: 'ready' }
  | { type: 'failed'; message: string; code: string | null }
  | { type: 'reply'; seq: number; body: WorkerMetrics | ConnectionsAnswer | HistoryRecord[] | PcapAnswer | CaptureStatus | SummaryParts | LiveRecords }
  | { type: 'transitions'; batch: RelayedTransition[]; dropped: number };
