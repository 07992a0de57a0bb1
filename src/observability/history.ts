/**
 * The flight recorder: what happened to the connections that are gone. A bounded ring of the
 * last `--history N` closed connections (like bcc's tcplife, Envoy's access log), built from the
 * event hub alone: the stack's events say the app leg's states, handshake, resets and close, the
 * proxy's say the upstream leg's connect and end. A connection is in /api/connections while it is
 * in the stack's table (TIME-WAIT included) and in /api/history once it has left it (CLOSED).
 *
 * Cost: while a connection lives, one row of a slab (LiveDrafts) that each transition writes a
 * state and a time into; at its close one record written into the ring's columns (typed arrays:
 * no object per record, no string until a record is read). Records are built as objects only for
 * /api/history and the access log.
 *
 * closedFirstBy says who ended the connection first:
 * - `app`: the app leg's FIN (our CLOSE_WAIT) or RST came first;
 * - `upstream`: the destination's EOF or reset came first (our FIN or RST to the app followed
 *   it), or its connect was refused or unreachable;
 * - `synfin`: synfin's own decision came first: idle or retransmission timeout, connect timeout,
 *   a policy or loop refusal, shutdown, a memory limit.
 */
import type { EventHub } from '../stack/events.js';
import type { UpstreamLeg, UpstreamResult } from '../stack/upstream-leg.js';
import type { CloseReason, ConnIdentity, ResetDirection, ResetReason } from '../tcp/events.js';
import { State, STATE_NAMES, type StateName } from '../tcp/state.js';
import { formatEndpoint } from '../wire/address.js';
import type { AppProcess } from './app-process.js';
import { IdMap } from './id-map.js';
import { CLOSE_REASONS } from './metrics.js';

export const CLOSERS = ['app', 'upstream', 'synfin'] as const;
export type Closer = (typeof CLOSERS)[number];

/** One closed connection, as /api/history and the access log give it. */
export interface HistoryRecord {
  id: number;
  client: string;
  destination: string;
  service: string;
  /** When its SYN arrived (ISO 8601, UTC). */
  openedAt: string;
  /** When it reached CLOSED (after TIME-WAIT, if it went through it). */
  closedAt: string;
  durationSeconds: number;
  /** SYN to the handshake's final ACK; null when the handshake did not complete. */
  handshakeSeconds: number | null;
  /** The upstream connect's duration, whichever way it ended; null when no connect was made. */
  connectSeconds: number | null;
  /** Payload bytes from the app (app → upstream). */
  bytesIn: number;
  /** Payload bytes to the app, acknowledged by it (upstream → app). */
  bytesOut: number;
  closedFirstBy: Closer;
  /** synfin_tcp_connections_closed_total's reason. */
  reason: CloseReason;
  /** Segments retransmitted toward the app. */
  retransmits: number;
  /** Each state of the app leg with when it was entered, CLOSED last. */
  states: Array<{ state: StateName; at: string }>;
  appProcess: AppProcess | null;
}

export interface HistoryQuery {
  service?: string | undefined;
  reason?: CloseReason | undefined;
  closedFirstBy?: Closer | undefined;
  /** Seconds. */
  minDuration?: number | undefined;
  /** Closed at or after this time (epoch ms). */
  since?: number | undefined;
}

/** What the HTTP API reads (HistoryRing implements it). */
export interface HistorySource {
  readonly capacity: number;
  /**
   * Matching records newest first, from the record numbered `before - 1` downward (the first call
   * passes Infinity), at most `maxRows` of them, examining at most `maxExamined` records: `next`
   * is where to resume (the number to pass as `before`), or -1 when the walk reached the oldest.
   */
  query(q: HistoryQuery, before: number, maxRows: number, maxExamined: number): { records: HistoryRecord[]; next: number };
}

