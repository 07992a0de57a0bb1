// synfin's benchmark (`npm run bench`): every workload through synfin and through the kernel alone,
// in the same run, on namespaces and veth pairs made for it (removed at the end, also on Ctrl-C).
//
//   sudo npm run bench                               all workloads (≈ 5 minutes)
//   sudo npm run bench -- --only throughput,http     some of them: throughput, connections, http, idle, loss, api
//   sudo npm run bench -- --only api --api-rounds 5  the API workload with more rounds (default 3)
//   sudo npm run bench -- --seconds 5                shorter runs (default 10 s per measurement)
//   sudo npm run bench -- --snapshot                 measure the committed HEAD, compiled apart
//   sudo npm run bench -- --profile                  CPU profiles of synfin (throughput, connections, http, idle scrapes)
//
// Needs root, /dev/net/tun, and iperf3, wrk, nginx, gcc, libnetfilter-queue-dev, iptables
// (bench/setup.sh installs them). Prints a table and writes bench/results/latest.json and .md.
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { ADDR, Topology } from './lib/topology.js';
import { WORKLOADS } from './lib/workloads.js';
import { SynfinProcess } from './lib/synfin.js';
import { PORT, startIperf, startNginx, startTcpServer } from './lib/servers.js';
import { Daemon, killAllDaemons, run } from './lib/proc.js';
import { BENCH_DIR, checkPrerequisites, tool } from './lib/tools.js';
import { judge, loadAverage, machine, markdownTable, markdownTargets, textTable, writeJson } from './lib/report.js';
import { snapshotDist, workingTreeDist } from './lib/snapshot.js';
import { formatSummary, summarize } from './profile-summary.js';

const REPO = path.resolve(BENCH_DIR, '..');
const RESULTS = path.join(BENCH_DIR, 'results');
const ALIASES = { throughput: 'throughput', bulk: 'throughput', connections: 'connections', connrate: 'connections', http: 'http', idle: 'idle', loss: 'loss', api: 'api' };
const ORDER = ['throughput', 'connections', 'http', 'idle', 'loss', 'api'];
const NEEDS = {
  throughput: ['iperf3'],
  connections: ['gcc', 'nstat'],
  http: ['wrk', 'nginx', 'nstat'],
  idle: ['gcc', 'curl'],
  loss: ['iperf3', 'gcc', 'iptables'],
  api: ['wrk', 'nginx', 'gcc'],
};

function usage(msg) {
  if (msg) process.stderr.write(`bench: ${msg}\n`);
  process.stderr.write('usage: node bench/run.js [--only LIST] [--seconds N] [--idle N] [--api-rounds N] [--snapshot | --dist DIR] [--profile] [--out FILE]\n');
  process.exit(2);
}

const { values: opt } = parseArgs({
  options: {
    only: { type: 'string' },
    seconds: { type: 'string', default: '10' },
    idle: { type: 'string', default: '10000' },
    'api-rounds': { type: 'string', default: '3' },
    snapshot: { type: 'boolean', default: false },
    dist: { type: 'string' },
    profile: { type: 'boolean', default: false },
    out: { type: 'string' },
    help: { type: 'boolean', short: 'h', default: false },
  },
  strict: true,
});
if (opt.help) usage();

const selected = opt.only === undefined ? ORDER : [...new Set(opt.only.split(',').map((w) => ALIASES[w.trim()] ?? usage(`unknown workload "${w}" (${Object.keys(ALIASES).join(', ')})`)))];
const seconds = Number(opt.seconds);
const idleConnections = Number(opt.idle);
const apiRounds = Number(opt['api-rounds']);
if (!(Number.isInteger(apiRounds) && apiRounds >= 1 && apiRounds <= 20)) usage('--api-rounds must be 1..20');
if (!(seconds >= 1 && seconds <= 600)) usage('--seconds must be 1..600');
if (!(idleConnections >= 1 && idleConnections <= 15000)) usage('--idle must be 1..15000 (file descriptor limit)');
if (process.getuid?.() !== 0) usage('run as root: it creates network namespaces and a TUN device');
if (!fs.existsSync('/dev/net/tun')) usage('/dev/net/tun is missing');
checkPrerequisites(['ip', 'curl', ...new Set(selected.flatMap((w) => NEEDS[w]))]);

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
const info = { date: started.toISOString(), machine: machine(), loadBefore: loadAverage(), synfin: source, seconds, idleConnections };
log(`synfin benchmark ${info.date}: ${info.machine.nproc} × ${info.machine.cpu}, Linux ${info.machine.kernel}, node ${info.machine.node}`);
log(`measuring ${source.source} (${source.commit.slice(0, 12)}${source.dirty ? ', with uncommitted changes' : ''}); load average ${info.loadBefore.join(' ')}`);
topo.create();
const rows = [];
const ctx = { topo, dist: source.dist, seconds, idleConnections, apiRounds, log, cpuProfDir: process.env.SYNFIN_BENCH_CPUPROF || undefined, rows };

if (opt.profile) {
  await profileRuns(ctx, selected.filter((w) => w === 'throughput' || w === 'connections' || w === 'http' || w === 'idle'));
  process.exit(0);
}

const failures = [];
for (const name of selected) {
  log(`\n▶ ${name}`);
  const t0 = Date.now();
  try {
    await WORKLOADS[name](ctx);
  } catch (err) {
    failures.push({ workload: name, error: String(err?.stack ?? err) });
    log(`  FAILED: ${err?.message ?? err}`);
  }
  log(`  (${((Date.now() - t0) / 1000).toFixed(0)} s)`);
}
const targets = judge(rows, failures);
info.loadAfter = loadAverage();
info.elapsedSeconds = Math.round((Date.now() - started.getTime()) / 1000);

log('\n' + textTable(rows));
log('');
for (const t of targets) log(`${t.status.padEnd(12)} ${t.target}${t.value ? `: ${t.value}` : ''}`);
for (const f of failures) log(`FAILED workload ${f.workload}: ${f.error.split('\n')[0]}`);
log(`\nload average before ${info.loadBefore.join(' ')}, after ${info.loadAfter.join(' ')}; ${info.elapsedSeconds} s`);

const outFile = opt.out !== undefined ? path.resolve(opt.out) : path.join(RESULTS, 'latest.json');
writeJson(outFile, { ...info, rows, targets, failures });
fs.writeFileSync(outFile.replace(/\.json$/, '') + '.md', `${markdownTable(rows)}\n\n${markdownTargets(targets)}\n`);
log(`wrote ${path.relative(process.cwd(), outFile)}`);
process.exit(failures.length > 0 ? 1 : 0);

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
    const r = await run(tool('connrate'), [ADDR.tunTarget, String(PORT.echo), String(ctx.seconds), '64', '64'], { ns: ctx.topo.ns.scli, timeoutMs: (ctx.seconds + 30) * 1000 });
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
