// Memory of synfin's connection buffers, measured (BENCHMARKS.md "Memory bounded by design"):
//
//   npm run build && node bench/memory.js [--conns 1000] [--flood-limit 64MiB] [--only a|b] [--dist DIR]
//                                         [--flood readers,writers,holes] [--echo-bytes N] [--gc-every MS]
//
// (a) 1,000 connections that each hold one out-of-order byte (a hole at RCV.NXT, made by hand with
//     raw packets: test/reliability/holes.py), against 1,000 connections that hold nothing: the
//     difference in RSS, V8 heap and external memory of the synfin process. Before the reassembly
//     blocks, each such byte allocated a window-sized ring (1 MiB).
// (b) synfin under --memory-limit 64MiB: apps that never read destinations that never stop
//     writing, apps writing to destinations that never read, and connections with 60 KB held
//     behind a hole, all at once; meanwhile a client connected before the flood echoes 32 MB
//     through synfin and checks every byte. Peak RSS (VmHWM) against limit + idle baseline + 32 MiB.
//
// synfin runs as its own process (bench/synfin-in-ns.mjs over dist/) with its TUN device in a
// fresh namespace; the destinations are servers of this process on 127.0.0.1. Needs root.
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';

const HERE = import.meta.dirname;
const REPO = path.resolve(HERE, '..');
const HOLES = path.join(REPO, 'test/reliability/holes.py');
const ATTACK = path.join(REPO, 'test/reliability/attack.py');
const MiB = 1024 * 1024;

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : dflt;
};
const CONNS = Number(opt('--conns', '1000'));
const FLOOD_LIMIT = opt('--flood-limit', '64MiB');
/** Diagnostic: a full collection in synfin every N ms (tells garbage from memory held). */
const GC_EVERY = Number(opt('--gc-every', '0'));
const FLOOD = opt('--flood', 'readers,writers,holes').split(',');
const ECHO_BYTES = Number(opt('--echo-bytes', String(32 * 1000 * 1000)));
/** A compiled synfin to measure (e.g. of an older commit, for comparison); dist/ of this tree by default. */
const DIST = path.resolve(opt('--dist', path.join(REPO, 'dist')));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const log = (...a) => console.log(...a);

const NS = `sf-mem-${process.pid}`;
const PREFIX = '198.19.77.';
const children = new Set();

function ip(...a) {
  return execFileSync('ip', a, { encoding: 'utf8' });
}

function spawnIn(file, a, opts = {}) {
  const child = spawn('ip', ['netns', 'exec', NS, file, ...a], { stdio: 'pipe', ...opts });
  children.add(child);
  child.on('exit', () => children.delete(child));
  return child;
}

function lines(child) {
  const got = [];
  let buf = '';
  child.stdout.on('data', (d) => {
    buf += d.toString();
    const parts = buf.split('\n');
    buf = parts.pop();
    for (const p of parts) if (p.trim() !== '') got.push(p);
  });
  child.stderr.on('data', (d) => process.stderr.write(`[${path.basename(String(child.spawnargs[4] ?? ''))}] ${d}`));
  return got;
}

async function nextLine(got, from, what, timeoutMs = 120_000) {
  const end = Date.now() + timeoutMs;
  while (got.length <= from) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
  return JSON.parse(got[from]);
}

function listen(onConn) {
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    s.on('error', () => {});
    onConn(s);
  });
  return new Promise((r) => server.listen(0, '127.0.0.1', () => r({ server, port: server.address().port })));
}

function get(url) {
  return new Promise((resolve, reject) => {
    http
      .get(url, { agent: false }, (res) => {
        let body = '';
        res.on('data', (d) => (body += d));
        res.on('end', () => resolve(body));
      })
      .on('error', reject);
  });
}

function metric(text, name, label = '') {
  for (const line of text.split('\n')) {
    if (line.startsWith(name + (label ? `{${label}}` : ' '))) return Number(line.split(' ').at(-1));
  }
  return NaN;
}

function procStatus(pid) {
  const s = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (k) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(s)?.[1] ?? NaN) * 1024;
  return { rss: kb('VmRSS'), hwm: kb('VmHWM') };
}

async function startSynfin(tun, extra) {
  const config = {
    tun,
    addresses: [`${PREFIX}1/24`],
    map: [`${PREFIX}0/24=127.0.0.1`],
    listenHost: '127.0.0.1',
    listenPort: 0,
    logLevel: 'warn',
    maxConnections: 20_000,
    synBacklog: 4096,
    ...extra,
  };
  const gcArgs = [];
  if (GC_EVERY > 0) {
    const file = path.join(fs.mkdtempSync('/tmp/sfm-'), 'gc.cjs');
    fs.writeFileSync(file, `setInterval(() => global.gc(), ${GC_EVERY}).unref();\n`);
    gcArgs.push('--expose-gc', '--require', file);
  }
  const child = spawn(process.execPath, [...gcArgs, path.join(HERE, 'synfin-in-ns.mjs'), DIST, NS, JSON.stringify(config)], { stdio: 'pipe' });
  children.add(child);
  child.on('exit', () => children.delete(child));
  const got = lines(child);
  const ready = await nextLine(got, 0, 'synfin ready', 30_000);
  return { child, url: ready.ready, pid: ready.pid };
}