/** States a record keeps: enough for every path through RFC 9293's diagram (at most 7 states). */
export const MAX_STATES = 8;
const NO_STATE = 255;
/** Distinct service names the ring interns; beyond, records say `other` (the catalogue has at most 256). */
const MAX_SERVICE_NAMES = 4096;
const OTHER = 'other';

const CLOSER_NONE = 0;
const CLOSER_APP = 1;
const CLOSER_UPSTREAM = 2;
const CLOSER_SYNFIN = 3;
const CLOSER_NAMES: readonly Closer[] = ['synfin', 'app', 'upstream', 'synfin'];

const REASON_INDEX = new Map<CloseReason, number>(CLOSE_REASONS.map((r, i) => [r, i]));

/**
 * The ring: one slot per record in typed columns, the newest overwriting the oldest. A record
 * costs its columns' bytes (HistoryRing.BYTES_PER_RECORD) plus a pointer for its app process.
 */
export class HistoryRing implements HistorySource {
  /** Records ever added: the next record's number (record k lives in slot k % capacity). */
  private total = 0;
  private readonly id: Float64Array;
  /** Epoch ms. */
  private readonly openedAt: Float64Array;
  private readonly closedAt: Float64Array;
  /** ms; -1 when unknown. */
  private readonly handshakeMs: Float64Array;
  private readonly connectMs: Float64Array;
  private readonly bytesIn: Float64Array;
  private readonly bytesOut: Float64Array;
  private readonly retransmits: Uint32Array;
  /** family, then the client's port and the destination's. */
  private readonly family: Uint8Array;
  private readonly ports: Uint16Array;
  /** Four words of the client's address, four of the destination's. */
  private readonly words: Uint32Array;
  private readonly closer: Uint8Array;
  private readonly reason: Uint8Array;
  private readonly service: Uint16Array;
  /** MAX_STATES per record: the state's code (NO_STATE past the last) and when it was entered (ms after openedAt). */
  private readonly stateCodes: Uint8Array;
  private readonly stateAt: Float64Array;
  private readonly appProcess: Array<AppProcess | null>;
  private readonly serviceNames: string[] = [OTHER];
  private readonly serviceIndex = new Map<string, number>([[OTHER, 0]]);
  private lastServiceName: string = OTHER;
  private lastServiceIndex = 0;

  /** Bytes of typed columns per record (the app process pointer not counted). */
  static readonly BYTES_PER_RECORD = 8 * 7 + 4 + 1 + 2 * 2 + 4 * 8 + 1 + 1 + 2 + MAX_STATES * (1 + 8);

  constructor(readonly capacity: number) {
    const n = capacity;
    this.id = new Float64Array(n);
    this.openedAt = new Float64Array(n);
    this.closedAt = new Float64Array(n);
    this.handshakeMs = new Float64Array(n);
    this.connectMs = new Float64Array(n);
    this.bytesIn = new Float64Array(n);
    this.bytesOut = new Float64Array(n);
    this.retransmits = new Uint32Array(n);
    this.family = new Uint8Array(n);
    this.ports = new Uint16Array(2 * n);
    this.words = new Uint32Array(8 * n);
    this.closer = new Uint8Array(n);
    this.reason = new Uint8Array(n);
    this.service = new Uint16Array(n);
    this.stateCodes = new Uint8Array(MAX_STATES * n);
    this.stateAt = new Float64Array(MAX_STATES * n);
    this.appProcess = new Array<AppProcess | null>(n).fill(null);
  }

  /** Records held now. */
  get size(): number {
    return Math.min(this.total, this.capacity);
  }

  /** Records ever added (the next record's number). */
  get added(): number {
    return this.total;
  }

  /** Bytes the ring's columns take (allocated up front, whatever it holds). */
  get columnBytes(): number {
    return this.capacity * HistoryRing.BYTES_PER_RECORD;
  }

