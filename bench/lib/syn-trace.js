// Where a SYN's time goes inside synfin, between system calls (bench/connect-breakdown.mjs --trace).
// bpftrace records synfin's main thread's system calls (entry and exit, with the return value),
// the thread's switches in, and the packets entering the TUN device (the app's SYN), leaving on the
// upstream veth (synfin's SYN) and leaving the server's veth (the destination's greeting). Each
// connection is anchored on its upstream connect(2); the intervals around it show the wake-up, the
// TUN read, the JavaScript before the dial, the dial's system calls, the JavaScript after it and
// the SYN-ACK's write, then the greeting's relay.
import { spawn } from 'node:child_process';
import fs from 'node:fs';

const SYS = { read: 0, write: 1, socket: 41, connect: 42, getsockname: 51, epoll_wait: 232, epoll_pwait: 281, epoll_pwait2: 441 };
const POLLS = new Set([SYS.epoll_wait, SYS.epoll_pwait, SYS.epoll_pwait2]);

const TRACED = ['read', 'write', 'close', 'socket', 'setsockopt', 'connect', 'getsockopt', 'getsockname', 'epoll_ctl', 'epoll_wait', 'epoll_pwait', 'epoll_pwait2'];
const NR = { read: 0, write: 1, close: 3, socket: 41, setsockopt: 54, connect: 42, getsockopt: 55, getsockname: 51, epoll_ctl: 233, epoll_wait: 232, epoll_pwait: 281, epoll_pwait2: 441 };

function script(pid, tunDev, upDev, srvDev) {
  // One tracepoint per system call of interest (raw_syscalls would run for every system call of
  // every process on the machine); the first argument (a file descriptor for most) is printed.
  const sys = TRACED.map(
    (n) => `tracepoint:syscalls:sys_enter_${n} /tid == ${pid}/ { printf("E ${NR[n]} %llu %d\\n", nsecs, (int64)args->${n === 'socket' ? 'family' : n.startsWith('epoll_w') || n.startsWith('epoll_p') || n === 'epoll_ctl' ? 'epfd' : 'fd'}); }
tracepoint:syscalls:sys_exit_${n} /tid == ${pid}/ { printf("X ${NR[n]} %llu %d\\n", nsecs, args->ret); }`,
  );
  return `${sys.join('\n')}
tracepoint:sched:sched_switch /args->next_pid == ${pid}/ { printf("S %llu\\n", nsecs); }
tracepoint:sched:sched_switch /args->prev_pid == ${pid}/ { printf("O %llu\\n", nsecs); }
tracepoint:sock:inet_sock_set_state /args->oldstate == 2 && args->newstate == 1/ { printf("K %llu %d %d\\n", nsecs, cpu, tid == ${pid}); }
tracepoint:net:net_dev_start_xmit /str(args->name) == "${tunDev}"/ { printf("T t %llu %d\\n", nsecs, args->len); }
tracepoint:net:net_dev_start_xmit /str(args->name) == "${upDev}"/ { printf("T u %llu %d\\n", nsecs, args->len); }
tracepoint:net:net_dev_start_xmit /str(args->name) == "${srvDev}"/ { printf("T s %llu %d\\n", nsecs, args->len); }
`;
}

/** Starts bpftrace; `stop()` resolves the report's lines (markdown). */
export function startSynTrace(pid, tunDev, upDev, srvDev) {
  const child = spawn('bpftrace', ['-B', 'full', '-e', script(pid, tunDev, upDev, srvDev)], { stdio: ['ignore', 'pipe', 'pipe'] });
  const chunks = [];
  child.stdout.on('data', (d) => chunks.push(d));
  let err = '';
  const started = new Promise((resolve, reject) => {
    child.stderr.on('data', (d) => (err += d));
    child.stdout.once('data', () => resolve());
    child.on('exit', (code) => reject(new Error(`bpftrace exited (${code}): ${err.trim().slice(-500)}`)));
  });
  return {
    started,
    async stop() {
      child.kill('SIGINT');
      await new Promise((r) => (child.exitCode !== null ? r() : child.on('exit', r)));
      const text = Buffer.concat(chunks).toString('utf8');
      // SYN_TRACE_RAW=FILE keeps bpftrace's output, to analyse again (analyse(text)).
      if (process.env.SYN_TRACE_RAW) fs.writeFileSync(process.env.SYN_TRACE_RAW, text);
      return analyse(text);
    },
  };
}

