// The floor of a short connection (issue 24): what one connection of the `shortconn` workload
// (the server writes 6 bytes and closes; the client connects, reads to EOF and closes; 50 in
// flight) costs a relay, measured with figures that survive a loaded machine; with --workload
// httpclose, what one request of the `Connection: close` HTTP workload costs (wrk -t1 -c64 with
// `Connection: close` against nginx: one connection per request, the app sends the request,
// nginx answers and closes, wrk closes). "Per connection" below is then per request. With
// --workload httpkeepalive: the same wrk without `Connection: close` (64 connections held).
//
//   cpu       the relay's CPU per connection (/proc/PID/stat, all threads) over --seconds
//   syscalls  system calls per connection by name (bpftrace on sys_enter for the relay's pid)
//   packets   packets per connection on the app leg (synfin's TUN device or haproxy's client veth)
//             and on the upstream leg (the veth both relays dial out of), by flags, with the
//             packets of one connection listed (tcpdump)
//   systime   time inside each system call per connection (bpftrace sys_enter → sys_exit)
//   perf      `perf record -g` of the relay (node with --perf-basic-prof for synfin's JS names),
//             every sample attributed to one category by its call chain (see classify below)
//
// Relay `floorjs` is bench/tools/tun-floor.mjs (the deferred handshake on Node.js through synfin's
// addon, no stack: bench/handshake-floor.mjs), profiled as synfin is.
//
//   sudo node bench/connection-floor.mjs [--workload shortconn|httpclose] [--relay synfin,haproxy,floorjs] [--seconds N] [--only cpu,syscalls,systime,packets,perf] [--dist DIR] [--out FILE]
//
// Each measure runs on its own stretch of load (tracing slows the relay, so the CPU figure comes
// from a run with nothing attached). Writes JSON to --out (default bench/results/connection-floor-<date>.json)
// and prints a summary.
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync, spawn } from 'node:child_process';
import { parseArgs } from 'node:util';
import { ADDR, Topology } from './lib/topology.js';
import { PORT, startNginx, startTcpServer } from './lib/servers.js';
import { wrk, wrkLost } from './lib/workloads.js';
import { SynfinProcess } from './lib/synfin.js';
import { Haproxy } from './lib/relays.js';
import { TunFloor } from './lib/tun-floor.js';
import { killAllDaemons, procCpuMs, run, sleep } from './lib/proc.js';
import { BENCH_DIR, checkPrerequisites, tool } from './lib/tools.js';
import { workingTreeDist } from './lib/snapshot.js';

const { values: opt } = parseArgs({
  options: {
    workload: { type: 'string', default: 'shortconn' },
    relay: { type: 'string', default: 'synfin,haproxy' },
    seconds: { type: 'string', default: '5' },
    only: { type: 'string', default: 'cpu,syscalls,systime,packets,perf' },
    dist: { type: 'string' },
    conc: { type: 'string', default: '50' },
    rounds: { type: 'string', default: '1' },
    out: { type: 'string' },
  },
});
const seconds = Number(opt.seconds);
const conc = Number(opt.conc);
const rounds = Number(opt.rounds);
const only = new Set(opt.only.split(','));
const workload = opt.workload;
if (!['shortconn', 'httpclose', 'httpkeepalive'].includes(workload)) throw new Error(`--workload ${workload}: shortconn, httpclose or httpkeepalive`);
// A relay is `haproxy`, `synfin` (this tree's dist/, or --dist) or NAME=DIR (synfin compiled in DIR, e.g. an older build).
const relays = opt.relay.split(',').map((r) => r.trim());
checkPrerequisites([
  'ip',
  ...(relays.includes('haproxy') ? ['haproxy'] : []),
  ...(workload === 'shortconn' ? [] : ['wrk', 'nginx']),
  ...(only.has('syscalls') || only.has('systime') ? ['bpftrace'] : []),
  ...(only.has('packets') ? ['tcpdump'] : []),
  ...(only.has('perf') ? ['perf'] : []),
]);
const REPO = path.resolve(BENCH_DIR, '..');
const CWD = process.cwd();
const dist = opt.dist !== undefined ? path.resolve(opt.dist) : workingTreeDist(REPO).dist;
const log = (s) => process.stdout.write(s + '\n');
const tmp = fs.mkdtempSync('/tmp/sfb-floor-');
// synfin's JS functions by name in perf's samples (/tmp/perf-PID.map); the V8 log files that
// come with it land in the temporary directory (the relays start in it), not in the tree.
process.env.SYNFIN_BENCH_NODE_ARGS = `${process.env.SYNFIN_BENCH_NODE_ARGS ?? ''} --perf-basic-prof`;
const outArg = opt.out !== undefined ? path.resolve(opt.out) : undefined;
process.chdir(tmp);