  /** Write a closed connection's record (the recorder's draft) over the oldest. */
  add(d: Draft, closedAtWall: number, durationMs: number, reason: CloseReason, closer: number, service: string, appProcess: AppProcess | null): void {
    if (this.capacity === 0) return;
    const slot = this.total % this.capacity;
    this.total++;
    this.id[slot] = d.id;
    this.openedAt[slot] = closedAtWall - durationMs;
    this.closedAt[slot] = closedAtWall;
    this.handshakeMs[slot] = d.handshakeMs;
    this.connectMs[slot] = d.connectMs;
    this.bytesIn[slot] = d.bytesIn;
    this.bytesOut[slot] = d.bytesOut;
    this.retransmits[slot] = d.retransmits;
    this.family[slot] = d.family;
    this.ports[2 * slot] = d.clientPort;
    this.ports[2 * slot + 1] = d.destinationPort;
    this.words.set(d.client, 8 * slot);
    this.words.set(d.destination, 8 * slot + 4);
    this.closer[slot] = closer;
    this.reason[slot] = REASON_INDEX.get(reason) ?? 0;
    this.service[slot] = this.internService(service);
    const base = MAX_STATES * slot;
    for (let i = 0; i < MAX_STATES; i++) {
      this.stateCodes[base + i] = i < d.nStates ? d.stateCodes[i]! : NO_STATE;
      this.stateAt[base + i] = i < d.nStates ? d.stateAt[i]! - d.openedAt : 0;
    }
    this.appProcess[slot] = appProcess;
  }

  private internService(name: string): number {
    // Consecutive records mostly name the same service (the catalogue's own string): no lookup.
    if (name === this.lastServiceName) return this.lastServiceIndex;
    const i = this.lookUpService(name);
    this.lastServiceName = name;
    this.lastServiceIndex = i;
    return i;
  }

  private lookUpService(name: string): number {
    let i = this.serviceIndex.get(name);
    if (i === undefined) {
      if (this.serviceNames.length >= MAX_SERVICE_NAMES) return 0;
      i = this.serviceNames.length;
      this.serviceNames.push(name);
      this.serviceIndex.set(name, i);
    }
    return i;
  }

  query(q: HistoryQuery, before: number, maxRows: number, maxExamined: number): { records: HistoryRecord[]; next: number } {
    const records: HistoryRecord[] = [];
    const oldest = this.total - this.size;
    let k = Math.min(before, this.total) - 1;
    // Ring slots overwritten since the walk began are gone: resume at the oldest still held.
    if (k < oldest) return { records, next: -1 };
    const service = q.service === undefined ? -1 : (this.serviceIndex.get(q.service) ?? -2);
    if (service === -2) return { records, next: -1 };
    const reason = q.reason === undefined ? -1 : (REASON_INDEX.get(q.reason) ?? -2);
    const closer = q.closedFirstBy === undefined ? -1 : CLOSERS.indexOf(q.closedFirstBy) + 1;
    const minMs = q.minDuration === undefined ? -Infinity : q.minDuration * 1000;
    const since = q.since ?? -Infinity;
    let examined = 0;
    for (; k >= oldest; k--) {
      if (records.length === maxRows || examined === maxExamined) return { records, next: k + 1 };
      examined++;
      const slot = k % this.capacity;
      if (service >= 0 && this.service[slot] !== service) continue;
      if (reason >= 0 && this.reason[slot] !== reason) continue;
      if (closer > 0 && this.closer[slot] !== closer) continue;
      if (this.closedAt[slot]! - this.openedAt[slot]! < minMs) continue;
      if (this.closedAt[slot]! < since) continue;
      records.push(this.record(slot));
    }
    return { records, next: -1 };
  }

