/// <reference lib="dom" />
/**
 * The live page in a real browser (Debian's Chromium, driven by playwright-core) against a
 * running synfin with real traffic, including an app that leaks sockets.
 */
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { destroyAllNetns } from '../helpers/netns.js';
import { describeIfTun, inCI } from '../helpers/root.js';
import { metricValue, startSynfinEnv, type SynfinEnv } from '../helpers/synfin-env.js';

const CHROMIUM = '/usr/bin/chromium';
const ARTIFACTS = path.join(import.meta.dirname, '../../test-artifacts');
const LEAKS = 4;
const STATES = ['CLOSED', 'LISTEN', 'SYN_SENT', 'SYN_RECEIVED', 'ESTABLISHED', 'FIN_WAIT_1', 'FIN_WAIT_2', 'CLOSE_WAIT', 'CLOSING', 'LAST_ACK', 'TIME_WAIT'];

const haveChromium = fs.existsSync(CHROMIUM);
if (!haveChromium && inCI()) throw new Error(`CI=true but ${CHROMIUM} is missing (.ci/run installs Debian's chromium)`);

describeIfTun('live page in Chromium', () => {
  let env: SynfinEnv;
  let server: http.Server;
  let port: number;
  let browser: Browser;
  let leak: ReturnType<SynfinEnv['ns']['spawn']> | null = null;

  beforeAll(async () => {
    server = http.createServer((req, res) => {
      if (req.url === '/close') {
        res.writeHead(200, { connection: 'close' });
        res.end('bye\n');
      } else res.end('hello\n');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as AddressInfo).port;
    env = await startSynfinEnv({ mslSeconds: 0.2 });
    // Clean traffic, then an app that never closes after the server closed.
    const clean = await env.ns.exec('sh', ['-c', `for i in $(seq 1 10); do curl -sS http://${env.serverAddr}:${port}/ >/dev/null; done`]);
    expect(clean.code).toBe(0);
    const script =
      `const net=require('net');const s=[];for(let i=0;i<${LEAKS};i++){const c=net.connect({host:'${env.serverAddr}',port:${port},allowHalfOpen:true},` +
      `()=>c.write('GET /close HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n'));c.on('data',()=>{});c.on('error',()=>{});s.push(c)}setInterval(()=>{},1e9)`;
    leak = env.ns.spawn(process.execPath, ['-e', script]);
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    leak?.kill('SIGKILL');
    await env?.close();
    server?.closeAllConnections();
    server?.close();
    destroyAllNetns();
  });

  it.runIf(haveChromium)('renders the diagram with the live counts, names the app as the side at fault, and lists the leak', async () => {
    const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(env.synfin.listenUrl + '/');
    await page.waitForSelector('#status[data-status="live"]', { timeout: 15_000 });
    // The verdict names the app once the oldest has waited past the page's threshold (5 s).
    await page.waitForFunction(() => (document.getElementById('verdict')?.textContent ?? '').includes('app'), null, { timeout: 20_000 });
    const verdict = (await page.textContent('#verdict')) ?? '';
    expect(verdict).toMatch(/wait on the app/);
    expect(verdict).toMatch(/CLOSE_WAIT in the app/);

    // Counts on the diagram equal synfin_tcp_connections at the same moment (traffic is steady:
    // only the leaking connections remain; wait for one refresh after the scrape).
    const metrics = await env.metrics();
    await page.waitForTimeout(1500);
    for (const state of STATES) {
      const shown = await page.getAttribute(`[data-state="${state}"] [data-count]`, 'data-count');
      expect(Number(shown), state).toBe(metricValue(metrics, 'synfin_tcp_connections', { state }));
    }
    expect(metricValue(metrics, 'synfin_tcp_connections', { state: 'FIN_WAIT_2' })).toBe(LEAKS);

    // Clicking the waiting-on-app group lists the leaking connections with the app in CLOSE_WAIT.
    await page.click('[data-waiting="app"]');
    await page.waitForSelector('#connections[data-loaded="true"] tbody tr[data-id]', { timeout: 10_000 });
    const rows: Array<{ state: string | null; appState: string | null }> = [];
    for (const tr of await page.$$('#connections tbody tr[data-id]')) {
      rows.push({
        state: await (await tr.$('[data-field="state"]'))!.textContent(),
        appState: await (await tr.$('[data-field="appState"]'))!.textContent(),
      });
    }
    expect(rows).toHaveLength(LEAKS);
    for (const r of rows) {
      expect(r.state).toBe('FIN_WAIT_2');
      expect(r.appState?.replace('*', '')).toBe('CLOSE_WAIT');
    }

    // Grouped by service and process: no --service here (all `other`), and this app runs in
    // another network namespace than synfin, so its sockets are not in synfin's table (no_socket).
    const group = await page.$('#groups:not([hidden]) .group[data-service="other"]');
    expect(await group!.getAttribute('data-count')).toBe(String(LEAKS));
    const byProcess = await group!.$$eval('li', (lis) => lis.map((li) => [li.getAttribute('data-source'), li.getAttribute('data-count'), li.textContent]));
    expect(byProcess).toEqual([['no_socket', String(LEAKS), `${LEAKS} connections, process unknown (no socket: the app is not in synfin's network namespace)`]]);
    const held = await page.$$eval('#connections tbody tr[data-id] [data-field="appProcess"]', (tds) => tds.map((td) => td.textContent));
    expect(held).toEqual(new Array(LEAKS).fill("process unknown (no socket: the app is not in synfin's network namespace)"));

    // A connection's detail: its states with the time each was entered.
    const firstId = await page.getAttribute('#connections tbody tr[data-id]', 'data-id');
    await page.click(`#connections tbody tr[data-id="${firstId}"]`);
    await page.waitForSelector(`#conn-detail:not([hidden])[data-id="${firstId}"] li[data-state="FIN_WAIT_2"]`, { timeout: 10_000 });
    const states = await page.$$eval('#conn-detail li', (lis) => lis.map((li) => li.getAttribute('data-state')));
    expect(states).toEqual(['opened', 'FIN_WAIT_2', 'waiting on the app']);
    fs.mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: path.join(ARTIFACTS, 'live-page.png'), fullPage: true });
    expect(errors).toEqual([]);
  }, 60_000);

  it.runIf(haveChromium)('works under a path prefix, as behind kubectl proxy or an ingress path', async () => {
    // A reverse proxy that serves synfin under PREFIX only (as kubectl proxy serves a pod under
    // /api/v1/namespaces/NS/pods/POD:9477/proxy/): it strips the prefix and answers 404 for
    // anything else, so a request to an absolute path fails and is counted.
    const PREFIX = '/api/v1/namespaces/demo/pods/app-0:9477/proxy';
    const target = new URL(env.synfin.listenUrl);
    const outside: string[] = [];
    const proxy = http.createServer((req, res) => {
      const url = req.url ?? '/';
      if (!url.startsWith(`${PREFIX}/`)) {
        outside.push(url);
        res.writeHead(404).end('outside the prefix\n');
        return;
      }
      const upstream = http.request(
        { host: target.hostname, port: Number(target.port), method: req.method, path: url.slice(PREFIX.length), headers: req.headers },
        (up) => {
          res.writeHead(up.statusCode ?? 502, up.headers);
          up.pipe(res);
        },
      );
      upstream.on('error', () => res.writeHead(502).end());
      req.pipe(upstream);
    });
    await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
    const proxyPort = (proxy.address() as AddressInfo).port;
    const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    try {
      await page.goto(`http://127.0.0.1:${proxyPort}${PREFIX}/`);
      // Live: the script loaded from page/app.js and api/summary answered through the prefix.
      await page.waitForSelector('#status[data-status="live"]', { timeout: 15_000 });
      await page.waitForFunction(() => Number(document.querySelector('[data-state="FIN_WAIT_2"] [data-count]')?.getAttribute('data-count')) > 0, null, { timeout: 15_000 });
      // The stylesheet applied (page/style.css through the prefix).
      expect(await page.evaluate(() => document.styleSheets.length)).toBeGreaterThan(0);
      expect(await page.evaluate(() => document.styleSheets[0]?.cssRules.length ?? 0)).toBeGreaterThan(0);
      // The connection list (api/connections) loads through the prefix too.
      await page.click('[data-waiting="app"]');
      await page.waitForSelector('#connections[data-loaded="true"] tbody tr[data-id]', { timeout: 10_000 });
      expect(await page.$$('#connections tbody tr[data-id]')).toHaveLength(LEAKS);
      // The links to the raw endpoints stay under the prefix.
      const links = await page.$$eval('a[href]', (as) => as.map((a) => (a as HTMLAnchorElement).href).filter((h) => !h.startsWith('data:')));
      expect(links.length).toBeGreaterThan(0);
      for (const href of links) expect(href.startsWith(`http://127.0.0.1:${proxyPort}${PREFIX}/`), href).toBe(true);
      expect(outside).toEqual([]);
      expect(errors).toEqual([]);
    } finally {
      await page.close();
      proxy.closeAllConnections();
      proxy.close();
    }
  }, 60_000);
});
