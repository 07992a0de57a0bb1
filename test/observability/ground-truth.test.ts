/**
 * The metrics must be true, not merely present: each is compared with an independent ground truth
 * (what RFC 9293 prescribes for the closes we made, the kernel's own `ss`, the bytes we sent),
 * with the real kernel as the app over the TUN device.
 */
import { execFileSync, spawn } from 'node:child_process';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, expect, it, onTestFinished } from 'vitest';
import { destroyAllNetns } from '../helpers/netns.js';
import { describeIfTun } from '../helpers/root.js';
import { metricValue, startSynfinEnv, type SynfinEnv } from '../helpers/synfin-env.js';

const CLIENT = path.join(import.meta.dirname, '../helpers/kernel-client.mjs');

/**
 * GET /api/events, then no reading until a line on stdin; then copy to stdout. A 4 KiB receive
 * buffer and a 536-byte MSS: on loopback (64 KiB MSS) the sender's kernel buffer autotunes to
 * megabytes, and a reader that stops reading holds more in the kernel than synfin's queue.
 */
const SLOW_READER = `
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, 536)
s.connect(('127.0.0.1', int(sys.argv[1])))
s.sendall(b'GET /api/events HTTP/1.1\\r\\nHost: 127.0.0.1\\r\\n\\r\\n')
buf = b''
while b'synfin state transitions' not in buf:
    buf += s.recv(4096)
sys.stdout.buffer.write(buf); sys.stdout.flush()
sys.stdin.readline()
while True:
    d = s.recv(65536)
    if not d: break
    sys.stdout.buffer.write(d); sys.stdout.flush()
`;

interface Row {
  id: number;
  state: string;
  appState: string;
  appStateSource: string;
  waitingOn: string | null;
  waitingSeconds: number | null;
}

