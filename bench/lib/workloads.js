// The workloads. Each is called once per round and measures the same load on every path of
// relays.js (kernel, haproxy, synfin) in the round's order, one path after the other with a fresh
// relay process each, recording one sample per row and path in ctx.results:
//   ctx.results.add(id, { workload, unit, better, cpuUnit }, path, { round, value, lost, cpuUsPerUnit, loop, details })
// `lost` counts connections that failed or broke; `cpuUsPerUnit` is the relay process's CPU
// (/proc/PID/stat, all threads) per unit of work; `loop` synfin's event-loop delay during the
// run. A workload that fails half-way keeps the samples it had.
import path from 'node:path';
import { ADDR } from './topology.js';
import { PORT, startIperf, startNginx, startRedis, startTcpServer } from './servers.js';
import { HAPROXY_MAXCONN, measured, pathOrder, withPath } from './relays.js';
import { median } from './results.js';
import { Daemon, run, runSync, sleep, tryRunSync } from './proc.js';
import { tool, BENCH_DIR } from './tools.js';

const API_LOAD = path.join(BENCH_DIR, 'api-load.mjs');
const IDLE_CLIENT = path.join(BENCH_DIR, 'idle-client.mjs');
const SYNFIN_COUNTERS = ['synfin_tcp_retransmitted_segments_total', 'synfin_tcp_resets_total', 'synfin_tcp_dropped_segments_total', 'synfin_tcp_connections_closed_total', 'synfin_tun_packets_total', 'synfin_tcp_segments_total'];
const NSTAT = ['TcpExtTCPSynRetrans', 'TcpRetransSegs', 'TcpActiveOpens', 'TcpAttemptFails', 'TcpEstabResets'];

function nstatDelta(before, after) {
  const out = {};
  for (const k of Object.keys(after)) out[k] = after[k] - (before[k] ?? 0);
  return out;
}

/** The paths of this workload in this round's order. */
function order(ctx, round, paths) {
  return pathOrder(round, paths ?? ctx.paths).filter((p) => ctx.paths.includes(p));
}

function cpuPer(m, units, scale = 1000) {
  return m.cpuMs === null ? undefined : (m.cpuMs * scale) / Math.max(1e-9, units);
}

function fmtLoop(loop) {
  return loop === null ? '' : `, loop delay p99 ${loop.p99.toFixed(1)} ms max ${loop.max.toFixed(1)} ms`;
}

function fmtCpu(cpu, unit) {
  return cpu === undefined ? '' : ` (${cpu.toFixed(1)} ${unit} of relay CPU)`;
}

// ── bulk throughput ─────────────────────────────────────────────────────────────────────────

async function iperf(ns, host, reverse, seconds, congestion) {
  // -C: the sending socket's congestion control (iperf3 passes it to the server with -R).
  const args = ['-c', host, '-p', String(PORT.iperf), '-t', String(seconds), '-J', ...(reverse ? ['-R'] : []), ...(congestion ? ['-C', congestion] : [])];
  const r = await run('iperf3', args, { ns, timeoutMs: (seconds + 40) * 1000 });
  let j = null;
  try {
    j = JSON.parse(r.stdout);
  } catch {
    // not JSON: reported below
  }
  if (r.code !== 0 || j === null || j.error !== undefined) {
    return { gbps: NaN, retransmits: NaN, error: j?.error ?? (r.stderr.trim() || `exit ${r.code}`) };
  }
  return { gbps: j.end.sum_received.bits_per_second / 1e9, retransmits: j.end.sum_sent.retransmits ?? 0, error: null };
}

/** One iperf3 run on a path, recorded as row `id` (CPU per MB moved: µs/MB). */
async function bulkSample(ctx, round, p, relay, ep, { id, label, reverse, congestion, settleMs = 1000 }) {
  // iperf3's server takes one test at a time and resets a connection that comes while it is still
  // closing the previous test (seen through synfin as an upstream reset): let it finish first.
  await sleep(settleMs);
  const m = await measured(relay, SYNFIN_COUNTERS, () => iperf(ep.ns, ep.host, reverse, ctx.seconds, congestion));
  const r = m.result;
  const mb = (r.gbps * 1e9 * ctx.seconds) / 8 / 1e6;
  const cpu = cpuPer(m, mb);
  const dir = reverse ? 'server→client (-R)' : 'client→server';
  ctx.log(`  ${label} ${dir} ${p}: ${r.gbps.toFixed(2)} Gbit/s${fmtCpu(cpu, 'µs/MB')}${fmtLoop(m.loop)}${r.error ? ` error: ${r.error}` : ''}`);
  ctx.results.add(id, { workload: `bulk ${label}, ${dir}`, unit: 'Gbit/s', better: 'higher', cpuUnit: 'µs/MB' }, p, {
    round,
    value: r.gbps,
    lost: r.error !== null ? 1 : 0,
    cpuUsPerUnit: cpu,
    loop: m.loop,
    details: { retransmits: r.retransmits, error: r.error, counters: m.counters },
  });
}

