/**
 * The API never stalls the packets or opens a door: /api/connections in pages (?limit=, ?cursor=,
 * next), a cap on /api/events readers (--max-event-streams, 503 beyond it, a closed reader frees
 * its slot), and the Host check against DNS rebinding (421 unless Host is an IP literal,
 * localhost or an --api-host name; /metrics, /healthz and /readyz answer any Host).
 */
import { apiParts, buildApi } from '../helpers/api-app.js';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { hostAllowed, LoopBudget, MAX_PAGE_LIMIT } from '../../src/http/app.js';
import { livePage } from '../../src/http/page.js';
import { createSummary } from '../../src/observability/summary.js';
import type { ConnectionRow } from '../../src/observability/table.js';

function row(id: number, over: Partial<ConnectionRow> = {}): ConnectionRow {
  return {
    id,
    client: `198.18.0.1:${40000 + id}`,
    destination: '198.18.1.1:80',
    service: 'other',
    upstream: null,
    state: 'ESTABLISHED',
    appState: 'ESTABLISHED',
    appStateSource: 'inferred',
    appProcess: null,
    appProcessSource: 'no_socket',
    upstreamState: null,
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
    ...over,
  };
}

let cleanup: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanup.reverse()) await c();
  cleanup = [];
});

function setup(rows: ConnectionRow[], opts: { maxEventStreams?: number; apiHosts?: string[] } = {}) {
  const parts = apiParts({ rows: () => rows });
  const { hub, clock, source } = parts;
  const app = buildApi(parts, {
    describe: () => ({ client: '198.18.0.1:40000', destination: '198.18.1.1:80' }),
    plugins: [livePage(createSummary(hub, source, clock))],
    ...opts,
  });
  cleanup.push(() => app.close());
  return { app, hub };
}

type Page = { count: number; addresses: string; connections: ConnectionRow[]; next: string | null; error?: string };

describe('GET /api/connections pages', () => {
  it('serves 1,000 rows by default in id order, with next until the last page, which has next: null', async () => {
    // Ids out of order in the source: pages come in id order whatever the source's order.
    const rows = Array.from({ length: 2500 }, (_, i) => row(2500 - i));
    const { app } = setup(rows);
    const ids: number[] = [];
    let url = '/api/connections';
    const sizes: number[] = [];
    for (let n = 0; n < 10; n++) {
      const res = await app.inject(url);
      expect(res.statusCode).toBe(200);
      const p = res.json() as Page;
      expect(p.count).toBe(p.connections.length);
      expect(p.addresses).toBe('shown');
      sizes.push(p.count);
      ids.push(...p.connections.map((r) => r.id));
      if (p.next === null) break;
      expect(typeof p.next).toBe('string');
      url = `/api/connections?cursor=${encodeURIComponent(p.next)}`;
    }
    expect(sizes).toEqual([1000, 1000, 500]);
    expect(ids).toEqual(Array.from({ length: 2500 }, (_, i) => i + 1));
  });

  it('?limit= with a filter: pages of that size, the cursor carrying on with the same filter', async () => {
    const rows = Array.from({ length: 30 }, (_, i) => row(i + 1, i % 3 === 0 ? { state: 'CLOSE_WAIT', waitingOn: 'upstream' } : {}));
    const { app } = setup(rows);
    const first = (await app.inject('/api/connections?waitingOn=upstream&limit=4')).json() as Page;
    expect(first.connections.map((r) => r.id)).toEqual([1, 4, 7, 10]);
    expect(first.next).not.toBeNull();
    const second = (await app.inject(`/api/connections?waitingOn=upstream&limit=4&cursor=${first.next}`)).json() as Page;
    expect(second.connections.map((r) => r.id)).toEqual([13, 16, 19, 22]);
    const third = (await app.inject(`/api/connections?waitingOn=upstream&limit=4&cursor=${second.next}`)).json() as Page;
    expect(third.connections.map((r) => r.id)).toEqual([25, 28]);
    expect(third.next).toBeNull();
    // Exactly a page's worth left: the last full page already says there is no next.
    const exact = (await app.inject('/api/connections?waitingOn=upstream&limit=10')).json() as Page;
    expect(exact.count).toBe(10);
    expect(exact.next).toBeNull();
  });

  it('refuses a bad limit or a cursor that is not a next of this process with 400 naming it', async () => {
    const { app } = setup([row(1), row(2)]);
    for (const q of ['limit=0', `limit=${MAX_PAGE_LIMIT + 1}`, 'limit=abc', 'limit=1.5', 'limit=-3']) {
      const res = await app.inject(`/api/connections?${q}`);
      expect(res.statusCode, q).toBe(400);
      expect((res.json() as Page).error, q).toMatch(/limit/);
    }
    expect((await app.inject(`/api/connections?limit=${MAX_PAGE_LIMIT}`)).statusCode).toBe(200);
    const next = ((await app.inject('/api/connections?limit=1')).json() as Page).next!;
    expect(next).toMatch(/^[0-9a-f]+$/);
    // Another process's cursor (or a restarted synfin's): its ids mean nothing here.
    const other = setup([row(1), row(2)]).app;
    const foreign = ((await other.inject('/api/connections?limit=1')).json() as Page).next!;
    for (const c of ['zzz', '12', foreign, next + 'g', next.slice(0, 8)]) {
      const res = await app.inject(`/api/connections?cursor=${encodeURIComponent(c)}`);
      expect(res.statusCode, c).toBe(400);
      expect((res.json() as Page).error, c).toMatch(/cursor/);
    }
    expect(((await app.inject(`/api/connections?cursor=${next}`)).json() as Page).connections.map((r) => r.id)).toEqual([2]);
  });
});

