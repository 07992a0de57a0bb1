// One synfin process for one workload: started in the synfin namespace with its TUN device moved
// into the client namespace, measured from outside (RSS from /proc, the HTTP API with curl).
import fs from 'node:fs';
import path from 'node:path';
import { ADDR } from './topology.js';
import { BENCH_DIR } from './tools.js';
import { Daemon, procCpuMs, procRssKb, run } from './proc.js';

export class SynfinProcess {
  /**
   * @param topo Topology
   * @param opts { dist, mtu, impair, cpuProfDir, name, extra }
   */
  constructor(topo, opts) {
    this.topo = topo;
    this.opts = opts;
    this.daemon = null;
    this.url = '';
    this.pid = 0;
  }

  async start() {
    const { topo, opts } = this;
    const config = {
      tun: topo.dev.tun,
      addresses: [`${ADDR.tunClient}/24`],
      mtu: opts.mtu ?? null,
      map: [`${ADDR.tunNet}=${ADDR.synfinServer}`],
      listenHost: '127.0.0.1',
      listenPort: 0,
      logLevel: 'warn',
      shutdownGraceSeconds: 1,
      impair: opts.impair ?? null,
      // SYNFIN_BENCH_SERVICES=N: N named services (--service), the last naming every destination
      // of the benchmark's network, the others networks no workload uses (first match wins, so
      // each connection is classified through all N rules).
      services: benchServices(Number(process.env.SYNFIN_BENCH_SERVICES ?? 0)),
      // SYNFIN_BENCH_REAL_WORKERS=N: synfin's own --workers N (src/workers/), not the prototype below.
      ...(Number(process.env.SYNFIN_BENCH_REAL_WORKERS ?? 0) > 1 ? { workers: Number(process.env.SYNFIN_BENCH_REAL_WORKERS) } : {}),
      ...(opts.extra ?? {}),
    };
    const nodeArgs = (process.env.SYNFIN_BENCH_NODE_ARGS ?? '').split(' ').filter((a) => a !== '');
    // As the image starts synfin (deploy/Dockerfile's NODE_OPTIONS), unless the caller sets its own.
    if (!nodeArgs.some((a) => a.includes('semi-space-size'))) nodeArgs.unshift('--min-semi-space-size=8', '--max-semi-space-size=8');
    if (opts.cpuProfDir !== undefined) {
      fs.mkdirSync(opts.cpuProfDir, { recursive: true });
      nodeArgs.push('--cpu-prof', '--cpu-prof-dir', opts.cpuProfDir, '--cpu-prof-name', `${opts.name ?? 'synfin'}.cpuprofile`);
    }
    // SYNFIN_BENCH_WORKERS=N: a multi-queue device with N queues and one synfin stack per queue,
    // each in a worker thread of one process (bench/synfin-workers-in-ns.mjs; issue 24 item 5).
    const workers = Number(process.env.SYNFIN_BENCH_WORKERS ?? 0);
    const launcher = path.join(BENCH_DIR, workers > 0 ? 'synfin-workers-in-ns.mjs' : 'synfin-in-ns.mjs');
    const cmd = ['ulimit -n 20000 && exec "$0" "$@"', process.execPath, ...nodeArgs, launcher, opts.dist, topo.ns.scli, JSON.stringify(config), ...(workers > 0 ? [String(workers)] : [])];
    this.daemon = new Daemon(`synfin (${opts.name ?? ''})`, 'sh', ['-c', ...cmd], { ns: topo.ns.sfn, readyLine: /"ready"/, readyMs: 30_000 });
    const line = await this.daemon.ready;
    const info = JSON.parse(line);
    this.url = info.ready;
    this.pid = info.pid;
    return this;
  }

  /** Resident set size now, KiB (VmRSS). */
  rssKb() {
    return procRssKb(this.pid);
  }

  /** CPU time synfin has used so far (all its threads, user + system), ms; `mainThread`: the event loop's thread only. */
  cpuMs(mainThread = false) {
    return procCpuMs(this.pid, mainThread);
  }