  private record(slot: number): HistoryRecord {
    const family = this.family[slot] as 4 | 6;
    const w = this.words;
    const openedAt = this.openedAt[slot]!;
    const closedAt = this.closedAt[slot]!;
    const states: HistoryRecord['states'] = [];
    const base = MAX_STATES * slot;
    for (let i = 0; i < MAX_STATES; i++) {
      const code = this.stateCodes[base + i]!;
      if (code === NO_STATE) break;
      states.push({ state: STATE_NAMES[code]!, at: iso(openedAt + this.stateAt[base + i]!) });
    }
    const handshakeMs = this.handshakeMs[slot]!;
    const connectMs = this.connectMs[slot]!;
    return {
      id: this.id[slot]!,
      client: formatEndpoint(family, w.subarray(8 * slot, 8 * slot + 4), this.ports[2 * slot]!),
      destination: formatEndpoint(family, w.subarray(8 * slot + 4, 8 * slot + 8), this.ports[2 * slot + 1]!),
      service: this.serviceNames[this.service[slot]!]!,
      openedAt: iso(openedAt),
      closedAt: iso(closedAt),
      durationSeconds: seconds(closedAt - openedAt),
      handshakeSeconds: handshakeMs < 0 ? null : seconds(handshakeMs),
      connectSeconds: connectMs < 0 ? null : seconds(connectMs),
      bytesIn: this.bytesIn[slot]!,
      bytesOut: this.bytesOut[slot]!,
      closedFirstBy: CLOSER_NAMES[this.closer[slot]!]!,
      reason: CLOSE_REASONS[this.reason[slot]!]!,
      retransmits: this.retransmits[slot]!,
      states,
      appProcess: this.appProcess[slot] ?? null,
    };
  }
}

function iso(epochMs: number): string {
  return new Date(Math.round(epochMs)).toISOString();
}

/** ms to seconds, to the microsecond. */
function seconds(ms: number): number {
  return Math.round(Math.max(0, ms) * 1000) / 1e6;
}

/** A closed connection's facts on their way into the ring (the recorder reuses one). */
export class Draft {
  id = 0;
  openedAt = 0;
  family: 4 | 6 = 4;
  clientPort = 0;
  destinationPort = 0;
  /** The client's address words (the app's end) and the destination's (the address it dialled). */
  readonly client = new Uint32Array(4);
  readonly destination = new Uint32Array(4);
  hasFlow = false;
  /** Who ended it first so far (CLOSER_*). */
  closer = CLOSER_NONE;
  connectMs = -1;
  handshakeMs = -1;
  bytesIn = 0;
  bytesOut = 0;
  retransmits = 0;
  nStates = 0;
  readonly stateCodes = new Uint8Array(MAX_STATES);
  readonly stateAt = new Float64Array(MAX_STATES);

  reset(id: number, openedAt: number): void {
    this.id = id;
    this.openedAt = openedAt;
    this.hasFlow = false;
    this.family = 4;
    this.clientPort = 0;
    this.destinationPort = 0;
    // Word by word: TypedArray#fill leaves optimized code for a C++ builtin, once per record.
    const c = this.client;
    const d = this.destination;
    c[0] = c[1] = c[2] = c[3] = 0;
    d[0] = d[1] = d[2] = d[3] = 0;
    this.closer = CLOSER_NONE;
    this.connectMs = -1;
    this.handshakeMs = -1;
    this.bytesIn = 0;
    this.bytesOut = 0;
    this.retransmits = 0;
    this.nStates = 0;
  }

  takeFlow(conn: ConnIdentity): void {
    const f = conn.flow;
    if (f === null || this.hasFlow) return;
    this.hasFlow = true;
    this.family = f.family;
    this.clientPort = f.remotePort;
    this.destinationPort = f.localPort;
    this.client.set(f.remote);
    this.destination.set(f.local);
  }

  /** A state entered at `at`; past MAX_STATES the last slot keeps the latest (CLOSED stays last). */
  addState(state: State, at: number): void {
    const i = this.nStates < MAX_STATES ? this.nStates++ : MAX_STATES - 1;
    this.stateCodes[i] = state;
    this.stateAt[i] = at;
  }
}

