// The workloads. Each one measures the same thing through synfin (client in scli, the TUN device,
// synfin, a veth to srv) and through the kernel alone (client in kcli, a veth to srv), in the same
// run, one after the other, and returns table rows:
//   { id, workload, unit, synfin, kernel, ratio, better, lost, details }
// `lost` counts connections that failed or broke (the issue's "no connection lost"). Rows are
// pushed onto ctx.rows as they are measured, so a workload that fails half-way keeps what it had.
import { ADDR } from './topology.js';
import { PORT, startIperf, startNginx, startTcpServer } from './servers.js';
import { SynfinProcess, counterDelta } from './synfin.js';
import { Daemon, run, runSync, sleep, tryRunSync } from './proc.js';
import { tool, BENCH_DIR } from './tools.js';
import path from 'node:path';

const PAGE_POLLER = path.join(BENCH_DIR, 'page-poller.mjs');
const API_LOAD = path.join(BENCH_DIR, 'api-load.mjs');
const SYNFIN_COUNTERS = ['synfin_tcp_retransmitted_segments_total', 'synfin_tcp_resets_total', 'synfin_tcp_dropped_segments_total', 'synfin_tcp_connections_closed_total', 'synfin_tun_packets_total', 'synfin_tcp_segments_total'];
const NSTAT = ['TcpExtTCPSynRetrans', 'TcpRetransSegs', 'TcpActiveOpens', 'TcpAttemptFails', 'TcpEstabResets'];

function row(id, workload, unit, synfin, kernel, better, lost, details = {}) {
  const ratio = Number.isFinite(synfin) && Number.isFinite(kernel) && kernel !== 0 ? synfin / kernel : null;
  return { id, workload, unit, synfin, kernel, ratio, better, lost, details };
}

function nstatDelta(before, after) {
  const out = {};
  for (const k of Object.keys(after)) out[k] = after[k] - (before[k] ?? 0);
  return out;
}

async function withSynfin(ctx, opts, fn) {
  const sf = new SynfinProcess(ctx.topo, { dist: ctx.dist, name: opts.name, mtu: opts.mtu ?? 1500, impair: opts.impair, cpuProfDir: ctx.cpuProfDir });
  await sf.start();
  try {
    return await fn(sf);
  } finally {
    const r = await sf.stop();
    if (r !== null && r.stderr.trim() !== '') ctx.log(`  synfin (${opts.name}) stderr: ${r.stderr.trim().slice(0, 500)}`);
  }
}

// ── bulk throughput ─────────────────────────────────────────────────────────────────────────

async function iperf(ctx, ns, host, reverse, seconds, congestion) {
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
  return {
    gbps: j.end.sum_received.bits_per_second / 1e9,
    retransmits: j.end.sum_sent.retransmits ?? 0,
    error: null,
  };
}

async function bulkPair(ctx, label, id, reverse, seconds, sf, kernelPath = { ns: ctx.topo.ns.kcli, host: ADDR.kernelServer }, congestion = undefined) {
  const k = await iperf(ctx, kernelPath.ns, kernelPath.host, reverse, seconds, congestion);
  const before = await sf.counters(SYNFIN_COUNTERS);
  const cpuBefore = sf.cpuMs();
  const s = await iperf(ctx, ctx.topo.ns.scli, ADDR.tunTarget, reverse, seconds, congestion);
  // synfin's CPU per GB moved: steadier than the rate, which moves with the rest of the machine.
  const cpuMsPerGB = ((sf.cpuMs() - cpuBefore) * 8) / Math.max(1e-9, s.gbps * seconds);
  const after = await sf.counters(SYNFIN_COUNTERS);
  const lost = (s.error !== null ? 1 : 0) + (k.error !== null ? 1 : 0);
  const dir = reverse ? 'server→client (-R)' : 'client→server';
  ctx.log(`  ${label} ${dir}: synfin ${s.gbps.toFixed(2)} Gbit/s (${cpuMsPerGB.toFixed(0)} ms of synfin CPU per GB), kernel ${k.gbps.toFixed(2)} Gbit/s${s.error ? ` synfin error: ${s.error}` : ''}${k.error ? ` kernel error: ${k.error}` : ''}`);
  return row(id, `bulk ${label}, ${dir}`, 'Gbit/s', s.gbps, k.gbps, 'higher', lost, {
    synfinRetransmits: s.retransmits,
    synfinCpuMsPerGB: cpuMsPerGB,
    kernelRetransmits: k.retransmits,
    synfinError: s.error,
    kernelError: k.error,
    synfinCounters: counterDelta(before, after),
  });
}

