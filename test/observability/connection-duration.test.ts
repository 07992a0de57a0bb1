/**
 * synfin_tcp_connection_duration_seconds runs from the SYN to CLOSED for every SYN the stack took,
 * read from the event's own `openedAt` (ConnIdentity): a connection, a TIME-WAIT record, and a
 * SYN whose dial failed before it became a connection all count.
 */
import { describe, expect, it } from 'vitest';
import { identity } from '../helpers/identity.js';
import { createMetrics } from '../../src/observability/metrics.js';
import { EventHub } from '../../src/stack/events.js';
import { ManualClock } from '../../src/stack/clock.js';
import { metricValue } from '../helpers/synfin-env.js';

const counters = { segmentsIn: 0, segmentsOut: 0, bytesClientToUpstream: 0, bytesUpstreamToClient: 0, tunRxPackets: 0, tunRxBytes: 0, tunTxPackets: 0, tunTxBytes: 0 };

describe('synfin_tcp_connection_duration_seconds', () => {
  it('observes a failed dial from its SYN to its close, as it does a connection (the event carries openedAt)', async () => {
    const hub = new EventHub();
    const clock = new ManualClock(10_000);
    const metrics = createMetrics(hub, { clock, forEachConnection: () => {}, counters: () => counters }, '0.0.0-test');
    // A dial refused 0.2 s after its SYN (a PendingSyn's close), and a connection closed after 3 s.
    hub.closed(identity(1, 10_000), 'upstream_failed', 10_200);
    hub.closed(identity(2, 7_000), 'fin', 10_000);
    const text = await metrics.registry.metrics();
    expect(metricValue(text, 'synfin_tcp_connection_duration_seconds_count')).toBe(2);
    expect(metricValue(text, 'synfin_tcp_connection_duration_seconds_sum')).toBeCloseTo(3.2, 6);
    expect(metricValue(text, 'synfin_tcp_connection_duration_seconds_bucket', { le: '0.5' })).toBe(1);
  });
});
