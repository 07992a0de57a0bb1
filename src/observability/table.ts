/**
 * The connection table behind /api/connections, the leak gauges and the live page: both legs of
 * every connection joined in one row (see "Two legs" in the product contract).
 *
 * `state` is the userspace stack's state on the app leg. It mirrors the app's own socket:
 * synfin FIN_WAIT_1/FIN_WAIT_2 means synfin has sent the app a FIN because the destination
 * closed, and the app's socket sits in CLOSE_WAIT until the app calls close() (the classic leak:
 * waitingOn = "app"); synfin CLOSE_WAIT means the app closed and the destination has not
 * (waitingOn = "upstream").
 */
import { State, STATE_NAMES, type StateName } from '../tcp/state.js';
import { parseAddress } from '../wire/address.js';
import type { AppProcess, AppProcessSource } from './app-process.js';
import type { ConnectionSample } from './metrics.js';
import type { ServiceCatalogue } from './services.js';

export interface ConnectionRow {
  id: number;
  client: string;
  destination: string;
  /** The named service of the destination (--service, --service-file), `other` when none names it. */
  service: string;
  upstream: { local: string; remote: string } | null;
  state: StateName;
  appState: string;
  /** "kernel" when read from the app's socket in a shared namespace, "inferred" from the segments otherwise. */
  appStateSource: 'kernel' | 'inferred';
  /** The process holding the app's socket ({pid, command, fd}, as `ss -tnp`), or null: appProcessSource says why (app-process.ts). */
  appProcess: AppProcess | null;
  appProcessSource: AppProcessSource;
  upstreamState: string | null;
  /** The upstream kernel socket's smoothed RTT (TCP_INFO), seconds; null when unknown. */
  upstreamRttSeconds: number | null;
  /** Retransmissions by the kernel on the upstream socket (TCP_INFO tcpi_total_retrans). */
  upstreamRetransmits: number | null;
  waitingOn: 'app' | 'upstream' | null;
  waitingSeconds: number | null;
  ageSeconds: number;
  stateAgeSeconds: number;
  idleSeconds: number;
  bytesIn: number;
  bytesOut: number;
  rttSeconds: number | null;
  retransmits: number;
  sendWindow: number;
  receiveWindow: number;
}

/**
 * The app socket's state implied by ours (the app's kernel is our peer): what a correct peer's
 * RFC 9293 state machine must be in, given what we sent and received.
 */
export function inferAppState(ours: State, ourFinAcked: boolean): string {
  switch (ours) {
    case State.SYN_RECEIVED:
      return 'SYN_SENT';
    case State.ESTABLISHED:
      return 'ESTABLISHED';
    case State.FIN_WAIT_1:
      // Our FIN is in flight: until the app acknowledges it, the app may still be ESTABLISHED.
      return ourFinAcked ? 'CLOSE_WAIT' : 'ESTABLISHED';
    case State.FIN_WAIT_2:
      // The app acknowledged our FIN and has not sent its own: it sits in CLOSE_WAIT.
      return 'CLOSE_WAIT';
    case State.CLOSE_WAIT:
      // The app sent FIN and we acknowledged it: the app waits in FIN_WAIT_2.
      return 'FIN_WAIT_2';
    case State.LAST_ACK:
      // Both FINs sent, ours not yet acknowledged: the app is in TIME_WAIT once it has our FIN.
      return 'TIME_WAIT';
    case State.CLOSING:
      return 'CLOSING';
    case State.TIME_WAIT:
      // We acknowledged the app's FIN after ours was acknowledged: the app's LAST_ACK is done.
      return 'CLOSED';
    default:
      return 'CLOSED';
  }
}

/** Which side a half-closed connection waits on, from the app-leg state. */
export function waitingOnFor(ours: State): 'app' | 'upstream' | null {
  if (ours === State.FIN_WAIT_1 || ours === State.FIN_WAIT_2) return 'app';
  if (ours === State.CLOSE_WAIT) return 'upstream';
  return null;
}