export async function throughput(ctx) {
  const rows = ctx.rows;
  const iperfd = await startIperf(ctx.topo);
  try {
    for (const mtu of [1500, 65000]) {
      ctx.topo.setVethMtu(mtu);
      const label = `MTU ${mtu}`;
      await withSynfin(ctx, { name: `throughput-mtu${mtu}`, mtu }, async (sf) => {
        rows.push(await bulkPair(ctx, label, `bulk_mtu${mtu}_up`, false, ctx.seconds, sf));
        rows.push(await bulkPair(ctx, label, `bulk_mtu${mtu}_down`, true, ctx.seconds, sf));
      });
    }
  } finally {
    ctx.topo.setVethMtu(1500);
    await iperfd.stop();
  }
}

// ── connection rate ─────────────────────────────────────────────────────────────────────────

async function connrate(ns, host, seconds, concurrency) {
  const r = await run(tool('connrate'), [host, String(PORT.echo), String(seconds), String(concurrency), '64'], { ns, timeoutMs: (seconds + 30) * 1000 });
  if (r.code !== 0) throw new Error(`connrate: ${r.stderr.trim()}`);
  return JSON.parse(r.stdout);
}

/** Short connections: rate at 64 in flight, then connect latency one connection at a time. */
export async function connections(ctx) {
  const { topo } = ctx;
  const rows = ctx.rows;
  const server = await startTcpServer(topo, 'echo');
  const CONC = 64;
  const latencySeconds = Math.max(2, Math.round(ctx.seconds / 3));
  try {
    await withSynfin(ctx, { name: 'connections' }, async (sf) => {
      const kb = topo.nstat(topo.ns.kcli, NSTAT);
      const kRate = await connrate(topo.ns.kcli, ADDR.kernelServer, ctx.seconds, CONC);
      await sleep(1000);
      const kLat = await connrate(topo.ns.kcli, ADDR.kernelServer, latencySeconds, 1);
      const ka = topo.nstat(topo.ns.kcli, NSTAT);

      const sb = topo.nstat(topo.ns.scli, NSTAT);
      const ub = topo.nstat(topo.ns.sfn, NSTAT);
      const cb = await sf.counters(SYNFIN_COUNTERS);
      const cpuBefore = sf.cpuMs();
      const sRate = await connrate(topo.ns.scli, ADDR.tunTarget, ctx.seconds, CONC);
      // synfin's CPU per connection: steadier from run to run than the rate, which moves with
      // whatever else the two cores run.
      const cpuUsPerConn = ((sf.cpuMs() - cpuBefore) * 1000) / Math.max(1, sRate.ok);
      await sleep(1000);
      const sLat = await connrate(topo.ns.scli, ADDR.tunTarget, latencySeconds, 1);
      const sa = topo.nstat(topo.ns.scli, NSTAT);
      const ua = topo.nstat(topo.ns.sfn, NSTAT);
      const ca = await sf.counters(SYNFIN_COUNTERS);

      const kN = nstatDelta(kb, ka);
      const sN = nstatDelta(sb, sa);
      const uN = nstatDelta(ub, ua);
      const ports = 20000;
      ctx.log(`  rate: synfin ${sRate.rate}/s (failed ${sRate.failed}, ${cpuUsPerConn.toFixed(0)} µs of synfin CPU each), kernel ${kRate.rate}/s (failed ${kRate.failed}); SYN retrans synfin-path ${sN.TcpExtTCPSynRetrans}, kernel ${kN.TcpExtTCPSynRetrans}`);
      ctx.log(`  connect µs sequential p50/p99: synfin ${sLat.connectUs.p50}/${sLat.connectUs.p99}, kernel ${kLat.connectUs.p50}/${kLat.connectUs.p99}`);
      const details = {
        concurrency: CONC,
        clientPorts: ports,
        synfin: { rate: sRate, sequential: sLat, cpuUsPerConnection: cpuUsPerConn, clientNstat: sN, upstreamNstat: uN, counters: counterDelta(cb, ca) },
        kernel: { rate: kRate, sequential: kLat, clientNstat: kN },
        // Every client port was used this many times over (so 4-tuples came back every few seconds).
        synfinReusesPerPort: (sRate.started + sLat.started) / ports,
      };
      rows.push(row('conn_rate', `short connections/s (${CONC} in flight, ${ports} client ports, tw_reuse)`, 'conn/s', sRate.rate, kRate.rate, 'higher', sRate.failed + sLat.failed + kRate.failed + kLat.failed, details));
      rows.push(row('conn_syn_retrans', 'SYN retransmissions during the connection workloads', 'count', sN.TcpExtTCPSynRetrans, kN.TcpExtTCPSynRetrans, 'lower', 0, {}));
      rows.push(row('conn_p50_seq', 'connect latency p50, one at a time', 'µs', sLat.connectUs.p50, kLat.connectUs.p50, 'lower', 0, {}));
      rows.push(row('conn_p99_seq', 'connect latency p99, one at a time', 'µs', sLat.connectUs.p99, kLat.connectUs.p99, 'lower', 0, {}));
      rows.push(row('conn_p50_load', `connect latency p50, ${CONC} in flight`, 'µs', sRate.connectUs.p50, kRate.connectUs.p50, 'lower', 0, {}));
      rows.push(row('conn_p99_load', `connect latency p99, ${CONC} in flight`, 'µs', sRate.connectUs.p99, kRate.connectUs.p99, 'lower', 0, {}));
    });
  } finally {
    const r = await server.stop();
    ctx.log(`  echo server: ${r.stdout.trim().split('\n').pop()}`);
  }
}

