// synfin's soak run (`npm run soak`; not part of CI or `npm run bench`): an hour of mixed traffic
// through synfin on namespaces made for the run, sampling synfin's memory, event-loop lag and open
// connections every few seconds into a file, then checking that memory comes back to where it was
// before the load once the load stops (a leak shows as memory that stays up).
//
//   sudo npm run soak                                  60 minutes (the default)
//   sudo npm run soak -- --minutes 3                   a short proof run
//   sudo npm run soak -- --minutes 30 --rate 100 --idle 1000 --streams 16
//
// The workload, all at once: short connections (`--rate` per second, half closed first by the
// destination, half by the app), long-lived bidirectional streams (`--streams`, each lasting
// 20-120 s at `--stream-kbps` each way), half-closes (the app sends, shuts down its sending side,
// then reads the reply), resets from either side (`--resets` per second), and idle holders
// (`--idle` connections that say one line and then sit for 30-240 s).
//
// Phases: a warm-up with the same load (`--warmup` seconds: JIT, pools and buffers grow to their
// working size), then the load stops and the table drains (TIME-WAIT included: 2×MSL; at least a
// minute, for V8 to give memory back), and the baseline is taken from the idle samples that follow
// (`--settle` seconds). Then the soak
// proper (`--minutes`), the same drain, and the final idle samples. The verdict compares final
// with baseline: RSS and V8 heap in use within a tolerance, no connection and no extra file
// descriptor left, no unexpected client failure.
//
// Writes bench/results/soak-<time>.csv (one row per sample, appended as it goes, so an interrupted
// run keeps its data) and soak-<time>.json (settings, phase summaries, verdict). Needs root,
// /dev/net/tun, iproute2 and curl. Ctrl-C stops everything it started and removes the namespaces.
//
// This file is also the workload's two programs: `--role server` (the destination, in the server
// namespace) and `--role client` (the app, in the namespace routed through synfin's TUN device).
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const SELF = fileURLToPath(import.meta.url);
const PORT = 7100;

const { values: opt } = parseArgsOrExit({
  options: {
    minutes: { type: 'string', default: '60' },
    interval: { type: 'string', default: '5' },
    warmup: { type: 'string', default: '60' },
    settle: { type: 'string', default: '30' },
    msl: { type: 'string', default: '30' },
    rate: { type: 'string', default: '40' },
    resets: { type: 'string', default: '4' },
    'half-closes': { type: 'string', default: '4' },
    streams: { type: 'string', default: '8' },
    'stream-kbps': { type: 'string', default: '256' },
    idle: { type: 'string', default: '300' },
    dist: { type: 'string' },
    out: { type: 'string' },
    role: { type: 'string' },
    target: { type: 'string' },
    help: { type: 'boolean', short: 'h', default: false },
  },
  strict: true,
});

/** parseArgs, with a bad option ending in one line and exit code 2 rather than a stack trace. */
function parseArgsOrExit(config) {
  try {
    return parseArgs(config);
  } catch (err) {
    process.stderr.write(`soak: ${err.message} (see --help)\n`);
    process.exit(2);
  }
}

if (opt.role === 'server') runServer(Number(opt.target ?? PORT));
else if (opt.role === 'client') runClient(JSON.parse(opt.target ?? '{}'));
else await runSoak();