/**
 * What the recorder knows of each live connection, in one slab of rows (no object per
 * connection): its id, when it opened, its connect, who ended it first so far, and its states
 * with their times. About 110 bytes a connection, plus its slot in the id → row map (IdMap).
 */
const NUM_ID = 0;
const NUM_OPENED_AT = 1;
const NUM_CONNECT_MS = 2;
const NUM_STATE_AT = 3;
const NUM_WIDTH = NUM_STATE_AT + MAX_STATES;
const CODE_CLOSER = 0;
/** 0: no connect made; else 1 + the result's index in UPSTREAM_RESULT_CODES. */
const CODE_CONNECT = 1;
const CODE_STATES = 2;
const CODE_STATE = 3;
const CODE_WIDTH = CODE_STATE + MAX_STATES;
const UPSTREAM_RESULT_CODES: readonly UpstreamResult[] = ['ok', 'refused', 'timeout', 'unreachable', 'error'];

export class LiveDrafts {
  /** Each live connection's row by its id (IdMap: an event's lookup is one indexed load). */
  private readonly rows = new IdMap<number>();
  private readonly free: number[] = [];
  private capacity = 0;
  private highWater = 0;
  nums = new Float64Array(0);
  codes = new Uint8Array(0);

  get size(): number {
    return this.rows.size;
  }

  /** The row of a connection, or -1. */
  rowOf(id: number): number {
    return this.rows.get(id) ?? -1;
  }

  /** The row of a connection, made if it has none. */
  open(id: number, openedAt: number): number {
    let row = this.rows.get(id);
    if (row !== undefined) return row;
    row = this.free.pop() ?? this.highWater++;
    if (row >= this.capacity) this.grow();
    this.rows.set(id, row);
    const n = row * NUM_WIDTH;
    this.nums[n + NUM_ID] = id;
    this.nums[n + NUM_OPENED_AT] = openedAt;
    this.nums[n + NUM_CONNECT_MS] = -1;
    // A loop, not TypedArray#fill (a C++ builtin call per connection for CODE_WIDTH bytes).
    const codes = this.codes;
    for (let i = row * CODE_WIDTH, end = i + CODE_WIDTH; i < end; i++) codes[i] = 0;
    return row;
  }

  close(id: number): void {
    const row = this.rows.get(id);
    if (row === undefined) return;
    this.rows.delete(id);
    this.free.push(row);
  }

  closer(row: number): number {
    return this.codes[row * CODE_WIDTH + CODE_CLOSER]!;
  }
  setCloser(row: number, closer: number): void {
    this.codes[row * CODE_WIDTH + CODE_CLOSER] = closer;
  }
  /** The connect's result, or null when none was made. */
  connectResult(row: number): UpstreamResult | null {
    const c = this.codes[row * CODE_WIDTH + CODE_CONNECT]!;
    return c === 0 ? null : UPSTREAM_RESULT_CODES[c - 1]!;
  }
  setConnect(row: number, result: UpstreamResult, ms: number): void {
    this.codes[row * CODE_WIDTH + CODE_CONNECT] = UPSTREAM_RESULT_CODES.indexOf(result) + 1;
    this.nums[row * NUM_WIDTH + NUM_CONNECT_MS] = ms;
  }

  /** A state entered at `at`; past MAX_STATES the last place keeps the latest (CLOSED stays last). */
  addState(row: number, state: State, at: number): void {
    const c = row * CODE_WIDTH;
    const k = this.codes[c + CODE_STATES]!;
    const i = k < MAX_STATES ? k : MAX_STATES - 1;
    if (k < MAX_STATES) this.codes[c + CODE_STATES] = k + 1;
    this.codes[c + CODE_STATE + i] = state;
    this.nums[row * NUM_WIDTH + NUM_STATE_AT + i] = at;
  }

  lastState(row: number): number {
    const c = row * CODE_WIDTH;
    const k = this.codes[c + CODE_STATES]!;
    return k === 0 ? -1 : this.codes[c + CODE_STATE + k - 1]!;
  }

