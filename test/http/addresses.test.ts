/// <reference lib="dom" />
/**
 * --api-addresses: who sees connection addresses in /api/connections and /api/events. By default
 * (`loopback`) only requests whose TCP peer is a loopback address see them; everyone else gets
 * "redacted" in every address field. `all` shows them to everyone, `none` to no one. The live
 * page keeps working on redacted rows.
 */
import fs from 'node:fs';
import { identity } from '../helpers/identity.js';
import type { AddressInfo } from 'node:net';
import { chromium } from 'playwright-core';
import { apiParts, buildApi } from '../helpers/api-app.js';
import { afterEach, describe, expect, it } from 'vitest';
import type { ApiAddressMode } from '../../src/config.js';
import { isLoopbackPeer, REDACTED } from '../../src/http/app.js';
import { livePage } from '../../src/http/page.js';
import { createSummary } from '../../src/observability/summary.js';
import type { ConnectionRow } from '../../src/observability/table.js';
import { EventHub } from '../../src/stack/events.js';
import { State } from '../../src/tcp/state.js';
import { inCI } from '../helpers/root.js';

const CHROMIUM = '/usr/bin/chromium';

const CLIENT = '198.18.0.1:40000';
const DESTINATION = '198.18.1.1:80';

function row(id: number, over: Partial<ConnectionRow> = {}): ConnectionRow {
  return {
    id,
    client: CLIENT,
    destination: DESTINATION,
    service: 'other',
    upstream: { local: '10.0.0.5:50000', remote: '203.0.113.7:80' },
    state: 'ESTABLISHED',
    appState: 'ESTABLISHED',
    appStateSource: 'inferred',
    appProcess: null,
    appProcessSource: 'no_socket',
    upstreamState: 'ESTABLISHED',
    upstreamRttSeconds: 0.001,
    upstreamRetransmits: 0,
    waitingOn: null,
    waitingSeconds: null,
    ageSeconds: 10 - id,
    stateAgeSeconds: 1,
    idleSeconds: 0,
    bytesIn: 100,
    bytesOut: 200,
    rttSeconds: 0.002,
    retransmits: 1,
    sendWindow: 65535,
    receiveWindow: 65535,
    ...over,
  };
}

const ROWS = [row(1), row(2, { upstream: null, state: 'SYN_RECEIVED', appState: 'SYN_SENT', upstreamState: null })];

function setup(apiAddresses?: ApiAddressMode, rows: ConnectionRow[] = ROWS) {
  const parts = apiParts({ rows: () => rows.map((r) => ({ ...r })) });
  const { hub, clock, source } = parts;
  const described: number[] = [];
  const app = buildApi(parts, {
    describe: (conn) => {
      described.push(conn.id);
      return { client: CLIENT, destination: DESTINATION };
    },
    plugins: [livePage(createSummary(hub, source, clock, { minIntervalMs: 0 }))],
    ...(apiAddresses !== undefined ? { apiAddresses } : {}),
  });
  cleanup.push(() => app.close());
  return { app, hub, described };
}

let cleanup: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanup) await c();
  cleanup = [];
});

async function connections(app: ReturnType<typeof setup>['app'], remoteAddress: string, query = '') {
  const res = await app.inject({ url: `/api/connections${query}`, remoteAddress });
  return { status: res.statusCode, body: res.json() as { count: number; addresses: string; connections: ConnectionRow[]; error?: string } };
}

/** The transitions an /api/events reader at `remoteAddress` receives for three state changes. */
async function events(app: ReturnType<typeof setup>['app'], hub: EventHub, remoteAddress: string): Promise<Array<Record<string, unknown>>> {
  const controller = new AbortController();
  const res = await app.inject({ url: '/api/events', remoteAddress, payloadAsStream: true, signal: controller.signal });
  expect(res.headers['content-type']).toContain('text/event-stream');
  const conn = identity(7, 0);
  hub.stateChange(conn, State.LISTEN, State.SYN_RECEIVED, 10, 0);
  hub.stateChange(conn, State.SYN_RECEIVED, State.ESTABLISHED, 20, 10);
  let text = '';
  for await (const chunk of res.stream()) {
    text += String(chunk);
    if ((text.match(/event: transition/g) ?? []).length >= 2) break;
  }
  controller.abort();
  return [...text.matchAll(/data: (.*)\n/g)].map((m) => JSON.parse(m[1]!) as Record<string, unknown>);
}