describe('Host check (DNS rebinding)', () => {
  it('hostAllowed: IP literals (v4, bracketed v6), localhost and --api-host names, with or without a port', () => {
    const names = new Set(['synfin.internal']);
    for (const h of ['127.0.0.1', '127.0.0.1:9477', '10.1.2.3:80', '[::1]', '[::1]:9477', '[2001:db8::1]:9477', 'localhost', 'LOCALHOST:9477', 'localhost.', 'synfin.internal', 'Synfin.Internal:9477', 'synfin.internal.:9477']) {
      expect(hostAllowed(h, names), h).toBe(true);
    }
    for (const h of [undefined, '', 'attacker.example', 'attacker.example:9477', 'localhost.attacker.example', '127.0.0.1.attacker.example', '::1', '[::1', '[not-v6]:80', '[::1]x', '127.0.0.1:port', 'localhost:', 'synfin.internal.evil', '127.1', '0x7f000001']) {
      expect(hostAllowed(h, names), String(h)).toBe(false);
    }
  });

  it('answers /api/*, the page and its assets with 421 for other names; /metrics, /healthz and /readyz answer any Host', async () => {
    const { app } = setup([row(1)], { apiHosts: ['synfin.internal'] });
    for (const url of ['/api/connections', '/api/summary', '/api/events', '/', '/page/app.js', '/api/nothing']) {
      const res = await app.inject({ url, headers: { host: 'rebind.attacker.example:9477' } });
      expect(res.statusCode, url).toBe(421);
      expect(res.body, url).not.toContain('198.18');
      expect((res.json() as { error: string }).error, url).toMatch(/--api-host/);
    }
    for (const host of ['127.0.0.1:9477', '[::1]:9477', 'localhost:9477', 'synfin.internal:9477']) {
      const res = await app.inject({ url: '/api/connections', headers: { host } });
      expect(res.statusCode, host).toBe(200);
      expect((res.json() as Page).connections[0]!.client).toBe('198.18.0.1:40001');
      expect((await app.inject({ url: '/', headers: { host } })).statusCode, host).toBe(200);
    }
    for (const url of ['/metrics', '/healthz', '/readyz']) {
      const res = await app.inject({ url, headers: { host: 'synfin.monitoring.svc:9477' } });
      expect(res.statusCode, url).toBe(200);
    }
  });

  it('over a real socket: a request naming another host gets 421, one naming the address 200', async () => {
    const { app } = setup([row(1)]);
    await app.listen({ host: '127.0.0.1', port: 0 });
    const port = (app.server.address() as { port: number }).port;
    const raw = async (host: string): Promise<string> => {
      const net = await import('node:net');
      return new Promise((resolve, reject) => {
        const s = net.connect(port, '127.0.0.1', () => s.end(`GET /api/connections HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`));
        let text = '';
        s.on('data', (d) => (text += String(d)));
        s.on('end', () => resolve(text));
        s.on('error', reject);
      });
    };
    expect(await raw('evil.example')).toMatch(/^HTTP\/1\.1 421 /);
    expect(await raw(`127.0.0.1:${port}`)).toMatch(/^HTTP\/1\.1 200 /);
  });
});

