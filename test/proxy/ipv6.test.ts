/**
 * IPv6 end to end: the app dials an IPv6 destination through the TUN device; synfin terminates
 * it (IPv6 headers, MSS from the IPv6 MTU) and dials the mapped destination (::1).
 */
import crypto from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { destroyAllNetns } from '../helpers/netns.js';
import { describeIfTun } from '../helpers/root.js';
import { metricValue, startSynfinEnv, type SynfinEnv } from '../helpers/synfin-env.js';

describeIfTun('IPv6 through the proxy', () => {
  let env: SynfinEnv;
  let server: http.Server;
  let port: number;
  let closedPort: number;
  const body = crypto.randomBytes(5 * 1024 * 1024);
  const bodyHash = crypto.createHash('sha256').update(body).digest('hex');

  beforeAll(async () => {
    server = http.createServer((req, res) => {
      res.writeHead(200, { 'content-length': body.length });
      res.end(body);
    });
    await new Promise<void>((r) => server.listen(0, '::1', r));
    port = (server.address() as AddressInfo).port;
    const probe = net.createServer();
    await new Promise<void>((r) => probe.listen(0, '::1', r));
    closedPort = (probe.address() as AddressInfo).port;
    await new Promise<void>((r) => probe.close(() => r()));
    env = await startSynfinEnv({}, { ipv6: true });
  }, 60_000);

  afterAll(async () => {
    await env?.close();
    server?.closeAllConnections();
    server?.close();
    destroyAllNetns();
  });

  it('curl fetches a file over IPv6 byte-exact', async () => {
    const r = await env.ns.exec('sh', ['-c', `curl -sS -g --max-time 30 'http://[${env.serverAddr}]:${port}/' | sha256sum`]);
    expect(r.stderr).toBe('');
    expect(r.stdout.split(' ')[0]).toBe(bodyHash);
    const m = await env.metrics();
    expect(metricValue(m, 'synfin_tcp_connections_opened_total', { family: 'ipv6' })).toBeGreaterThanOrEqual(1);
    const rows = await env.api<{ connections: Array<{ client: string; destination: string }> }>('/api/connections');
    for (const row of rows.connections) expect(row.destination).toBe(`[${env.serverAddr}]:${port}`);
  }, 60_000);

  it('a refused IPv6 destination gives curl "connection refused"', async () => {
    const r = await env.ns.exec('curl', ['-sS', '-g', '--max-time', '10', `http://[${env.serverAddr}]:${closedPort}/`]);
    expect(r.code).toBe(7);
    expect(r.stderr).toMatch(/Connection refused|Couldn't connect/);
  });
});
