import { apiParts, buildApi } from '../helpers/api-app.js';
import { afterEach, describe, expect, it } from 'vitest';
import { identity } from '../helpers/identity.js';
import { TRANSITIONS, type ConnectionSample } from '../../src/observability/metrics.js';
import type { ConnectionRow } from '../../src/observability/table.js';
import { State } from '../../src/tcp/state.js';

function row(over: Partial<ConnectionRow>): ConnectionRow {
  return {
    id: 1,
    client: '198.18.0.1:40000',
    destination: '198.18.1.1:80',
    service: 'other',
    upstream: { local: '127.0.0.1:50000', remote: '127.0.0.1:8080' },
    state: 'ESTABLISHED',
    appState: 'ESTABLISHED',
    appStateSource: 'inferred',
    appProcess: null,
    appProcessSource: 'no_socket',
    upstreamState: 'ESTABLISHED',
    upstreamRttSeconds: 0.0001,
    upstreamRetransmits: 0,
    waitingOn: null,
    waitingSeconds: null,
    ageSeconds: 1,
    stateAgeSeconds: 1,
    idleSeconds: 0,
    bytesIn: 0,
    bytesOut: 0,
    rttSeconds: null,
    retransmits: 0,
    sendWindow: 0,
    receiveWindow: 0,
    ...over,
  };
}

function setup(rows: ConnectionRow[], samples: ConnectionSample[] = []) {
  const parts = apiParts({ rows: () => rows, samples });
  const { hub, clock, counters, metrics } = parts;
  let ready = true;
  const app = buildApi(parts, {
    isReady: () => ready,
    describe: () => ({ client: '198.18.0.1:40000', destination: '198.18.1.1:80' }),
  });
  return { app, hub, clock, counters, metrics, setReady: (r: boolean) => (ready = r) };
}

let cleanup: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanup) await c();
  cleanup = [];
});