export async function throughput(ctx, round) {
  const iperfd = await startIperf(ctx.topo);
  try {
    for (const mtu of [1500, 65000]) {
      ctx.topo.setVethMtu(mtu);
      for (const p of order(ctx, round)) {
        await withPath(ctx, p, { name: `throughput-mtu${mtu}`, mtu }, async (relay, ep) => {
          for (const reverse of [false, true]) {
            await bulkSample(ctx, round, p, relay, ep, { id: `bulk_mtu${mtu}_${reverse ? 'down' : 'up'}`, label: `MTU ${mtu}`, reverse });
          }
        });
      }
    }
  } finally {
    ctx.topo.setVethMtu(1500);
    await iperfd.stop();
  }
}

// ── short connections ───────────────────────────────────────────────────────────────────────

/**
 * Every relay runs each workload's traffic for this long before the measured run (relays are
 * started fresh per workload: synfin's JIT and first connections, haproxy's first connections),
 * so the figures are of relays in their steady state, as a sidecar that has been running is.
 */
const WARMUP_SECONDS = 1;

/** One `connrate` run (bench/tools/connrate.c) from namespace `ns`: its JSON report. */
export async function connrate(ns, host, port, seconds, concurrency, payload, mode) {
  const r = await run(tool('connrate'), [host, String(port), String(seconds), String(concurrency), String(payload), mode], { ns, timeoutMs: (seconds + 30) * 1000 });
  if (r.code !== 0) throw new Error(`connrate: ${r.stderr.trim()}`);
  return JSON.parse(r.stdout);
}

/**
 * Short connections, the client closing first (last round's workload, kept for its target): 64 in
 * flight against the echo server, 64 bytes each way, the client's ports reused (tw_reuse).
 */
export async function connections(ctx, round) {
  const { topo } = ctx;
  const CONC = 64;
  const server = await startTcpServer(topo, 'echo');
  try {
    for (const p of order(ctx, round)) {
      await withPath(ctx, p, { name: 'connections' }, async (relay, ep) => {
        await connrate(ep.ns, ep.host, PORT.echo, WARMUP_SECONDS, CONC, 64, 'echo'); // warm-up: not measured
        const nb = topo.nstat(ep.ns, NSTAT);
        const m = await measured(relay, SYNFIN_COUNTERS, () => connrate(ep.ns, ep.host, PORT.echo, ctx.seconds, CONC, 64, 'echo'));
        const n = nstatDelta(nb, topo.nstat(ep.ns, NSTAT));
        const r = m.result;
        const cpu = cpuPer(m, r.ok);
        ctx.log(`  client closes first, ${p}: ${r.rate}/s (failed ${r.failed})${fmtCpu(cpu, 'µs/conn')}; SYN retransmissions ${n.TcpExtTCPSynRetrans}${fmtLoop(m.loop)}`);
        const meta = { workload: `short connections/s, client closes first (${CONC} in flight, echo 64 B, tw_reuse)`, unit: 'conn/s', better: 'higher', cpuUnit: 'µs/conn' };
        ctx.results.add('conn_rate', meta, p, { round, value: r.rate, lost: r.failed, cpuUsPerUnit: cpu, loop: m.loop, details: { run: r, clientNstat: n, counters: m.counters } });
        ctx.results.add('conn_syn_retrans', { workload: 'SYN retransmissions during the short connections', unit: 'count', better: 'lower' }, p, { round, value: n.TcpExtTCPSynRetrans, lost: 0 });
        ctx.results.add('conn_p99_load', { workload: `connect latency p99, ${CONC} in flight`, unit: 'µs', better: 'lower' }, p, { round, value: r.connectUs.p99, lost: 0 });
      });
      await sleep(1000);
    }
  } finally {
    await server.stop();
  }
}

