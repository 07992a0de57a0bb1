/**
 * The flight recorder end to end: real kernel peers in a namespace talk through synfin to servers
 * on this host, and /api/history and the access log say who closed first and how many bytes went
 * each way, as the peers themselves counted them.
 */
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { HistoryRecord } from '../../src/observability/history.js';
import { createLogger } from '../../src/observability/log.js';
import { destroyAllNetns } from '../helpers/netns.js';
import { describeIfTun } from '../helpers/root.js';
import { startSynfinEnv, type SynfinEnv } from '../helpers/synfin-env.js';

/** A client run in the namespace: connects, sends `send` bytes, half-closes first or not, reads to EOF; prints its port and what it read. */
const CLIENT = `
const net = require('node:net');
const [host, port, send, closeFirst] = process.argv.slice(1);
const s = net.connect({ host, port: Number(port), allowHalfOpen: true });
let got = 0;
let local = 0;
s.on('connect', () => {
  local = s.localPort;
  s.write(Buffer.alloc(Number(send), 7));
  if (closeFirst === 'app') s.end();
});
s.on('data', (d) => { got += d.length; });
s.on('end', () => {
  if (closeFirst !== 'app') s.end();
});
s.on('close', () => { console.log(JSON.stringify({ port: local, got })); });
s.on('error', (e) => { console.log(JSON.stringify({ error: e.code })); });
`;

const REPLY_BYTES = 70_000;

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

describeIfTun('flight recorder end to end', () => {
  let env: SynfinEnv;
  let echoFirstServer: net.Server;
  let serverFirst: net.Server;
  let echoPort: number;
  let serverFirstPort: number;
  let closedPort: number;
  const received = new Map<number, number>();
  const logLines: Array<Record<string, unknown>> = [];

  beforeAll(async () => {
    // Waits for the app's FIN, then answers REPLY_BYTES and closes: the app closes first.
    echoFirstServer = net.createServer({ allowHalfOpen: true }, (s) => {
      let bytes = 0;
      s.on('data', (d) => (bytes += d.length));
      s.on('end', () => {
        received.set(s.remotePort!, bytes);
        s.end(Buffer.alloc(REPLY_BYTES, 1));
      });
      s.on('error', () => {});
    });
    // Sends REPLY_BYTES and closes at once: the destination closes first.
    serverFirst = net.createServer({ allowHalfOpen: true }, (s) => {
      let bytes = 0;
      s.on('data', (d) => (bytes += d.length));
      s.on('end', () => received.set(s.remotePort!, bytes));
      s.on('error', () => {});
      s.end(Buffer.alloc(REPLY_BYTES, 2));
    });
    await new Promise<void>((r) => echoFirstServer.listen(0, '127.0.0.1', r));
    await new Promise<void>((r) => serverFirst.listen(0, '127.0.0.1', r));
    echoPort = (echoFirstServer.address() as AddressInfo).port;
    serverFirstPort = (serverFirst.address() as AddressInfo).port;
    const probe = net.createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    closedPort = (probe.address() as AddressInfo).port;
    await new Promise<void>((r) => probe.close(() => r()));
    const logger = createLogger('info', { write: (line: string) => void logLines.push(JSON.parse(line) as Record<string, unknown>) });
    env = await startSynfinEnv({ accessLog: true, history: 100, logLevel: 'info' }, { logger });
  }, 60_000);

  afterAll(async () => {
    await env?.close();
    echoFirstServer?.close();
    serverFirst?.close();
    destroyAllNetns();
  });

  async function client(port: number, send: number, closeFirst: 'app' | 'upstream'): Promise<{ port: number; got: number }> {
    const r = await env.ns.exec(process.execPath, ['-e', CLIENT, env.serverAddr, String(port), String(send), closeFirst]);
    const out = JSON.parse(r.stdout) as { port: number; got: number; error?: string };
    expect(out.error).toBeUndefined();
    return out;
  }

  async function recordOf(clientPort: number): Promise<HistoryRecord> {
    const client = `${env.clientAddr}:${clientPort}`;
    const body = await waitFor(
      `the history record of ${client}`,
      () => env.api<{ connections: HistoryRecord[] }>('/api/history'),
      (b) => b.connections.some((r) => r.client === client),
    );
    return body.connections.find((r) => r.client === client)!;
  }

  it('the app closes first: closedFirstBy app, the bytes as both peers counted them, the access-log line', async () => {
    const out = await client(echoPort, 12_345, 'app');
    expect(out.got).toBe(REPLY_BYTES);
    const r = await recordOf(out.port);
    expect(r).toMatchObject({
      destination: `${env.serverAddr}:${echoPort}`,
      service: 'other',
      closedFirstBy: 'app',
      reason: 'fin',
      bytesIn: 12_345,
      bytesOut: REPLY_BYTES,
      appProcess: null,
    });
    expect(received.get([...received.keys()].at(-1)!)).toBe(12_345);
    expect(r.handshakeSeconds).toBeGreaterThan(0);
    expect(r.connectSeconds).toBeGreaterThan(0);
    expect(r.states.map((s) => s.state)).toEqual(['SYN_RECEIVED', 'ESTABLISHED', 'CLOSE_WAIT', 'LAST_ACK', 'CLOSED']);
    expect(Date.parse(r.closedAt) - Date.parse(r.openedAt)).toBeCloseTo(r.durationSeconds * 1000, -1);
    // The access log has the same record, as one info line.
    const line = logLines.find((l) => l.msg === 'connection closed' && l.id === r.id);
    expect(line).toMatchObject({ level: 30, ...r });
  }, 30_000);

  it('the destination closes first: closedFirstBy upstream, recorded once TIME-WAIT is over', async () => {
    const out = await client(serverFirstPort, 999, 'upstream');
    expect(out.got).toBe(REPLY_BYTES);
    const r = await recordOf(out.port);
    expect(r).toMatchObject({ closedFirstBy: 'upstream', reason: 'fin', bytesIn: 999, bytesOut: REPLY_BYTES });
    expect(r.states.map((s) => s.state)).toContain('TIME_WAIT');
    expect(r.states.at(-1)!.state).toBe('CLOSED');
    expect(logLines.some((l) => l.msg === 'connection closed' && l.id === r.id && l.closedFirstBy === 'upstream')).toBe(true);
  }, 30_000);

  it('a refused port: closedFirstBy upstream, reason upstream_failed, a connect time and no handshake', async () => {
    const r0 = await env.ns.exec('curl', ['-sS', '--max-time', '10', `http://${env.serverAddr}:${closedPort}/`]);
    expect(r0.code).toBe(7);
    const body = await waitFor(
      'the refused connection in the history',
      () => env.api<{ connections: HistoryRecord[] }>('/api/history?reason=upstream_failed'),
      (b) => b.connections.some((r) => r.destination === `${env.serverAddr}:${closedPort}`),
    );
    const r = body.connections.find((x) => x.destination === `${env.serverAddr}:${closedPort}`)!;
    expect(r).toMatchObject({ closedFirstBy: 'upstream', handshakeSeconds: null, bytesIn: 0, bytesOut: 0 });
    expect(r.connectSeconds).not.toBeNull();
    // Filters: this one is the destination's, none of the app-first closes is.
    const appFirst = await env.api<{ connections: HistoryRecord[] }>('/api/history?closedFirstBy=app');
    expect(appFirst.connections.length).toBeGreaterThanOrEqual(1);
    expect(appFirst.connections.every((x) => x.closedFirstBy === 'app')).toBe(true);
  }, 30_000);
});
