/**
 * --max-time-wait's observability: synfin_tcp_time_wait_overflow_total from the stack's count
 * (at zero from the start), and the warning, at most one line a minute of the injected clock,
 * each line counting the overflows since the last.
 */
import { describe, expect, it } from 'vitest';
import { createLogger, ThrottledWarning } from '../../src/observability/log.js';
import { createMetrics } from '../../src/observability/metrics.js';
import { ManualClock } from '../../src/stack/clock.js';
import { stackHarness } from '../stack/stack-harness.js';
import { metricValue } from '../helpers/synfin-env.js';

const counters = { segmentsIn: 0, segmentsOut: 0, bytesClientToUpstream: 0, bytesUpstreamToClient: 0, tunRxPackets: 0, tunRxBytes: 0, tunTxPackets: 0, tunTxBytes: 0 };

describe('TIME-WAIT overflow: metric and log', () => {
  it('synfin tcp time wait overflow total is 0 from the start and follows the stack', async () => {
    const lines: Array<Record<string, unknown>> = [];
    const logger = createLogger('warn', { write: (s: string) => void lines.push(JSON.parse(s)) });
    let h!: ReturnType<typeof stackHarness>;
    const warning = new ThrottledWarning(logger, 60_000, 'skipped', 'TIME-WAIT bound reached');
    h = stackHarness({ mslMs: 30_000, maxTimeWait: 1, onTimeWaitOverflow: (now) => warning.note(now) });
    const metrics = createMetrics(h.hub, { clock: h.clock, forEachConnection: () => {}, counters: () => counters, timeWaitOverflows: () => h.stack.timeWaitOverflows }, '0.0.0-test');
    const scrape = async () => metrics.registry.metrics();
    const before = await scrape();
    expect(before).toMatch(/^synfin_tcp_time_wait_overflow_total 0$/m);

    for (let p = 44000; p < 44004; p++) {
      const c = h.establish({ srcPort: p });
      h.closeToTimeWait(c.conn, c.ourIss, { srcPort: p });
    }
    const after = await scrape();
    expect(metricValue(after, 'synfin_tcp_time_wait_overflow_total')).toBe(3);
    // The transitions say the same: one connection into TIME_WAIT, three straight to CLOSED.
    const t = (from: string, to: string) => metricValue(after, 'synfin_tcp_state_transitions_total', { from, to });
    expect(t('FIN_WAIT_1', 'TIME_WAIT')).toBe(1);
    expect(t('FIN_WAIT_1', 'CLOSED')).toBe(3);
    expect(t('TIME_WAIT', 'CLOSED')).toBe(0);
    expect(metricValue(after, 'synfin_tcp_connections_closed_total', { reason: 'fin' })).toBe(3);
    // Three overflows within the same minute: one line, for the first.
    expect(lines.map((l) => [l.level, l.skipped])).toEqual([[40, 1]]);
  });

  it('logs at most once per interval of the injected clock, counting what it stood for', () => {
    const lines: Array<Record<string, unknown>> = [];
    const logger = createLogger('warn', { write: (s: string) => void lines.push(JSON.parse(s)) });
    const clock = new ManualClock(5_000);
    const w = new ThrottledWarning(logger, 60_000, 'skipped', 'bound reached');
    w.note(clock.now());
    for (let i = 0; i < 100; i++) {
      clock.advance(500); // 50 s of overflows
      w.note(clock.now());
    }
    expect(lines.map((l) => l.skipped)).toEqual([1]);
    clock.advance(10_000); // 60 s after the first line
    w.note(clock.now());
    expect(lines.map((l) => l.skipped)).toEqual([1, 101]);
    expect(lines[1]!.msg).toBe('bound reached');
    clock.advance(59_999);
    w.note(clock.now());
    expect(lines).toHaveLength(2);
    clock.advance(1);
    w.note(clock.now());
    expect(lines.map((l) => l.skipped)).toEqual([1, 101, 2]);
  });
});