/**
 * Short connections closed by the server first (issue 24): the server writes 6 bytes and closes;
 * the client connects, sends nothing, reads to EOF and closes; 50 in flight.
 */
export async function shortconn(ctx, round) {
  const { topo } = ctx;
  const CONC = 50;
  const server = await startTcpServer(topo, 'greet');
  try {
    for (const p of order(ctx, round)) {
      await withPath(ctx, p, { name: 'shortconn' }, async (relay, ep) => {
        await connrate(ep.ns, ep.host, PORT.greet, WARMUP_SECONDS, CONC, 6, 'eof'); // warm-up: not measured
        const nb = topo.nstat(ep.ns, NSTAT);
        const m = await measured(relay, SYNFIN_COUNTERS, () => connrate(ep.ns, ep.host, PORT.greet, ctx.seconds, CONC, 6, 'eof'));
        const n = nstatDelta(nb, topo.nstat(ep.ns, NSTAT));
        const r = m.result;
        const cpu = cpuPer(m, r.ok);
        ctx.log(`  server closes first, ${p}: ${r.rate}/s (failed ${r.failed} ${JSON.stringify(r.errors)})${fmtCpu(cpu, 'µs/conn')}${fmtLoop(m.loop)}`);
        const meta = { workload: `short connections/s, server closes first (${CONC} in flight, 6 B then FIN)`, unit: 'conn/s', better: 'higher', cpuUnit: 'µs/conn' };
        ctx.results.add('short_close', meta, p, { round, value: r.rate, lost: r.failed, cpuUsPerUnit: cpu, loop: m.loop, details: { run: r, clientNstat: n, counters: m.counters } });
      });
      await sleep(1000);
    }
  } finally {
    await server.stop();
  }
}

/**
 * Connect and first-byte latency, one connection at a time (the greet server: connect, read the 6
 * bytes and the FIN, close), for ctx.latencySeconds per path: thousands of samples each.
 */
export async function latency(ctx, round) {
  const { topo } = ctx;
  const server = await startTcpServer(topo, 'greet');
  const seconds = ctx.latencySeconds;
  try {
    for (const p of order(ctx, round)) {
      await withPath(ctx, p, { name: 'latency' }, async (relay, ep) => {
        // Warm-up (first connections, JIT): not measured.
        await connrate(ep.ns, ep.host, PORT.greet, 1, 1, 6, 'eof');
        const m = await measured(relay, SYNFIN_COUNTERS, () => connrate(ep.ns, ep.host, PORT.greet, seconds, 1, 6, 'eof'));
        const r = m.result;
        const cpu = cpuPer(m, r.ok);
        const c = r.connectUs;
        const f = r.firstByteUs;
        ctx.log(`  one at a time, ${p}: ${r.ok} connections; connect µs p50/p99/p99.9 ${c.p50}/${c.p99}/${c.p999}, first byte ${f.p50}/${f.p99}/${f.p999}${fmtCpu(cpu, 'µs/conn')}${fmtLoop(m.loop)}`);
        const common = { round, lost: r.failed, loop: m.loop };
        ctx.results.add('conn_p50_seq', { workload: 'connect latency p50, one at a time', unit: 'µs', better: 'lower', cpuUnit: 'µs/conn' }, p, { ...common, value: c.p50, cpuUsPerUnit: cpu, details: { run: r, counters: m.counters } });
        ctx.results.add('conn_p99_seq', { workload: 'connect latency p99, one at a time', unit: 'µs', better: 'lower' }, p, { ...common, lost: 0, value: c.p99 });
        ctx.results.add('conn_p999_seq', { workload: 'connect latency p99.9, one at a time', unit: 'µs', better: 'lower' }, p, { ...common, lost: 0, value: c.p999 });
        ctx.results.add('fb_p50_seq', { workload: 'first byte latency p50 (connect() to the first byte), one at a time', unit: 'µs', better: 'lower' }, p, { ...common, lost: 0, value: f.p50 });
        ctx.results.add('fb_p99_seq', { workload: 'first byte latency p99, one at a time', unit: 'µs', better: 'lower' }, p, { ...common, lost: 0, value: f.p99 });
        ctx.results.add('fb_p999_seq', { workload: 'first byte latency p99.9, one at a time', unit: 'µs', better: 'lower' }, p, { ...common, lost: 0, value: f.p999 });
      });
      await sleep(1000);
    }
  } finally {
    await server.stop();
  }
}

