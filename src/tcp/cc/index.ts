/**
 * Congestion-control algorithms by name, for configuration (`congestionControl: ccByName(...)`).
 */
import { CongestionControlError, type CongestionControllerFactory } from './controller.js';
import { newReno } from './newreno.js';
import { cubic } from './cubic.js';

export type CongestionControlName = 'newreno' | 'cubic';

/** The names `ccByName` accepts. */
export const CONGESTION_CONTROL_NAMES: readonly CongestionControlName[] = ['newreno', 'cubic'];

/**
 * The factory for an algorithm name. Throws `CongestionControlError` with code
 * `ERR_TCP_CC_UNKNOWN` for any other name (the argument may come from untyped configuration).
 */
export function ccByName(name: CongestionControlName): CongestionControllerFactory {
  switch (name) {
    case 'newreno':
      return newReno;
    case 'cubic':
      return cubic;
    default:
      throw new CongestionControlError(
        'ERR_TCP_CC_UNKNOWN',
        `unknown congestion control algorithm ${JSON.stringify(name as unknown)}; expected one of: ${CONGESTION_CONTROL_NAMES.join(', ')}`,
      );
  }
}

export { CongestionControlError } from './controller.js';
export type { CongestionController, CongestionControllerFactory, CongestionControlOptions } from './controller.js';
export { HyStart, HyStartPhase } from './hystart.js';
export { NewReno, newReno, initialWindow, INITIAL_SSTHRESH } from './newreno.js';
export { Cubic, cubic, type CubicOptions } from './cubic.js';
