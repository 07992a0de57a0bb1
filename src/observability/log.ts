/**
 * pino logs as the contract says: JSON on stdout; info for start, ready, shutdown and errors;
 * debug for every state transition (connection id, addresses, from, to). Per-connection detail is
 * logged through child loggers only when debug is on, so the hot path pays nothing at info.
 */
import pino, { type Logger } from 'pino';
import type { EventHub } from '../stack/events.js';
import type { ConnIdentity } from '../tcp/events.js';
import { STATE_NAMES, type State } from '../tcp/state.js';
import type { LogLevel } from '../config.js';

export function createLogger(level: LogLevel): Logger {
  return pino({ level, base: { name: 'synfin' }, timestamp: pino.stdTimeFunctions.isoTime });
}

/** Log every transition at debug; returns a function that detaches. Costs nothing above debug. */
export function attachTransitionLogging(
  hub: EventHub,
  logger: Logger,
  describe: (conn: ConnIdentity) => { client: string; destination: string } | null,
): () => void {
  if (!logger.isLevelEnabled('debug')) return () => {};
  return hub.subscribe({
    stateChange(conn: ConnIdentity, from: State, to: State, now: number, sinceMs: number) {
      const where = describe(conn);
      logger.debug(
        {
          conn: conn.id,
          client: where?.client,
          destination: where?.destination,
          from: STATE_NAMES[from],
          to: STATE_NAMES[to],
          secondsInFrom: Math.max(0, now - sinceMs) / 1000,
        },
        'transition',
      );
    },
  });
}