// ── HTTP ────────────────────────────────────────────────────────────────────────────────────

function wrkDuration(text) {
  const m = /^([\d.]+)(us|ms|s|m)$/.exec(text);
  if (m === null) return NaN;
  const v = Number(m[1]);
  return m[2] === 'us' ? v / 1000 : m[2] === 'ms' ? v : m[2] === 's' ? v * 1000 : v * 60_000;
}

export async function wrk(ns, host, seconds, close) {
  const args = ['-t1', '-c64', `-d${seconds}s`, '--timeout', '5s', '--latency', ...(close ? ['-H', 'Connection: close'] : []), `http://${host}:${PORT.http}/`];
  const r = await run('wrk', args, { ns, timeoutMs: (seconds + 30) * 1000 });
  const out = r.stdout;
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? NaN);
  const total = Number(/(\d+) requests in/.exec(out)?.[1] ?? NaN);
  const se = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const errors = se === null ? { connect: 0, read: 0, write: 0, timeout: 0 } : { connect: +se[1], read: +se[2], write: +se[3], timeout: +se[4] };
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0);
  const p50 = wrkDuration(/^\s+50%\s+(\S+)/m.exec(out)?.[1] ?? '');
  const p99 = wrkDuration(/^\s+99%\s+(\S+)/m.exec(out)?.[1] ?? '');
  if (r.code !== 0 || !Number.isFinite(rps)) throw new Error(`wrk failed (${r.code}): ${r.stderr.trim()} ${out.trim()}`);
  return { rps, total, errors, non2xx, latencyMs: { p50, p99 } };
}

export function wrkLost(w) {
  return w.errors.connect + w.errors.read + w.errors.write + w.errors.timeout + w.non2xx;
}

export async function http(ctx, round) {
  const { topo } = ctx;
  const nginx = await startNginx(topo);
  try {
    for (const close of [false, true]) {
      const name = close ? 'http-close' : 'http-keepalive';
      for (const p of order(ctx, round)) {
        await withPath(ctx, p, { name }, async (relay, ep) => {
          await wrk(ep.ns, ep.host, WARMUP_SECONDS, close); // warm-up: not measured
          const m = await measured(relay, SYNFIN_COUNTERS, () => wrk(ep.ns, ep.host, ctx.seconds, close));
          const w = m.result;
          const cpu = cpuPer(m, w.total);
          ctx.log(`  ${name} ${p}: ${w.rps} req/s${fmtCpu(cpu, 'µs/req')}; p50/p99 ${w.latencyMs.p50}/${w.latencyMs.p99} ms; errors ${JSON.stringify(w.errors)}, non-2xx ${w.non2xx}${fmtLoop(m.loop)}`);
          const meta = { workload: `HTTP requests/s, ${close ? 'Connection: close' : 'keep-alive'} (wrk -c64, nginx)`, unit: 'req/s', better: 'higher', cpuUnit: 'µs/req' };
          ctx.results.add(close ? 'http_close' : 'http_keepalive', meta, p, { round, value: w.rps, lost: wrkLost(w), cpuUsPerUnit: cpu, loop: m.loop, details: { wrk: w, counters: m.counters } });
        });
      }
    }
  } finally {
    const r = await nginx.stop();
    if (r.code !== 0 || r.stderr.trim() !== '') ctx.log(`  nginx: exit ${r.code ?? r.signal}; ${r.stderr.trim().slice(-1500)}`);
  }
}

// ── request/response, small messages (redis) ────────────────────────────────────────────────

/**
 * redis-benchmark: 50 connections, pipeline depth `depth`, PING (multi-bulk), SET and GET with
 * 3-byte values, `perTest` requests each. The row's value is all requests over all the tests'
 * time (the harmonic mean of the three rates).
 */
