/**
 * The flight recorder: what happened to the connections that are gone. A bounded ring of the
 * last `--history N` closed connections (like bcc's tcplife, Envoy's access log), built from the
 * event hub alone: the stack's events say the app leg's states, handshake, resets and close, the
 * proxy's say the upstream leg's connect and end. A connection is in /api/connections while it is
 * in the stack's table (TIME-WAIT included) and in /api/history once it has left it (CLOSED).
 *
 * Cost: while a connection lives, one small draft (pooled) that each transition writes a state
 * and a time into; at its close one record written into the ring's columns (typed arrays: no
 * object per record, no string until a record is read). Records are built as objects only for
 * /api/history and the access log.
 *
 * closedFirstBy says who ended the connection first:
 * - `app`: the app leg's FIN (our CLOSE_WAIT) or RST came first;
 * - `upstream`: the destination's EOF or reset came first (our FIN or RST to the app followed
 *   it), or its connect was refused or unreachable;
 * - `synfin`: synfin's own decision came first: idle or retransmission timeout, connect timeout,
 *   a policy or loop refusal, shutdown, a memory limit.
 */
import type { Clock } from '../stack/clock.js';
import type { EventHub } from '../stack/events.js';
import type { UpstreamLeg, UpstreamResult } from '../stack/upstream-leg.js';
import type { CloseReason, ConnIdentity, ResetDirection, ResetReason } from '../tcp/events.js';
import { State, STATE_NAMES, type StateName } from '../tcp/state.js';
import { formatEndpoint } from '../wire/address.js';
import { CLOSE_REASONS } from './metrics.js';

export const CLOSERS = ['app', 'upstream', 'synfin'] as const;
export type Closer = (typeof CLOSERS)[number];

/** The process holding the app's socket (pid, command as ss prints it, file descriptor). */
export interface AppProcess {
  pid: number;
  command: string;
  fd: number;
}

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

/** A live connection's facts gathered so far (pooled: reused after its close). */
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
  /** An upstream connect was made (its result is `connectResult`). */
  dialled = false;
  connectResult: UpstreamResult = 'ok';
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
    this.closer = CLOSER_NONE;
    this.dialled = false;
    this.connectResult = 'ok';
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

/** Bound on drafts kept for reuse. */
const DRAFT_POOL = 1024;

export interface RecorderOptions {
  clock: Clock;
  /** Closed connections kept (--history); 0 keeps none (the access log may still want records). */
  capacity: number;
  /** Wall-clock time, epoch ms (default Date.now): the ISO times of records. */
  wallClock?: () => number;
}

/**
 * Subscribes to the hub, keeps a draft per live connection and writes its record into the ring
 * when it closes. Two hooks, set by whoever wires synfin: `serviceOf` names the destination
 * (default `other`) and `appProcessOf` finds the app's process (default none); `onRecord`
 * receives each record as an object (the access log) and costs nothing while unset.
 */
export class FlightRecorder {
  readonly ring: HistoryRing;
  /** The service a destination belongs to (the service catalogue's classifier); `other` by default. */
  serviceOf: ((family: 4 | 6, address: Uint32Array, port: number) => string) | null = null;
  /** The process holding a connection's app socket, as last resolved; null when unknown. */
  appProcessOf: ((connId: number) => AppProcess | null) | null = null;
  /** Every closed connection's record (the access log); records are only built while it is set. */
  onRecord: ((record: HistoryRecord) => void) | null = null;
  private readonly drafts = new Map<number, Draft>();
  private readonly pool: Draft[] = [];
  private readonly clock: Clock;
  private readonly wallClock: () => number;
  private unsubscribe: (() => void) | null = null;
  /** A one-record ring the access log reads its record back from when the history is off. */
  private readonly scratch = new HistoryRing(1);

  constructor(opts: RecorderOptions) {
    this.clock = opts.clock;
    this.wallClock = opts.wallClock ?? Date.now;
    this.ring = new HistoryRing(opts.capacity);
  }

  /** Live connections with a draft (tests: drafts are released at close). */
  get liveDrafts(): number {
    return this.drafts.size;
  }