// ------------------------------------------------------------------------------------------------
// The destination: one server, its behaviour chosen by the first line the app sends.
//   S n   send n bytes, then close (destination first)      C n   send n bytes, close after the app
//   H n   read until the app's FIN, then send n and close   R n   send n bytes, then reset
//   X     the app will reset: read                          L k   stream k KiB/s until the app closes
//   I     idle: close after the app closes
function runServer(port) {
  const payload = Buffer.alloc(64 * 1024, 0x73);
  const sendN = (s, n, then) => {
    let left = n;
    const pump = () => {
      while (left > 0) {
        const k = Math.min(left, payload.length);
        left -= k;
        if (!s.write(payload.subarray(0, k))) return void s.once('drain', pump);
      }
      then();
    };
    pump();
  };
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    s.on('error', () => {});
    let head = '';
    let kind = null;
    let ended = false;
    let timer = null;
    const onLine = (line) => {
      const [k, arg] = line.trim().split(' ');
      kind = k;
      const n = Number(arg ?? 0);
      switch (k) {
        case 'S': sendN(s, n, () => s.end()); break;
        case 'C': sendN(s, n, () => { if (ended) s.end(); }); break;
        case 'R': sendN(s, n, () => setTimeout(() => s.resetAndDestroy(), 20)); break;
        case 'L': {
          const chunk = payload.subarray(0, Math.max(1, Math.round((n * 1024) / 10)));
          let blocked = false;
          timer = setInterval(() => {
            if (blocked || s.destroyed || s.writableEnded) return;
            if (!s.write(chunk)) {
              blocked = true;
              s.once('drain', () => (blocked = false));
            }
          }, 100);
          break;
        }
        default: break; // H (answers at the FIN), X, I
      }
    };
    s.on('data', (d) => {
      if (kind !== null) return;
      head += d.toString('latin1');
      const nl = head.indexOf('\n');
      if (nl !== -1) onLine(head.slice(0, nl));
    });
    s.on('end', () => {
      ended = true;
      clearInterval(timer);
      if (kind === 'H') sendN(s, Number(head.split('\n')[0].split(' ')[1] ?? 0), () => s.end());
      else if (kind === 'C' || kind === 'L' || kind === 'I' || kind === 'X') s.end();
    });
    s.on('close', () => clearInterval(timer));
  });
  server.listen(port, '0.0.0.0', () => process.stdout.write(`listening ${port}\n`));
  process.on('SIGTERM', () => process.exit(0));
}

