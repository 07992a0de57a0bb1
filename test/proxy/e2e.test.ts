/**
 * End to end through the TUN device: real programs in a namespace (curl, the kernel's TCP via
 * node) reach servers on this host only through synfin's userspace stack and its upstream sockets.
 */
import crypto from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { destroyAllNetns } from '../helpers/netns.js';
import { describeIfTun } from '../helpers/root.js';
import { metricValue, startSynfinEnv, type SynfinEnv } from '../helpers/synfin-env.js';

const CLIENT = path.join(import.meta.dirname, '../helpers/kernel-client.mjs');
const FILE_SIZE = 50 * 1024 * 1024;

function deterministicFile(size: number): Buffer {
  const buf = Buffer.allocUnsafe(size);
  for (let off = 0, i = 0; off < size; i++) off += crypto.createHash('sha256').update(String(i)).digest().copy(buf, off);
  return buf;
}

interface Row {
  id: number;
  state: string;
  appState: string;
  waitingOn: string | null;
}

async function waitFor<T>(what: string, fn: () => Promise<T>, ok: (v: T) => boolean, timeoutMs = 10_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  let last: T = await fn();
  while (!ok(last)) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}: last ${JSON.stringify(last)}`);
    await new Promise((r) => setTimeout(r, 50));
    last = await fn();
  }
  return last;
}

describeIfTun('proxy end to end', () => {
  let env: SynfinEnv;
  let httpServer: http.Server;
  let httpPort: number;
  let file: Buffer;
  let fileHash: string;
  let rawServer: net.Server;
  let rawPort: number;
  let closedPort: number;

  beforeAll(async () => {
    file = deterministicFile(FILE_SIZE);
    fileHash = crypto.createHash('sha256').update(file).digest('hex');
    httpServer = http.createServer((req, res) => {
      if (req.url === '/file') {
        res.writeHead(200, { 'content-length': file.length, 'content-type': 'application/octet-stream' });
        res.end(file);
      } else if (req.url === '/close') {
        res.writeHead(200, { connection: 'close' });
        res.end('bye\n');
      } else {
        res.end('hello\n');
      }
    });
    await new Promise<void>((r) => httpServer.listen(0, '127.0.0.1', r));
    httpPort = (httpServer.address() as AddressInfo).port;
    // A line server: answers each line; with a FIN from the client, replies with the byte count and closes.
    rawServer = net.createServer({ allowHalfOpen: true }, (s) => {
      let bytes = 0;
      const hash = crypto.createHash('sha256');
      s.on('data', (d) => {
        bytes += d.length;
        hash.update(d);
        if (d.includes(10)) s.write(`ack ${bytes}\n`);
      });
      s.on('end', () => s.end(`total ${bytes} ${hash.digest('hex')}\n`));
      s.on('error', () => {});
    });
    await new Promise<void>((r) => rawServer.listen(0, '127.0.0.1', r));
    rawPort = (rawServer.address() as AddressInfo).port;
    const probe = net.createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    closedPort = (probe.address() as AddressInfo).port;
    await new Promise<void>((r) => probe.close(() => r()));
    env = await startSynfinEnv();
  }, 60_000);

  afterAll(async () => {
    await env?.close();
    httpServer?.closeAllConnections();
    httpServer?.close();
    rawServer?.close();
    destroyAllNetns();
  });

  it('curl downloads a 50 MB file byte-exact', async () => {
    const r = await env.ns.exec('sh', ['-c', `curl -sS --max-time 60 http://${env.serverAddr}:${httpPort}/file | sha256sum`]);
    expect(r.stderr).toBe('');
    expect(r.stdout.split(' ')[0]).toBe(fileHash);
    const m = await env.metrics();
    expect(metricValue(m, 'synfin_tcp_bytes_total', { direction: 'upstream_to_client' })).toBeGreaterThanOrEqual(FILE_SIZE);
  }, 90_000);

  it('a refused port gives curl "connection refused" at once', async () => {
    const started = Date.now();
    const r = await env.ns.exec('curl', ['-sS', '--max-time', '10', `http://${env.serverAddr}:${closedPort}/`]);
    expect(r.code).toBe(7);
    expect(r.stderr).toMatch(/Connection refused|Couldn't connect/);
    expect(Date.now() - started).toBeLessThan(3000);
    const m = await env.metrics();
    expect(metricValue(m, 'synfin_tcp_handshake_duration_seconds_count', { result: 'upstream_refused' })).toBeGreaterThanOrEqual(1);
    expect(metricValue(m, 'synfin_upstream_connect_duration_seconds_count', { result: 'refused' })).toBeGreaterThanOrEqual(1);
  });

  it('1,000 sequential short connections succeed', async () => {
    const r = await env.ns.exec(process.execPath, [CLIENT, 'connections', env.serverAddr, String(rawPort), '1000', '1', 'client']);
    const result = JSON.parse(r.stdout) as { ok: number; failed: number; errors: Record<string, number> };
    expect(result).toEqual({ ok: 1000, failed: 0, errors: {} });
  }, 120_000);

  it('client-first and server-first closes leave no connection after TIME-WAIT', async () => {
    const a = await env.ns.exec(process.execPath, [CLIENT, 'connections', env.serverAddr, String(rawPort), '50', '10', 'client']);
    expect(JSON.parse(a.stdout).ok).toBe(50);
    // The server closes first: HTTP with Connection: close.
    const b = await env.ns.exec('sh', ['-c', `for i in $(seq 1 20); do curl -sS http://${env.serverAddr}:${httpPort}/close || exit 1; done`]);
    expect(b.code).toBe(0);
    await waitFor(
      'an empty connection table',
      () => env.api<{ count: number }>('/api/connections'),
      (v) => v.count === 0,
    );
    const m = await env.metrics();
    expect(metricValue(m, 'synfin_tcp_connections', { state: 'TIME_WAIT' })).toBe(0);
    expect(metricValue(m, 'synfin_tcp_state_transitions_total', { from: 'TIME_WAIT', to: 'CLOSED' })).toBeGreaterThanOrEqual(20);
  }, 60_000);

  it('a client that half-closes still receives the reply', async () => {
    const r = await env.ns.exec(process.execPath, [CLIENT, 'send', env.serverAddr, String(rawPort), '1000000', 'half']);
    const sent = JSON.parse(r.stdout) as { sent: number; sha256: string };
    expect(sent.sent).toBe(1_000_000);
    // The server's reply after the client's FIN arrived: the reply direction stayed open.
    const check = await env.ns.exec('sh', [
      '-c',
      `head -c 100 /dev/zero | nc -N ${env.serverAddr} ${rawPort}`,
    ]);
    expect(check.stdout).toMatch(/total 100 [0-9a-f]{64}/);
  }, 60_000);

  it('the app leak shows as waitingOn=app with the app socket in CLOSE_WAIT', async () => {
    // An app that reads the reply and never closes, against a server that closes first.
    const script =
      `const net=require('net');const s=[];for(let i=0;i<5;i++){const c=net.connect({host:'${env.serverAddr}',port:${httpPort},allowHalfOpen:true},` +
      `()=>c.write('GET /close HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n'));c.on('data',()=>{});c.on('error',()=>{});s.push(c)}setInterval(()=>{},1e9)`;
    const leak = env.ns.spawn(process.execPath, ['-e', script]);
    try {
      const rows = await waitFor(
        'five connections waiting on the app',
        () => env.api<{ count: number; connections: Row[] }>('/api/connections?waitingOn=app'),
        // FIN_WAIT_1 until the app's kernel acknowledges our FIN, then FIN_WAIT_2.
        (v) => v.count === 5 && v.connections.every((r) => r.state === 'FIN_WAIT_2'),
      );
      for (const row of rows.connections) {
        expect(row.state).toBe('FIN_WAIT_2');
        expect(row.appState).toBe('CLOSE_WAIT');
      }
      const ss = env.ns.execSync('ss', ['-Htan', 'state', 'close-wait']);
      expect(ss.trim().split('\n').filter((l) => l.length > 0)).toHaveLength(5);
      const m = await env.metrics();
      expect(metricValue(m, 'synfin_connections_waiting', { on: 'app' })).toBe(5);
    } finally {
      leak.kill('SIGKILL');
    }
  }, 30_000);
});