async function waitFor<T>(what: string, fn: () => Promise<T>, ok: (v: T) => boolean, timeoutMs = 15_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  let last = await fn();
  while (!ok(last)) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(last).slice(0, 500)}`);
    await new Promise((r) => setTimeout(r, 50));
    last = await fn();
  }
  return last;
}

function ssCount(args: string[], ns?: string): number {
  const argv = ns !== undefined ? ['netns', 'exec', ns, 'ss', ...args] : null;
  const out = argv !== null ? execFileSync('ip', argv, { encoding: 'utf8' }) : execFileSync('ss', args, { encoding: 'utf8' });
  return out.split('\n').filter((l) => l.trim().length > 0).length;
}

describeIfTun('metrics against ground truth', () => {
  let env: SynfinEnv;
  let httpServer: http.Server;
  let httpPort: number;
  let lineServer: net.Server;
  let linePort: number;
  let silentServer: net.Server;
  let silentPort: number;
  const silentSockets: net.Socket[] = [];

  beforeAll(async () => {
    httpServer = http.createServer((req, res) => {
      if (req.url === '/close') {
        res.writeHead(200, { connection: 'close' });
        res.end('bye\n');
      } else if (req.url?.startsWith('/stream')) {
        // 40 MB in 1 MB pieces, a little apart, so a scrape can land mid-transfer.
        let sent = 0;
        res.writeHead(200, { 'content-length': 40 * 1024 * 1024 });
        const piece = Buffer.alloc(1024 * 1024, 7);
        const timer = setInterval(() => {
          res.write(piece);
          sent++;
          if (sent === 40) {
            clearInterval(timer);
            res.end();
          }
        }, 25);
        res.on('close', () => clearInterval(timer));
      } else res.end('hello\n');
    });
    await new Promise<void>((r) => httpServer.listen(0, '127.0.0.1', r));
    httpPort = (httpServer.address() as AddressInfo).port;
    // Closes after the app's FIN (the app closes first).
    lineServer = net.createServer({ allowHalfOpen: true }, (s) => {
      s.on('data', (d) => s.write(d));
      s.on('end', () => s.end());
      s.on('error', () => {});
    });
    await new Promise<void>((r) => lineServer.listen(0, '127.0.0.1', r));
    linePort = (lineServer.address() as AddressInfo).port;
    // Never closes, even after the app's FIN: the destination holds connections open.
    silentServer = net.createServer({ allowHalfOpen: true }, (s) => {
      silentSockets.push(s);
      s.on('data', () => {});
      s.on('error', () => {});
    });
    await new Promise<void>((r) => silentServer.listen(0, '127.0.0.1', r));
    silentPort = (silentServer.address() as AddressInfo).port;
    env = await startSynfinEnv({ mslSeconds: 1 });
  }, 60_000);

  afterAll(async () => {
    await env?.close();
    for (const s of silentSockets) s.destroy();
    httpServer?.closeAllConnections();
    httpServer?.close();
    lineServer?.close();
    silentServer?.close();
    destroyAllNetns();
  });

  it('transitions total holds exactly what RFC 9293 prescribes for N closes in each order', async () => {
    const N = 40;
    const before = await env.metrics();
    const t = (m: string, from: string, to: string) => metricValue(m, 'synfin_tcp_state_transitions_total', { from, to });
    // App-first closes: the app's FIN → our CLOSE_WAIT; the destination then closes → LAST_ACK → CLOSED.
    const a = await env.ns.exec(process.execPath, [CLIENT, 'connections', env.serverAddr, String(linePort), String(N), '5', 'client']);
    expect(JSON.parse(a.stdout).ok).toBe(N);
    // Destination-first closes: the server's FIN → our FIN_WAIT_1 → (FIN_WAIT_2 | CLOSING) → TIME_WAIT → CLOSED.
    const b = await env.ns.exec('sh', ['-c', `for i in $(seq 1 ${N}); do curl -sS http://${env.serverAddr}:${httpPort}/close >/dev/null || exit 1; done`]);
    expect(b.code).toBe(0);
    await waitFor('TIME-WAIT to drain', () => env.api<{ count: number }>('/api/connections'), (v) => v.count === 0);
    const after = await env.metrics();
    const d = (from: string, to: string) => t(after, from, to) - t(before, from, to);
    expect(d('LISTEN', 'SYN_RECEIVED')).toBe(2 * N);
    expect(d('SYN_RECEIVED', 'ESTABLISHED')).toBe(2 * N);
    expect(d('ESTABLISHED', 'CLOSE_WAIT')).toBe(N);
    expect(d('CLOSE_WAIT', 'LAST_ACK')).toBe(N);
    expect(d('LAST_ACK', 'CLOSED')).toBe(N);
    expect(d('ESTABLISHED', 'FIN_WAIT_1')).toBe(N);
    expect(d('FIN_WAIT_1', 'FIN_WAIT_2') + d('FIN_WAIT_1', 'CLOSING') + d('FIN_WAIT_1', 'TIME_WAIT')).toBe(N);
    expect(d('FIN_WAIT_2', 'TIME_WAIT') + d('CLOSING', 'TIME_WAIT') + d('FIN_WAIT_1', 'TIME_WAIT')).toBe(N);
    expect(d('TIME_WAIT', 'CLOSED')).toBe(N);
    expect(metricValue(after, 'synfin_tcp_connections_closed_total', { reason: 'fin' }) - metricValue(before, 'synfin_tcp_connections_closed_total', { reason: 'fin' })).toBe(2 * N);
  }, 60_000);

  it('TIME_WAIT in the stack matches /api/connections, rises after destination-first closes and drains after 2×MSL', async () => {
    const N = 15;
    const b = await env.ns.exec('sh', ['-c', `for i in $(seq 1 ${N}); do curl -sS http://${env.serverAddr}:${httpPort}/close >/dev/null || exit 1; done`]);
    expect(b.code).toBe(0);
    const m = await env.metrics();
    const rows = await env.api<{ connections: Row[] }>('/api/connections?state=TIME_WAIT');
    const gauge = metricValue(m, 'synfin_tcp_connections', { state: 'TIME_WAIT' });
    expect(gauge).toBeGreaterThan(0);
    expect(gauge).toBe(rows.connections.length);
    await waitFor('TIME-WAIT to drain', () => env.metrics(), (text) => metricValue(text, 'synfin_tcp_connections', { state: 'TIME_WAIT' }) === 0, 5000);
  }, 30_000);

  it("after app-first closes, synfin_upstream_sockets{state=\"TIME_WAIT\"} equals what ss shows for synfin's upstream sockets", async () => {
    const N = 12;
    const a = await env.ns.exec(process.execPath, [CLIENT, 'connections', env.serverAddr, String(linePort), String(N), '4', 'client']);
    expect(JSON.parse(a.stdout).ok).toBe(N);
    // Our upstream socket closed first (the app's FIN became socket.end()): it is in the kernel's TIME_WAIT.
    const viaSs = ssCount(['-Htan', 'state', 'time-wait', 'dst', `127.0.0.1:${linePort}`]);
    const m = await env.metrics();
    expect(viaSs).toBeGreaterThanOrEqual(N);
    expect(metricValue(m, 'synfin_upstream_sockets', { state: 'TIME_WAIT' })).toBe(viaSs);
  }, 30_000);

  it('the app leak: an app that never closes against a destination that closes first', async () => {
    const N = 6;
    const script =
      `const net=require('net');const s=[];for(let i=0;i<${N};i++){const c=net.connect({host:'${env.serverAddr}',port:${httpPort},allowHalfOpen:true},` +
      `()=>c.write('GET /close HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n'));c.on('data',()=>{});c.on('error',()=>{});s.push(c)}setInterval(()=>{},1e9)`;
    const leak = env.ns.spawn(process.execPath, ['-e', script]);
    try {
      const rows = await waitFor(
        'the leaking connections',
        () => env.api<{ count: number; connections: Row[] }>('/api/connections?waitingOn=app'),
        (v) => v.count === N && v.connections.every((r) => r.state === 'FIN_WAIT_2'),
      );
      for (const r of rows.connections) expect(r.appState).toBe('CLOSE_WAIT');
      expect(ssCount(['-Htan', 'state', 'close-wait'], env.ns.name)).toBe(N);
      const m1 = await env.metrics();
      expect(metricValue(m1, 'synfin_connections_waiting', { on: 'app' })).toBe(N);
      const age1 = metricValue(m1, 'synfin_connections_oldest_waiting_seconds', { on: 'app' });
      await new Promise((r) => setTimeout(r, 1200));
      const age2 = metricValue(await env.metrics(), 'synfin_connections_oldest_waiting_seconds', { on: 'app' });
      expect(age2 - age1).toBeGreaterThan(1.0);
      expect(age2 - age1).toBeLessThan(2.5);
    } finally {
      leak.kill('SIGKILL');
    }
  }, 30_000);

  it('the mirror: the app half-closes and the destination never closes (waiting on upstream)', async () => {
    const N = 4;
    const holder = env.ns.spawn(process.execPath, [CLIENT, 'hold', env.serverAddr, String(silentPort), String(N), 'half-close']);
    try {
      const rows = await waitFor(
        'connections waiting on the upstream',
        () => env.api<{ count: number; connections: Row[] }>('/api/connections?waitingOn=upstream'),
        (v) => v.count === N,
      );
      for (const r of rows.connections) {
        expect(r.state).toBe('CLOSE_WAIT');
        expect(r.appState).toBe('FIN_WAIT_2');
      }
      // On the destination's side, its sockets received our FIN and sit in CLOSE_WAIT.
      expect(ssCount(['-Htan', 'state', 'close-wait', 'src', `127.0.0.1:${silentPort}`])).toBe(N);
      expect(metricValue(await env.metrics(), 'synfin_connections_waiting', { on: 'upstream' })).toBe(N);
    } finally {
      holder.kill('SIGKILL');
    }
  }, 30_000);

  it('bytes are counted as they flow, and equal the bytes sent', async () => {
    const before = metricValue(await env.metrics(), 'synfin_tcp_bytes_total', { direction: 'upstream_to_client' });
    const curl = env.ns.spawn('curl', ['-sS', '-o', '/dev/null', `http://${env.serverAddr}:${httpPort}/stream`]);
    const done = new Promise<number | null>((r) => curl.on('exit', r));
    // Mid-transfer: some bytes counted, not all.
    const mid = await waitFor(
      'bytes mid-transfer',
      async () => metricValue(await env.metrics(), 'synfin_tcp_bytes_total', { direction: 'upstream_to_client' }) - before,
      (v) => v > 1024 * 1024,
    );
    expect(mid).toBeLessThan(40 * 1024 * 1024);
    expect(await done).toBe(0);
    const total = metricValue(await env.metrics(), 'synfin_tcp_bytes_total', { direction: 'upstream_to_client' }) - before;
    // The body plus the response headers.
    expect(total).toBeGreaterThanOrEqual(40 * 1024 * 1024);
    expect(total).toBeLessThan(40 * 1024 * 1024 + 1024);
  }, 60_000);

  it('/api/events delivers the transitions of a connection in order', async () => {
    const controller = new AbortController();
    const res = await fetch(`${env.synfin.listenUrl}/api/events`, { signal: controller.signal });
    const reader = res.body!.getReader();
    const decoder = new TextDecoder();
    const r = await env.ns.exec(process.execPath, [CLIENT, 'connections', env.serverAddr, String(linePort), '1', '1', 'client']);
    expect(JSON.parse(r.stdout).ok).toBe(1);
    let text = '';
    const events: Array<{ id: number; from: string; to: string }> = [];
    const deadline = Date.now() + 5000;
    // Earlier tests' connections may still leave TIME_WAIT on this stream: follow the one that
    // opens now (its first event is LISTEN>SYN_RECEIVED) until it is CLOSED.
    const opened = () => events.find((e) => e.from === 'LISTEN');
    while (!events.some((e) => e.to === 'CLOSED' && e.id === opened()?.id) && Date.now() < deadline) {
      const { value, done } = await reader.read();
      if (done) break;
      text += decoder.decode(value);
      events.length = 0;
      for (const m of text.matchAll(/data: (.*)\n/g)) events.push(JSON.parse(m[1]!));
    }
    controller.abort();
    const id = opened()?.id;
    expect(id).toBeDefined();
    const mine = events.filter((e) => e.id === id).map((e) => `${e.from}>${e.to}`);
    expect(mine).toEqual(['LISTEN>SYN_RECEIVED', 'SYN_RECEIVED>ESTABLISHED', 'ESTABLISHED>CLOSE_WAIT', 'CLOSE_WAIT>LAST_ACK', 'LAST_ACK>CLOSED']);
  }, 30_000);

  it('a slow /api/events reader does not slow the proxy; it is told what it missed', async () => {
    const transitions = async () => metricValue(await env.metrics(), 'synfin_tcp_state_transitions_total');
    // A reader that stops reading once subscribed (the response has begun), with a small socket
    // receive buffer: a paused Node socket goes on reading into a kernel buffer that autotunes to
    // tens of MB on loopback, and then nothing is ever dropped.
    // The count starts where the reader's stream does: a transition between the two (a TIME-WAIT
    // of an earlier test ending) would be delivered but not counted, or counted but not delivered.
    // So the reader subscribes again until the counter did not move while it subscribed.
    let reader: ReturnType<typeof spawn> | undefined;
    // Killed however the test ends: a reader left connected holds the API server open (afterAll).
    onTestFinished(() => {
      reader?.kill();
    });
    let got = '';
    let before = -1;
    for (let attempt = 0; attempt < 10 && before < 0; attempt++) {
      const at = await transitions();
      const r = spawn('python3', ['-c', SLOW_READER, new URL(env.synfin.listenUrl).port], { stdio: ['pipe', 'pipe', 'inherit'] });
      reader = r;
      got = '';
      // Only the current reader's bytes (a killed one may still flush some).
      r.stdout!.on('data', (d: Buffer) => {
        if (reader === r) got += d.toString();
      });
      await waitFor('the stream to begin', async () => got, (g) => g.includes('synfin state transitions'), 5000);
      if ((await transitions()) === at) before = at;
      else reader.kill();
    }
    expect(before).toBeGreaterThanOrEqual(0);
    const started = Date.now();
    // 2,000 connections: 10,000 events of ~200 bytes, twice the 1 MiB queue.
    const r = await env.ns.exec(process.execPath, [CLIENT, 'connections', env.serverAddr, String(linePort), '2000', '20', 'client']);
    expect(JSON.parse(r.stdout)).toEqual({ ok: 2000, failed: 0, errors: {} });
    expect(Date.now() - started).toBeLessThan(40_000);
    // Now read what was queued: bounded, and it says events were dropped. The count rides on the
    // next event delivered after the queue drains: one more connection gives it one.
    reader!.stdin!.write('go\n');
    await new Promise((res) => setTimeout(res, 500));
    const queued = got.length;
    expect(queued).toBeGreaterThan(0);
    const one = await env.ns.exec(process.execPath, [CLIENT, 'connections', env.serverAddr, String(linePort), '1', '1', 'client']);
    expect(JSON.parse(one.stdout).ok).toBe(1);
    // Every transition since the reader subscribed was either delivered to it or counted in a
    // `dropped` field: delivered + dropped equals the stack's own transition counter.
    const tally = () => {
      let delivered = 0;
      let dropped = 0;
      for (const m of got.matchAll(/data: (.*)\n/g)) {
        delivered++;
        dropped += (JSON.parse(m[1]!) as { dropped: number }).dropped;
      }
      return { delivered, dropped };
    };
    const last = await waitFor(
      'delivered + dropped = transitions',
      async () => ({ ...tally(), transitions: (await transitions()) - before }),
      (t) => t.delivered + t.dropped === t.transitions,
      10_000,
    );
    reader!.kill();
    // The queue (1 MiB) plus what the small socket buffers hold.
    expect(queued).toBeLessThan(2 * 1024 * 1024);
    // 2,001 connections opened and closed: at least 5 transitions each.
    expect(last.transitions).toBeGreaterThanOrEqual(2001 * 5);
    expect(last.dropped).toBeGreaterThan(1000);
    expect(last.delivered).toBeGreaterThan(0);
  }, 60_000);
});

