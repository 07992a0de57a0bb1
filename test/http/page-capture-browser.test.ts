/// <reference lib="dom" />
/**
 * The live page links each listed connection to its pcap when capture is on (a real browser,
 * Debian's Chromium via playwright-core, against a running synfin with --capture-buffer).
 */
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { destroyAllNetns } from '../helpers/netns.js';
import { describeIfTun, inCI } from '../helpers/root.js';
import { startSynfinEnv, type SynfinEnv } from '../helpers/synfin-env.js';

const CHROMIUM = '/usr/bin/chromium';
const LEAKS = 2;
const haveChromium = fs.existsSync(CHROMIUM);
if (!haveChromium && inCI()) throw new Error(`CI=true but ${CHROMIUM} is missing (.ci/run installs Debian's chromium)`);

describeIfTun('live page: pcap links with capture on', () => {
  let env: SynfinEnv;
  let server: http.Server;
  let browser: Browser;
  let leak: ReturnType<SynfinEnv['ns']['spawn']> | null = null;

  beforeAll(async () => {
    server = http.createServer((_req, res) => {
      res.writeHead(200, { connection: 'close' });
      res.end('bye\n');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    env = await startSynfinEnv({ mslSeconds: 0.2, captureBuffer: 1024 * 1024 });
    // Connections the server closed and the app never does: listed under "waiting on the app".
    const script =
      `const net=require('net');const s=[];for(let i=0;i<${LEAKS};i++){const c=net.connect({host:'${env.serverAddr}',port:${port},allowHalfOpen:true},` +
      `()=>c.write('GET / HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n'));c.on('data',()=>{});c.on('error',()=>{});s.push(c)}setInterval(()=>{},1e9)`;
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

  it.runIf(haveChromium)("each row's id links to api/connections/ID/pcap, which serves that connection's packets", async () => {
    const page = await browser.newPage();
    await page.goto(env.synfin.listenUrl + '/');
    await page.waitForSelector('#status[data-status="live"]', { timeout: 15_000 });
    // The leaking connections are in FIN_WAIT_2 once the server's FIN went through.
    const end = Date.now() + 20_000;
    while ((await env.api<{ count: number }>('/api/connections?waitingOn=app')).count < LEAKS) {
      if (Date.now() > end) throw new Error('the leaking connections never waited on the app');
      await new Promise((r) => setTimeout(r, 100));
    }
    await page.click('[data-waiting="app"]');
    await page.waitForSelector('#connections[data-loaded="true"] tbody tr[data-id] a', { timeout: 15_000 });
    const links = await page.$$eval('#connections tbody tr[data-id]', (trs) =>
      trs.map((tr) => ({ id: tr.getAttribute('data-id'), href: tr.querySelector('td[data-field="id"] a')?.getAttribute('href') ?? null, text: (tr as HTMLTableRowElement).cells[0]!.textContent })),
    );
    expect(links).toHaveLength(LEAKS);
    for (const l of links) {
      expect(l.href).toBe(`api/connections/${l.id}/pcap`);
      expect(l.text).toBe(l.id);
      // Resolved against the page's URL, as the browser follows it.
      const res = await fetch(new URL(l.href!, env.synfin.listenUrl + '/'));
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toBe('application/vnd.tcpdump.pcap');
      const body = Buffer.from(await res.arrayBuffer());
      expect(body.readUInt32LE(0)).toBe(0xa1b2c3d4);
      // SYN, SYN-ACK, ACK, the request, the response, FINs: more than a handshake.
      expect(body.length).toBeGreaterThan(24 + 6 * (16 + 40));
    }
  });
});