// ── HTTP ────────────────────────────────────────────────────────────────────────────────────

function wrkDuration(text) {
  const m = /^([\d.]+)(us|ms|s|m)$/.exec(text);
  if (m === null) return NaN;
  const v = Number(m[1]);
  return m[2] === 'us' ? v / 1000 : m[2] === 'ms' ? v : m[2] === 's' ? v * 1000 : v * 60_000;
}

async function wrk(ns, host, seconds, close) {
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

function wrkLost(w) {
  return w.errors.connect + w.errors.read + w.errors.write + w.errors.timeout + w.non2xx;
}

export async function http(ctx) {
  const { topo } = ctx;
  const rows = ctx.rows;
  const nginx = await startNginx(topo);
  try {
    for (const close of [false, true]) {
      const name = close ? 'http-close' : 'http-keepalive';
      await withSynfin(ctx, { name }, async (sf) => {
        const k = await wrk(topo.ns.kcli, ADDR.kernelServer, ctx.seconds, close);
        const sb = topo.nstat(topo.ns.scli, NSTAT);
        const cb = await sf.counters(SYNFIN_COUNTERS);
        const cpuBefore = sf.cpuMs();
        const s = await wrk(topo.ns.scli, ADDR.tunTarget, ctx.seconds, close);
        const cpuUsPerRequest = ((sf.cpuMs() - cpuBefore) * 1000) / Math.max(1, s.total);
        const ca = await sf.counters(SYNFIN_COUNTERS);
        const sN = nstatDelta(sb, topo.nstat(topo.ns.scli, NSTAT));
        ctx.log(`  ${name}: synfin ${s.rps} req/s (${cpuUsPerRequest.toFixed(1)} µs of synfin CPU each; errors ${JSON.stringify(s.errors)}, non-2xx ${s.non2xx}), kernel ${k.rps} req/s (errors ${JSON.stringify(k.errors)})`);
        rows.push(
          row(close ? 'http_close' : 'http_keepalive', `HTTP requests/s, ${close ? 'Connection: close' : 'keep-alive'} (wrk -c64, nginx)`, 'req/s', s.rps, k.rps, 'higher', wrkLost(s) + wrkLost(k), {
            synfin: s,
            synfinCpuUsPerRequest: cpuUsPerRequest,
            kernel: k,
            synfinClientNstat: sN,
            synfinCounters: counterDelta(cb, ca),
          }),
        );
        if (!close) {
          // The same load with four live pages open on synfin's API (issue: the page must not
          // slow the proxy): compared with the run just above, on the same synfin process.
          const [p, polled] = await Promise.all([
            wrk(topo.ns.scli, ADDR.tunTarget, ctx.seconds, false),
            run(process.execPath, [PAGE_POLLER, sf.url, '4', '1000', String(ctx.seconds)], { ns: topo.ns.sfn, timeoutMs: (ctx.seconds + 30) * 1000 }),
          ]);
          let polls = null;
          try {
            polls = JSON.parse(polled.stdout.trim().split('\n').pop() ?? '');
          } catch {
            // reported below
          }
          ctx.log(`  http-keepalive with 4 live pages: synfin ${p.rps} req/s; page polls ${polled.stdout.trim() || polled.stderr.trim()}`);
          rows.push(
            row('http_keepalive_pages', 'HTTP requests/s, keep-alive, 4 live pages open (kernel column: synfin without pages)', 'req/s', p.rps, s.rps, 'higher', wrkLost(p) + (polls === null ? 1 : polls.errors), {
              synfin: p,
              polls,
            }),
          );
        }
      });
    }
  } finally {
    const r = await nginx.stop();
    if (r.code !== 0 || r.stderr.trim() !== '') ctx.log(`  nginx: exit ${r.code ?? r.signal}; ${r.stderr.trim().slice(-1500)}`);
  }
}

// ── idle connections ────────────────────────────────────────────────────────────────────────

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

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
  let bytes = 0;
  for (let i = 0; i <= n; i++) {
    const started = Date.now();
    const r = await sf.get('/metrics');
    if (i > 0) {
      ms.push(r.ms);
      kernel.push(r.serverTiming.kernel ?? NaN);
      collect.push(r.serverTiming.collect ?? NaN);
    }
    bytes = r.bytes;
    if (i < n) await sleep(Math.max(0, intervalMs - (Date.now() - started)));
  }
  return { medianMs: median(ms), maxMs: Math.max(...ms), kernelMs: median(kernel), collectMs: median(collect), intervalMs, bytes };
}