describeIfTun('handshake latency and RTT with 50 ms between the kernel and the stack', () => {
  let env: SynfinEnv;
  let server: net.Server;
  let port: number;
  beforeAll(async () => {
    server = net.createServer((s) => {
      s.on('data', (d) => s.write(d));
      s.on('end', () => s.end());
      s.on('error', () => {});
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as AddressInfo).port;
    // 25 ms each way: 50 ms round trip between the app's kernel and the stack.
    env = await startSynfinEnv({ impair: 'delay=25,seed=5' });
  }, 60_000);
  afterAll(async () => {
    await env?.close();
    server?.close();
    destroyAllNetns();
  });

  it('no handshake is faster than the 50 ms round trip, most take at most 100 ms, the mean under 70 ms, and the RTT histogram reflects the delay', async () => {
    const r = await env.ns.exec(process.execPath, [CLIENT, 'connections', env.serverAddr, String(port), '20', '4', 'client']);
    expect(JSON.parse(r.stdout).ok).toBe(20);
    // The client counts a connection once the SYN-ACK reaches it; synfin observes the handshake
    // when the final ACK arrives, one delayed half-RTT later: wait for the last ones to land.
    const handshakes = (text: string) => metricValue(text, 'synfin_tcp_handshake_duration_seconds_count', { result: 'ok' });
    const m = await waitFor('20 handshakes observed', () => env.metrics(), (text) => handshakes(text) >= 20, 5000).catch(() => env.metrics());
    const count = handshakes(m);
    expect(count).toBe(20);
    const le = (bound: string) => metricValue(m, 'synfin_tcp_handshake_duration_seconds_bucket', { result: 'ok', le: bound });
    // None at ≤ 50 ms (the RTT alone is 50 ms), and the median, indeed three quarters, by 100 ms.
    // The rest are what a loaded 2-core CI machine holds up for a scheduling slice: seen 19 of 20
    // once, and 16 of 20 once under the full suite (18 or more in 7 runs alone and under burners).
    expect(le('0.05')).toBe(0);
    expect(le('0.1')).toBeGreaterThanOrEqual(15);
    const sum = metricValue(m, 'synfin_tcp_handshake_duration_seconds_sum', { result: 'ok' });
    const mean = sum / count;
    expect(mean).toBeGreaterThan(0.05);
    // 50 ms of path delay plus synfin's own time; the margin absorbs a loaded 2-core CI machine.
    expect(mean).toBeLessThan(0.07);
    const rttCount = metricValue(m, 'synfin_tcp_rtt_seconds_count');
    expect(rttCount).toBeGreaterThan(0);
    const rttMean = metricValue(m, 'synfin_tcp_rtt_seconds_sum') / rttCount;
    expect(rttMean).toBeGreaterThan(0.045);
    expect(rttMean).toBeLessThan(0.08);
  }, 60_000);
});
