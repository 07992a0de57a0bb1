import { describe, it, expect } from 'vitest';
import { ccByName, CONGESTION_CONTROL_NAMES, CongestionControlError, type CongestionControlName } from '../../src/tcp/cc/index.js';

describe('ccByName', () => {
  it('newreno name gives a newreno factory', () => {
    const c = ccByName('newreno')(1460, 0);
    expect(c.name).toBe('newreno');
    expect(c.cwnd).toBe(14600);
  });

  it('cubic name gives a cubic factory', () => {
    const c = ccByName('cubic')(1460, 0);
    expect(c.name).toBe('cubic');
    expect(c.cwnd).toBe(14600);
  });

  it('every listed name resolves', () => {
    for (const name of CONGESTION_CONTROL_NAMES) expect(ccByName(name)(1000, 0).name).toBe(name);
  });

  it('unknown name throws ERR_TCP_CC_UNKNOWN', () => {
    let caught: unknown;
    try {
      ccByName('bbr' as CongestionControlName);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(CongestionControlError);
    expect((caught as CongestionControlError).code).toBe('ERR_TCP_CC_UNKNOWN');
    expect((caught as Error).message).toContain('"bbr"');
    expect((caught as Error).message).toContain('newreno, cubic');
  });
});