  /**
   * One scrape of /metrics: the CPU used so far, the given counters, and the event-loop delay
   * since the previous scrape. prom-client's default metrics read a perf_hooks
   * monitorEventLoopDelay histogram at each scrape and reset it, so the nodejs_eventloop_lag_*
   * gauges of a scrape describe the interval since the scrape before it: a scrape just before a
   * measured run and one just after give the delay during that run.
   */
  async snapshot(prefixes = []) {
    const cpuMs = this.cpuMs();
    const { body } = await this.get('/metrics', { body: true });
    return { cpuMs, counters: parseCounters(body, prefixes), loop: parseLoopDelay(body) };
  }

  /** GET `p` with curl inside the synfin namespace: { ms, bytes, body }. */
  async get(p, { body = false } = {}) {
    const args = ['-s', '-S', '--max-time', '30', '-w', '\n%{time_total} %{size_download} %{http_code} %header{server-timing}'];
    const r = await run('curl', [...args, this.url + p], { ns: this.topo.ns.sfn });
    if (r.code !== 0) throw new Error(`curl ${p}: ${r.stderr.trim()}`);
    const cut = r.stdout.lastIndexOf('\n');
    const [t, size, status, ...timing] = r.stdout.slice(cut + 1).split(' ');
    if (status !== '200') throw new Error(`GET ${p}: HTTP ${status}`);
    // Server-Timing of /metrics: "kernel;dur=X, collect;dur=Y" (ms).
    const serverTiming = {};
    for (const m of timing.join(' ').matchAll(/(\w+);dur=([\d.]+)/g)) serverTiming[m[1]] = Number(m[2]);
    return { ms: Number(t) * 1000, bytes: Number(size), body: body ? r.stdout.slice(0, cut) : '', serverTiming };
  }

  /** Sums of a few synfin_* counters, by series (name{labels} → value). */
  async counters(prefixes) {
    const { body } = await this.get('/metrics', { body: true });
    return parseCounters(body, prefixes);
  }

  async stop() {
    if (this.daemon === null) return null;
    const r = await this.daemon.stop('SIGTERM', 20_000);
    this.daemon = null;
    return r;
  }
}

/** Counter deltas (after − before), only the series that moved. */
export function counterDelta(before, after) {
  const out = {};
  for (const [k, v] of Object.entries(after)) {
    const d = v - (before[k] ?? 0);
    if (d !== 0) out[k] = d;
  }
  return out;
}

function parseCounters(body, prefixes) {
  const out = {};
  for (const line of body.split('\n')) {
    if (line.startsWith('#')) continue;
    if (!prefixes.some((p) => line.startsWith(p))) continue;
    const sp = line.lastIndexOf(' ');
    const v = Number(line.slice(sp + 1));
    if (v !== 0) out[line.slice(0, sp)] = v;
  }
  return out;
}

/**
 * prom-client samples the event loop with a perf_hooks monitorEventLoopDelay histogram of this
 * resolution (its eventLoopMonitoringPrecision, default 10 ms; synfin's process-metrics.ts keeps
 * the default), and the histogram records the whole interval between two samples: an idle loop
 * reads ~10 ms. The delay is the excess over the resolution.
 */
export const LOOP_RESOLUTION_MS = 10;

/** The event-loop delay of one scrape, ms beyond the sampling interval (null when synfin does not export it). */
export function parseLoopDelay(body) {
  const out = {};
  for (const k of ['min', 'mean', 'p50', 'p90', 'p99', 'max']) {
    const m = new RegExp(`^nodejs_eventloop_lag_${k}_seconds(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(body);
    if (m === null) return null;
    out[k] = Math.max(0, Number(m[1]) * 1000 - LOOP_RESOLUTION_MS);
  }
  return out;
}

function benchServices(n) {
  const out = [];
  for (let i = 0; i < n - 1; i++) out.push(`bench-${i}=10.${200 + (i >> 8)}.${i & 255}.0/24:${1000 + i}`);
  if (n > 0) out.push(`bench/target=${ADDR.tunNet}`);
  return out;
}
