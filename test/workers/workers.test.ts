/**
 * `--workers 2` in-process (src/workers/supervisor.ts): one device with two queues, a worker
 * thread with a whole stack on each, the main thread answering HTTP. Connections get through and
 * both workers carry some; /metrics sums the workers' counters; /api/connections merges both
 * tables with ids naming their worker; a worker that dies is replaced on its queue while the
 * other's connections carry on. The workers run the built dist/workers/worker.js (npm run build).
 */
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { DEFAULT_CONFIG, type Config } from '../../src/config.js';
import { createLogger } from '../../src/observability/log.js';
import { startWorkers, type Workers } from '../../src/workers/supervisor.js';
import { NetNs, destroyAllNetns, uniqueIfName } from '../helpers/netns.js';
import { describeIfTun } from '../helpers/root.js';
import { metricValue } from '../helpers/synfin-env.js';
import { ECHO_BURST_SCRIPT } from '../helpers/echo-burst.js';

const WORKER_SCRIPT = path.join(import.meta.dirname, '../../dist/workers/worker.js');
const CONNECTIONS = 48;


// Holds N connections open; every 100 ms each writes a line and counts the echoes; prints the
// echo count of each connection, and "closed I" when one closes.
const HOLD_SCRIPT = `
const net = require('net');
const n = +process.env.N;
const echoes = new Array(n).fill(0);
const socks = [];
for (let i = 0; i < n; i++) {
  const s = net.connect({ host: process.env.HOST, port: +process.env.PORT });
  s.on('data', () => { echoes[i]++; });
  s.on('close', () => console.log('closed ' + i));
  s.on('error', () => {});
  socks.push(s);
}
setInterval(() => { for (const s of socks) if (!s.destroyed) s.write('x\\n'); console.log(JSON.stringify(echoes)); }, 100);
`;

let echo: net.Server;
let port = 0;
const running: Workers[] = [];

beforeAll(async () => {
  if (!fs.existsSync(WORKER_SCRIPT)) throw new Error(`${WORKER_SCRIPT} is missing: npm run build first`);
  // A worker that dies takes its upstream sockets with it: their ends here see resets.
  echo = net.createServer((s) => {
    s.on('error', () => {});
    s.pipe(s);
  });
  await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
  port = (echo.address() as net.AddressInfo).port;
});

afterAll(() => {
  echo.close();
});

afterEach(async () => {
  for (const w of running.splice(0)) await w.shutdown('test done');
  destroyAllNetns();
});

async function start(ns: NetNs, n: number, overrides: Partial<Config> = {}): Promise<Workers> {
  const config: Config = {
    ...DEFAULT_CONFIG,
    tun: uniqueIfName('sfw'),
    addresses: [`198.19.${n}.1/24`],
    listenHost: '127.0.0.1',
    listenPort: 0,
    mslSeconds: 0.25,
    logLevel: 'silent',
    map: [`198.19.${n}.0/24=127.0.0.1`],
    shutdownGraceSeconds: 1,
    workers: 2,
    ...overrides,
  };
  const w = await startWorkers(config, { netns: ns.name, logger: createLogger('silent'), workerScript: WORKER_SCRIPT });
  running.push(w);
  return w;
}

const subnet = (salt: number): number => ((process.pid * 7 + salt) % 200) + 20;