function parse(text) {
  const ev = [];
  for (const line of text.split('\n')) {
    const f = line.split(' ');
    switch (f[0]) {
      case 'E':
        ev.push({ k: 'E', id: Number(f[1]), t: Number(f[2]) / 1e3, arg: Number(f[3]) });
        break;
      case 'X':
        ev.push({ k: 'X', id: Number(f[1]), t: Number(f[2]) / 1e3, ret: Number(f[3]) });
        break;
      case 'S':
        ev.push({ k: 'S', t: Number(f[1]) / 1e3 });
        break;
      case 'O':
        ev.push({ k: 'O', t: Number(f[1]) / 1e3 });
        break;
      case 'K':
        ev.push({ k: 'K', t: Number(f[1]) / 1e3, ours: f[3] === '1' });
        break;
      case 'T':
        ev.push({ k: 'T', dev: f[1], t: Number(f[2]) / 1e3, len: Number(f[3]) });
        break;
    }
  }
  return ev.sort((a, b) => a.t - b.t);
}

function pct(xs, p) {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
}

/** Per connection: the times of the landmarks around its upstream connect(2). */
export function analyse(text) {
  const ev = parse(text);
  const rows = [];
  const between = { before: new Map(), after: new Map() };
  let lastSyn = -1;
  let prevFd = -1;
  let closesOfPrev = 0;
  for (let i = 0; i < ev.length; i++) {
    const e = ev[i];
    if (e.k === 'T' && e.dev === 't' && e.len === 60) lastSyn = i;
    if (!(e.k === 'E' && e.id === SYS.connect) || lastSyn < 0) continue;
    const r = { syn: ev[lastSyn].t };
    for (let j = lastSyn + 1; j < i; j++) {
      const x = ev[j];
      if (x.k === 'S' && r.wake === undefined) r.wake = x.t;
      if (x.k === 'X' && POLLS.has(x.id) && r.poll === undefined) r.poll = x.t;
      if (x.k === 'X' && x.id === SYS.read && x.ret >= 40) r.read = x.t;
    }
    if (r.read === undefined) continue;
    for (let j = lastSyn + 1; j < i; j++) {
      const x = ev[j];
      if (x.k === 'E' && x.t > r.read) between.before.set(x.id, (between.before.get(x.id) ?? 0) + 1);
      if (x.k === 'E' && x.t > r.read && x.id === 3 && x.arg === prevFd) closesOfPrev++;
      // The dial's own socket(2), when it is made on the SYN's path (not ahead of time).
      if (x.k === 'E' && x.t > r.read && x.id === SYS.socket) r.socket = x.t;
    }
    r.socketOrConnect = r.socket ?? e.t;
    prevFd = e.arg;
    let j = i;
    const next = (pred) => {
      while (j < ev.length && !pred(ev[j])) j++;
      return j < ev.length ? ev[j].t : undefined;
    };
    r.connectIn = next((x) => x.k === 'E' && x.id === SYS.connect);
    const k0 = j;
    r.connectOut = next((x) => x.k === 'X' && x.id === SYS.connect);
    for (let k = k0; k < j; k++) if (ev[k].k === 'T' && ev[k].dev === 'u' && r.upSyn === undefined) r.upSyn = ev[k].t;
    // The upstream socket's SYN-SENT → ESTABLISHED: inside connect(2) on synfin's thread, or elsewhere.
    for (let k = k0; k < ev.length && ev[k].t < r.connectOut + 500; k++) {
      if (ev[k].k === 'K') {
        r.established = ev[k].t;
        r.establishedOurs = ev[k].ours;
        break;
      }
    }
    const k1 = j;
    r.writeIn = next((x) => x.k === 'E' && x.id === SYS.write);
    for (let k = k1; k < j; k++) if (ev[k].k === 'E') between.after.set(ev[k].id, (between.after.get(ev[k].id) ?? 0) + 1);
    r.writeOut = next((x) => x.k === 'X' && x.id === SYS.write);
    // The greeting: the server's data segment, synfin's wake-up, the upstream read, the TUN write.
    r.data = next((x) => x.k === 'T' && x.dev === 's' && x.len > 52);
    const k2 = j;
    r.dataPoll = next((x) => x.k === 'X' && POLLS.has(x.id));
    r.dataRead = next((x) => x.k === 'X' && x.id === SYS.read && x.ret > 0);
    r.dataWriteIn = next((x) => x.k === 'E' && x.id === SYS.write);
    r.dataWriteOut = next((x) => x.k === 'X' && x.id === SYS.write);
    for (let k = k2; k < j; k++) if (ev[k].k === 'S' && r.dataWake === undefined && ev[k].t <= (r.dataPoll ?? Infinity)) r.dataWake = ev[k].t;
    rows.push(r);
    lastSyn = -1;
  }
  // The thread's periods off the CPU (switched out → switched in): an interval's time on the
  // CPU is its length less these, a figure the other load on the machine moves much less.
  const offFrom = [];
  const offTo = [];
  let out = -1;
  for (const e of ev) {
    if (e.k === 'O') out = e.t;
    else if (e.k === 'S' && out >= 0) {
      offFrom.push(out);
      offTo.push(e.t);
      out = -1;
    }
  }
  const offIn = (a, b) => {
    let lo = 0;
    let hi = offTo.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (offTo[mid] <= a) lo = mid + 1;
      else hi = mid;
    }
    let off = 0;
    for (let k = lo; k < offFrom.length && offFrom[k] < b; k++) off += Math.min(b, offTo[k]) - Math.max(a, offFrom[k]);
    return off;
  };
  const iv = (name, a, b) => {
    const rs = rows.filter((r) => r[a] !== undefined && r[b] !== undefined);
    const xs = rs.map((r) => r[b] - r[a]);
    const on = rs.map((r) => r[b] - r[a] - offIn(r[a], r[b]));
    return `| ${name} | ${xs.length} | ${pct(xs, 50).toFixed(1)} | ${pct(xs, 99).toFixed(1)} | ${pct(on, 50).toFixed(1)} | ${pct(on, 99).toFixed(1)} |`;
  };
  const counts = (m) => [...m].sort((a, b) => b[1] - a[1]).map(([id, n]) => `${id}×${(n / rows.length).toFixed(2)}`).join(' ');
  return [
    '',
    `syscall trace of synfin's main thread (bpftrace), ${rows.length} connections anchored on the upstream connect(2) (µs)`,
    '',
    '| interval | samples | p50 | p99 | on the CPU p50 | on the CPU p99 |',
    '|---|--:|--:|--:|--:|--:|',
    iv('SYN into the TUN device → synfin switched in (when it slept)', 'syn', 'wake'),
    iv('SYN into the TUN device → epoll returns', 'syn', 'poll'),
    iv('epoll returns → the TUN read with the SYN returns', 'poll', 'read'),
    iv('TUN read returns → socket(2), or connect(2) with a socket made ahead (JavaScript before the dial)', 'read', 'socketOrConnect'),
    iv('socket(2) → connect(2) enters (socket, TCP_NODELAY; dials that made their socket)', 'socket', 'connectIn'),
    iv('TUN read returns → connect(2) enters', 'read', 'connectIn'),
    iv('connect(2) enters → the upstream SYN leaves', 'connectIn', 'upSyn'),
    iv('connect(2) enters → returns', 'connectIn', 'connectOut'),
    iv('connect(2) returns → the SYN-ACK\'s TUN write enters (TCP_INFO, what else is listed below, JavaScript)', 'connectOut', 'writeIn'),
    iv('the SYN-ACK\'s TUN write (enters → returns)', 'writeIn', 'writeOut'),
    iv('SYN into the TUN device → the SYN-ACK\'s TUN write returns', 'syn', 'writeOut'),
    iv('greeting leaves the server → synfin switched in (when it slept)', 'data', 'dataWake'),
    iv('greeting leaves the server → epoll returns', 'data', 'dataPoll'),
    iv('epoll returns → the upstream read returns', 'dataPoll', 'dataRead'),
    iv('upstream read returns → the greeting\'s TUN write enters (JavaScript)', 'dataRead', 'dataWriteIn'),
    iv('greeting leaves the server → its TUN write returns', 'data', 'dataWriteOut'),
    '',
    `upstream handshake completed (SYN-SENT → ESTABLISHED) before connect(2) returned: ${rows.filter((r) => r.established !== undefined && r.established <= r.connectOut).length} of ${rows.length}, on synfin's thread: ${rows.filter((r) => r.establishedOurs).length}; after: ${rows.filter((r) => r.established !== undefined && r.established > r.connectOut).length}`,
    '',
    `system calls per connection (number×count) between the SYN's read and connect(2): ${counts(between.before)}; between connect(2)'s return and the SYN-ACK's write: ${counts(between.after)}; closes there of the previous connection's upstream socket: ${(closesOfPrev / rows.length).toFixed(2)} per connection`,
  ];
}
