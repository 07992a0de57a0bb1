/**
 * The parts every HTTP API test builds its app from: a manual clock, an event hub, a connection
 * source, zeroed packet counters and the metrics over them; and the app built on them with only
 * the options a test cares about. One place, so that a new required option of `build` is added
 * here once.
 */
import type { FastifyInstance } from 'fastify';
import { build, type AppOptions } from '../../src/http/app.js';
import { createMetrics, type ConnectionSample } from '../../src/observability/metrics.js';
import type { ConnectionRow, ConnectionSource } from '../../src/observability/table.js';
import { ManualClock } from '../../src/stack/clock.js';
import { EventHub } from '../../src/stack/events.js';

export interface ApiPartsOptions {
  /** The clock's start, in ms (default 1,000,000). */
  startMs?: number;
  /** The rows /api/connections lists (a fresh array each call is up to the caller). */
  rows?: () => ConnectionRow[];
  /** The samples the gauges and the summary walk. */
  samples?: ConnectionSample[];
}

export function apiParts(opts: ApiPartsOptions = {}) {
  const clock = new ManualClock(opts.startMs ?? 1_000_000);
  const hub = new EventHub();
  const counters = { segmentsIn: 0, segmentsOut: 0, bytesClientToUpstream: 0, bytesUpstreamToClient: 0, tunRxPackets: 0, tunRxBytes: 0, tunTxPackets: 0, tunTxBytes: 0 };
  const rows = opts.rows ?? (() => []);
  const samples = opts.samples ?? [];
  const source: ConnectionSource = { rows, forEachSample: (visit) => samples.forEach(visit) };
  const metrics = createMetrics(hub, { clock, forEachConnection: (visit) => source.forEachSample(visit), counters: () => counters }, '0.0.0-test');
  return { clock, hub, counters, source, metrics };
}

export type ApiParts = ReturnType<typeof apiParts>;

/** The app on `parts`: ready, describing no connection, unless `options` say otherwise. */
export function buildApi(parts: ApiParts, options: Partial<AppOptions> = {}): FastifyInstance {
  return build({
    registry: parts.metrics.registry,
    openMetricsRegistry: parts.metrics.openMetricsRegistry,
    connections: parts.source,
    events: parts.hub,
    isReady: () => true,
    describe: () => null,
    ...options,
  });
}