const topo = new Topology();
process.on('exit', () => {
  killAllDaemons();
  topo.destroy();
  fs.rmSync(tmp, { recursive: true, force: true });
});
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(130));

tool('connrate');
tool('tcpserv');
topo.create();
const server = workload === 'shortconn' ? await startTcpServer(topo, 'greet') : await startNginx(topo);

function endpoint(relay) {
  return relay !== 'haproxy' ? { ns: topo.ns.scli, host: ADDR.tunTarget, appDev: topo.dev.tun, appNs: topo.ns.scli } : { ns: topo.ns.hcli, host: ADDR.haproxyFront, appDev: topo.dev.hs, appNs: topo.ns.sfn };
}

async function startRelay(relay) {
  if (relay === 'haproxy') return new Haproxy(topo).start();
  if (relay === 'floorjs') return new TunFloor(topo, { js: true }).start();
  const eq = relay.indexOf('=');
  return new SynfinProcess(topo, { dist: eq > 0 ? path.resolve(CWD, relay.slice(eq + 1)) : dist, name: relay, mtu: 1500 }).start();
}

/** `secs` of the workload's load through `ep`: { ok, rate, failed } (for httpclose, requests: each is one connection). */
async function load(ep, secs, c = conc) {
  if (workload !== 'shortconn') {
    const w = await wrk(ep.ns, ep.host, secs, workload === 'httpclose');
    return { ok: w.total, rate: w.rps, failed: wrkLost(w) };
  }
  const r = await run(tool('connrate'), [ep.host, String(PORT.greet), String(secs), String(c), '6', 'eof'], { ns: ep.ns, timeoutMs: (secs + 30) * 1000 });
  if (r.code !== 0) throw new Error(`connrate: ${r.stderr.trim()}`);
  return JSON.parse(r.stdout);
}

/** Starts `file args` in the background; resolves its output once it exits after SIGINT. */
function background(file, args, { ns } = {}) {
  const [f, a] = ns === undefined ? [file, args] : ['ip', ['netns', 'exec', ns, file, ...args]];
  const child = spawn(f, a, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (err += d));
  const done = new Promise((resolve) => child.on('exit', () => resolve({ out, err })));
  // A tracer that exited on its own (bpftrace losing its probe) is not signalled: its output is what it left.
  return { child, stop: async () => (child.exitCode === null && child.signalCode === null && process.kill(child.pid, 'SIGINT'), done) };
}

/** utime and stime of process `pid` so far (all threads), ms: user space and the kernel (system calls, softirqs run in them, page faults). */
function userSystemMs(pid) {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return [Number(f[11]) * 10, Number(f[12]) * 10];
}

/**
 * utime and stime of each thread of process `pid` so far, ms, grouped: the main thread, and the
 * others by their name (node's are "V8 DefaultWorke", V8's platform workers: parallel scavenges,
 * concurrent marking and compilation; "libuv-worker"; haproxy has one thread).
 */
function userSystemByThreadMs(pid) {
  const out = {};
  for (const tid of fs.readdirSync(`/proc/${pid}/task`)) {
    let stat;
    try {
      stat = fs.readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
    } catch {
      continue; // ended meanwhile
    }
    const name = tid === String(pid) ? 'main' : stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')')).trim();
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const t = (out[name] ??= [0, 0]);
    t[0] += Number(f[11]) * 10;
    t[1] += Number(f[12]) * 10;
  }
  return out;
}