async function redisBench(ns, host, depth, perTest) {
  const args = ['-h', host, '-p', String(PORT.redis), '-c', '50', '-P', String(depth), '-n', String(perTest), '-t', 'ping_mbulk,set,get', '--csv'];
  const r = await run('redis-benchmark', args, { ns, timeoutMs: 600_000 });
  if (r.code !== 0) throw new Error(`redis-benchmark failed (${r.code}): ${r.stderr.trim()} ${r.stdout.trim().slice(-500)}`);
  const tests = {};
  for (const line of r.stdout.split('\n')) {
    const cells = line.split(',').map((c) => c.replace(/^"|"$/g, ''));
    if (cells.length < 2 || !Number.isFinite(Number(cells[1]))) continue;
    // "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
    tests[cells[0]] = { rps: Number(cells[1]), p50Ms: Number(cells[4]), p99Ms: Number(cells[6]), maxMs: Number(cells[7]) };
  }
  const names = Object.keys(tests);
  if (names.length !== 3) throw new Error(`redis-benchmark: expected 3 tests, got ${names.join(', ')}: ${r.stdout.trim().slice(-500)}`);
  const seconds = names.reduce((a, t) => a + perTest / tests[t].rps, 0);
  return { rps: (perTest * names.length) / seconds, requests: perTest * names.length, seconds, tests };
}

export async function reqresp(ctx, round) {
  const { topo } = ctx;
  const redis = await startRedis(topo);
  try {
    for (const depth of [1, 16]) {
      for (const p of order(ctx, round)) {
        await withPath(ctx, p, { name: `reqresp-P${depth}` }, async (relay, ep) => {
          // redis-benchmark counts requests, not seconds: a warm-up run (not measured) gives the
          // path's rate, and the measured run is sized from it to about ctx.seconds (a fixed count
          // made the runs at depth 16 last a fraction of a second, from a relay just started).
          const warm = await redisBench(ep.ns, ep.host, depth, depth === 1 ? 2000 : 20000);
          const perTest = Math.max(1000, Math.round((warm.rps * ctx.seconds) / 3));
          const m = await measured(relay, SYNFIN_COUNTERS, () => redisBench(ep.ns, ep.host, depth, perTest));
          const b = m.result;
          const cpu = cpuPer(m, b.requests);
          const t = Object.entries(b.tests).map(([k, v]) => `${k} ${Math.round(v.rps)}`).join(', ');
          ctx.log(`  depth ${depth} ${p}: ${Math.round(b.rps)} req/s (${t})${fmtCpu(cpu, 'µs/req')}${fmtLoop(m.loop)}`);
          const meta = { workload: `request/response req/s, depth ${depth}, 50 connections (redis-benchmark PING/SET/GET, 3 B values)`, unit: 'req/s', better: 'higher', cpuUnit: 'µs/req' };
          ctx.results.add(`reqresp_d${depth}`, meta, p, { round, value: b.rps, lost: 0, cpuUsPerUnit: cpu, loop: m.loop, details: { ...b, counters: m.counters } });
        });
      }
    }
  } finally {
    await redis.stop();
  }
}

// ── idle connections and memory ─────────────────────────────────────────────────────────────

/**
 * Scrapes /metrics as Prometheus does, at a steady interval, and reports the last `n` (the first
 * sets the rhythm that synfin anticipates): total time as curl saw it, and the server's own
 * split (Server-Timing): waiting for the kernel's socket table, and collecting and rendering on
 * the event loop.
 */
async function scrapeTimes(sf, n, intervalMs = 3000) {
  const ms = [];
  const kernel = [];
  const collect = [];
  for (let i = 0; i <= n; i++) {
    const started = Date.now();
    const r = await sf.get('/metrics');
    if (i > 0) {
      ms.push(r.ms);
      kernel.push(r.serverTiming.kernel ?? NaN);
      collect.push(r.serverTiming.collect ?? NaN);
    }
    if (i < n) await sleep(Math.max(0, intervalMs - (Date.now() - started)));
  }
  return { medianMs: median(ms), maxMs: Math.max(...ms), kernelMs: median(kernel), collectMs: median(collect), intervalMs };
}

/** synfin's V8 heap in use and external memory now (MiB), from /metrics: where an RSS change comes from. */
async function heapMiB(sf) {
  const { body } = await sf.get('/metrics', { body: true });
  const v = (name) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(body)?.[1] ?? NaN) / 2 ** 20;
  return { heapUsed: v('nodejs_heap_size_used_bytes'), heapTotal: v('nodejs_heap_size_total_bytes'), external: v('nodejs_external_memory_bytes') };
}

