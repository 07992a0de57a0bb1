/**
 * The synfin_service_* families: every named service and `other` at zero from the start, counts
 * under the right service, the text rendered exactly as prom-client renders the same values
 * (prom-client's own Gauge, Counter and Histogram are the oracle, in both formats), and a change
 * of services that drops removed names, adds new ones at zero and keeps the counts of the rest.
 */
import client from 'prom-client';
import { describe, expect, it } from 'vitest';
import { CLOSE_REASONS, UPSTREAM_RESULTS, type ConnectionSample } from '../../src/observability/metrics.js';
import { SERVICE_CONNECT_BUCKETS, SERVICE_STATES, ServiceMetrics } from '../../src/observability/service-metrics.js';
import { parseServiceSpec, ServiceCatalogue, Services } from '../../src/observability/services.js';
import { ManualClock } from '../../src/stack/clock.js';
import { State, STATE_NAMES } from '../../src/tcp/state.js';

const FAMILIES = [
  'synfin_service_connections',
  'synfin_service_connections_waiting',
  'synfin_service_oldest_waiting_seconds',
  'synfin_service_connect_duration_seconds',
  'synfin_service_connections_closed_total',
  'synfin_service_bytes_total',
  'synfin_service_resets_total',
];

function catalogue(...specs: string[]): ServiceCatalogue {
  return new ServiceCatalogue(specs.map((s) => parseServiceSpec(s)));
}

function setup(c: ServiceCatalogue, samples: ConnectionSample[] = []) {
  const text = new client.Registry();
  const open = new client.Registry<client.OpenMetricsContentType>();
  open.setContentType(client.Registry.OPENMETRICS_CONTENT_TYPE);
  const clock = new ManualClock(1_000_000);
  const services = new Services(c);
  const sm = new ServiceMetrics(
    services,
    { clock, forEachConnection: (visit) => samples.forEach((s) => visit({ ...s })) },
    { text: [text], other: [open as unknown as client.Registry] },
  );
  return { text, open, clock, services, sm };
}

/** Lines of the text format for one family (no comments). */
function lines(body: string, family: string): string[] {
  return body.split('\n').filter((l) => ['{', '_bucket{', '_sum{', '_count{'].some((s) => l.startsWith(`${family}${s}`)));
}