async function cpu(relay, r, ep) {
  const [u0, s0] = userSystemMs(r.pid);
  const t0 = userSystemByThreadMs(r.pid);
  const res = await load(ep, seconds);
  const [u1, s1] = userSystemMs(r.pid);
  const t1 = userSystemByThreadMs(r.pid);
  const per = (ms) => +((ms * 1000) / res.ok).toFixed(1);
  // Per thread group, user / system µs per connection (threads that ended meanwhile are missing
  // from t1: their share shows only in the process's totals).
  const byThread = {};
  for (const [name, [u, s]] of Object.entries(t1)) {
    const [ub, sb] = t0[name] ?? [0, 0];
    byThread[name] = { user: per(u - ub), system: per(s - sb) };
  }
  return { conns: res.ok, rate: res.rate, failed: res.failed, cpuMs: u1 - u0 + s1 - s0, usPerConn: per(u1 - u0 + s1 - s0), userUsPerConn: per(u1 - u0), systemUsPerConn: per(s1 - s0), byThread };
}

async function syscalls(relay, r, ep) {
  // One probe on raw_syscalls:sys_enter for every thread of the relay, keyed by number and by
  // whether the first argument is synfin's TUN descriptor (reads and writes of the device apart
  // from the upstream sockets').
  const tunFd = relay === 'haproxy' ? -1 : tunDescriptor(r.pid);
  const bt = background('bpftrace', ['-q', '-e', `tracepoint:raw_syscalls:sys_enter /pid == ${r.pid}/ { @[args->id, args->args[0] == ${tunFd}] = count(); }`]);
  await sleep(3000);
  const res = await load(ep, seconds);
  const { out } = await bt.stop();
  const names = syscallNames();
  const by = {};
  for (const m of out.matchAll(/@\[(\d+), (\d)\]: (\d+)/g)) {
    const name = (names[m[1]] ?? `#${m[1]}`) + (m[2] === '1' ? ' (TUN)' : '');
    by[name] = (by[name] ?? 0) + Number(m[3]);
  }
  const per = Object.fromEntries(Object.entries(by).sort((a, b) => b[1] - a[1]).map(([k, v]) => [k, +(v / res.ok).toFixed(3)]));
  const total = Object.values(by).reduce((a, b) => a + b, 0);
  return { conns: res.ok, total, perConn: +(total / res.ok).toFixed(2), byName: per };
}

/**
 * Time inside each system call, summed by call (and TUN descriptor or not) over N connections:
 * sys_enter to sys_exit of every thread of the relay (bpftrace). The calls are non-blocking, so
 * this is CPU time in the kernel, softirqs run inside the call included, plus any preemption
 * meanwhile on a loaded machine and the probes' own cost (~0.3-0.5 µs a call).
 */
async function systime(relay, r, ep) {
  const tunFd = relay === 'haproxy' ? -1 : tunDescriptor(r.pid);
  const prog = `tracepoint:raw_syscalls:sys_enter /pid == ${r.pid}/ { @s[tid] = nsecs; @id[tid] = args->id; @tun[tid] = args->args[0] == ${tunFd}; }
tracepoint:raw_syscalls:sys_exit /pid == ${r.pid} && @s[tid] != 0/ { @t[@id[tid], @tun[tid]] = sum(nsecs - @s[tid]); @s[tid] = 0; }
END { clear(@s); clear(@id); clear(@tun); }`;
  const bt = background('bpftrace', ['-q', '-e', prog]);
  await sleep(3000);
  const c0 = procCpuMs(r.pid);
  const res = await load(ep, seconds);
  const c1 = procCpuMs(r.pid);
  const { out } = await bt.stop();
  const names = syscallNames();
  const by = {};
  for (const m of out.matchAll(/@t\[(\d+), (\d)\]: (\d+)/g)) {
    const name = (names[m[1]] ?? `#${m[1]}`) + (m[2] === '1' ? ' (TUN)' : '');
    by[name] = (by[name] ?? 0) + Number(m[3]) / 1000 / res.ok;
  }
  // Calls that wait (the event loop's poll, V8's workers' futexes): their time is mostly not CPU.
  const blocking = (name) => /^(futex|epoll_wait|epoll_pwait|epoll_pwait2|nanosleep|clock_nanosleep|poll|ppoll|select)$/.test(name);
  const total = Object.entries(by).reduce((a, [k, v]) => (blocking(k) ? a : a + v), 0);
  for (const k of Object.keys(by)) if (blocking(k)) by[`${k} (waits)`] = by[k], delete by[k];
  return { conns: res.ok, cpuUsPerConnTraced: +(((c1 - c0) * 1000) / res.ok).toFixed(1), inNonBlockingSyscallsUsPerConn: +total.toFixed(1), byName: Object.fromEntries(Object.entries(by).sort((a, b) => b[1] - a[1]).filter(([, v]) => v >= 0.05).map(([k, v]) => [k, +v.toFixed(2)])) };
}

