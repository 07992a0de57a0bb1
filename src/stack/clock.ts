/**
 * The stack's notion of time: milliseconds as a float, monotonic. Injected everywhere so tests
 * drive time by hand; only the real clock reads the process timer.
 */
// Imported, not the global: in Node.js `globalThis.performance` (like `Buffer`) is an accessor, so
// every read of the global calls its getter (a LoadGlobalIC the optimizer cannot fold away).
import { performance } from 'node:perf_hooks';

export interface Clock {
  now(): number;
}

export const monotonicClock: Clock = {
  now: () => performance.now(),
};

/** A clock that only moves when told to: for tests and simulations. */
export class ManualClock implements Clock {
  constructor(private t = 0) {}
  now(): number {
    return this.t;
  }
  advance(ms: number): number {
    this.t += ms;
    return this.t;
  }
  set(ms: number): void {
    this.t = ms;
  }
}