export async function idle(ctx) {
  const { topo } = ctx;
  const N = ctx.idleConnections;
  const rows = ctx.rows;
  const server = await startTcpServer(topo, 'hold');
  try {
    await withSynfin(ctx, { name: 'idle' }, async (sf) => {
      // Warm up: the HTTP API, the metrics path, the stack's first connections.
      await connrate(topo.ns.scli, ADDR.tunTarget, 1, 4);
      const empty = await scrapeTimes(sf, 5);
      await sleep(1000);
      const rssBefore = sf.rssKb();
      const client = new Daemon(
        'idle client',
        'sh',
        ['-c', 'ulimit -n 20000 && exec "$0" "$@"', process.execPath, path.join(BENCH_DIR, 'idle-client.mjs'), ADDR.tunTarget, String(PORT.hold), String(N), '200'],
        { ns: topo.ns.scli, readyLine: /"established"/, readyMs: 120_000 },
      );
      try {
        const opened = JSON.parse(await client.ready);
        await sleep(2000);
        const rssAfter = sf.rssKb();
        const held = await scrapeTimes(sf, 5);
        const { body } = await sf.get('/metrics', { body: true });
        const est = Number(/^synfin_tcp_connections\{state="ESTABLISHED"\} (\d+)/m.exec(body)?.[1] ?? NaN);
        await sleep(3000);
        const stopped = await client.stop('SIGTERM');
        const last = JSON.parse(stopped.stdout.trim().split('\n').pop());
        const perConnKb = (rssAfter - rssBefore) / Math.max(1, opened.established);
        ctx.log(`  ${opened.established}/${N} held (failed ${opened.failed}, lost while held ${last.lost}); RSS ${rssBefore} → ${rssAfter} KiB = ${perConnKb.toFixed(2)} KiB/conn; /metrics ${empty.medianMs.toFixed(1)} ms empty, ${held.medianMs.toFixed(1)} ms held (kernel wait ${held.kernelMs.toFixed(1)} ms, collect ${held.collectMs.toFixed(1)} ms; one scrape every ${held.intervalMs / 1000} s)`);
        const details = { count: N, opened, heldReport: last, synfinEstablished: est, rssKb: { before: rssBefore, after: rssAfter }, scrapeEmpty: empty, scrapeHeld: held };
        rows.push(row('idle_rss', `synfin memory per idle connection (${N} held, RSS delta)`, 'KiB/conn', perConnKb, NaN, 'lower', opened.failed + last.lost + (N - opened.established - opened.failed), details));
        rows.push(row('idle_scrape', `/metrics scrape time with ${N} held (kernel column: with none)`, 'ms', held.medianMs, empty.medianMs, 'lower', 0, { held, empty }));
      } finally {
        if (!client.exited) await client.stop('SIGKILL');
      }
    });
  } finally {
    const r = await server.stop();
    ctx.log(`  hold server: ${r.stdout.trim().split('\n').pop()}`);
  }
}