// ------------------------------------------------------------------------------------------------
// The app: starts the mix at the configured rates and prints its counts every 5 s as one JSON line.
function runClient(cfg) {
  const { host, port, rate, resets, halfCloses, streams, streamKBps, idle } = cfg;
  const kinds = ['short', 'half', 'reset', 'stream', 'idle'];
  const ok = Object.fromEntries(kinds.map((k) => [k, 0]));
  const failed = Object.fromEntries(kinds.map((k) => [k, 0]));
  const errors = {};
  const active = Object.fromEntries(kinds.map((k) => [k, new Set()]));
  let skipped = 0;
  let stopping = false;
  const MAX_INFLIGHT = 2000;
  const t0 = Date.now();
  const rand = (a, b) => a + Math.random() * (b - a);
  const inflight = () => kinds.reduce((n, k) => n + active[k].size, 0);

  /** One connection: `onConnect(s)` drives it; `judge(result)` says whether its ending was the expected one. */
  const open = (kind, onConnect, judge) => {
    if (inflight() >= MAX_INFLIGHT) {
      skipped++;
      return;
    }
    const s = net.connect({ host, port, allowHalfOpen: true });
    const r = { bytes: 0, code: null, connected: false };
    active[kind].add(s);
    s.setNoDelay(true);
    s.on('connect', () => {
      r.connected = true;
      onConnect(s, r);
    });
    s.on('data', (d) => (r.bytes += d.length));
    s.on('error', (e) => (r.code = e.code ?? 'error'));
    s.on('close', () => {
      active[kind].delete(s);
      if (judge(r)) ok[kind]++;
      else {
        failed[kind]++;
        const code = r.code ?? (r.connected ? 'short_read' : 'no_connect');
        errors[`${kind}:${code}`] = (errors[`${kind}:${code}`] ?? 0) + 1;
      }
    });
    return s;
  };

  const short = (firstClose) => {
    const n = Math.round(rand(1, 16)) * 1024;
    const s = open(
      'short',
      (sk, r) => {
        sk.write(`${firstClose ? 'S' : 'C'} ${n}\n`);
        if (!firstClose) sk.on('data', () => r.bytes >= n && sk.end());
      },
      (r) => r.code === null && r.bytes === n,
    );
    if (s && firstClose) s.on('end', () => s.end());
  };
  const half = () => {
    const n = 32 * 1024;
    open(
      'half',
      (sk) => {
        sk.write(`H ${n}\n`);
        sk.end(Buffer.alloc(64 * 1024, 0x68));
      },
      (r) => r.code === null && r.bytes === n,
    );
  };
  const reset = (byServer) => {
    if (byServer) {
      open('reset', (sk) => sk.write('R 65536\n'), (r) => r.code === 'ECONNRESET');
    } else {
      open(
        'reset',
        (sk) => {
          sk.write('X\n');
          sk.write(Buffer.alloc(8192, 0x78));
          setTimeout(() => sk.resetAndDestroy(), rand(20, 200));
        },
        // Our own reset: the socket closes without an error event (ERR_SOCKET_CLOSED at most).
        (r) => r.code === null || r.code === 'ERR_SOCKET_CLOSED',
      );
    }
  };
  const stream = () => {
    const chunk = Buffer.alloc(Math.max(1, Math.round((streamKBps * 1024) / 10)), 0x6c);
    let timer = null;
    let life = null;
    const s = open(
      'stream',
      (sk) => {
        sk.write(`L ${streamKBps}\n`);
        timer = setInterval(() => {
          if (!sk.writableNeedDrain && !sk.writableEnded) sk.write(chunk);
        }, 100);
        life = setTimeout(() => {
          clearInterval(timer);
          sk.end();
        }, rand(20_000, 120_000));
        sk.on('end', () => sk.end());
      },
      (r) => r.code === null && r.bytes > 0,
    );
    if (s) {
      s.on('close', () => {
        clearInterval(timer);
        clearTimeout(life);
        if (!stopping) stream();
      });
      s.stopNow = () => {
        clearInterval(timer);
        clearTimeout(life);
        s.end();
      };
    }
  };
  const holder = () => {
    let life = null;
    const s = open(
      'idle',
      (sk) => {
        sk.write('I\n');
        life = setTimeout(() => sk.end(), rand(30_000, 240_000));
        sk.on('end', () => sk.end());
      },
      (r) => r.code === null,
    );
    if (s) {
      s.on('close', () => {
        clearTimeout(life);
        if (!stopping) setTimeout(holder, rand(0, 1000));
      });
      s.stopNow = () => {
        clearTimeout(life);
        s.end();
      };
    }
  };

  // Rates are spread over 100 ms ticks; fractions carry over.
  const due = { short: 0, half: 0, reset: 0 };
  let flip = false;
  const tick = setInterval(() => {
    due.short += rate / 10;
    due.half += halfCloses / 10;
    due.reset += resets / 10;
    for (; due.short >= 1; due.short--) short((flip = !flip));
    for (; due.half >= 1; due.half--) half();
    for (; due.reset >= 1; due.reset--) reset((flip = !flip));
  }, 100);
  for (let i = 0; i < streams; i++) stream();
  // Idle holders ramp up over ~5 s rather than in one burst of SYNs.
  for (let i = 0; i < idle; i++) setTimeout(holder, (i / Math.max(1, idle)) * 5000);

  const status = (final) =>
    process.stdout.write(
      JSON.stringify({ t: (Date.now() - t0) / 1000, final, ok, failed, errors, skipped, active: Object.fromEntries(kinds.map((k) => [k, active[k].size])) }) + '\n',
    );
  const statusTimer = setInterval(() => status(false), 5000);
  process.stdout.write('{"started":true}\n');

  process.on('SIGTERM', () => {
    if (stopping) return;
    stopping = true;
    clearInterval(tick);
    // Close what is open the normal way (the app closes first); whatever is still open after 15 s
    // is destroyed.
    for (const k of ['stream', 'idle']) {
      for (const s of active[k]) {
        if (s.stopNow !== undefined) s.stopNow();
        else s.end();
      }
    }
    const deadline = Date.now() + 15_000;
    const wait = setInterval(() => {
      if (inflight() === 0 || Date.now() > deadline) {
        for (const k of kinds) for (const s of active[k]) s.destroy();
        clearInterval(wait);
        clearInterval(statusTimer);
        status(true);
        setTimeout(() => process.exit(0), 100);
      }
    }, 100);
  });
}