async function sample(sf) {
  const m = await get(sf.url + '/metrics');
  const st = procStatus(sf.pid);
  return {
    rss: st.rss,
    hwm: st.hwm,
    heap: metric(m, 'nodejs_heap_size_used_bytes'),
    heapTotal: metric(m, 'nodejs_heap_size_total_bytes'),
    external: metric(m, 'nodejs_external_memory_bytes'),
    used: metric(m, 'synfin_memory_bytes', 'kind="used"'),
    limit: metric(m, 'synfin_memory_bytes', 'kind="limit"'),
    conns: metric(m, 'synfin_tcp_connections', 'state="ESTABLISHED"'),
    memDrops: metric(m, 'synfin_tcp_dropped_segments_total', 'reason="memory_limit"'),
  };
}

async function stop(sf) {
  sf.child.kill('SIGTERM');
  await new Promise((r) => (sf.child.exitCode !== null ? r() : sf.child.once('exit', r)));
}

const mb = (b) => (b / MiB).toFixed(1);

/** A kernel connection from the namespace that echoes once, to warm synfin up. */
async function warmUp(echoPort) {
  const c = spawnIn('/usr/bin/python3', [ATTACK, 'client', `${PREFIX}2`, String(echoPort)]);
  const got = lines(c);
  await nextLine(got, 0, 'warm-up connect');
  c.stdin.write('echo 10000\n');
  await nextLine(got, 1, 'warm-up echo');
  c.stdin.end();
  c.kill();
  await sleep(1000);
}

async function holesPhase(label, tun, sink, echo, bytes) {
  const sf = await startSynfin(tun, {});
  await warmUp(echo.port);
  const before = await sample(sf);
  const h = spawnIn('/usr/bin/python3', [HOLES, 'holes', tun, `${PREFIX}2`, String(sink.port), String(CONNS), String(bytes)]);
  const got = lines(h);
  const made = await nextLine(got, 0, 'holes', 300_000);
  await sleep(3000);
  const after = await sample(sf);
  h.stdin.end();
  h.kill();
  await stop(sf);
  const d = { rss: after.rss - before.rss, heap: after.heap - before.heap, external: after.external - before.external, budget: after.used - before.used };
  log(
    `(a) ${label}: ${made.established} connections (${after.conns} established in synfin), ${bytes} out-of-order byte(s) each: ` +
      `RSS +${mb(d.rss)} MiB, heap +${mb(d.heap)} MiB, external +${mb(d.external)} MiB, synfin_memory_bytes{used} +${mb(d.budget)} MiB`,
  );
  return { established: made.established, ...d };
}

