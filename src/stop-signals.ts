/**
 * The signals that stop `synfin run` (one thread or --workers N), as an operator at a terminal
 * expects them to act: the first SIGTERM or SIGINT starts the graceful shutdown (no new
 * connections; open ones get --shutdown-grace to finish); a second ends the grace period at once
 * (the remaining connections are reset, as when the grace period runs out, and the shutdown goes
 * on: the exit is still 0, "stopped by a signal"); a third exits at once with 128 + the signal's
 * number, for a shutdown that does not finish. Kubernetes sends one SIGTERM and, after the pod's
 * terminationGracePeriodSeconds, SIGKILL: only the first step happens there.
 */
import os from 'node:os';
import type { Logger } from 'pino';

export interface Stoppable {
  /** Graceful: resolves once everything is closed. */
  shutdown(reason: string): Promise<void>;
  /** The grace period ends now: the connections still open are reset. */
  endGrace(reason: string): void;
}

export function installStopSignals(target: Stoppable, logger: Logger, exit: (code: number) => void = (code) => process.exit(code)): () => void {
  let received = 0;
  const onSignal = (signal: NodeJS.Signals): void => {
    received++;
    if (received === 1) {
      void target.shutdown(signal).then(() => exit(0));
    } else if (received === 2) {
      logger.warn({ signal }, `${signal} again: the grace period ends now, the connections still open are reset (once more to exit at once)`);
      target.endGrace(signal);
    } else {
      logger.warn({ signal }, `${signal} a third time: exiting now, without finishing the shutdown`);
      exit(128 + (os.constants.signals[signal] ?? 15));
    }
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  return () => {
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
  };
}