describe('HTTP app', () => {
  it('GET /healthz is 200; /readyz follows readiness', async () => {
    const { app, setReady } = setup([]);
    cleanup.push(() => app.close());
    expect((await app.inject('/healthz')).statusCode).toBe(200);
    expect((await app.inject('/readyz')).statusCode).toBe(200);
    setReady(false);
    expect((await app.inject('/readyz')).statusCode).toBe(503);
  });

  it('GET /metrics exports every contract series from the start, at zero', async () => {
    const { app } = setup([]);
    cleanup.push(() => app.close());
    const res = await app.inject('/metrics');
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toContain('text/plain');
    expect(res.headers['server-timing']).toMatch(/^kernel;dur=\d+\.\d+, collect;dur=\d+\.\d+$/);
    const body = res.body;
    for (const s of ['CLOSED', 'LISTEN', 'SYN_RECEIVED', 'ESTABLISHED', 'FIN_WAIT_1', 'FIN_WAIT_2', 'CLOSE_WAIT', 'CLOSING', 'LAST_ACK', 'TIME_WAIT', 'SYN_SENT']) {
      expect(body).toContain(`synfin_tcp_connections{state="${s}"}`);
    }
    for (const [from, to] of TRANSITIONS) expect(body).toContain(`synfin_tcp_state_transitions_total{from="${from}",to="${to}"} 0`);
    for (const name of [
      'synfin_tcp_state_duration_seconds_bucket',
      'synfin_tcp_oldest_connection_age_seconds',
      'synfin_tcp_handshake_duration_seconds_bucket{le="0.00005",result="ok"}',
      'synfin_upstream_connect_duration_seconds_bucket{le="0.00005",result="refused"}',
      'synfin_tcp_connection_duration_seconds_bucket',
      'synfin_tcp_connections_opened_total{family="ipv4"} 0',
      'synfin_tcp_connections_closed_total{reason="fin"} 0',
      'synfin_tcp_segments_total{direction="in"} 0',
      'synfin_tcp_bytes_total{direction="client_to_upstream"} 0',
      'synfin_tcp_retransmitted_segments_total{kind="rto"} 0',
      'synfin_tcp_resets_total{direction="sent",reason="no_connection"} 0',
      'synfin_tcp_dropped_segments_total{reason="checksum"} 0',
      'synfin_tcp_rtt_seconds_bucket',
      'synfin_connections_waiting{on="app"} 0',
      'synfin_connections_oldest_waiting_seconds{on="upstream"} 0',
      'synfin_connections_oldest_idle_seconds 0',
      'synfin_upstream_sockets{state="TIME_WAIT"} 0',
      'synfin_tun_packets_total{direction="rx"} 0',
      'synfin_tun_bytes_total{direction="tx"} 0',
      'synfin_build_info{version="0.0.0-test"',
      'synfin_ephemeral_ports ',
      'nodejs_eventloop_lag_seconds',
    ]) {
      expect(body).toContain(name);
    }
    expect(body).not.toMatch(/\d+\.\d+\.\d+\.\d+:\d+/); // no address or port in any label
  });

  it('GET /metrics serves OpenMetrics when asked', async () => {
    const { app } = setup([]);
    cleanup.push(() => app.close());
    const res = await app.inject({ url: '/metrics', headers: { accept: 'application/openmetrics-text; version=1.0.0' } });
    expect(res.headers['content-type']).toContain('application/openmetrics-text');
    expect(res.body.trimEnd().endsWith('# EOF')).toBe(true);
  });

  it('gauges are computed from the table at scrape time', async () => {
    const samples: ConnectionSample[] = [
      { state: State.ESTABLISHED, createdAt: 990_000, lastActivityAt: 995_000, waitingOn: null, waitingSince: 0 },
      { state: State.FIN_WAIT_2, createdAt: 900_000, lastActivityAt: 900_000, waitingOn: 'app', waitingSince: 940_000 },
      { state: State.FIN_WAIT_2, createdAt: 950_000, lastActivityAt: 950_000, waitingOn: 'app', waitingSince: 970_000 },
      { state: State.CLOSE_WAIT, createdAt: 980_000, lastActivityAt: 980_000, waitingOn: 'upstream', waitingSince: 990_000 },
    ];
    const { app } = setup([], samples);
    cleanup.push(() => app.close());
    const body = (await app.inject('/metrics')).body;
    expect(body).toContain('synfin_tcp_connections{state="FIN_WAIT_2"} 2');
    expect(body).toContain('synfin_tcp_connections{state="ESTABLISHED"} 1');
    expect(body).toContain('synfin_tcp_connections{state="LISTEN"} 1');
    expect(body).toContain('synfin_connections_waiting{on="app"} 2');
    expect(body).toContain('synfin_connections_waiting{on="upstream"} 1');
    expect(body).toContain('synfin_connections_oldest_waiting_seconds{on="app"} 60');
    expect(body).toContain('synfin_tcp_oldest_connection_age_seconds{state="FIN_WAIT_2"} 100');
    expect(body).toContain('synfin_connections_oldest_idle_seconds 5');
  });

  it('event-fed counters follow the event stream', async () => {
    const { app, hub, counters } = setup([]);
    cleanup.push(() => app.close());
    const conn = identity(7, 0);
    hub.stateChange(conn, State.ESTABLISHED, State.CLOSE_WAIT, 2000, 1000);
    hub.stateChange(conn, State.ESTABLISHED, State.CLOSE_WAIT, 2000, 1000);
    hub.drop(null, 'checksum');
    hub.reset(null, 'sent', 'no_connection');
    hub.retransmit(conn, 'fast');
    hub.handshake(conn, 'ok', 0.3);
    hub.closed(conn, 'fin', 3_600_000);
    counters.bytesClientToUpstream = 1234;
    const body = (await app.inject('/metrics')).body;
    expect(body).toContain('synfin_tcp_state_transitions_total{from="ESTABLISHED",to="CLOSE_WAIT"} 2');
    expect(body).toContain('synfin_tcp_state_duration_seconds_count{state="ESTABLISHED"} 2');
    expect(body).toContain('synfin_tcp_dropped_segments_total{reason="checksum"} 1');
    expect(body).toContain('synfin_tcp_resets_total{direction="sent",reason="no_connection"} 1');
    expect(body).toContain('synfin_tcp_retransmitted_segments_total{kind="fast"} 1');
    expect(body).toContain('synfin_tcp_handshake_duration_seconds_bucket{le="0.0005",result="ok"} 1');
    expect(body).toContain('synfin_tcp_handshake_duration_seconds_bucket{le="0.00025",result="ok"} 0');
    expect(body).toContain('synfin_tcp_connections_closed_total{reason="fin"} 1');
    expect(body).toContain('synfin_tcp_connection_duration_seconds_bucket{le="3600"} 1');
    expect(body).toContain('synfin_tcp_bytes_total{direction="client_to_upstream"} 1234');
    counters.bytesClientToUpstream = 2000;
    const again = (await app.inject('/metrics')).body;
    expect(again).toContain('synfin_tcp_bytes_total{direction="client_to_upstream"} 2000');
  });

  it('GET /api/connections filters, and rejects a bad filter with 400', async () => {
    const rows = [
      row({ id: 1, state: 'FIN_WAIT_2', waitingOn: 'app', ageSeconds: 100, appState: 'CLOSE_WAIT' }),
      row({ id: 2, state: 'ESTABLISHED', ageSeconds: 5, idleSeconds: 4, destination: '198.18.1.2:443' }),
      row({ id: 3, state: 'CLOSE_WAIT', waitingOn: 'upstream', ageSeconds: 50 }),
    ];
    const { app } = setup(rows);
    cleanup.push(() => app.close());
    const all = (await app.inject('/api/connections')).json();
    expect(all.count).toBe(3);
    // In id order, the order connections were opened (the pages of ?limit= and ?cursor=).
    expect(all.connections.map((r: ConnectionRow) => r.id)).toEqual([1, 2, 3]);
    expect(all.next).toBeNull();
    expect((await app.inject('/api/connections?state=FIN_WAIT_2')).json().connections.map((r: ConnectionRow) => r.id)).toEqual([1]);
    expect((await app.inject('/api/connections?waitingOn=app')).json().connections[0].appState).toBe('CLOSE_WAIT');
    expect((await app.inject('/api/connections?minAge=40')).json().count).toBe(2);
    expect((await app.inject('/api/connections?minIdle=3')).json().count).toBe(1);
    expect((await app.inject('/api/connections?destination=198.18.1.2')).json().count).toBe(1);
    expect((await app.inject('/api/connections?destination=198.18.1.2:443')).json().count).toBe(1);
    expect((await app.inject('/api/connections?destination=198.18.1.2:80')).json().count).toBe(0);
    const bad = await app.inject('/api/connections?state=FIN_WAIT_3');
    expect(bad.statusCode).toBe(400);
    expect(bad.json().error).toMatch(/state/);
    expect((await app.inject('/api/connections?minAge=old')).statusCode).toBe(400);
    expect((await app.inject('/api/connections?colour=blue')).statusCode).toBe(400);
  });

  it('GET /api/events streams transitions in order', async () => {
    const { app, hub } = setup([]);
    cleanup.push(() => app.close());
    await app.listen({ port: 0, host: '127.0.0.1' });
    const addr = app.server.address() as { port: number };
    const controller = new AbortController();
    const res = await fetch(`http://127.0.0.1:${addr.port}/api/events`, { signal: controller.signal });
    expect(res.headers.get('content-type')).toContain('text/event-stream');
    const reader = res.body!.getReader();
    const conn = identity(42, 0);
    hub.stateChange(conn, State.LISTEN, State.SYN_RECEIVED, 10, 0);
    hub.stateChange(conn, State.SYN_RECEIVED, State.ESTABLISHED, 20, 10);
    hub.stateChange(conn, State.ESTABLISHED, State.CLOSE_WAIT, 1020, 20);
    let text = '';
    const decoder = new TextDecoder();
    while ((text.match(/event: transition/g) ?? []).length < 3) {
      const { value, done } = await reader.read();
      if (done) break;
      text += decoder.decode(value);
    }
    controller.abort();
    const events = [...text.matchAll(/data: (.*)\n/g)].map((m) => JSON.parse(m[1]!));
    expect(events.map((e) => `${e.from}>${e.to}`)).toEqual(['LISTEN>SYN_RECEIVED', 'SYN_RECEIVED>ESTABLISHED', 'ESTABLISHED>CLOSE_WAIT']);
    expect(events[2].id).toBe(42);
    expect(events[2].secondsInFrom).toBe(1);
    expect(events[0].client).toBe('198.18.0.1:40000');
  });
});