async function floodPhase(tun, sink, source, echo) {
  const sf = await startSynfin(tun, { memoryLimit: Number(FLOOD_LIMIT) || parseSize(FLOOD_LIMIT) });
  await warmUp(echo.port);
  const idle = await sample(sf);
  log(`(b) idle baseline: RSS ${mb(idle.rss)} MiB (VmHWM ${mb(idle.hwm)} MiB), limit ${mb(idle.limit)} MiB`);
  // The well-behaved client, connected before the flood.
  const good = spawnIn('/usr/bin/python3', [HOLES, 'echo', `${PREFIX}2`, String(echo.port), String(ECHO_BYTES)]);
  const goodLines = lines(good);
  await nextLine(goodLines, 0, 'good client');
  let peakRss = idle.rss;
  let peakUsed = 0;
  let peakHeapTotal = 0;
  let peakExternal = 0;
  let sampling = true;
  // RSS from /proc every 100 ms; /metrics (a scrape costs synfin a kernel socket dump and garbage
  // of its own) only every 2 s.
  const sampler = (async () => {
    let n = 0;
    while (sampling) {
      try {
        const st = procStatus(sf.pid);
        if (st.rss > peakRss) peakRss = st.rss;
        if (n++ % 20 === 0) {
          const s = await sample(sf);
          if (s.used > peakUsed) peakUsed = s.used;
          if (s.heapTotal > peakHeapTotal) peakHeapTotal = s.heapTotal;
          if (s.external > peakExternal) peakExternal = s.external;
        }
      } catch {
        // synfin busy: next time
      }
      await sleep(100);
    }
  })();
  const t0 = Date.now();
  const readers = spawnIn('/usr/bin/python3', [HOLES, 'never-read', `${PREFIX}2`, String(source.port), FLOOD.includes('readers') ? '200' : '0']);
  const writers = spawnIn(process.execPath, [
    '-e',
    `const net=require('net');const b=Buffer.alloc(65536,1);let ok=0,err=0;for(let i=0;i<${FLOOD.includes('writers') ? 200 : 0};i++){const s=net.connect(${sink.port},'${PREFIX}2');s.on('error',()=>{err++});const w=()=>{while(s.write(b));};s.on('connect',()=>{ok++;w()});s.on('drain',w);}setTimeout(()=>console.log(JSON.stringify({ok,err})),10000);setInterval(()=>{},1000);`,
  ]);
  const writerLines = lines(writers);
  const holes = spawnIn('/usr/bin/python3', [HOLES, 'holes', tun, `${PREFIX}2`, String(sink.port), FLOOD.includes('holes') ? '1000' : '0', '60000']);
  const holeLines = lines(holes);
  const readerLines = lines(readers);
  // The good client echoes 32 MB during the flood.
  await sleep(2000);
  const tEcho = Date.now();
  good.stdin.write('go\n');
  const echoed = await nextLine(goodLines, 1, 'good echo', 600_000);
  const echoSeconds = echoed.seconds ?? (Date.now() - tEcho) / 1000;
  const made = await nextLine(holeLines, 0, 'holes', 300_000);
  const rd = await nextLine(readerLines, 0, 'never-read apps', 120_000);
  const wr = await nextLine(writerLines, 0, 'writers', 120_000);
  await sleep(3000);
  const end = await sample(sf);
  sampling = false;
  await sampler;
  for (const c of [good, readers, writers, holes]) {
    c.stdin.end();
    c.kill();
  }
  const hwm = end.hwm;
  const bound = end.limit + idle.rss + 32 * MiB;
  log(
    `(b) flood: never-reading apps ${rd.connected} connected / ${rd.errors} refused, writers to never-reading destinations ${wr.ok} / ${wr.err} refused, ` +
      `holes ${made.established} established; ${end.conns} connections; synfin_tcp_dropped_segments_total{memory_limit} ${end.memDrops}`,
  );
  log(
    `(b) good client: ${echoed.echo} bytes echoed in ${echoSeconds.toFixed(1)} s, byte-exact: ${echoed.match}; ` +
      `peak synfin_memory_bytes{used} ${mb(peakUsed)} MiB of ${mb(end.limit)} MiB; peak RSS ${mb(Math.max(peakRss, hwm))} MiB (VmHWM ${mb(hwm)}) ` +
      `≤ limit + idle + 32 MiB = ${mb(bound)} MiB: ${hwm <= bound} (${((Date.now() - t0) / 1000).toFixed(0)} s)`,
  );
  log(
    `(b) idle: heap total ${mb(idle.heapTotal)} MiB, external ${mb(idle.external)} MiB; peaks seen during the flood (every 2 s): heap total ${mb(peakHeapTotal)} MiB, external ${mb(peakExternal)} MiB`,
  );
  await stop(sf);
  return { idle, end, peakUsed, hwm, bound, echoed, echoSeconds };
}

function parseSize(t) {
  const m = /^(\d+)(KiB|MiB|GiB)?$/.exec(t);
  if (m === null) throw new Error(`bad size ${t}`);
  return Number(m[1]) * ({ KiB: 1024, MiB: MiB, GiB: 1024 * MiB }[m[2]] ?? 1);
}

async function main() {
  if (!fs.existsSync(path.join(DIST, 'runtime.js'))) throw new Error(`${DIST}/runtime.js missing: npm run build first`);
  ip('netns', 'add', NS);
  const echo = await listen((s) => s.on('data', (d) => s.write(d)).on('end', () => s.end()));
  const sink = await listen((s) => s.pause());
  const chunk = Buffer.alloc(256 * 1024, 0x5a);
  const source = await listen((s) => {
    const pump = () => {
      while (!s.destroyed && s.write(chunk));
    };
    s.on('drain', pump);
    pump();
  });
  const which = opt('--only', 'ab');
  try {
    if (which.includes('a')) {
      await holesPhase('no hole', `sfma${process.pid % 10000}`, sink, echo, 0);
      await holesPhase('one byte', `sfmb${process.pid % 10000}`, sink, echo, 1);
    }
    if (which.includes('b')) await floodPhase(`sfmc${process.pid % 10000}`, sink, source, echo);
  } finally {
    for (const c of children) c.kill('SIGKILL');
    await sleep(300);
    try {
      ip('netns', 'delete', NS);
    } catch {
      // already gone
    }
    for (const s of [echo, sink, source]) s.server.close();
    setTimeout(() => process.exit(0), 500).unref();
  }
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