function tunDescriptor(pid) {
  return fs.readdirSync(`/proc/${pid}/fd`).find((fd) => {
    try {
      return fs.readlinkSync(`/proc/${pid}/fd/${fd}`) === '/dev/net/tun';
    } catch {
      return false;
    }
  }) ?? -1;
}

function syscallNames() {
  // x86-64 numbers from the kernel headers (linux-libc-dev).
  const out = {};
  const text = fs.readFileSync('/usr/include/x86_64-linux-gnu/asm/unistd_64.h', 'utf8');
  for (const m of text.matchAll(/#define __NR_(\w+) (\d+)/g)) out[m[2]] = m[1];
  return out;
}

/** A relay's name as part of a file name (NAME=DIR has slashes). */
function fileName(relay) {
  return relay.replace(/[^\w.-]/g, '_');
}

async function packets(relay, r, ep) {
  const app = path.join(tmp, `${fileName(relay)}-app.pcap`);
  const up = path.join(tmp, `${fileName(relay)}-up.pcap`);
  const a = background('tcpdump', ['-i', ep.appDev, '-nn', '-s', '96', '-w', app, 'tcp'], { ns: ep.appNs });
  const u = background('tcpdump', ['-i', topo.dev.uc, '-nn', '-s', '96', '-w', up, 'tcp'], { ns: topo.ns.sfn });
  await sleep(1500);
  const res = await load(ep, Math.min(seconds, 2));
  await sleep(500);
  await a.stop();
  await u.stop();
  const summarize = (file, port) => {
    const text = execFileSync('tcpdump', ['-r', file, '-nn', '-tt', '-S'], { encoding: 'utf8', maxBuffer: 1 << 30, stdio: ['ignore', 'pipe', 'ignore'] });
    const lines = text.split('\n').filter((l) => l.includes(' IP '));
    const flags = {};
    const flows = new Map();
    let syns = 0;
    for (const l of lines) {
      const m = /IP (\S+) > (\S+): Flags \[([^\]]*)\].*length (\d+)/.exec(l);
      if (m === null) continue;
      const key = `${m[3]}${m[4] !== '0' ? '+data' : ''}`;
      flags[key] = (flags[key] ?? 0) + 1;
      if (m[3] === 'S') syns++;
      const flow = [m[1], m[2]].sort().join(' ');
      if (!flows.has(flow)) flows.set(flow, []);
      flows.get(flow).push(l.replace(/^\d+\.\d+ /, ''));
    }
    // One connection from its SYN, in the middle of the capture.
    const withSyn = [...flows.values()].filter((f) => /Flags \[S\]/.test(f[0]) && f.length < 20);
    const one = withSyn[Math.floor(withSyn.length / 2)] ?? [];
    void port;
    return { packets: lines.length, syns, perConn: +(lines.length / Math.max(1, syns)).toFixed(2), byFlags: Object.fromEntries(Object.entries(flags).map(([k, v]) => [k, +(v / Math.max(1, syns)).toFixed(3)])), one };
  };
  return { conns: res.ok, app: summarize(app), upstream: summarize(up) };
}

async function perf(relay, r, ep) {
  const data = path.join(tmp, `${fileName(relay)}.perf.data`);
  const loadP = load(ep, seconds + 2);
  await sleep(1000);
  const c0 = procCpuMs(r.pid);
  const pr = background('perf', ['record', '-F', '1999', '-g', '-p', String(r.pid), '-o', data, '--', 'sleep', String(seconds)]);
  await new Promise((res) => pr.child.on('exit', res));
  const c1 = procCpuMs(r.pid);
  const res = await loadP;
  const text = execFileSync('perf', ['script', '-i', data, '-F', 'comm,pid,tid,ip,sym,dso', '--no-inline'], { encoding: 'utf8', maxBuffer: 1 << 30, stdio: ['ignore', 'pipe', 'ignore'] });
  const cats = {};
  const leaf = {};
  const jsFn = {};
  const jsFile = {};
  let n = 0;
  for (const block of text.split('\n\n')) {
    const lines = block.split('\n').filter((l) => l.trim() !== '');
    if (lines.length < 2) continue;
    const frames = lines.slice(1).map((l) => l.trim().replace(/^[0-9a-f]+ /, ''));
    const shown = frames.map((f) => f.replace(/ \([^)]*\)$/, ''));
    const c = classify(relay === 'haproxy' ? 'haproxy' : 'synfin', lines[0], frames);
    cats[c] = (cats[c] ?? 0) + 1;
    const lk = `${c} | ${shown[0]}`;
    leaf[lk] = (leaf[lk] ?? 0) + 1;
    // User space on the main thread by the first JS frame up the chain (its builtins and native
    // callees included): which of synfin's functions the time is spent under.
    if (c === 'JS (incl. V8 builtins)' || c === 'node/V8/libc C++ (N-API glue, runtime)' || c === 'addon C++') {
      const js = shown.find((f) => /^JS:/.test(f));
      const fn = js === undefined ? '(no JS frame)' : js.replace(/^JS:[*~^]?/, '').replace(/file:\/\/\S*\/dist\//, '');
      const file = fn.includes(' ') ? fn.split(' ')[1].replace(/\.js:.*$/, '') : fn;
      jsFn[fn] = (jsFn[fn] ?? 0) + 1;
      jsFile[file] = (jsFile[file] ?? 0) + 1;
    }
    n++;
  }
  const usPerConn = ((c1 - c0) * 1000) / (res.rate * seconds);
  const share = Object.fromEntries(Object.entries(cats).sort((a, b) => b[1] - a[1]).map(([k, v]) => [k, { pct: +((100 * v) / n).toFixed(1), usPerConn: +((usPerConn * v) / n).toFixed(1) }]));
  const top = Object.entries(leaf).sort((a, b) => b[1] - a[1]).slice(0, 40).map(([k, v]) => `${((100 * v) / n).toFixed(1)}% ${k}`);
  if (process.env.FLOOR_KEEP_PERF) fs.copyFileSync(data, process.env.FLOOR_KEEP_PERF + `/floor-${fileName(relay)}.perf.data`);
  const rank = (o, k) => Object.entries(o).sort((a, b) => b[1] - a[1]).slice(0, k).map(([f, v]) => `${((100 * v) / n).toFixed(1)}% ${f}`);
  return { samples: n, usPerConnDuring: +usPerConn.toFixed(1), rate: res.rate, categories: share, topLeaves: top, userByFile: rank(jsFile, 30), userByJsFunction: rank(jsFn, 60) };
}

/**
 * One category per sample, from its call chain (leaf first, each frame "symbol (dso)"). A sample
 * inside a system call (a kernel frame under entry_SYSCALL_64) goes to that call, named by its libc
 * wrapper (the first user frame under the entry), reads and writes split into the TUN device and
 * the upstream sockets; each call's share that is the kernel's TCP receive path (tcp_v4_rcv and
 * below: for the TUN write the app leg's client socket, for connect/shutdown/close the peer's over
 * the veth, both run inside the relay's call) is counted apart as "…: TCP receive inside". Outside
 * the kernel: GC (any V8 heap frame, or a thread other than the main one: V8's workers), JS (the
 * leaf a JIT or interpreted function or a V8 builtin: --perf-basic-prof names), the addon's C++,
 * and the rest of node/V8/libc (N-API glue, inline-cache misses, allocation slow paths...).
 */
function classify(relay, head, frames) {
  const [, pid, tid] = /(\d+)\/(\d+)/.exec(head) ?? [];
  const kernel = (f) => f.endsWith('([kernel.kallsyms])');
  const has = (re) => frames.some((f) => re.test(f));
  if (has(/exc_page_fault/)) return 'page faults';
  const entry = frames.findIndex((f) => /entry_SYSCALL_64/.test(f));
  // A libc system-call wrapper as the leaf: the sample fell on the way into or out of the call.
  const wrapperLeaf = /^(__GI_)?_*(libc_)?(read|write|writev|readv|connect|socket|close|shutdown|getsockopt|setsockopt|getsockname|epoll_wait|epoll_pwait|epoll_ctl)\b/.test(frames[0]) && !kernel(frames[0]);
  if ((entry >= 0 && kernel(frames[0])) || wrapperLeaf) {
    const wrapper = wrapperLeaf ? frames[0] : (frames.slice(entry + 1).find((f) => !kernel(f)) ?? '');
    let name = (/^(\S+)/.exec(wrapper)?.[1] ?? '?').replace(/^(__GI_)?_*(libc_)?_*/, '').replace(/64$/, '');
    if (name === 'write' || name === 'writev' || name === 'read' || name === 'readv') {
      // The first JS frame above the call tells whose descriptor it is (the TUN device's reads come from the addon's poll, with none).
      const js = frames.find((f) => /^(JS:|LazyCompile:)/.test(f)) ?? '';
      const up = has(/tcp_sendmsg|tcp_recvmsg|sock_write_iter|sock_read_iter/) || (!has(/tun_chr_|tun_get_user|tun_do_read/) && /proxy\/upstream\.js/.test(js));
      name = `${relay !== 'synfin' ? 'socket' : up ? 'upstream' : 'TUN'} ${name}`;
    }
    if (/^epoll_(wait|pwait)/.test(name)) name = 'epoll_wait';
    return has(/tcp_v4_rcv|tcp_v6_rcv/) ? `${name}: TCP receive inside` : name;
  }
  if (relay !== 'synfin') return 'user';
  if (pid !== tid || has(/v8::internal::(Heap|Scavenger|MarkCompact|Sweeper|ConcurrentMarking|MinorMarkSweep|IncrementalMarking|MemoryAllocator)|GCTracer|ScavengeJob/)) return 'GC (and V8 worker threads)';
  if (/^(JS:|LazyCompile:|Builtins?_|Function:|Interpreter|BytecodeHandler|Stub:|RegExp:)/.test(frames[0])) return 'JS (incl. V8 builtins)';
  if (/synfin\.node\)$/.test(frames[0])) return 'addon C++';
  return 'node/V8/libc C++ (N-API glue, runtime)';
}

