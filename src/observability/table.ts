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
import type { ConnectionSample } from './metrics.js';

export interface ConnectionRow {
  id: number;
  client: string;
  destination: string;
  upstream: { local: string; remote: string } | null;
  state: StateName;
  appState: string;
  /** "kernel" when read from the app's socket in a shared namespace, "inferred" from the segments otherwise. */
  appStateSource: 'kernel' | 'inferred';
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
}

export function matchesFilter(row: ConnectionRow, f: ConnectionFilter): boolean {
  if (f.state !== undefined && row.state !== f.state) return false;
  if (f.waitingOn !== undefined && row.waitingOn !== f.waitingOn) return false;
  if (f.minAge !== undefined && row.ageSeconds < f.minAge) return false;
  if (f.minIdle !== undefined && row.idleSeconds < f.minIdle) return false;
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

/** The provider the HTTP API and metrics read: implemented by the running proxy (src/runtime.ts). */
export interface ConnectionSource {
  rows(): ConnectionRow[];
  forEachSample(visit: (s: ConnectionSample) => void): void;
  /** Read what rows() takes from the kernel (app and upstream socket states) no older than `maxAgeMs`. */
  refreshKernel?(maxAgeMs?: number): Promise<void>;
}

export const STATE_NAME_LIST: readonly StateName[] = STATE_NAMES;
