// synfin's benchmark (`npm run bench`): every workload on three paths, in the same run, on
// namespaces and veth pairs made for it (removed at the end, also on Ctrl-C): the kernel alone
// (the machine's limit), haproxy in TCP mode with one thread (a kernel-socket relay: the floor of
// any proxy on these cores) and synfin. Rounds: every workload runs on every path once per round,
// the paths' order rotating from round to round; each row reports the median over the rounds with
// its spread, ratios of the medians, and the relays' CPU per unit of work. See --help and
// BENCHMARKS.md ("How the benchmark measures").
import fs from 'node:fs';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { ADDR, Topology } from './lib/topology.js';
import { WORKLOADS } from './lib/workloads.js';
import { SynfinProcess } from './lib/synfin.js';
import { PATHS } from './lib/relays.js';
import { Results } from './lib/results.js';
import { PORT, startIperf, startNginx, startTcpServer } from './lib/servers.js';
import { Daemon, killAllDaemons, run } from './lib/proc.js';
import { BENCH_DIR, checkPrerequisites, tool } from './lib/tools.js';
import { judge, loadAverage, machine, markdownPaired, markdownTable, markdownTargets, textTable, writeJson } from './lib/report.js';
import { snapshotDist, workingTreeDist } from './lib/snapshot.js';
import { formatSummary, summarize } from './profile-summary.js';

const REPO = path.resolve(BENCH_DIR, '..');
const RESULTS = path.join(BENCH_DIR, 'results');
const ALIASES = {
  throughput: 'throughput', bulk: 'throughput',
  connections: 'connections', connrate: 'connections',
  shortconn: 'shortconn', short: 'shortconn',
  latency: 'latency',
  http: 'http',
  reqresp: 'reqresp', redis: 'reqresp',
  idle: 'idle', memory: 'idle',
  loss: 'loss',
  api: 'api',
};
const ORDER = ['throughput', 'connections', 'shortconn', 'latency', 'http', 'reqresp', 'idle', 'loss', 'api'];
const NEEDS = {
  throughput: ['iperf3'],
  connections: ['gcc', 'nstat'],
  shortconn: ['gcc', 'nstat'],
  latency: ['gcc'],
  http: ['wrk', 'nginx'],
  reqresp: ['redis-server', 'redis-benchmark'],
  idle: ['gcc', 'curl'],
  loss: ['iperf3', 'gcc', 'iptables'],
  api: ['wrk', 'nginx', 'gcc'],
};

const HELP = `usage: node bench/run.js [options]          (as root; sudo npm run bench -- [options])

Every selected workload runs on every path once per round, the paths' order rotating from round
to round; rows report medians over the rounds with their min–max, ratios synfin/kernel and
synfin/haproxy of the medians, the relays' CPU per unit of work (/proc/PID/stat) and synfin's
event-loop delay during each run (its nodejs_eventloop_lag_* gauges). Targets are judged on the
medians. Raw results: bench/results/run-<date>-<commit>.json and .md (or --out).

  --rounds N            rounds (default 3; 1..20)
  --only LIST           workloads, comma-separated (default: all, in this order):
                          throughput (bulk)   iperf3, MTU 1500 and 65000, both directions
                          connections         short connections, client closes first, 64 in flight
                          shortconn (short)   short connections, server closes first, 50 in flight
                          latency             connect and first-byte latency, one at a time
                          http                wrk -c64 against nginx, keep-alive and Connection: close
                          reqresp (redis)     redis-benchmark -c 50 -P 1 and -P 16, PING/SET/GET
                          idle (memory)       relay RSS: baseline, N idle held, --idle-settle s after close
                          loss                bulk with 1 % loss + 5 ms each way (NFQUEUE impairer, kernel and synfin)
                          api                 keep-alive HTTP with N held and the API busy (synfin only)
  --paths LIST          paths, comma-separated: kernel,haproxy,synfin (default: all three)
  --seconds N           seconds per measurement (default 10; 1..600)
  --latency-seconds N   seconds of one-at-a-time connections per path (default: --seconds)
  --idle N              idle connections for idle and api (default 10000; 1..15000)
  --idle-settle N       seconds RSS is followed after the idle connections close (default 30)
  --snapshot            measure the committed HEAD, compiled apart from the working tree
  --dist DIR            measure a compiled synfin in DIR
  --profile             CPU profiles of synfin (throughput, connections, http, idle scrapes) instead
  --out FILE            raw results to FILE (.json; a .md table next to it)
  -h, --help            this text

Quick check of the harness (figures of no value): npm run bench:quick (one round of 3 s, 2,000
idle connections followed for 5 s), or e.g. node bench/run.js --only latency --rounds 1 --seconds 2.

Needs root, /dev/net/tun, and iperf3, wrk, nginx, haproxy, redis-server + redis-benchmark, gcc,
libnetfilter-queue-dev, iptables, iproute2, curl (bench/setup.sh installs them).
`;