export interface ConnectionFilter {
  state?: StateName | undefined;
  waitingOn?: 'app' | 'upstream' | undefined;
  minAge?: number | undefined;
  minIdle?: number | undefined;
  /** ADDR or ADDR:PORT ([v6]:PORT) of the destination. */
  destination?: string | undefined;
  /** A service name (`other` included). */
  service?: string | undefined;
}

export function matchesFilter(row: ConnectionRow, f: ConnectionFilter): boolean {
  if (f.state !== undefined && row.state !== f.state) return false;
  if (f.waitingOn !== undefined && row.waitingOn !== f.waitingOn) return false;
  if (f.minAge !== undefined && row.ageSeconds < f.minAge) return false;
  if (f.minIdle !== undefined && row.idleSeconds < f.minIdle) return false;
  if (f.service !== undefined && row.service !== f.service) return false;
  if (f.destination !== undefined) {
    const d = f.destination;
    if (row.destination !== d) {
      // An address without a port matches every port of it.
      const host = row.destination.startsWith('[') ? row.destination.slice(1, row.destination.indexOf(']')) : row.destination.slice(0, row.destination.lastIndexOf(':'));
      const want = d.startsWith('[') && d.endsWith(']') ? d.slice(1, -1) : d;
      if (host !== want) return false;
    }
  }
  return true;
}

/**
 * A filter compiled once per request for the connection table's cheap columns: the stack's state
 * and times and the flow's numbers. Deciding whether a row matches never reads TCP_INFO, the
 * kernel's socket table or formats an address; only rows that match and fit in the page do.
 */
export interface CompiledFilter {
  /** The state's number, or -1 for any. */
  state: number;
  waitingOn: 'app' | 'upstream' | null;
  minAge: number;
  minIdle: number;
  /** The destination to match; `none` when the filter's text is not an address (nothing matches). */
  destination: { family: 4 | 6; words: Uint32Array; port: number } | null | 'none';
  /** The service's index in the catalogue in force, -1 for any, -2 for a name it does not have (nothing matches). */
  service: number;
}

/**
 * `?destination=` as numbers: ADDR (every port), ADDR:PORT or [V6]:PORT, or a bare IPv6 address.
 * Addresses compare as addresses (`2001:DB8::1` matches `[2001:db8::1]:443`).
 */
function compileDestination(d: string): CompiledFilter['destination'] {
  let host = d;
  let port = -1;
  if (d.startsWith('[')) {
    const close = d.indexOf(']');
    if (close < 0) return 'none';
    host = d.slice(1, close);
    const rest = d.slice(close + 1);
    if (rest !== '') {
      if (!/^:\d{1,5}$/.test(rest)) return 'none';
      port = Number(rest.slice(1));
    }
    // Brackets hold IPv6 only.
    if (!host.includes(':')) return 'none';
  } else if (d.indexOf(':') >= 0 && d.indexOf(':') === d.lastIndexOf(':')) {
    // One colon: IPv4:PORT (an IPv6 address has at least two).
    const i = d.indexOf(':');
    host = d.slice(0, i);
    if (!/^\d{1,5}$/.test(d.slice(i + 1))) return 'none';
    port = Number(d.slice(i + 1));
  }
  const a = parseAddress(host);
  if (a === null || port > 65535) return 'none';
  return { family: a.family, words: a.words, port };
}

export function compileFilter(f: ConnectionFilter, services?: ServiceCatalogue): CompiledFilter {
  let service = -1;
  if (f.service !== undefined) service = services === undefined ? (f.service === 'other' ? 0 : -2) : services.indexOf(f.service);
  if (service === -1 && f.service !== undefined) service = -2;
  return {
    service,
    state: f.state === undefined ? -1 : STATE_NAMES.indexOf(f.state),
    waitingOn: f.waitingOn ?? null,
    minAge: f.minAge ?? -Infinity,
    minIdle: f.minIdle ?? -Infinity,
    destination: f.destination === undefined ? null : compileDestination(f.destination),
  };
}