// ------------------------------------------------------------------------------------------------
// The soak: topology, synfin, the two programs, sampling, phases, verdict.
async function runSoak() {
  const { ADDR, Topology } = await import('./lib/topology.js');
  const { SynfinProcess } = await import('./lib/synfin.js');
  const { Daemon, killAllDaemons, sleep } = await import('./lib/proc.js');
  const { BENCH_DIR, checkPrerequisites } = await import('./lib/tools.js');
  const { workingTreeDist } = await import('./lib/snapshot.js');
  const { machine, loadAverage } = await import('./lib/report.js');

  const usage = (msg) => {
    if (msg) process.stderr.write(`soak: ${msg}\n`);
    (msg ? process.stderr : process.stdout).write(
      'usage: node bench/soak.js [--minutes N] [--interval S] [--warmup S] [--settle S] [--msl S] [--rate N] [--resets N]\n' +
        '                          [--half-closes N] [--streams N] [--stream-kbps N] [--idle N] [--dist DIR] [--out PREFIX]\n',
    );
    process.exit(msg ? 2 : 0);
  };
  if (opt.help) usage();
  const num = (name, lo, hi) => {
    const v = Number(opt[name]);
    if (!(v >= lo && v <= hi)) usage(`--${name} must be ${lo}..${hi}`);
    return v;
  };
  const minutes = num('minutes', 0.5, 24 * 60);
  const interval = num('interval', 1, 60);
  const warmup = num('warmup', 0, 3600);
  const settle = num('settle', interval * 2, 600);
  const msl = num('msl', 0.1, 120);
  const load = {
    host: ADDR.tunTarget,
    port: PORT,
    rate: num('rate', 0, 5000),
    resets: num('resets', 0, 1000),
    halfCloses: num('half-closes', 0, 1000),
    streams: num('streams', 0, 500),
    streamKBps: num('stream-kbps', 1, 100_000),
    idle: num('idle', 0, 15_000),
  };
  if (process.getuid?.() !== 0) usage('run as root: it creates network namespaces and a TUN device');
  if (!fs.existsSync('/dev/net/tun')) usage('/dev/net/tun is missing');
  checkPrerequisites(['ip', 'curl']);

  const repo = path.resolve(BENCH_DIR, '..');
  const source = opt.dist !== undefined ? { dist: path.resolve(opt.dist), commit: 'unknown', dirty: null, source: opt.dist } : workingTreeDist(repo);
  const stamp = new Date().toISOString().replace(/[-:]/g, '').replace(/\..*/, '').replace('T', '-');
  const prefix = opt.out ?? path.join(BENCH_DIR, 'results', `soak-${stamp}`);
  fs.mkdirSync(path.dirname(prefix), { recursive: true });
  const csvFile = `${prefix}.csv`;
  const jsonFile = `${prefix}.json`;
  const log = (msg) => process.stdout.write(msg + '\n');

  const topo = new Topology();
  let cleaned = false;
  const cleanup = () => {
    if (cleaned) return;
    cleaned = true;
    killAllDaemons();
    topo.destroy();
  };
  process.on('exit', cleanup);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    process.on(sig, () => {
      process.stderr.write(`\nsoak: ${sig}: stopping what it started, removing namespaces (samples so far are in ${csvFile})\n`);
      process.exit(130);
    });
  }

  const info = { date: new Date().toISOString(), machine: machine(), loadBefore: loadAverage(), synfin: source, minutes, interval, warmup, settle, msl, load };
  log(`synfin soak ${info.date}: ${minutes} min of mixed load, samples every ${interval} s → ${csvFile}`);
  log(
    `  load: ${load.rate} short conn/s, ${load.halfCloses} half-closes/s, ${load.resets} resets/s, ${load.streams} streams × ${load.streamKBps} KiB/s each way, ${load.idle} idle holders; MSL ${msl} s`,
  );
  topo.create();
  const server = new Daemon('soak server', process.execPath, [SELF, '--role', 'server', '--target', String(PORT)], { ns: topo.ns.srv, readyLine: /^listening/ });
  await server.ready;
  const synfin = await new SynfinProcess(topo, { dist: source.dist, name: 'soak', extra: { mslSeconds: msl } }).start();
  log(`  synfin pid ${synfin.pid}, API ${synfin.url} (in namespace ${topo.ns.sfn})`);

  // ---- sampling
  const COLUMNS = [
    'time', 'elapsedSeconds', 'phase', 'rssKb', 'heapUsedBytes', 'heapTotalBytes', 'externalBytes', 'eventLoopLagSeconds',
    'eventLoopLagP99Seconds', 'eventLoopLagMaxSeconds', 'openConnections', 'timeWait', 'upstreamSockets', 'openFds',
    'cpuSeconds', 'opened', 'closed', 'clientOk', 'clientFailed', 'clientActive',
  ];
  fs.writeFileSync(csvFile, COLUMNS.join(',') + '\n');
  const samples = [];
  const t0 = Date.now();
  let phase = 'start';
  let client = null;

  const metric = (series, name, filter = () => true) => {
    let sum = 0;
    let found = false;
    for (const [k, v] of series) {
      const brace = k.indexOf('{');
      const base = brace === -1 ? k : k.slice(0, brace);
      if (base === name && filter(k)) {
        sum += v;
        found = true;
      }
    }
    return found ? sum : NaN;
  };
  const lastClientStatus = () => {
    if (client === null) return null;
    const lines = client.lines().filter((l) => l.startsWith('{"t"'));
    return lines.length === 0 ? null : JSON.parse(lines.at(-1));
  };
  const sum = (o) => (o === undefined ? 0 : Object.values(o).reduce((a, b) => a + b, 0));

  const sample = async () => {
    const rssKb = synfin.rssKb();
    const { body } = await synfin.get('/metrics', { body: true });
    const series = [];
    for (const line of body.split('\n')) {
      if (line === '' || line.startsWith('#')) continue;
      const sp = line.lastIndexOf(' ');
      series.push([line.slice(0, sp), Number(line.slice(sp + 1))]);
    }
    const st = lastClientStatus();
    const row = {
      time: new Date().toISOString(),
      elapsedSeconds: Math.round((Date.now() - t0) / 100) / 10,
      phase,
      rssKb,
      heapUsedBytes: metric(series, 'nodejs_heap_size_used_bytes'),
      heapTotalBytes: metric(series, 'nodejs_heap_size_total_bytes'),
      externalBytes: metric(series, 'nodejs_external_memory_bytes'),
      eventLoopLagSeconds: metric(series, 'nodejs_eventloop_lag_seconds'),
      // prom-client resets its event-loop delay histogram at each scrape: these cover the interval.
      eventLoopLagP99Seconds: metric(series, 'nodejs_eventloop_lag_p99_seconds'),
      eventLoopLagMaxSeconds: metric(series, 'nodejs_eventloop_lag_max_seconds'),
      openConnections: metric(series, 'synfin_tcp_connections', (k) => !k.includes('"LISTEN"') && !k.includes('"TIME_WAIT"')),
      timeWait: metric(series, 'synfin_tcp_connections', (k) => k.includes('"TIME_WAIT"')),
      upstreamSockets: metric(series, 'synfin_upstream_sockets'),
      openFds: metric(series, 'process_open_fds'),
      cpuSeconds: metric(series, 'process_cpu_seconds_total'),
      opened: metric(series, 'synfin_tcp_connections_opened_total'),
      closed: metric(series, 'synfin_tcp_connections_closed_total'),
      clientOk: st === null ? '' : sum(st.ok),
      clientFailed: st === null ? '' : sum(st.failed),
      clientActive: st === null ? '' : sum(st.active),
    };
    samples.push(row);
    fs.appendFileSync(csvFile, COLUMNS.map((c) => row[c]).join(',') + '\n');
    return row;
  };
  let sampling = true;
  let lastRow = null;
  const sampler = (async () => {
    let next = Date.now();
    while (sampling) {
      try {
        lastRow = await sample();
      } catch (err) {
        log(`  sample failed: ${err.message}`);
      }
      next += interval * 1000;
      await sleep(Math.max(0, next - Date.now()));
    }
  })();

  const mb = (kb) => `${(kb / 1024).toFixed(1)} MB`;
  let logged = null;
  const progress = () => {
    const r = lastRow;
    if (r === null || r === logged) return;
    logged = r;
    log(
      `  [${String(Math.round(r.elapsedSeconds)).padStart(5)} s ${phase.padEnd(8)}] RSS ${mb(r.rssKb)}, heap ${(r.heapUsedBytes / 2 ** 20).toFixed(1)} MB, ` +
        `lag p99 ${(r.eventLoopLagP99Seconds * 1000).toFixed(1)} ms, ${r.openConnections} open + ${r.timeWait} TIME-WAIT, ${r.openFds} fds, ` +
        (r.clientOk === '' ? 'no load' : `app: ${r.clientOk} ok, ${r.clientFailed} failed`),
    );
  };

  const startLoad = async () => {
    client = new Daemon('soak client', 'sh', ['-c', 'ulimit -n "$(ulimit -Hn)" && exec "$0" "$@"', process.execPath, SELF, '--role', 'client', '--target', JSON.stringify(load)], {
      ns: topo.ns.scli,
      readyLine: /"started"/,
    });
    await client.ready;
  };
  const stopLoad = async () => {
    const r = await client.stop('SIGTERM', 30_000);
    const final = r.stdout.split('\n').filter((l) => l.startsWith('{"t"')).map((l) => JSON.parse(l)).at(-1) ?? null;
    client = null;
    return final;
  };
  /**
   * Waits until synfin's table is empty (TIME-WAIT included; at most 2×MSL + 60 s) and at least
   * QUIET_S since the load stopped: V8 gives memory back (its "memory reducer") only once the
   * allocation rate has stayed low for a while, and measuring before that would read a heap that
   * is merely not yet shrunk as one that never will.
   */
  const QUIET_S = 60;
  const drain = async () => {
    const stopped = Date.now();
    const deadline = stopped + (2 * msl + 60) * 1000;
    let empty = false;
    await sleep(interval * 1000);
    while (Date.now() < Math.max(deadline, stopped + QUIET_S * 1000)) {
      empty ||= Date.now() < deadline && lastRow !== null && lastRow.phase === phase && lastRow.openConnections === 0 && lastRow.timeWait === 0;
      if (empty && Date.now() >= stopped + QUIET_S * 1000) return true;
      await sleep(1000);
    }
    return empty;
  };
  const during = async (seconds) => {
    const end = Date.now() + seconds * 1000;
    let nextLog = Date.now() + 30_000;
    while (Date.now() < end) {
      await sleep(Math.min(1000, end - Date.now()));
      if (Date.now() >= nextLog) {
        progress();
        nextLog += 30_000;
      }
    }
  };
  const phaseRows = (p) => samples.filter((r) => r.phase === p);
  const median = (xs) => {
    const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
    if (s.length === 0) return NaN;
    const m = s.length >> 1;
    return s.length % 2 === 1 ? s[m] : (s[m - 1] + s[m]) / 2;
  };
  const max = (xs) => Math.max(...xs.filter((x) => Number.isFinite(x)));
  const summary = (p) => {
    const rows = phaseRows(p);
    return {
      samples: rows.length,
      rssKbMedian: median(rows.map((r) => r.rssKb)),
      rssKbMax: max(rows.map((r) => r.rssKb)),
      // The heap in use is a sawtooth between collections: its floor is what is really held.
      heapUsedMin: Math.min(...rows.map((r) => r.heapUsedBytes).filter((x) => Number.isFinite(x))),
      heapUsedMax: max(rows.map((r) => r.heapUsedBytes)),
      lagP99Median: median(rows.map((r) => r.eventLoopLagP99Seconds)),
      lagMax: max(rows.map((r) => r.eventLoopLagMaxSeconds)),
      openMax: max(rows.map((r) => r.openConnections)),
      timeWaitMax: max(rows.map((r) => r.timeWait)),
      openFdsMedian: median(rows.map((r) => r.openFds)),
      openFdsMax: max(rows.map((r) => r.openFds)),
    };
  };

  // ---- phases
  phase = 'start';
  await during(interval * 2);
  const clientTotals = [];
  if (warmup > 0) {
    phase = 'warmup';
    log(`▶ warm-up: ${warmup} s of the same load`);
    await startLoad();
    await during(warmup);
    phase = 'stopping';
    clientTotals.push(await stopLoad());
  }
  phase = 'drain1';
  log('▶ load stopped: waiting for the table to drain (TIME-WAIT included)');
  const drained1 = await drain();
  phase = 'baseline';
  await during(settle);
  progress();
  const baseline = summary('baseline');
  log(`  baseline: RSS ${mb(baseline.rssKbMedian)}, V8 heap in use ${(baseline.heapUsedMin / 2 ** 20).toFixed(1)} MB (floor), ${baseline.openFdsMedian} fds`);

  phase = 'load';
  log(`▶ soak: ${minutes} min`);
  const loadStart = Date.now();
  await startLoad();
  await during(minutes * 60);
  const loadSeconds = (Date.now() - loadStart) / 1000;
  progress();
  // The app closes what it holds (up to 15 s): not part of the "under load" figures.
  phase = 'stopping';
  clientTotals.push(await stopLoad());

  phase = 'drain2';
  log('▶ load stopped: waiting for the table to drain (TIME-WAIT included)');
  const drained2 = await drain();
  phase = 'final';
  await during(settle);
  progress();
  sampling = false;
  await sampler;
  const final = summary('final');
  const during_ = summary('load');

  // ---- verdict
  // RSS: V8 and the allocator keep some freed memory mapped, and an idle synfin's RSS moves by a
  // few MB between collections, so "back to the baseline" is its median within 10% or 16 MB,
  // whichever is larger. The floor of the V8 heap in use (what survives a collection) is the
  // sharper leak signal: within 20% or 8 MB. Connections and descriptors must be back exactly.
  const rssTol = Math.max(16 * 1024, baseline.rssKbMedian * 0.1);
  const heapTol = Math.max(8 * 2 ** 20, baseline.heapUsedMin * 0.2);
  const soakTotals = clientTotals.at(-1);
  const unexpected = soakTotals === null ? NaN : sum(soakTotals.failed);
  const lastFinal = phaseRows('final').at(-1);
  const checks = [
    { check: 'RSS back near the baseline', ok: final.rssKbMedian <= baseline.rssKbMedian + rssTol, detail: `${mb(final.rssKbMedian)} vs ${mb(baseline.rssKbMedian)} (tolerance ${mb(rssTol)}; peak under load ${mb(during_.rssKbMax)})` },
    { check: 'V8 heap in use back near the baseline', ok: final.heapUsedMin <= baseline.heapUsedMin + heapTol, detail: `floor ${(final.heapUsedMin / 2 ** 20).toFixed(1)} MB vs ${(baseline.heapUsedMin / 2 ** 20).toFixed(1)} MB (tolerance ${(heapTol / 2 ** 20).toFixed(1)} MB; peak ${(during_.heapUsedMax / 2 ** 20).toFixed(1)} MB)` },
    { check: 'no connection left in the table', ok: drained2 && lastFinal?.openConnections === 0 && lastFinal?.timeWait === 0, detail: `${lastFinal?.openConnections} open, ${lastFinal?.timeWait} TIME-WAIT` },
    { check: 'file descriptors back to the baseline', ok: final.openFdsMedian <= baseline.openFdsMedian, detail: `${final.openFdsMedian} vs ${baseline.openFdsMedian} (peak ${during_.openFdsMax})` },
    { check: 'no unexpected failure in the app', ok: unexpected === 0, detail: `${sum(soakTotals?.ok)} connections as expected, ${unexpected} not (${JSON.stringify(soakTotals?.errors ?? {})}); ${soakTotals?.skipped ?? 0} not started (over 2000 in flight)` },
  ];
  const pass = checks.every((c) => c.ok);
  const synfinStop = await synfin.stop();
  await server.stop();
  info.loadAfter = loadAverage();
  const report = {
    ...info,
    files: { csv: csvFile },
    loadSeconds,
    drained: { afterWarmup: drained1, afterSoak: drained2 },
    baseline,
    underLoad: during_,
    final,
    client: { warmup: clientTotals.length > 1 ? clientTotals[0] : null, soak: soakTotals },
    synfinExit: { code: synfinStop?.code ?? null, stderr: (synfinStop?.stderr ?? '').trim().slice(-2000) },
    checks,
    verdict: pass ? 'PASS' : 'FAIL',
  };
  fs.writeFileSync(jsonFile, JSON.stringify(report, null, 2) + '\n');

  log('');
  log(`under load (${(loadSeconds / 60).toFixed(1)} min): RSS median ${mb(during_.rssKbMedian)}, max ${mb(during_.rssKbMax)}; event-loop delay p99 median ${(during_.lagP99Median * 1000).toFixed(1)} ms, max ${(during_.lagMax * 1000).toFixed(1)} ms (prom-client samples the loop every 10 ms: an idle loop reads about 10 ms); up to ${during_.openMax} open connections and ${during_.timeWaitMax} in TIME-WAIT`);
  for (const c of checks) log(`${c.ok ? 'ok  ' : 'FAIL'} ${c.check}: ${c.detail}`);
  log(`verdict: ${report.verdict}  (${csvFile}, ${jsonFile})`);
  cleanup();
  process.exit(pass ? 0 : 1);
}
