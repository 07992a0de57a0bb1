/**
 * synfin_tcp_slow_start_exits_total{reason}: one count per connection whose initial slow start
 * ended, by how (the event from TcpConn, events.slowStartExit), every reason present from the
 * first scrape on at 0.
 */
import { describe, expect, it } from 'vitest';
import { identity } from '../helpers/identity.js';
import { createMetrics } from '../../src/observability/metrics.js';
import { EventHub } from '../../src/stack/events.js';
import { ManualClock } from '../../src/stack/clock.js';
import { metricValue } from '../helpers/synfin-env.js';

const counters = { segmentsIn: 0, segmentsOut: 0, bytesClientToUpstream: 0, bytesUpstreamToClient: 0, tunRxPackets: 0, tunRxBytes: 0, tunTxPackets: 0, tunTxBytes: 0 };

describe('synfin_tcp_slow_start_exits_total', () => {
  it('counts the exits by reason, each reason at 0 before any', async () => {
    const hub = new EventHub();
    const metrics = createMetrics(hub, { clock: new ManualClock(0), forEachConnection: () => {}, counters: () => counters }, '0.0.0-test');
    const before = await metrics.registry.metrics();
    for (const reason of ['delay', 'loss', 'timeout']) expect(metricValue(before, 'synfin_tcp_slow_start_exits_total', { reason })).toBe(0);
    hub.slowStartExit(identity(1, 0), 'delay');
    hub.slowStartExit(identity(2, 0), 'loss');
    hub.slowStartExit(identity(3, 0), 'loss');
    const after = await metrics.registry.metrics();
    expect(metricValue(after, 'synfin_tcp_slow_start_exits_total', { reason: 'delay' })).toBe(1);
    expect(metricValue(after, 'synfin_tcp_slow_start_exits_total', { reason: 'loss' })).toBe(2);
    expect(metricValue(after, 'synfin_tcp_slow_start_exits_total', { reason: 'timeout' })).toBe(0);
    metrics.close();
  });
});