function idleClient(ns, host, n) {
  return new Daemon('idle client', 'sh', ['-c', 'ulimit -n 20000 && exec "$0" "$@"', process.execPath, IDLE_CLIENT, host, String(PORT.hold), String(n), '200'], { ns, readyLine: /"established"/, readyMs: 120_000 });
}

/**
 * The relays' memory for idle connections (issue 24): RSS after a warm-up (baseline), with N idle
 * connections held (→ KiB per connection, both legs: the client's and the upstream), and each
 * second for ctx.idleSettle seconds after the client closed them all (→ MiB above the baseline
 * at the end). The kernel path has no relay process and is not measured.
 */
export async function idle(ctx, round) {
  const { topo } = ctx;
  const server = await startTcpServer(topo, 'hold');
  const greet = await startTcpServer(topo, 'greet');
  try {
    for (const p of order(ctx, round, ['haproxy', 'synfin'])) {
      // haproxy relays at most HAPROXY_MAXCONN at once (its descriptor limit): the per-connection
      // figure is comparable, the count is the smaller one.
      const N = p === 'haproxy' ? Math.min(ctx.idleConnections, HAPROXY_MAXCONN) : ctx.idleConnections;
      await withPath(ctx, p, { name: 'idle' }, async (relay, ep) => {
        // Warm up: the stack's first connections; for synfin the HTTP API and the metrics path.
        await connrate(ep.ns, ep.host, PORT.greet, 1, 4, 6, 'eof');
        const empty = p === 'synfin' ? await scrapeTimes(relay, 3) : null;
        await sleep(1000);
        const cpu0 = relay.cpuMs();
        const base = relay.rssKb();
        const heap = { base: p === 'synfin' ? await heapMiB(relay) : null, held: null, afterClose: null };
        const client = idleClient(ep.ns, ep.host, N);
        let opened;
        let last;
        let held;
        let heldRss;
        let scrapeHeld = null;
        let established = NaN;
        try {
          opened = JSON.parse(await client.ready);
          await sleep(2000);
          heldRss = relay.rssKb();
          if (p === 'synfin') {
            heap.held = await heapMiB(relay);
            scrapeHeld = await scrapeTimes(relay, 3);
            const { body } = await relay.get('/metrics', { body: true });
            established = Number(/^synfin_tcp_connections\{state="ESTABLISHED"\} (\d+)/m.exec(body)?.[1] ?? NaN);
          }
          held = heldRss;
          const stopped = await client.stop('SIGTERM');
          last = JSON.parse(stopped.stdout.trim().split('\n').pop());
        } finally {
          if (!client.exited) await client.stop('SIGKILL');
        }
        // After the close: RSS each second for ctx.idleSettle seconds.
        const after = [];
        const closedAt = Date.now();
        for (let s = 1; s <= ctx.idleSettle; s++) {
          await sleep(Math.max(0, closedAt + s * 1000 - Date.now()));
          after.push(relay.rssKb());
        }
        if (p === 'synfin') heap.afterClose = await heapMiB(relay);
        const cpuMs = relay.cpuMs() - cpu0;
        const perConn = (held - base) / Math.max(1, opened.established);
        const backMiB = (after[after.length - 1] - base) / 1024;
        // The first second after the close from which RSS stayed within 16 MiB of the baseline (issue 24's bound).
        let within = after.length;
        while (within > 0 && after[within - 1] - base <= 16 * 1024) within--;
        const backWithin16MiBAfterS = within < after.length ? within + 1 : null;
        const lost = opened.failed + last.lost + (N - opened.established - opened.failed);
        ctx.log(
          `  ${p}: ${opened.established}/${N} held (failed ${opened.failed}, lost while held ${last.lost}); RSS ${base} → ${held} KiB = ${perConn.toFixed(2)} KiB/conn; ${ctx.idleSettle} s after close ${after[after.length - 1]} KiB (${backMiB >= 0 ? '+' : ''}${backMiB.toFixed(1)} MiB)` +
            `; within 16 MiB of the baseline ${backWithin16MiBAfterS === null ? 'not within ' + ctx.idleSettle + ' s' : 'from ' + backWithin16MiBAfterS + ' s on'}` +
            (scrapeHeld ? `; /metrics ${empty.medianMs.toFixed(1)} ms empty, ${scrapeHeld.medianMs.toFixed(1)} ms held` : ''),
        );
        const details = { count: N, opened, heldReport: last, synfinEstablished: established, rssKb: { base, held, afterClose: after }, backWithin16MiBAfterS, synfinHeapMiB: heap, cpuMs, scrapeEmpty: empty, scrapeHeld };
        ctx.results.add('idle_rss', { workload: `relay memory per idle connection (${ctx.idleConnections} held, both legs, RSS delta)`, unit: 'KiB/conn', better: 'lower' }, p, { round, value: perConn, lost, details });
        ctx.results.add('idle_rss_after', { workload: `relay RSS above its baseline ${ctx.idleSettle} s after the ${ctx.idleConnections} connections closed`, unit: 'MiB', better: 'lower' }, p, { round, value: backMiB, lost: 0 });
        if (scrapeHeld !== null) {
          ctx.results.add('idle_scrape', { workload: `/metrics scrape time with ${N} held`, unit: 'ms', better: 'lower', note: `without connections: ${empty.medianMs.toFixed(1)} ms` }, p, { round, value: scrapeHeld.medianMs, lost: 0, details: { empty, held: scrapeHeld } });
        }
      });
    }
  } finally {
    await server.stop();
    await greet.stop();
  }
}