function usage(msg) {
  if (msg) {
    process.stderr.write(`bench: ${msg}\n${HELP}`);
    process.exit(2);
  }
  process.stdout.write(HELP);
  process.exit(0);
}

const { values: opt } = parseArgs({
  options: {
    only: { type: 'string' },
    paths: { type: 'string' },
    rounds: { type: 'string', default: '3' },
    seconds: { type: 'string', default: '10' },
    'latency-seconds': { type: 'string' },
    idle: { type: 'string', default: '10000' },
    'idle-settle': { type: 'string', default: '30' },
    snapshot: { type: 'boolean', default: false },
    dist: { type: 'string' },
    profile: { type: 'boolean', default: false },
    out: { type: 'string' },
    help: { type: 'boolean', short: 'h', default: false },
  },
  strict: true,
});
if (opt.help) usage();

const selected = opt.only === undefined ? ORDER : ORDER.filter((w) => opt.only.split(',').map((x) => ALIASES[x.trim()] ?? usage(`unknown workload "${x}" (${Object.keys(ALIASES).join(', ')})`)).includes(w));
const paths = opt.paths === undefined ? PATHS : PATHS.filter((p) => opt.paths.split(',').map((x) => (PATHS.includes(x.trim()) ? x.trim() : usage(`unknown path "${x}" (${PATHS.join(', ')})`))).includes(p));
const rounds = Number(opt.rounds);
const seconds = Number(opt.seconds);
const latencySeconds = Number(opt['latency-seconds'] ?? opt.seconds);
const idleConnections = Number(opt.idle);
const idleSettle = Number(opt['idle-settle']);
if (!(Number.isInteger(rounds) && rounds >= 1 && rounds <= 20)) usage('--rounds must be 1..20');
if (!(seconds >= 1 && seconds <= 600)) usage('--seconds must be 1..600');
if (!(latencySeconds >= 1 && latencySeconds <= 600)) usage('--latency-seconds must be 1..600');
if (!(idleConnections >= 1 && idleConnections <= 15000)) usage('--idle must be 1..15000 (file descriptor limit)');
if (!(Number.isInteger(idleSettle) && idleSettle >= 1 && idleSettle <= 600)) usage('--idle-settle must be 1..600');
if (process.getuid?.() !== 0) usage('run as root: it creates network namespaces and a TUN device');
if (!fs.existsSync('/dev/net/tun')) usage('/dev/net/tun is missing');
checkPrerequisites(['ip', 'curl', ...(paths.includes('haproxy') ? ['haproxy'] : []), ...new Set(selected.flatMap((w) => NEEDS[w]))]);

const log = (msg) => process.stdout.write(msg + '\n');
const topo = new Topology();
let cleaned = false;
function cleanup() {
  if (cleaned) return;
  cleaned = true;
  killAllDaemons();
  topo.destroy();
}
process.on('exit', cleanup);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, () => {
    process.stderr.write(`\nbench: ${sig}: removing namespaces and stopping what it started\n`);
    process.exit(130);
  });
}

const source = opt.dist !== undefined ? { dist: path.resolve(opt.dist), commit: 'unknown', dirty: null, source: opt.dist } : opt.snapshot ? snapshotDist(REPO) : workingTreeDist(REPO);
// Compile the C tools before any timing starts.
for (const t of ['connrate', 'tcpserv', ...(selected.includes('loss') ? ['nfq-impair'] : [])]) tool(t);