// ── loss and delay ──────────────────────────────────────────────────────────────────────────

export async function loss(ctx) {
  const { topo } = ctx;
  const rows = ctx.rows;
  const LOSS = 0.01;
  const DELAY = 5;
  const SEED = 1;
  topo.addRoutedPath();
  const iperfd = await startIperf(topo);
  const { la, lb } = topo.dev;
  // Client→server packets on queue 10, server→client on 11: one PRNG per direction, like synfin's.
  const rules = [
    ['-i', la, '-o', lb, '10'],
    ['-i', lb, '-o', la, '11'],
  ];
  const impair = new Daemon('nfq-impair', tool('nfq-impair'), ['10', '11', String(LOSS), String(DELAY), String(SEED)], { ns: topo.ns.lrt, readyLine: /^ready/ });
  const label = `${LOSS * 100}% loss + ${DELAY} ms each way, MTU 1500, CUBIC`;
  try {
    await impair.ready;
    for (const [i, a, o, b, q] of rules) runSync('iptables', ['-w', '-A', 'FORWARD', i, a, o, b, '-p', 'tcp', '-j', 'NFQUEUE', '--queue-num', q], { ns: topo.ns.lrt });
    await withSynfin(ctx, { name: 'loss', impair: `loss=${LOSS},delay=${DELAY},seed=${SEED}` }, async (sf) => {
      for (const reverse of [false, true]) {
        // Every kernel sender on CUBIC, as synfin's own sender is by default: this machine's
        // default (BBR) does not back off on random loss, a different experiment from recovery.
        const r = await bulkPair(ctx, label, reverse ? 'loss_down' : 'loss_up', reverse, ctx.seconds, sf, { ns: topo.ns.lcli, host: ADDR.routedServer }, 'cubic');
        rows.push(r);
      }
    });
  } finally {
    for (const [i, a, o, b, q] of rules) tryRunSync('iptables', ['-w', '-D', 'FORWARD', i, a, o, b, '-p', 'tcp', '-j', 'NFQUEUE', '--queue-num', q], { ns: topo.ns.lrt });
    const r = await impair.stop('SIGTERM');
    const last = r.stdout.trim().split('\n').pop() ?? '';
    ctx.log(`  kernel-side impairment (NFQUEUE on the router): ${last}`);
    let stats = null;
    try {
      stats = JSON.parse(last);
    } catch {
      // reported as text above
    }
    for (const rw of rows) if (rw.id.startsWith('loss_')) rw.details.kernelImpairment = stats;
    await iperfd.stop();
  }
}

// ── the API under load ──────────────────────────────────────────────────────────────────────

/**
 * Keep-alive HTTP through synfin (wrk -c64, nginx) with ctx.idleConnections (10,000) connections
 * held open, measured alone and with the API busy: one client walking /api/connections page by
 * page as fast as it is answered, and 16 /api/events readers that never read (bench/api-load.mjs,
 * in synfin's namespace). Rounds alternate without and with the API load on the same synfin
 * process; the row compares the medians (target: ≥ 0.9).
 */