// ── loss and delay ──────────────────────────────────────────────────────────────────────────

/**
 * Bulk transfer with 1 % loss and 5 ms each way, one impairment mechanism for both paths: the
 * NFQUEUE impairer (bench/tools/nfq-impair.c, the same seed) on the FORWARD chain of a router in
 * the middle of the client's leg: lrt for the kernel (lcli → lrt → srv), scli for synfin (lsc →
 * scli → synfin's TUN device). synfin runs without --impair. haproxy is not measured here.
 */
export async function loss(ctx, round) {
  const { topo } = ctx;
  const LOSS = 0.01;
  const DELAY = 5;
  const SEED = 1;
  topo.addRoutedPath();
  topo.sysctl(topo.ns.scli, 'net.ipv4.ip_forward', '1');
  const iperfd = await startIperf(topo);
  const label = `${LOSS * 100}% loss + ${DELAY} ms each way, MTU 1500, CUBIC`;
  const routes = {
    kernel: { router: topo.ns.lrt, client: { ns: topo.ns.lcli, host: ADDR.routedServer }, in: topo.dev.la, out: topo.dev.lb },
    synfin: { router: topo.ns.scli, client: { ns: topo.ns.lsc, host: ADDR.tunTarget }, in: topo.dev.sr, out: topo.dev.tun },
  };
  try {
    for (const p of order(ctx, round, ['kernel', 'synfin'])) {
      const rt = routes[p];
      // Client→server packets on queue 10, server→client on 11: one PRNG per direction.
      const rules = [
        ['-i', rt.in, '-o', rt.out, '10'],
        ['-i', rt.out, '-o', rt.in, '11'],
      ];
      const impair = new Daemon(`nfq-impair (${p})`, tool('nfq-impair'), ['10', '11', String(LOSS), String(DELAY), String(SEED)], { ns: rt.router, readyLine: /^ready/ });
      let stats = null;
      try {
        await impair.ready;
        for (const [i, a, o, b, q] of rules) runSync('iptables', ['-w', '-A', 'FORWARD', i, a, o, b, '-p', 'tcp', '-j', 'NFQUEUE', '--queue-num', q], { ns: rt.router });
        await withPath(ctx, p, { name: 'loss' }, async (relay) => {
          for (const reverse of [false, true]) {
            // Every kernel sender on CUBIC, as synfin's own sender is by default: this machine's
            // default (BBR) does not back off on random loss, a different experiment from recovery.
            await bulkSample(ctx, round, p, relay, rt.client, { id: reverse ? 'loss_down' : 'loss_up', label, reverse, congestion: 'cubic', settleMs: 3000 });
          }
        });
      } finally {
        for (const [i, a, o, b, q] of rules) tryRunSync('iptables', ['-w', '-D', 'FORWARD', i, a, o, b, '-p', 'tcp', '-j', 'NFQUEUE', '--queue-num', q], { ns: rt.router });
        const r = await impair.stop('SIGTERM');
        const last = r.stdout.trim().split('\n').pop() ?? '';
        try {
          stats = JSON.parse(last);
        } catch {
          stats = { exit: r.code ?? r.signal, stdout: r.stdout.trim(), stderr: r.stderr.trim().slice(-500) };
        }
        ctx.log(`  impairer (${p}): ${typeof stats.out === 'object' ? last : JSON.stringify(stats)}`);
      }
      ctx.impairment.push({ round, path: p, stats });
    }
  } finally {
    await iperfd.stop();
    topo.sysctl(topo.ns.scli, 'net.ipv4.ip_forward', '0');
  }
}