  /** Copy a row into the record being written. */
  copyTo(row: number, d: Draft): void {
    const n = row * NUM_WIDTH;
    const c = row * CODE_WIDTH;
    d.reset(this.nums[n + NUM_ID]!, this.nums[n + NUM_OPENED_AT]!);
    d.closer = this.codes[c + CODE_CLOSER]!;
    d.connectMs = this.nums[n + NUM_CONNECT_MS]!;
    const k = this.codes[c + CODE_STATES]!;
    for (let i = 0; i < k; i++) d.addState(this.codes[c + CODE_STATE + i]! as State, this.nums[n + NUM_STATE_AT + i]!);
  }

  private grow(): void {
    const capacity = Math.max(256, this.capacity * 2);
    const nums = new Float64Array(capacity * NUM_WIDTH);
    nums.set(this.nums);
    const codes = new Uint8Array(capacity * CODE_WIDTH);
    codes.set(this.codes);
    this.nums = nums;
    this.codes = codes;
    this.capacity = capacity;
  }
}

export interface RecorderOptions {
  /** Closed connections kept (--history); 0 keeps none (the access log may still want records). */
  capacity: number;
  /** Wall-clock time, epoch ms (default Date.now): the ISO times of records. */
  wallClock?: () => number;
}

/**
 * Subscribes to the hub, keeps a row per live connection (LiveDrafts) and writes its record into
 * the ring when it closes. Two hooks, set by whoever wires synfin: `serviceOf` names the
 * destination (default `other`) and `appProcessOf` finds the app's process (default none);
 * `onRecord` receives each record as an object (the access log) and costs nothing while unset.
 */
export class FlightRecorder {
  readonly ring: HistoryRing;
  /** The service a destination belongs to (the service catalogue's classifier); `other` by default. */
  serviceOf: ((family: 4 | 6, address: Uint32Array, port: number) => string) | null = null;
  /** The process holding a connection's app socket, as last resolved; null when unknown. */
  appProcessOf: ((connId: number) => AppProcess | null) | null = null;
  /** Every closed connection's record (the access log); records are only built while it is set. */
  onRecord: ((record: HistoryRecord) => void) | null = null;
  private readonly live = new LiveDrafts();
  /** The record being written (one, reused). */
  private readonly draft = new Draft();
  private readonly wallClock: () => number;
  private unsubscribe: (() => void) | null = null;
  /** A one-record ring the access log reads its record back from when the history is off. */
  private readonly scratch = new HistoryRing(1);

  constructor(opts: RecorderOptions) {
    this.wallClock = opts.wallClock ?? Date.now;
    this.ring = new HistoryRing(opts.capacity);
  }

  /** Live connections with a row (tests: rows are released at close). */
  get liveDrafts(): number {
    return this.live.size;
  }

  attach(hub: EventHub): void {
    if (this.unsubscribe !== null) return;
    const live = this.live;
    this.unsubscribe = hub.subscribe({
      opened: (conn: ConnIdentity) => {
        live.open(conn.id, conn.openedAt);
      },
      stateChange: (conn: ConnIdentity, from: State, to: State, now: number) => this.onTransition(conn, from, to, now),
      reset: (conn: ConnIdentity | null, direction: ResetDirection, reason: ResetReason) => {
        if (conn !== null) this.onReset(conn, direction, reason);
      },
      upstreamConnect: (connId: number, result: UpstreamResult, durationMs: number) => {
        const row = live.rowOf(connId);
        if (row >= 0) live.setConnect(row, result, durationMs);
      },
      upstreamEnded: (leg: UpstreamLeg) => {
        const row = live.rowOf(leg.id);
        if (row >= 0 && live.closer(row) === CLOSER_NONE) live.setCloser(row, CLOSER_UPSTREAM);
      },
      closed: (conn: ConnIdentity, reason: CloseReason, now: number) => this.onClosed(conn, reason, now),
      forgotten: (conn: ConnIdentity) => live.close(conn.id),
    });
  }