const started = new Date();
const info = {
  date: started.toISOString(),
  machine: machine(),
  loadBefore: loadAverage(),
  synfin: source,
  options: { rounds, paths, workloads: selected, seconds, latencySeconds, idleConnections, idleSettle },
  versions: versions(),
};
log(`synfin benchmark ${info.date}: ${info.machine.nproc} × ${info.machine.cpu}, Linux ${info.machine.kernel}, node ${info.machine.node}`);
const plan = opt.profile ? `CPU profiles of synfin under ${selected.join(', ')}` : `${rounds} round(s) of ${selected.join(', ')} on ${paths.join(', ')}`;
log(`measuring ${source.source} (${source.commit.slice(0, 12)}${source.dirty ? ', with uncommitted changes' : ''}); ${plan}; load average ${info.loadBefore.join(' ')}`);
topo.create();
const results = new Results();
const ctx = { topo, dist: source.dist, paths, seconds, latencySeconds, idleConnections, idleSettle, log, cpuProfDir: process.env.SYNFIN_BENCH_CPUPROF || undefined, results, impairment: [] };

if (opt.profile) {
  await profileRuns(ctx, selected.filter((w) => w === 'throughput' || w === 'connections' || w === 'http' || w === 'idle'));
  process.exit(0);
}

const failures = [];
const loadByRound = [];
for (let round = 0; round < rounds; round++) {
  loadByRound.push(loadAverage());
  for (const name of selected) {
    log(`\n▶ ${name}, round ${round + 1} of ${rounds}`);
    const t0 = Date.now();
    try {
      await WORKLOADS[name](ctx, round);
    } catch (err) {
      failures.push({ workload: name, round, error: String(err?.stack ?? err) });
      log(`  FAILED: ${err?.message ?? err}`);
    }
    log(`  (${((Date.now() - t0) / 1000).toFixed(0)} s)`);
  }
}
const rows = results.rows();
const targets = judge(rows, failures);
info.loadByRound = loadByRound;
info.loadAfter = loadAverage();
info.elapsedSeconds = Math.round((Date.now() - started.getTime()) / 1000);

log('\nmedians over ' + rounds + ' round(s), (min–max) of the rounds\n');
log(textTable(rows));
log('');
for (const t of targets) log(`${t.status.padEnd(12)} [${t.issue}] ${t.target}${t.value ? `: ${t.value}` : ''}`);
for (const f of failures) log(`FAILED workload ${f.workload} (round ${f.round + 1}): ${f.error.split('\n')[0]}`);
log(`\nload average before ${info.loadBefore.join(' ')}, after ${info.loadAfter.join(' ')}; ${info.elapsedSeconds} s`);

const stamp = info.date.replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
const outFile = opt.out !== undefined ? path.resolve(opt.out) : path.join(RESULTS, `run-${stamp}-${source.commit.slice(0, 7)}.json`);
writeJson(outFile, { ...info, rows, targets, failures, impairment: ctx.impairment });
const header = `${info.date}, ${source.source} at ${source.commit}${source.dirty ? ' (uncommitted changes)' : ''}; ${info.machine.nproc} × ${info.machine.cpu}, Linux ${info.machine.kernel}, node ${info.machine.node}; ${rounds} round(s), ${seconds} s per measurement; load average ${info.loadBefore.join(' ')} → ${info.loadAfter.join(' ')}`;
const pairedTable = markdownPaired(rows);
const pairedPart = pairedTable === '' ? '' : `\n\nRound by round (each round measures a workload's paths one after the other; the targets are judged on the medians above):\n\n${pairedTable}`;
fs.writeFileSync(outFile.replace(/\.json$/, '') + '.md', `${header}\n\nMedians over the rounds, (min–max).\n\n${markdownTable(rows)}\n\n${markdownTargets(targets)}${pairedPart}\n`);
log(`wrote ${path.relative(process.cwd(), outFile)} and .md`);
process.exit(failures.length > 0 ? 1 : 0);

/** Versions of the programs on the other paths and of the clients, for the results file. */
function versions() {
  const first = (file, args) => {
    try {
      return runSyncQuiet(file, args).split('\n')[0].trim();
    } catch {
      return null;
    }
  };
  return {
    haproxy: first('haproxy', ['-v']),
    redis: first('redis-server', ['--version']),
    nginx: first('sh', ['-c', 'nginx -v 2>&1']),
    wrk: first('sh', ['-c', 'wrk -v 2>&1 | head -1']),
    iperf3: first('iperf3', ['--version']),
  };
}