describe('synfin_service_* metrics', () => {
  it('export every named service and other at zero before any connection', async () => {
    const { text, open } = setup(catalogue('payments=10.0.12.0/24:443', 'default/db=fd00::/8:5432'));
    for (const body of [await text.metrics(), await open.metrics()]) {
      for (const service of ['payments', 'default/db', 'other']) {
        for (const s of SERVICE_STATES) expect(body).toContain(`synfin_service_connections{service="${service}",state="${STATE_NAMES[s]}"} 0`);
        for (const on of ['app', 'upstream']) {
          expect(body).toContain(`synfin_service_connections_waiting{service="${service}",on="${on}"} 0`);
          expect(body).toContain(`synfin_service_oldest_waiting_seconds{service="${service}",on="${on}"} 0`);
        }
        for (const r of UPSTREAM_RESULTS) {
          expect(body).toContain(`synfin_service_connect_duration_seconds_bucket{le="+Inf",service="${service}",result="${r}"} 0`);
          expect(body).toContain(`synfin_service_connect_duration_seconds_count{service="${service}",result="${r}"} 0`);
        }
        for (const r of CLOSE_REASONS) expect(body).toContain(`synfin_service_connections_closed_total{service="${service}",reason="${r}"} 0`);
        for (const d of ['client_to_upstream', 'upstream_to_client']) expect(body).toContain(`synfin_service_bytes_total{service="${service}",direction="${d}"} 0`);
        for (const d of ['sent', 'received']) expect(body).toContain(`synfin_service_resets_total{service="${service}",direction="${d}"} 0`);
      }
    }
    const body = await text.metrics();
    // 3 services × 9 states; 3 × 5 results × (15 buckets + sum + count).
    expect(lines(body, 'synfin_service_connections')).toHaveLength(3 * SERVICE_STATES.length);
    expect(lines(body, 'synfin_service_connect_duration_seconds')).toHaveLength(3 * UPSTREAM_RESULTS.length * (SERVICE_CONNECT_BUCKETS.length + 3));
  });

  it('render exactly what prom-client renders for the same values, text and OpenMetrics', async () => {
    const c = catalogue('a=10.0.1.0/24', 'b=10.0.2.0/24');
    const T = 1_000_000;
    const samples: ConnectionSample[] = [
      { state: State.ESTABLISHED, createdAt: T - 5000, lastActivityAt: T, waitingOn: null, waitingSince: 0, service: 1 },
      { state: State.ESTABLISHED, createdAt: T - 5000, lastActivityAt: T, waitingOn: null, waitingSince: 0, service: 1 },
      { state: State.FIN_WAIT_2, createdAt: T - 90_000, lastActivityAt: T, waitingOn: 'app', waitingSince: T - 60_000, service: 2 },
      { state: State.FIN_WAIT_2, createdAt: T - 90_000, lastActivityAt: T, waitingOn: 'app', waitingSince: T - 30_000, service: 2 },
      { state: State.CLOSE_WAIT, createdAt: T - 9000, lastActivityAt: T, waitingOn: 'upstream', waitingSince: T - 2500, service: 0 },
      { state: State.TIME_WAIT, createdAt: T - 9000, lastActivityAt: T, waitingOn: null, waitingSince: 0, service: 0 },
    ];
    const ours = setup(c, samples);
    ours.sm.connect(1, 'ok', 0.7);
    ours.sm.connect(1, 'ok', 3);
    ours.sm.connect(2, 'refused', 0.2);
    ours.sm.connect(0, 'timeout', 10_000);
    ours.sm.closed(2, 'fin');
    ours.sm.closed(2, 'fin');
    ours.sm.closed(0, 'reset_received');
    ours.sm.reset(1, 'sent');
    ours.sm.reset(0, 'received');
    ours.sm.bytesOf(1).bytesClientToUpstream += 1234;
    ours.sm.bytesOf(2).bytesUpstreamToClient += 99;

    // The oracle: prom-client's own metrics, fed the same values.
    const text = new client.Registry();
    const open = new client.Registry<client.OpenMetricsContentType>();
    open.setContentType(client.Registry.OPENMETRICS_CONTENT_TYPE);
    const regs = [text, open as unknown as client.Registry];
    const names = ['other', 'a', 'b'];
    const g = new client.Gauge({ name: 'synfin_service_connections', help: 'h', labelNames: ['service', 'state'], registers: regs });
    const w = new client.Gauge({ name: 'synfin_service_connections_waiting', help: 'h', labelNames: ['service', 'on'], registers: regs });
    const o = new client.Gauge({ name: 'synfin_service_oldest_waiting_seconds', help: 'h', labelNames: ['service', 'on'], registers: regs });
    const h = new client.Histogram({ name: 'synfin_service_connect_duration_seconds', help: 'h', labelNames: ['service', 'result'], buckets: SERVICE_CONNECT_BUCKETS, registers: regs });
    const cl = new client.Counter({ name: 'synfin_service_connections_closed_total', help: 'h', labelNames: ['service', 'reason'], registers: regs });
    const by = new client.Counter({ name: 'synfin_service_bytes_total', help: 'h', labelNames: ['service', 'direction'], registers: regs });
    const rs = new client.Counter({ name: 'synfin_service_resets_total', help: 'h', labelNames: ['service', 'direction'], registers: regs });
    for (const service of names) {
      for (const s of SERVICE_STATES) g.set({ service, state: STATE_NAMES[s]! }, 0);
      for (const on of ['app', 'upstream']) {
        w.set({ service, on }, 0);
        o.set({ service, on }, 0);
      }
      for (const result of UPSTREAM_RESULTS) h.zero({ service, result });
      for (const reason of CLOSE_REASONS) cl.inc({ service, reason }, 0);
      for (const direction of ['client_to_upstream', 'upstream_to_client']) by.inc({ service, direction }, 0);
      for (const direction of ['sent', 'received']) rs.inc({ service, direction }, 0);
    }
    g.set({ service: 'a', state: 'ESTABLISHED' }, 2);
    g.set({ service: 'b', state: 'FIN_WAIT_2' }, 2);
    g.set({ service: 'other', state: 'CLOSE_WAIT' }, 1);
    g.set({ service: 'other', state: 'TIME_WAIT' }, 1);
    w.set({ service: 'b', on: 'app' }, 2);
    w.set({ service: 'other', on: 'upstream' }, 1);
    o.set({ service: 'b', on: 'app' }, 60);
    o.set({ service: 'other', on: 'upstream' }, 2.5);
    h.observe({ service: 'a', result: 'ok' }, 0.0007);
    h.observe({ service: 'a', result: 'ok' }, 0.003);
    h.observe({ service: 'b', result: 'refused' }, 0.0002);
    h.observe({ service: 'other', result: 'timeout' }, 10);
    cl.inc({ service: 'b', reason: 'fin' }, 2);
    cl.inc({ service: 'other', reason: 'reset_received' }, 1);
    rs.inc({ service: 'a', direction: 'sent' }, 1);
    rs.inc({ service: 'other', direction: 'received' }, 1);
    by.inc({ service: 'a', direction: 'client_to_upstream' }, 1234);
    by.inc({ service: 'b', direction: 'upstream_to_client' }, 99);

    const [oursText, oursOpen, theirText, theirOpen] = await Promise.all([ours.text.metrics(), ours.open.metrics(), text.metrics(), open.metrics()]);
    for (const family of FAMILIES) {
      expect(lines(oursText, family)).toEqual(lines(theirText, family));
      expect(lines(oursOpen, family)).toEqual(lines(theirOpen, family));
      expect(lines(oursText, family).length).toBeGreaterThan(0);
    }
    // OpenMetrics names the counters' samples with _total, and its TYPE line without.
    expect(oursOpen).toContain('# TYPE synfin_service_bytes counter');
    expect(oursOpen).toContain('synfin_service_bytes_total{service="a",direction="client_to_upstream"} 1234');
    // A second text scrape after an OpenMetrics one keeps the names (the views are per registry).
    expect(await ours.text.metrics()).toContain('# TYPE synfin_service_bytes_total counter');
  });

  it('after a change of services: removed names go away, new ones appear at zero, the others keep their counts', async () => {
    const { text, services, sm } = setup(catalogue('keep=10.0.1.0/24', 'gone=10.0.2.0/24'));
    sm.closed(1, 'fin');
    sm.closed(2, 'fin');
    const keptBytes = sm.bytesOf(1);
    keptBytes.bytesClientToUpstream += 10;
    services.replace(catalogue('fresh=10.0.3.0/24', 'keep=10.0.1.0/24'));
    const body = await text.metrics();
    expect(body).not.toContain('service="gone"');
    expect(body).toContain('synfin_service_connections_closed_total{service="fresh",reason="fin"} 0');
    expect(body).toContain('synfin_service_connections_closed_total{service="keep",reason="fin"} 1');
    expect(body).toContain('synfin_service_connections{service="fresh",state="ESTABLISHED"} 0');
    // The pipe of a connection opened before the change still counts into the kept service.
    keptBytes.bytesClientToUpstream += 5;
    expect(await text.metrics()).toContain('synfin_service_bytes_total{service="keep",direction="client_to_upstream"} 15');
    expect(sm.bytesOf(2)).toBe(keptBytes);
    // The histogram's text follows each new observation (its blocks are kept between scrapes).
    sm.connect(2, 'ok', 3);
    expect(await text.metrics()).toContain('synfin_service_connect_duration_seconds_count{service="keep",result="ok"} 1');
    sm.connect(2, 'ok', 3);
    const again = await text.metrics();
    expect(again).toContain('synfin_service_connect_duration_seconds_count{service="keep",result="ok"} 2');
    expect(again).toContain('synfin_service_connect_duration_seconds_bucket{le="0.0025",service="keep",result="ok"} 0');
    expect(again).toContain('synfin_service_connect_duration_seconds_bucket{le="0.005",service="keep",result="ok"} 2');
    expect(again).toContain('synfin_service_connect_duration_seconds_sum{service="keep",result="ok"} 0.006');
  });

  it('walks the table once per scrape for the three gauges', async () => {
    let walks = 0;
    const text = new client.Registry();
    new ServiceMetrics(new Services(catalogue('a=10.0.0.0/8')), { clock: new ManualClock(0), forEachConnection: () => void walks++ }, { text: [text], other: [] });
    await text.metrics();
    expect(walks).toBe(1);
    await text.metrics();
    expect(walks).toBe(2);
  });
});