export async function api(ctx) {
  const { topo } = ctx;
  const rows = ctx.rows;
  const N = ctx.idleConnections;
  const rounds = ctx.apiRounds ?? 3;
  const nginx = await startNginx(topo);
  const hold = await startTcpServer(topo, 'hold');
  try {
    await withSynfin(ctx, { name: 'api' }, async (sf) => {
      const client = new Daemon(
        'idle client',
        'sh',
        ['-c', 'ulimit -n 20000 && exec "$0" "$@"', process.execPath, path.join(BENCH_DIR, 'idle-client.mjs'), ADDR.tunTarget, String(PORT.hold), String(N), '200'],
        { ns: topo.ns.scli, readyLine: /"established"/, readyMs: 120_000 },
      );
      try {
        const opened = JSON.parse(await client.ready);
        await sleep(2000);
        const alone = [];
        const loaded = [];
        const loads = [];
        // synfin's event-loop thread CPU per request: steadier than req/s on a busy machine.
        const measured = async () => {
          const c0 = sf.cpuMs(true);
          const w = await wrk(topo.ns.scli, ADDR.tunTarget, ctx.seconds, false);
          w.loopCpuUsPerRequest = ((sf.cpuMs(true) - c0) * 1000) / Math.max(1, w.total);
          return w;
        };
        // What the API load alone costs synfin: its loop thread's and whole process's CPU per
        // second, idle (the held connections only) and while the API is walked (no HTTP load).
        const cpuPerSecond = async (fn) => {
          const l0 = sf.cpuMs(true);
          const p0 = sf.cpuMs();
          const t0 = Date.now();
          await fn();
          const s = (Date.now() - t0) / 1000;
          return { loopMsPerS: (sf.cpuMs(true) - l0) / s, processMsPerS: (sf.cpuMs() - p0) / s };
        };
        const idleCpu = await cpuPerSecond(() => sleep(ctx.seconds * 1000));
        let apiOnly = null;
        const apiCpu = await cpuPerSecond(async () => {
          const l = await run(process.execPath, [API_LOAD, sf.url, String(ctx.seconds), '16'], { ns: topo.ns.sfn, timeoutMs: (ctx.seconds + 40) * 1000 });
          apiOnly = l.stdout.trim();
        });
        ctx.log(`  synfin CPU ms/s, held connections only: loop ${idleCpu.loopMsPerS.toFixed(1)}, process ${idleCpu.processMsPerS.toFixed(1)}; with the API walked: loop ${apiCpu.loopMsPerS.toFixed(1)}, process ${apiCpu.processMsPerS.toFixed(1)} (${apiOnly})`);
        for (let r = 0; r < rounds; r++) {
          alone.push(await measured());
          await sleep(1000);
          // The API load starts a second before wrk and ends a second after it.
          const loader = run(process.execPath, [API_LOAD, sf.url, String(ctx.seconds + 2), '16'], { ns: topo.ns.sfn, timeoutMs: (ctx.seconds + 40) * 1000 });
          await sleep(1000);
          loaded.push(await measured());
          const l = await loader;
          let parsed = null;
          try {
            parsed = JSON.parse(l.stdout.trim().split('\n').pop() ?? '');
          } catch {
            // reported below
          }
          loads.push(parsed);
          ctx.log(`  round ${r + 1}: alone ${alone[r].rps} req/s (${alone[r].loopCpuUsPerRequest.toFixed(1)} µs of synfin's loop each), with the API busy ${loaded[r].rps} req/s (${loaded[r].loopCpuUsPerRequest.toFixed(1)} µs); API: ${l.stdout.trim() || l.stderr.trim()}`);
          await sleep(1000);
        }
        const stopped = await client.stop('SIGTERM');
        const last = JSON.parse(stopped.stdout.trim().split('\n').pop());
        const a = median(alone.map((w) => w.rps));
        const b = median(loaded.map((w) => w.rps));
        const ca = median(alone.map((w) => w.loopCpuUsPerRequest));
        const cb = median(loaded.map((w) => w.loopCpuUsPerRequest));
        ctx.log(`  ${opened.established}/${N} held; medians: alone ${a} req/s, API busy ${b} req/s = ${(b / a).toFixed(3)}; loop CPU per request ${ca.toFixed(1)} → ${cb.toFixed(1)} µs (efficiency ${(ca / cb).toFixed(3)})`);
        const lost = [...alone, ...loaded].reduce((x, w) => x + wrkLost(w), 0) + last.lost + opened.failed + loads.reduce((x, l) => x + (l === null ? 1 : l.errors + (16 - (l.streams?.['200'] ?? 0))), 0);
        rows.push(
          row('http_keepalive_api', `HTTP requests/s, keep-alive, ${N} held, /api/connections in a loop + 16 stalled /api/events readers (kernel column: synfin without them)`, 'req/s', b, a, 'higher', lost, {
            rounds,
            loopCpuUsPerRequest: { alone: ca, loaded: cb, efficiency: ca / cb },
            apiAloneCpuMsPerSecond: { idle: idleCpu, api: apiCpu },
            alone,
            loaded,
            apiLoad: loads,
            held: opened,
            heldReport: last,
          }),
        );
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

export const WORKLOADS = { throughput, connections, http, idle, loss, api };