  attach(hub: EventHub): void {
    if (this.unsubscribe !== null) return;
    this.unsubscribe = hub.subscribe({
      opened: (conn: ConnIdentity) => {
        this.draftFor(conn);
      },
      stateChange: (conn: ConnIdentity, from: State, to: State, now: number) => this.onTransition(conn, from, to, now),
      reset: (conn: ConnIdentity | null, direction: ResetDirection, reason: ResetReason) => {
        if (conn !== null) this.onReset(conn, direction, reason);
      },
      upstreamConnect: (connId: number, result: UpstreamResult, durationMs: number) => {
        const d = this.drafts.get(connId);
        if (d === undefined) return;
        d.dialled = true;
        d.connectResult = result;
        d.connectMs = durationMs;
      },
      upstreamEnded: (leg: UpstreamLeg) => {
        const d = this.drafts.get(leg.id);
        if (d !== undefined && d.closer === CLOSER_NONE) d.closer = CLOSER_UPSTREAM;
      },
      closed: (conn: ConnIdentity, reason: CloseReason, now: number) => this.onClosed(conn, reason, now),
      forgotten: (conn: ConnIdentity) => {
        const d = this.drafts.get(conn.id);
        if (d !== undefined) this.release(d);
      },
    });
  }

  detach(): void {
    this.unsubscribe?.();
    this.unsubscribe = null;
  }

  private draftFor(conn: ConnIdentity): Draft {
    let d = this.drafts.get(conn.id);
    if (d === undefined) {
      d = this.pool.pop() ?? new Draft();
      d.reset(conn.id, conn.openedAt);
      this.drafts.set(conn.id, d);
    }
    d.takeFlow(conn);
    return d;
  }

  private release(d: Draft): void {
    this.drafts.delete(d.id);
    if (this.pool.length < DRAFT_POOL) this.pool.push(d);
  }

  private onTransition(conn: ConnIdentity, from: State, to: State, now: number): void {
    const d = this.draftFor(conn);
    d.addState(to, now);
    if (d.closer !== CLOSER_NONE) return;
    // RFC 9293 §3.10.7.4: the app's FIN takes an open connection to CLOSE_WAIT; our FIN (the
    // owner closed: the upstream finished) takes it to FIN_WAIT_1.
    if (to === State.CLOSE_WAIT) d.closer = CLOSER_APP;
    else if (to === State.FIN_WAIT_1 && (from === State.ESTABLISHED || from === State.SYN_RECEIVED)) d.closer = CLOSER_UPSTREAM;
  }

  private onReset(conn: ConnIdentity, direction: ResetDirection, reason: ResetReason): void {
    const d = this.drafts.get(conn.id);
    if (d === undefined || d.closer !== CLOSER_NONE) return;
    if (direction === 'received') {
      d.closer = CLOSER_APP;
      return;
    }
    switch (reason) {
      case 'upstream_reset':
        d.closer = CLOSER_UPSTREAM;
        return;
      case 'upstream_refused':
        // A refusal without a dial is synfin's (policy, loop, shutdown); after one, the destination's.
        d.closer = d.dialled && d.connectResult !== 'timeout' ? CLOSER_UPSTREAM : CLOSER_SYNFIN;
        return;
      case 'bad_ack':
      case 'no_connection':
        // Answers to a stray segment: the connection goes on.
        return;
      default:
        d.closer = CLOSER_SYNFIN;
    }
  }

  private onClosed(conn: ConnIdentity, reason: CloseReason, now: number): void {
    const d = this.drafts.get(conn.id);
    if (d === undefined) return;
    d.takeFlow(conn);
    if (d.nStates === 0 || d.stateCodes[Math.min(d.nStates, MAX_STATES) - 1] !== State.CLOSED) d.addState(State.CLOSED, now);
    d.bytesIn = conn.bytesIn;
    d.bytesOut = conn.bytesOut;
    d.retransmits = conn.retransmits;
    d.handshakeMs = conn.handshakeMs;
    const closer = d.closer !== CLOSER_NONE ? d.closer : closerOf(reason, d);
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
    this.release(d);
  }
}

/** Who closed first, from the close's reason alone (nothing earlier said). */
function closerOf(reason: CloseReason, d: Draft): number {
  switch (reason) {
    case 'reset_received':
      return CLOSER_APP;
    case 'upstream_failed':
      return d.dialled && d.connectResult !== 'timeout' ? CLOSER_UPSTREAM : CLOSER_SYNFIN;
    default:
      return CLOSER_SYNFIN;
  }
}