// ── the API under load ──────────────────────────────────────────────────────────────────────

/**
 * Keep-alive HTTP through synfin (wrk -c64, nginx) with ctx.idleConnections (10,000) connections
 * held open, measured alone and with the API busy: one client walking /api/connections page by
 * page as fast as it is answered, and 16 /api/events readers that never read (bench/api-load.mjs,
 * in synfin's namespace). Each round measures alone, then loaded, on the same synfin process;
 * the row compares the medians over the rounds (target: ≥ 0.9). synfin only.
 */
export async function api(ctx, round) {
  const { topo } = ctx;
  const N = ctx.idleConnections;
  if (!ctx.paths.includes('synfin')) return;
  const nginx = await startNginx(topo);
  const hold = await startTcpServer(topo, 'hold');
  try {
    await withPath(ctx, 'synfin', { name: 'api' }, async (sf, ep) => {
      const client = idleClient(ep.ns, ep.host, N);
      try {
        const opened = JSON.parse(await client.ready);
        await sleep(2000);
        // synfin's event-loop thread CPU per request: steadier than req/s on a busy machine.
        const measure = async () => {
          const c0 = sf.cpuMs(true);
          const m = await measured(sf, [], () => wrk(ep.ns, ep.host, ctx.seconds, false));
          m.result.loopCpuUsPerRequest = ((sf.cpuMs(true) - c0) * 1000) / Math.max(1, m.result.total);
          return m;
        };
        const alone = await measure();
        await sleep(1000);
        // The API load starts a second before wrk and ends a second after it.
        const loader = run(process.execPath, [API_LOAD, sf.url, String(ctx.seconds + 2), '16'], { ns: topo.ns.sfn, timeoutMs: (ctx.seconds + 40) * 1000 });
        await sleep(1000);
        const loaded = await measure();
        const l = await loader;
        let load = null;
        try {
          load = JSON.parse(l.stdout.trim().split('\n').pop() ?? '');
        } catch {
          // reported below
        }
        const stopped = await client.stop('SIGTERM');
        const last = JSON.parse(stopped.stdout.trim().split('\n').pop());
        const a = alone.result;
        const b = loaded.result;
        ctx.log(`  ${opened.established}/${N} held: alone ${a.rps} req/s (${a.loopCpuUsPerRequest.toFixed(1)} µs of synfin's loop each${fmtLoop(alone.loop)}), with the API busy ${b.rps} req/s (${b.loopCpuUsPerRequest.toFixed(1)} µs${fmtLoop(loaded.loop)}); API: ${l.stdout.trim() || l.stderr.trim()}`);
        const lostLoad = load === null ? 1 : load.errors + (16 - (load.streams?.['200'] ?? 0));
        const meta = { workload: `HTTP requests/s, keep-alive, ${N} held, /api/connections in a loop + 16 stalled /api/events readers`, unit: 'req/s', better: 'higher', cpuUnit: 'µs/req', note: 'synfin only: "synfin" with the API busy, "synfin-alone" without (same process, same round)' };
        ctx.results.add('http_keepalive_api', meta, 'synfin', { round, value: b.rps, lost: wrkLost(b) + last.lost + opened.failed + lostLoad, cpuUsPerUnit: cpuPer(loaded, b.total), loop: loaded.loop, details: { wrk: b, apiLoad: load, held: opened } });
        ctx.results.add('http_keepalive_api', meta, 'synfin-alone', { round, value: a.rps, lost: wrkLost(a), cpuUsPerUnit: cpuPer(alone, a.total), loop: alone.loop, details: { wrk: a } });
      } finally {
        if (!client.exited) await client.stop('SIGKILL');
      }
    });
  } finally {
    await hold.stop();
    const r = await nginx.stop();
    if (r.code !== 0 || r.stderr.trim() !== '') ctx.log(`  nginx: exit ${r.code ?? r.signal}; ${r.stderr.trim().slice(-1500)}`);
  }
}

export const WORKLOADS = { throughput, connections, shortconn, latency, http, reqresp, idle, loss, api };