describeIfTun('--workers 2: two stacks in two worker threads on two queues', () => {
  it('carries every connection intact, both workers carry some, /metrics sums them, and /api/events and /api/history cover both', async () => {
    const n = subnet(0);
    const ns = NetNs.create('wk');
    const w = await start(ns, n);
    expect((await fetch(`${w.listenUrl}/readyz`)).status).toBe(200);

    // /api/events relays both workers' transitions.
    const events = await fetch(`${w.listenUrl}/api/events`);
    expect(events.status).toBe(200);
    const reader = events.body!.getReader();
    let sse = '';
    const reading = (async () => {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        sse += Buffer.from(value).toString();
      }
    })();
    await new Promise((r) => setTimeout(r, 200)); // the workers are told to relay

    const r = await ns.exec(process.execPath, ['-e', ECHO_BURST_SCRIPT], { env: { ...process.env, HOST: `198.19.${n}.2`, PORT: String(port), N: String(CONNECTIONS) } });
    expect(JSON.parse(r.stdout.trim())).toEqual({ ok: CONNECTIONS });

    const deadline = Date.now() + 5000;
    const established = (): Array<{ id: number }> =>
      [...sse.matchAll(/^data: (.*)$/gm)].map((m) => JSON.parse(m[1]!) as { id: number; to: string }).filter((e) => e.to === 'ESTABLISHED');
    while (established().length < CONNECTIONS && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    await reader.cancel();
    await reading.catch(() => {});
    const ids = established().map((e) => e.id);
    expect(new Set(ids).size).toBe(CONNECTIONS);
    expect(ids.some((id) => id % 2 === 0) && ids.some((id) => id % 2 === 1)).toBe(true);

    // /api/history merges both recorders (each keeps half of --history), newest first.
    let history: { count: number; capacity: number; connections: Array<{ id: number; closedAt: string }> } = { count: 0, capacity: 0, connections: [] };
    const historyDeadline = Date.now() + 5000;
    while (history.count < CONNECTIONS && Date.now() < historyDeadline) {
      history = (await (await fetch(`${w.listenUrl}/api/history`)).json()) as typeof history;
      if (history.count < CONNECTIONS) await new Promise((r) => setTimeout(r, 100));
    }
    expect(history.count).toBe(CONNECTIONS);
    expect(history.capacity).toBe(DEFAULT_CONFIG.history);
    expect(new Set(history.connections.map((c) => c.id))).toEqual(new Set(ids));
    const closedAt = history.connections.map((c) => c.closedAt);
    expect([...closedAt].sort().reverse()).toEqual(closedAt);
    const five = (await (await fetch(`${w.listenUrl}/api/history?limit=5`)).json()) as typeof history;
    expect(five.connections).toEqual(history.connections.slice(0, 5));

    const text = await (await fetch(`${w.listenUrl}/metrics`)).text();
    // A counter summed across the workers: every connection made, counted once.
    expect(metricValue(text, 'synfin_tcp_connections_opened_total')).toBe(CONNECTIONS);
    const w0 = metricValue(text, 'synfin_worker_connections_opened_total', { worker: '0' });
    const w1 = metricValue(text, 'synfin_worker_connections_opened_total', { worker: '1' });
    expect(w0 + w1).toBe(CONNECTIONS);
    // 48 flows all hashed to one queue: probability 2^-47.
    expect(w0).toBeGreaterThan(0);
    expect(w1).toBeGreaterThan(0);
    expect(metricValue(text, 'synfin_tcp_resets_total')).toBe(0);
    // Process-wide families once, from the main thread; the workers' ready.
    expect(text.match(/^synfin_build_info\{/gm)).toHaveLength(1);
    expect(text.match(/^process_cpu_user_seconds_total /gm)).toHaveLength(1);
    expect(text.match(/^process_start_time_seconds /gm)).toHaveLength(1);
    expect(metricValue(text, 'synfin_ready')).toBe(1);
    expect(metricValue(text, 'synfin_workers', { state: 'ready' })).toBe(2);
    // A histogram's buckets and counts sum too.
    expect(metricValue(text, 'synfin_tcp_handshake_duration_seconds_count', { result: 'ok' })).toBe(CONNECTIONS);
    const om = await fetch(`${w.listenUrl}/metrics`, { headers: { accept: 'application/openmetrics-text; version=1.0.0' } });
    expect(om.headers.get('content-type')).toMatch(/openmetrics/);
    expect(await om.text()).toMatch(/^# EOF$/m);
  }, 30_000);

  it('merges both tables in /api/connections with ids naming their worker, page by page, and routes a pcap by id to its worker', async () => {
    const n = subnet(1);
    const ns = NetNs.create('wkc');
    const w = await start(ns, n, { captureBuffer: 1024 * 1024 });
    const holder = ns.spawn(process.execPath, ['-e', HOLD_SCRIPT], { env: { ...process.env, HOST: `198.19.${n}.2`, PORT: String(port), N: '16' } });
    try {
      let out = '';
      holder.stdout!.on('data', (d) => (out += d));
      const deadline = Date.now() + 10_000;
      while (!/\[([1-9]\d*,){15}[1-9]\d*\]/.test(out) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));

      const all = (await (await fetch(`${w.listenUrl}/api/connections?state=ESTABLISHED`)).json()) as { count: number; connections: Array<{ id: number; client: string }>; next: string | null };
      expect(all.count).toBe(16);
      const ids = all.connections.map((c) => c.id);
      expect(new Set(ids).size).toBe(16);
      expect([...ids].sort((a, b) => a - b)).toEqual(ids);
      // id mod 2 names the worker: both workers' connections are in the table.
      expect(ids.some((id) => id % 2 === 0)).toBe(true);
      expect(ids.some((id) => id % 2 === 1)).toBe(true);

      // Pages of 5 walk the same 16, in order, each once.
      const walked: number[] = [];
      let cursor: string | null = null;
      do {
        const page = (await (await fetch(`${w.listenUrl}/api/connections?state=ESTABLISHED&limit=5${cursor !== null ? `&cursor=${cursor}` : ''}`)).json()) as typeof all;
        walked.push(...page.connections.map((c) => c.id));
        cursor = page.next;
      } while (cursor !== null);
      expect(walked).toEqual(ids);

      // A connection's packets come from the ring of the worker its id names.
      for (const id of [ids.find((x) => x % 2 === 0)!, ids.find((x) => x % 2 === 1)!]) {
        const pcap = await fetch(`${w.listenUrl}/api/connections/${id}/pcap`);
        expect(pcap.status).toBe(200);
        const file = Buffer.from(await pcap.arrayBuffer());
        expect(file.readUInt32LE(0)).toBe(0xa1b2c3d4);
        expect(file.length).toBeGreaterThan(24 + 3 * 16);
      }
      expect((await fetch(`${w.listenUrl}/api/connections/${Math.max(...ids) + 1000}/pcap`)).status).toBe(404);

      // The rings together: --capture-buffer split between the workers; turned off in every worker at once.
      const capture = (await (await fetch(`${w.listenUrl}/api/capture`)).json()) as { enabled: boolean; active: boolean; bufferBytes: number; records: number; workers: number };
      expect(capture).toMatchObject({ enabled: true, active: true, bufferBytes: 1024 * 1024, workers: 2 });
      expect(capture.records).toBeGreaterThan(0);
      const off = await fetch(`${w.listenUrl}/api/capture`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ enabled: false }) });
      expect(((await off.json()) as { enabled: boolean; active: boolean })).toMatchObject({ enabled: false, active: false });
      expect((await fetch(`${w.listenUrl}/api/connections/${ids[0]}/pcap`)).status).toBe(409);

      // A live capture turns capture on in every worker for its seconds: both rings' packets, in time order.
      const live = await fetch(`${w.listenUrl}/api/capture.pcap?seconds=0.5`);
      expect(live.status).toBe(200);
      const file = Buffer.from(await live.arrayBuffer());
      expect(file.readUInt32LE(0)).toBe(0xa1b2c3d4);
      const times: number[] = [];
      for (let off = 24; off < file.length; off += 16 + file.readUInt32LE(off + 8)) times.push(file.readUInt32LE(off) * 1e6 + file.readUInt32LE(off + 4));
      expect(times.length).toBeGreaterThan(16);
      expect([...times].sort((a, b) => a - b)).toEqual(times);
      // Packets of connections on both workers: the app's port of each record (IPv4, LINKTYPE_RAW).
      const ports = new Set<number>();
      for (let off = 24; off < file.length; off += 16 + file.readUInt32LE(off + 8)) {
        const ip = off + 16;
        const sport = file.readUInt16BE(ip + (file[ip]! & 0x0f) * 4);
        const dport = file.readUInt16BE(ip + (file[ip]! & 0x0f) * 4 + 2);
        ports.add(sport === port ? dport : sport);
      }
      const portOf = (c: { client: string }): number => Number(c.client.slice(c.client.lastIndexOf(':') + 1));
      expect(all.connections.filter((c) => c.id % 2 === 0).some((c) => ports.has(portOf(c)))).toBe(true);
      expect(all.connections.filter((c) => c.id % 2 === 1).some((c) => ports.has(portOf(c)))).toBe(true);

      // The live page's summary counts both workers' connections.
      const summary = (await (await fetch(`${w.listenUrl}/api/summary`)).json()) as { states: Record<string, number> };
      expect(summary.states.LISTEN).toBe(1);
      expect(summary.states.ESTABLISHED).toBe(16);
      expect((await fetch(`${w.listenUrl}/`)).status).toBe(200);
    } finally {
      holder.kill('SIGKILL');
    }
  }, 30_000);

  it('replaces a worker that dies on its queue, and the other worker keeps its connections', async () => {
    const n = subnet(2);
    const ns = NetNs.create('wkr');
    const w = await start(ns, n);
    const holder = ns.spawn(process.execPath, ['-e', HOLD_SCRIPT], { env: { ...process.env, HOST: `198.19.${n}.2`, PORT: String(port), N: '16' } });
    try {
      let out = '';
      holder.stdout!.on('data', (d) => (out += d));
      const lastCounts = (): number[] => {
        const lines = out.split('\n').filter((l) => l.startsWith('['));
        return lines.length === 0 ? [] : (JSON.parse(lines.at(-1)!) as number[]);
      };
      const until = async (what: string, ok: () => boolean): Promise<void> => {
        const deadline = Date.now() + 10_000;
        while (!ok()) {
          if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: ${out.slice(-300)}`);
          await new Promise((r) => setTimeout(r, 50));
        }
      };
      await until('16 connections echoing', () => lastCounts().length === 16 && lastCounts().every((c) => c > 0));

      // Which connections does worker 0 carry? Ids are local × 2 + worker.
      const table = (await (await fetch(`${w.listenUrl}/api/connections`)).json()) as { connections: Array<{ id: number; client: string }> };
      const onWorker1 = table.connections.filter((c) => c.id % 2 === 1).length;
      expect(onWorker1).toBeGreaterThan(0);

      const first = w.threads()[0]!;
      await first.terminate();
      await until('worker 0 replaced', () => w.threads()[0] !== first && w.restarts() === 1);
      const readyDeadline = Date.now() + 10_000;
      while ((await fetch(`${w.listenUrl}/readyz`)).status !== 200 && Date.now() < readyDeadline) await new Promise((r) => setTimeout(r, 50));
      expect((await fetch(`${w.listenUrl}/readyz`)).status).toBe(200);

      // The connections worker 1 carries go on echoing; worker 0's were lost with it (its
      // replacement answers their segments with RST): the client sees them close.
      const before = lastCounts();
      await new Promise((r) => setTimeout(r, 1500));
      const after = lastCounts();
      const closed = new Set([...out.matchAll(/^closed (\d+)$/gm)].map((m) => Number(m[1])));
      const alive = after.map((c, i) => i).filter((i) => !closed.has(i));
      expect(alive.length).toBeGreaterThanOrEqual(onWorker1);
      for (const i of alive) expect(after[i]!).toBeGreaterThan(before[i]!);
      const text = await (await fetch(`${w.listenUrl}/metrics`)).text();
      expect(metricValue(text, 'synfin_worker_restarts_total')).toBe(1);
      expect(metricValue(text, 'synfin_workers', { state: 'ready' })).toBe(2);
    } finally {
      holder.kill('SIGKILL');
    }
  }, 40_000);
});

// A stand-in worker (no stack): says ready, or fails to start while the state file says "fail";
// appends "start" to the log file at each start. Enough for the supervisor's replacement rules.
const FAKE_WORKER_SCRIPT = `
import fs from 'node:fs';
import { parentPort } from 'node:worker_threads';
fs.appendFileSync(process.env.SYNFIN_FAKE_WORKER_LOG, 'start\\n');
if (fs.readFileSync(process.env.SYNFIN_FAKE_WORKER_STATE, 'utf8') === 'fail') {
  parentPort.postMessage({ type: 'failed', message: 'told to fail', code: null });
  process.exit(1);
}
parentPort.on('message', (m) => {
  if (m.type === 'shutdown') process.exit(0);
  if (m.seq !== undefined) parentPort.postMessage({ type: 'reply', seq: m.seq, body: m.type === 'metrics' ? [] : null });
});
parentPort.postMessage({ type: 'ready' });
`;

describeIfTun('--workers: a replacement that fails to start', () => {
  it('is tried again after the retry delay, one attempt at a time, counted as one restart, until one starts', async () => {
    const dir = fs.mkdtempSync('/tmp/synfin-fake-worker-');
    const script = path.join(dir, 'worker.mjs');
    const state = path.join(dir, 'state');
    const log = path.join(dir, 'log');
    fs.writeFileSync(script, FAKE_WORKER_SCRIPT);
    fs.writeFileSync(state, 'ok');
    fs.writeFileSync(log, '');
    process.env.SYNFIN_FAKE_WORKER_STATE = state;
    process.env.SYNFIN_FAKE_WORKER_LOG = log;
    const starts = (): number => fs.readFileSync(log, 'utf8').split('\n').filter((l) => l === 'start').length;
    const ns = NetNs.create('wkf');
    const n = subnet(3);
    const config: Config = { ...DEFAULT_CONFIG, tun: uniqueIfName('sff'), addresses: [`198.19.${n}.1/24`], listenHost: '127.0.0.1', listenPort: 0, logLevel: 'silent', workers: 2 };
    const w = await startWorkers(config, { netns: ns.name, logger: createLogger('silent'), workerScript: script, replaceRetryMs: 300 });
    running.push(w);
    try {
      expect(starts()).toBe(2);
      expect((await fetch(`${w.listenUrl}/readyz`)).status).toBe(200);
      // Worker 0 dies; its replacements fail for a while.
      await new Promise((r) => setTimeout(r, 1100)); // past the quick-death guard: the first replacement comes at once
      fs.writeFileSync(state, 'fail');
      const first = w.threads()[0]!;
      await first.terminate();
      const t0 = Date.now();
      while (starts() < 2 + 4 && Date.now() - t0 < 10_000) await new Promise((r) => setTimeout(r, 20));
      const elapsed = Date.now() - t0;
      // Four attempts: one at once, three more 300 ms apart (two overlapping retry chains would be quicker).
      expect(starts()).toBe(6);
      expect(elapsed).toBeGreaterThanOrEqual(3 * 300 - 50);
      expect(w.restarts()).toBe(1);
      expect((await fetch(`${w.listenUrl}/readyz`)).status).toBe(503);
      // Then it starts, and nothing starts after it.
      fs.writeFileSync(state, 'ok');
      const t1 = Date.now();
      while ((await fetch(`${w.listenUrl}/readyz`)).status !== 200 && Date.now() - t1 < 5_000) await new Promise((r) => setTimeout(r, 20));
      expect((await fetch(`${w.listenUrl}/readyz`)).status).toBe(200);
      const settled = starts();
      await new Promise((r) => setTimeout(r, 1000));
      expect(starts()).toBe(settled);
      expect(w.restarts()).toBe(1);
      expect(w.threads()[0]).not.toBe(first);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }, 30_000);
});