function runSyncQuiet(file, args) {
  return execFileSync(file, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** CPU profiles of synfin under the bulk, connection-rate and keep-alive HTTP workloads (synfin path only). */
async function profileRuns(ctx, which) {
  const dir = path.join(RESULTS, 'profiles');
  fs.mkdirSync(dir, { recursive: true });
  ctx.cpuProfDir = dir;
  const profiles = [];
  if (which.includes('throughput')) {
    const iperfd = await startIperf(ctx.topo);
    ctx.topo.setVethMtu(65000);
    const sf = await new SynfinProcess(ctx.topo, { dist: ctx.dist, name: 'throughput', mtu: 65000, cpuProfDir: dir }).start();
    for (const reverse of [false, true]) {
      const r = await run('iperf3', ['-c', ADDR.tunTarget, '-p', String(PORT.iperf), '-t', String(ctx.seconds), '-J', ...(reverse ? ['-R'] : [])], { ns: ctx.topo.ns.scli, timeoutMs: (ctx.seconds + 40) * 1000 });
      const j = JSON.parse(r.stdout);
      log(`  profiled bulk MTU 65000 ${reverse ? 'server→client' : 'client→server'}: ${(j.end.sum_received.bits_per_second / 1e9).toFixed(2)} Gbit/s`);
    }
    await sf.stop();
    ctx.topo.setVethMtu(1500);
    await iperfd.stop();
    profiles.push('throughput');
  }
  if (which.includes('connections')) {
    const server = await startTcpServer(ctx.topo, 'echo');
    const sf = await new SynfinProcess(ctx.topo, { dist: ctx.dist, name: 'connections', mtu: 1500, cpuProfDir: dir }).start();
    const r = await run(tool('connrate'), [ADDR.tunTarget, String(PORT.echo), String(ctx.seconds), '64', '64', 'echo'], { ns: ctx.topo.ns.scli, timeoutMs: (ctx.seconds + 30) * 1000 });
    log(`  profiled connection rate: ${r.stdout.trim()}`);
    await sf.stop();
    await server.stop();
    profiles.push('connections');
  }
  if (which.includes('http')) {
    const nginx = await startNginx(ctx.topo);
    const sf = await new SynfinProcess(ctx.topo, { dist: ctx.dist, name: 'http', mtu: 1500, cpuProfDir: dir }).start();
    const r = await run('wrk', ['-t1', '-c64', `-d${ctx.seconds}s`, `http://${ADDR.tunTarget}:${PORT.http}/`], { ns: ctx.topo.ns.scli, timeoutMs: (ctx.seconds + 30) * 1000 });
    log(`  profiled keep-alive HTTP: ${/Requests\/sec:\s+(\S+)/.exec(r.stdout)?.[1] ?? r.stdout.trim()} req/s`);
    await sf.stop();
    await nginx.stop();
    profiles.push('http');
  }
  if (which.includes('idle')) {
    // The /metrics scrape with the idle workload's connections held, one scrape every 3 s.
    const server = await startTcpServer(ctx.topo, 'hold');
    const sf = await new SynfinProcess(ctx.topo, { dist: ctx.dist, name: 'idle', mtu: 1500, cpuProfDir: dir }).start();
    const client = new Daemon(
      'idle client',
      'sh',
      ['-c', 'ulimit -n 20000 && exec "$0" "$@"', process.execPath, path.join(BENCH_DIR, 'idle-client.mjs'), ADDR.tunTarget, String(PORT.hold), String(ctx.idleConnections), '200'],
      { ns: ctx.topo.ns.scli, readyLine: /"established"/, readyMs: 120_000 },
    );
    try {
      await client.ready;
      const collect = [];
      for (let i = 0; i < 20; i++) {
        const r = await sf.get('/metrics');
        collect.push(r.serverTiming.collect ?? NaN);
        await new Promise((resolve) => setTimeout(resolve, 3000));
      }
      log(`  profiled /metrics with ${ctx.idleConnections} held: collect ms ${collect.map((c) => c.toFixed(1)).join(' ')}`);
    } finally {
      await client.stop('SIGKILL');
      await sf.stop();
      await server.stop();
    }
    profiles.push('idle');
  }
  for (const name of profiles) {
    const file = path.join(dir, `${name}.cpuprofile`);
    const text = formatSummary(`synfin CPU profile, ${name}`, summarize(JSON.parse(fs.readFileSync(file, 'utf8')), 25));
    fs.writeFileSync(path.join(dir, `${name}.txt`), text + '\n');
    log('\n' + text);
  }
}
