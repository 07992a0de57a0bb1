import { describe, expect, it } from 'vitest';
import { DEFAULT_CONFIG, resolveConfig } from '../../src/config.js';
import { ConfigError } from '../../src/errors.js';

describe('--max-time-wait', () => {
  it('defaults to 32768 and is taken from the flag or SYNFIN_MAX_TIME_WAIT; 0 is allowed', () => {
    expect(DEFAULT_CONFIG.maxTimeWait).toBe(32_768);
    expect(resolveConfig({}, {}).maxTimeWait).toBe(32_768);
    expect(resolveConfig({ 'max-time-wait': '2' }, {}).maxTimeWait).toBe(2);
    expect(resolveConfig({}, { SYNFIN_MAX_TIME_WAIT: '100' }).maxTimeWait).toBe(100);
    expect(resolveConfig({ 'max-time-wait': '0' }, {}).maxTimeWait).toBe(0);
  });

  it('refuses a negative or fractional bound with a one-line error naming the option', () => {
    expect(() => resolveConfig({ 'max-time-wait': '-1' }, {})).toThrow(ConfigError);
    expect(() => resolveConfig({ 'max-time-wait': '1.5' }, {})).toThrow(/--max-time-wait: 1.5 must be an integer ≥ 0/);
  });
});