/**
 * Whether a connection matches, from its cheap columns: `local`/`localPort` are the address the
 * app dialled (the row's `destination`). Ages are computed as the row computes them, so this
 * agrees with matchesFilter() on the row.
 */
export function matchesCompiled(
  f: CompiledFilter,
  state: State,
  createdAt: number,
  lastActivityAt: number,
  family: 4 | 6,
  local: Uint32Array,
  localPort: number,
  now: number,
  service = 0,
): boolean {
  if (f.state >= 0 && state !== f.state) return false;
  if (f.service !== -1 && service !== f.service) return false;
  if (f.waitingOn !== null && waitingOnFor(state) !== f.waitingOn) return false;
  if ((now - createdAt) / 1000 < f.minAge) return false;
  if ((now - lastActivityAt) / 1000 < f.minIdle) return false;
  const d = f.destination;
  if (d !== null) {
    if (d === 'none' || d.family !== family) return false;
    if (d.port >= 0 && d.port !== localPort) return false;
    const w = d.words;
    if (w[3] !== local[3] || w[2] !== local[2] || w[1] !== local[1] || w[0] !== local[0]) return false;
  }
  return true;
}

/** One page (or one slice of a page) of the table: rows in id order after a cursor. */
export interface PageQuery {
  filter: ConnectionFilter;
  /** Rows with an id above this one (0: from the start). */
  afterId: number;
  /** Rows to return at most (0: only tell whether one more matches). */
  limit: number;
  /** Stop after examining this many connections (matching or not), to resume later; default all. */
  maxExamined?: number;
}

export interface ConnectionPage {
  rows: ConnectionRow[];
  /** Another matching row follows the last one returned (looked for only once `limit` rows were found). */
  more: boolean;
  /** The walk stopped at `maxExamined` after this id (resume after it); null when it was not cut short. */
  resumeAfterId: number | null;
}

/**
 * The page from a full list of rows (sources that have no cheaper way: tests' fakes). It defines
 * what `page()` returns: rows matching the filter with an id above `afterId`, in id order, at
 * most `limit`; whether one more matches after them; and where a walk cut short by `maxExamined`
 * stopped.
 */
export function pageOfRows(all: readonly ConnectionRow[], q: PageQuery): ConnectionPage {
  const after = all.filter((r) => r.id > q.afterId).sort((a, b) => a.id - b.id);
  const rows: ConnectionRow[] = [];
  const maxExamined = q.maxExamined ?? Infinity;
  let examined = 0;
  for (const r of after) {
    if (examined === maxExamined) return { rows, more: false, resumeAfterId: after[examined - 1]!.id };
    examined++;
    if (!matchesFilter(r, q.filter)) continue;
    if (rows.length === q.limit) return { rows, more: true, resumeAfterId: null };
    rows.push(r);
  }
  return { rows, more: false, resumeAfterId: null };
}

/** The provider the HTTP API and metrics read: implemented by the running proxy (src/runtime.ts). */
export interface ConnectionSource {
  rows(): ConnectionRow[];
  /**
   * One page of rows (see pageOfRows for what it returns), costing TCP_INFO and the kernel's
   * socket table only for the rows returned. Sources without it are paged from rows().
   */
  page?(q: PageQuery): ConnectionPage;
  forEachSample(visit: (s: ConnectionSample) => void): void;
  /** Read what rows() takes from the kernel (app and upstream socket states) no older than `maxAgeMs`. */
  refreshKernel?(maxAgeMs?: number): Promise<void>;
  /** Fill in the app process of rows whose appProcessSource is `pending` (off the event loop). */
  resolveAppProcesses?(rows: ConnectionRow[]): Promise<void>;
}

export const STATE_NAME_LIST: readonly StateName[] = STATE_NAMES;