describe('/api/events readers (--max-event-streams)', () => {
  async function open(port: number): Promise<{ status: number; controller: AbortController; body: string }> {
    const controller = new AbortController();
    const res = await fetch(`http://127.0.0.1:${port}/api/events`, { signal: controller.signal });
    let body = '';
    if (res.status !== 200) body = await res.text();
    return { status: res.status, controller, body };
  }

  it('beyond the cap a reader gets 503 with a clear body; closing one frees its slot', async () => {
    const { app } = setup([], { maxEventStreams: 2 });
    await app.listen({ host: '127.0.0.1', port: 0 });
    const port = (app.server.address() as { port: number }).port;
    const a = await open(port);
    const b = await open(port);
    expect([a.status, b.status]).toEqual([200, 200]);
    const c = await open(port);
    expect(c.status).toBe(503);
    expect(JSON.parse(c.body).error).toMatch(/too many \/api\/events readers \(--max-event-streams 2\)/);
    // A reader goes away: its slot is free once the server has seen the close.
    a.controller.abort();
    let d = await open(port);
    for (let i = 0; i < 100 && d.status === 503; i++) {
      await new Promise((r) => setTimeout(r, 20));
      d = await open(port);
    }
    expect(d.status).toBe(200);
    // Two again: the next is refused until another closes.
    expect((await open(port)).status).toBe(503);
    b.controller.abort();
    d.controller.abort();
  });

  it('--max-event-streams 0 turns the stream off', async () => {
    const { app } = setup([], { maxEventStreams: 0 });
    const res = await app.inject('/api/events');
    expect(res.statusCode).toBe(503);
  });
});

describe('the event-loop budget of /api/connections', () => {
  it('lets a burst through at once, then makes a tight loop wait so that it gets its share of the time', async () => {
    vi.useFakeTimers();
    try {
      let now = 0;
      const budget = new LoopBudget(0.03, 50, () => now);
      const waitFor = async (): Promise<number> => {
        const started = now;
        let done = false;
        void budget.acquire().then(() => (done = true));
        await vi.advanceTimersByTimeAsync(0);
        for (let i = 0; i < 10_000 && !done; i++) {
          await vi.advanceTimersByTimeAsync(1);
          now += 1;
        }
        expect(done).toBe(true);
        return now - started;
      };
      // 50 ms of burst: two 20 ms slices pass without waiting.
      expect(await waitFor()).toBe(0);
      budget.charge(20);
      expect(await waitFor()).toBe(0);
      budget.charge(20);
      expect(await waitFor()).toBe(0);
      budget.charge(20); // 10 ms in debt: 10 / 0.03 ≈ 334 ms to wait
      const waited = await waitFor();
      expect(waited).toBeGreaterThanOrEqual(333);
      expect(waited).toBeLessThan(345);
      // A loop of 10 ms slices from here runs at 3%: 100 slices take about 100 × 10 / 0.03 ms.
      const t0 = now;
      for (let i = 0; i < 100; i++) {
        await waitFor();
        budget.charge(10);
      }
      const elapsed = now - t0;
      // The loop's share of the time: the 3% it is given (the burst was spent above).
      expect((100 * 10) / elapsed).toBeGreaterThan(0.027);
      expect((100 * 10) / elapsed).toBeLessThan(0.034);
    } finally {
      vi.useRealTimers();
    }
  });
});