describe('--api-addresses', () => {
  it('isLoopbackPeer: 127/8, ::1 and their IPv4-mapped forms only; an unknown peer is not loopback', () => {
    for (const a of ['127.0.0.1', '127.9.8.7', '::1', '::ffff:127.0.0.1']) expect(isLoopbackPeer(a), a).toBe(true);
    for (const a of ['10.0.0.1', '0.0.0.0', '::', '::2', '::ffff:10.0.0.1', '2001:db8::1', 'localhost', '']) expect(isLoopbackPeer(a), a).toBe(false);
    expect(isLoopbackPeer(undefined)).toBe(false);
  });

  it('loopback (the default): a loopback peer sees every address', async () => {
    const { app } = setup();
    for (const peer of ['127.0.0.1', '::1', '::ffff:127.0.0.1']) {
      const { status, body } = await connections(app, peer);
      expect(status).toBe(200);
      expect(body.addresses).toBe('shown');
      expect(body.connections).toEqual([ROWS[0], ROWS[1]]);
    }
    expect((await connections(app, '127.0.0.1', '?destination=198.18.1.1')).body.count).toBe(2);
  });

  it('loopback (the default): any other peer gets "redacted" in client, destination and both upstream ends, the rest unchanged', async () => {
    const { app } = setup();
    for (const peer of ['10.1.2.3', '2001:db8::1', '::ffff:10.0.0.1']) {
      const { status, body } = await connections(app, peer);
      expect(status).toBe(200);
      expect(body.addresses).toBe(REDACTED);
      expect(body.count).toBe(2);
      expect(body.connections).toEqual([
        { ...ROWS[0], client: 'redacted', destination: 'redacted', upstream: { local: 'redacted', remote: 'redacted' } },
        { ...ROWS[1], client: 'redacted', destination: 'redacted', upstream: null },
      ]);
      expect(JSON.stringify(body)).not.toMatch(/198\.18|10\.0\.0\.5|203\.0\.113/);
      // Filters that reveal no address still work.
      expect((await connections(app, peer, '?state=SYN_RECEIVED')).body.count).toBe(1);
    }
  });

  it('a peer that may not see addresses may not filter by one either (403): it would probe which destinations are in use', async () => {
    const { app } = setup();
    const { status, body } = await connections(app, '10.1.2.3', '?destination=198.18.1.1:80');
    expect(status).toBe(403);
    expect(body.error).toMatch(/--api-addresses/);
  });

  it('all: every peer sees addresses; none: no peer does, loopback included', async () => {
    const all = setup('all').app;
    expect((await connections(all, '10.1.2.3')).body.connections[0]).toEqual(ROWS[0]);
    expect((await connections(all, '10.1.2.3', '?destination=198.18.1.1')).body.count).toBe(2);
    const none = setup('none').app;
    for (const peer of ['127.0.0.1', '::1', '10.1.2.3']) {
      const { body } = await connections(none, peer);
      expect(body.addresses).toBe(REDACTED);
      expect(body.connections[0]!.client).toBe(REDACTED);
      expect(body.connections[0]!.upstream).toEqual({ local: REDACTED, remote: REDACTED });
    }
    expect((await connections(none, '127.0.0.1', '?destination=198.18.1.1')).status).toBe(403);
  });

  it('/api/events: a loopback reader gets the addresses; another gets "redacted" and the addresses are never looked up for it', async () => {
    const local = setup();
    const shown = await events(local.app, local.hub, '127.0.0.1');
    expect(shown.map((e) => [e.client, e.destination, e.from, e.to])).toEqual([
      [CLIENT, DESTINATION, 'LISTEN', 'SYN_RECEIVED'],
      [CLIENT, DESTINATION, 'SYN_RECEIVED', 'ESTABLISHED'],
    ]);
    const remote = setup();
    const hidden = await events(remote.app, remote.hub, '192.0.2.9');
    expect(hidden.map((e) => [e.id, e.client, e.destination, e.from, e.to])).toEqual([
      [7, REDACTED, REDACTED, 'LISTEN', 'SYN_RECEIVED'],
      [7, REDACTED, REDACTED, 'SYN_RECEIVED', 'ESTABLISHED'],
    ]);
    expect(remote.described).toEqual([]);
    const none = setup('none');
    expect((await events(none.app, none.hub, '::1')).every((e) => e.client === REDACTED && e.destination === REDACTED)).toBe(true);
    const all = setup('all');
    expect((await events(all.app, all.hub, '192.0.2.9')).every((e) => e.client === CLIENT && e.destination === DESTINATION)).toBe(true);
  });

  it.runIf(fs.existsSync(CHROMIUM) || inCI())('the live page lists redacted connections without an error', async () => {
    const { app } = setup('none');
    await app.listen({ host: '127.0.0.1', port: 0 });
    const port = (app.server.address() as AddressInfo).port;
    const browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    try {
      const page = await browser.newPage();
      const errors: string[] = [];
      page.on('pageerror', (e) => errors.push(e.message));
      await page.goto(`http://127.0.0.1:${port}/`);
      await page.waitForSelector('#status[data-status="live"]', { timeout: 15_000 });
      await page.click('[data-state="ESTABLISHED"]');
      await page.waitForSelector('#connections[data-loaded="true"] tbody tr[data-id]', { timeout: 10_000 });
      const cells = await page.$$eval('#connections tbody tr[data-id]', (trs) =>
        trs.map((tr) => [tr.querySelector('[data-field="client"]')?.textContent, tr.querySelector('[data-field="destination"]')?.textContent, tr.querySelector('[data-field="state"]')?.textContent]),
      );
      expect(cells).toEqual([[REDACTED, REDACTED, 'ESTABLISHED']]);
      expect(await page.textContent('#detail-note')).toMatch(/1 connection/);
      expect(errors).toEqual([]);
    } finally {
      await browser.close();
    }
  }, 60_000);
});
