/**
 * pino logs as the contract says: JSON on stdout; info for start, ready, shutdown and errors;
 * debug for every state transition (connection id, addresses, from, to). At debug level each
 * connection gets a child logger bound to its id and addresses, made at its first transition and
 * dropped when it closes; above debug nothing is subscribed, so the hot path pays nothing.
 */
import pino, { type Logger } from 'pino';
import type { EventHub } from '../stack/events.js';
import type { HistoryRecord } from './history.js';
import type { CloseReason, ConnIdentity, ResetDirection, ResetReason, RetransmitKind } from '../tcp/events.js';
import { STATE_NAMES, type State } from '../tcp/state.js';

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export function createLogger(level: LogLevel, destination?: pino.DestinationStream): Logger {
  const opts = { level, base: { name: 'synfin' }, timestamp: pino.stdTimeFunctions.isoTime };
  return destination === undefined ? pino(opts) : pino(opts, destination);
}

/** Log every transition (and closes, resets, retransmissions) at debug; returns a function that detaches. */
export function attachTransitionLogging(
  hub: EventHub,
  logger: Logger,
  describe: (conn: ConnIdentity) => { client: string; destination: string } | null,
): () => void {
  if (!logger.isLevelEnabled('debug')) return () => {};
  const children = new Map<number, Logger>();
  const childFor = (conn: ConnIdentity): Logger => {
    let child = children.get(conn.id);
    if (child === undefined) {
      const where = describe(conn);
      child = logger.child({ conn: conn.id, client: where?.client, destination: where?.destination });
      children.set(conn.id, child);
    }
    return child;
  };
  return hub.subscribe({
    stateChange(conn: ConnIdentity, from: State, to: State, now: number, sinceMs: number) {
      childFor(conn).debug(
        { from: STATE_NAMES[from], to: STATE_NAMES[to], secondsInFrom: Math.max(0, now - sinceMs) / 1000 },
        'transition',
      );
    },
    retransmit(conn: ConnIdentity, kind: RetransmitKind) {
      if (logger.isLevelEnabled('trace')) childFor(conn).trace({ kind }, 'retransmit');
    },
    reset(conn: ConnIdentity | null, direction: ResetDirection, reason: ResetReason) {
      if (conn !== null) childFor(conn).debug({ direction, reason }, 'reset');
    },
    closed(conn: ConnIdentity, reason: CloseReason) {
      childFor(conn).debug({ reason }, 'closed');
      children.delete(conn.id);
    },
  });
}

/**
 * A warning about something that can happen thousands of times a second, logged at most once per
 * `intervalMs` of the injected clock (as the kernel's net_ratelimit() does for "time wait bucket
 * table overflow"): each line carries how many times it happened since the previous line, those
 * it stood for included. Between lines a note() costs a comparison.
 */
export class ThrottledWarning {
  private lastAt = -Infinity;
  private pending = 0;

  constructor(
    private readonly logger: Logger,
    private readonly intervalMs: number,
    private readonly field: string,
    private readonly message: string,
  ) {}

  /** It happened once more at `now` (ms of the caller's clock). */
  note(now: number): void {
    this.pending++;
    if (now - this.lastAt < this.intervalMs) return;
    this.lastAt = now;
    const count = this.pending;
    this.pending = 0;
    this.logger.warn({ [this.field]: count }, this.message);
  }
}

/**
 * --access-log: each closed connection's record as one info line (`"msg":"connection closed"`,
 * the record's fields at the top level), whatever --log-level says: the option asks for these
 * lines by name (`--log-level silent --access-log` logs only them). `redact` replaces the
 * addresses (--api-addresses none).
 */
export function accessLog(logger: Logger, redact: boolean): (record: HistoryRecord) => void {
  const out = logger.isLevelEnabled('info') ? logger : logger.child({}, { level: 'info' });
  return (record) => {
    out.info(redact ? { ...record, client: 'redacted', destination: 'redacted' } : record, 'connection closed');
  };
}