const RESULTS_DIR = path.join(BENCH_DIR, 'results');
const results = { date: new Date().toISOString(), workload, load: fs.readFileSync('/proc/loadavg', 'utf8').trim(), seconds, conc, dist, relays: {} };
for (let round = 0; round < rounds; round++) {
  // The relays' order rotates from round to round (no relay always first after a quiet spell).
  for (const relay of [...relays.slice(round % relays.length), ...relays.slice(0, round % relays.length)]) {
    const ep = endpoint(relay);
    const r = await startRelay(relay);
    try {
      await load(ep, 1); // warm-up: JIT, pools
      const out = (results.relays[relay] ??= []);
      log(`— ${relay}, round ${round + 1} of ${rounds}`);
      const one = {};
      for (const m of ['cpu', 'syscalls', 'systime', 'packets', 'perf']) {
        if (!only.has(m)) continue;
        one[m] = await { cpu, syscalls, systime, packets, perf }[m](relay, r, ep);
        log(`${relay} ${m}: ${JSON.stringify(one[m], null, m === 'cpu' ? 0 : 1)}`);
        await sleep(1000);
      }
      out.push(one);
    } finally {
      await r.stop();
    }
  }
}
results.loadAfter = fs.readFileSync('/proc/loadavg', 'utf8').trim();
const outFile = outArg ?? path.join(RESULTS_DIR, `connection-floor-${workload === 'shortconn' ? '' : workload + '-'}${results.date.replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z')}.json`);
fs.writeFileSync(outFile, JSON.stringify(results, null, 1) + '\n');
log(`wrote ${outFile}`);
await server.stop();
process.exit(0);
