/**
 * `service` on the API: `?service=` filters the table (a name not in force matches nothing, a
 * malformed one is a 400), and every /api/events reader gets the service, also a reader whose
 * addresses are redacted, for whom the addresses are still never looked up.
 */
import { apiParts, buildApi } from '../helpers/api-app.js';
import { afterEach, describe, expect, it } from 'vitest';
import type { ConnectionRow } from '../../src/observability/table.js';
import { State } from '../../src/tcp/state.js';
import { identity } from '../helpers/identity.js';

function row(id: number, service: string): ConnectionRow {
  return {
    id,
    client: `198.18.0.1:${40000 + id}`,
    destination: '198.18.1.1:80',
    service,
    upstream: null,
    state: 'ESTABLISHED',
    appState: 'ESTABLISHED',
    appStateSource: 'inferred',
    appProcess: null,
    appProcessSource: 'not_visible',
    upstreamState: 'ESTABLISHED',
    upstreamRttSeconds: null,
    upstreamRetransmits: null,
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
  };
}

const ROWS = [row(1, 'shop/payments'), row(2, 'other'), row(3, 'shop/payments')];

function setup() {
  const parts = apiParts({ rows: () => ROWS.map((r) => ({ ...r })) });
  const { hub } = parts;
  const described: number[] = [];
  const app = buildApi(parts, {
    describe: (conn) => {
      described.push(conn.id);
      return { client: '198.18.0.1:40000', destination: '198.18.1.1:80', service: 'shop/payments' };
    },
    serviceOf: () => 'shop/payments',
  });
  cleanup.push(() => app.close());
  return { app, hub, described };
}

let cleanup: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanup) await c();
  cleanup = [];
});

describe('service on the API', () => {
  it('?service= keeps the rows of that service', async () => {
    const { app } = setup();
    const get = async (q: string) => (await app.inject({ url: `/api/connections${q}`, remoteAddress: '127.0.0.1' })).json() as { count: number; connections: ConnectionRow[] };
    expect((await get('?service=shop/payments')).connections.map((r) => r.id)).toEqual([1, 3]);
    expect((await get('?service=other')).connections.map((r) => r.id)).toEqual([2]);
    expect((await get('?service=nobody')).count).toBe(0);
    expect((await get('')).connections.map((r) => r.service)).toEqual(['shop/payments', 'other', 'shop/payments']);
    // Redacted readers may filter by service: it is not an address.
    const remote = await app.inject({ url: '/api/connections?service=other', remoteAddress: '192.0.2.9' });
    expect(remote.statusCode).toBe(200);
    expect((remote.json() as { count: number }).count).toBe(1);
  });

  it('a malformed ?service= is a 400 naming it', async () => {
    const { app } = setup();
    const res = await app.inject({ url: '/api/connections?service=%22x%22', remoteAddress: '127.0.0.1' });
    expect(res.statusCode).toBe(400);
    expect((res.json() as { error: string }).error).toMatch(/service/);
  });

  for (const [who, peer] of [['a loopback reader', '127.0.0.1'], ['a redacted reader', '192.0.2.9']] as const) {
    it(`/api/events gives ${who} the service`, async () => {
      const { app, hub, described } = setup();
      const controller = new AbortController();
      const res = await app.inject({ url: '/api/events', remoteAddress: peer, payloadAsStream: true, signal: controller.signal });
      hub.stateChange(identity(7, 0), State.LISTEN, State.SYN_RECEIVED, 10, 0);
      let text = '';
      for await (const chunk of res.stream()) {
        text += String(chunk);
        if (text.includes('event: transition')) break;
      }
      controller.abort();
      const event = JSON.parse(/data: (.*)\n/.exec(text)![1]!) as { service: string; destination: string };
      expect(event.service).toBe('shop/payments');
      if (peer === '127.0.0.1') expect(event.destination).toBe('198.18.1.1:80');
      else {
        expect(event.destination).toBe('redacted');
        expect(described).toEqual([]);
      }
    });
  }
});