  detach(): void {
    this.unsubscribe?.();
    this.unsubscribe = null;
  }

  private onTransition(conn: ConnIdentity, from: State, to: State, now: number): void {
    const live = this.live;
    const row = live.open(conn.id, conn.openedAt);
    live.addState(row, to, now);
    if (live.closer(row) !== CLOSER_NONE) return;
    // RFC 9293 §3.10.7.4: the app's FIN takes an open connection to CLOSE_WAIT; our FIN (the
    // owner closed: the upstream finished) takes it to FIN_WAIT_1.
    if (to === State.CLOSE_WAIT) live.setCloser(row, CLOSER_APP);
    else if (to === State.FIN_WAIT_1 && (from === State.ESTABLISHED || from === State.SYN_RECEIVED)) live.setCloser(row, CLOSER_UPSTREAM);
  }

  private onReset(conn: ConnIdentity, direction: ResetDirection, reason: ResetReason): void {
    const live = this.live;
    const row = live.rowOf(conn.id);
    if (row < 0 || live.closer(row) !== CLOSER_NONE) return;
    if (direction === 'received') {
      live.setCloser(row, CLOSER_APP);
      return;
    }
    switch (reason) {
      case 'upstream_reset':
        live.setCloser(row, CLOSER_UPSTREAM);
        return;
      case 'upstream_refused':
        // A refusal without a dial is synfin's (policy, loop, shutdown); after one, the destination's.
        live.setCloser(row, dialCloser(live.connectResult(row)));
        return;
      case 'bad_ack':
      case 'no_connection':
        // Answers to a stray segment: the connection goes on.
        return;
      default:
        live.setCloser(row, CLOSER_SYNFIN);
    }
  }

  private onClosed(conn: ConnIdentity, reason: CloseReason, now: number): void {
    const live = this.live;
    const row = live.rowOf(conn.id);
    if (row < 0) return;
    if (live.lastState(row) !== State.CLOSED) live.addState(row, State.CLOSED, now);
    const d = this.draft;
    live.copyTo(row, d);
    const connectResult = live.connectResult(row);
    live.close(conn.id);
    d.takeFlow(conn);
    d.bytesIn = conn.bytesIn;
    d.bytesOut = conn.bytesOut;
    d.retransmits = conn.retransmits;
    d.handshakeMs = conn.handshakeMs;
    const closer = d.closer !== CLOSER_NONE ? d.closer : closerOf(reason, connectResult);
    const wall = this.wallClock();
    const durationMs = Math.max(0, now - d.openedAt);
    const service = d.hasFlow && this.serviceOf !== null ? this.serviceOf(d.family, d.destination, d.destinationPort) : OTHER;
    const app = this.appProcessOf?.(d.id) ?? null;
    this.ring.add(d, wall, durationMs, reason, closer, service, app);
    const onRecord = this.onRecord;
    if (onRecord !== null) {
      const ring = this.ring.capacity > 0 ? this.ring : this.scratch;
      if (ring === this.scratch) ring.add(d, wall, durationMs, reason, closer, service, app);
      onRecord(ring.query({}, Infinity, 1, 1).records[0]!);
    }
  }
}

/** Who ended a connection whose dial failed: the destination, unless it never answered (synfin's connect timeout) or was never dialled (a refusal of synfin's). */
function dialCloser(result: UpstreamResult | null): number {
  return result !== null && result !== 'timeout' ? CLOSER_UPSTREAM : CLOSER_SYNFIN;
}

/** Who closed first, from the close's reason alone (nothing earlier said). */
function closerOf(reason: CloseReason, connectResult: UpstreamResult | null): number {
  switch (reason) {
    case 'reset_received':
      return CLOSER_APP;
    case 'upstream_failed':
      return dialCloser(connectResult);
    default:
      return CLOSER_SYNFIN;
  }
}
