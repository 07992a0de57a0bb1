// The three paths every workload is measured on, and the relay process (if any) of each:
//
//   kernel   client in kcli → veth → server in srv (one TCP connection: the machine's limit)
//   haproxy  client in hcli → veth → haproxy (TCP mode, nbthread 1) in sfn → veth → server in srv
//   synfin   client in scli → TUN → synfin in sfn → veth → server in srv
//
// A proxy carries two TCP connections where the direct path carries one, so the kernel path is
// the physical limit and haproxy is the floor of any relay on the same cores (issue 24): synfin's
// figures are reported against both.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ADDR } from './topology.js';
import { PORT } from './servers.js';
import { SynfinProcess } from './synfin.js';
import { Daemon, procCpuMs, procRssKb, sleep, tryRunSync } from './proc.js';

export const PATHS = ['kernel', 'haproxy', 'synfin'];

/** The order of the paths in round `round` (0-based): rotated each round, so no path always runs first. */
export function pathOrder(round, paths = PATHS) {
  const k = round % paths.length;
  return [...paths.slice(k), ...paths.slice(0, k)];
}

/** Where a client of `path` runs and what it dials (the server's port is kept by every relay). */
export function endpoint(topo, path) {
  if (path === 'kernel') return { ns: topo.ns.kcli, host: ADDR.kernelServer };
  if (path === 'haproxy') return { ns: topo.ns.hcli, host: ADDR.haproxyFront };
  if (path === 'synfin') return { ns: topo.ns.scli, host: ADDR.tunTarget };
  throw new Error(`unknown path ${path}`);
}

/**
 * haproxy needs two descriptors per relayed connection and derives its descriptor limit from
 * maxconn; it cannot raise the limit past the hard limit it inherits (20,000 in the containers
 * this runs in, without CAP_SYS_RESOURCE), so it relays at most this many connections at once.
 */
export const HAPROXY_MAXCONN = 9900;

/** haproxy in TCP mode, one thread, relaying every benchmark port to the server on the same port. */
export class Haproxy {
  constructor(topo, { name = 'haproxy' } = {}) {
    this.topo = topo;
    this.name = name;
    this.daemon = null;
    this.pid = 0;
    this.dir = '';
  }

  async start() {
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sfb-haproxy-'));
    const binds = Object.values(PORT)
      .map((p) => `  bind ${ADDR.haproxyFront}:${p}`)
      .join('\n');
    // No port on the server line: haproxy connects to the port the client dialled.
    const conf = `global
  nbthread 1
  maxconn ${HAPROXY_MAXCONN}
  log stderr format raw local0 warning

defaults
  mode tcp
  log global
  maxconn ${HAPROXY_MAXCONN}
  timeout connect 5s
  timeout client 1h
  timeout server 1h

frontend relay
${binds}
  default_backend servers

backend servers
  server srv ${ADDR.synfinServer}
`;
    const file = path.join(this.dir, 'haproxy.cfg');
    fs.writeFileSync(file, conf);
    // -db: in the foreground, one process (no master): its pid is the one measured and stopped.
    this.daemon = new Daemon(this.name, 'haproxy', ['-db', '-f', file], { ns: this.topo.ns.sfn });
    this.pid = this.daemon.pid;
    const probe = String(PORT.echo);
    for (let i = 0; i < 100; i++) {
      if (this.daemon.exited) {
        const err = this.daemon.stderr.trim().slice(-1500);
        await this.stop();
        throw new Error(`haproxy exited: ${err}`);
      }
      if (tryRunSync('ss', ['-Htln', `sport = :${probe}`], { ns: this.topo.ns.sfn }).includes(probe)) return this;
      await sleep(100);
    }
    await this.stop();
    throw new Error('haproxy did not listen within 10 s');
  }

  rssKb() {
    return procRssKb(this.pid);
  }

  cpuMs(mainThread = false) {
    return procCpuMs(this.pid, mainThread);
  }

  async snapshot() {
    return { cpuMs: this.cpuMs(), counters: {}, loop: null };
  }

  async stop() {
    if (this.daemon === null) return null;
    const r = await this.daemon.stop('SIGTERM', 5000);
    this.daemon = null;
    fs.rmSync(this.dir, { recursive: true, force: true });
    return r;
  }
}

/**
 * Runs `fn(relay, endpoint)` on `path`, with a fresh relay process for it (none on the kernel
 * path), stopped afterwards. opts: { name, mtu, impair, extra } for synfin.
 */
export async function withPath(ctx, pathName, opts, fn) {
  const ep = endpoint(ctx.topo, pathName);
  if (pathName === 'kernel') return fn(null, ep);
  const relay =
    pathName === 'haproxy'
      ? new Haproxy(ctx.topo, { name: `haproxy (${opts.name})` })
      : new SynfinProcess(ctx.topo, { dist: ctx.dist, name: opts.name, mtu: opts.mtu ?? 1500, impair: opts.impair, cpuProfDir: ctx.cpuProfDir, extra: opts.extra });
  await relay.start();
  try {
    return await fn(relay, ep);
  } finally {
    const r = await relay.stop();
    const err = r?.stderr?.trim() ?? '';
    if (err !== '') ctx.log(`  ${pathName} (${opts.name}) stderr: ${err.slice(0, 500)}`);
  }
}

/**
 * Measures `fn()` on a relay: its CPU (all threads, from /proc/PID/stat) and, for synfin, the
 * event-loop delay and counter deltas over exactly that interval. Resolves
 * { result, cpuMs, loop, counters } (cpuMs null on the kernel path).
 */
export async function measured(relay, counters, fn) {
  if (relay === null) return { result: await fn(), cpuMs: null, loop: null, counters: {} };
  const before = await relay.snapshot(counters);
  const result = await fn();
  const after = await relay.snapshot(counters);
  const delta = {};
  for (const [k, v] of Object.entries(after.counters)) {
    const d = v - (before.counters[k] ?? 0);
    if (d !== 0) delta[k] = d;
  }
  return { result, cpuMs: after.cpuMs - before.cpuMs, loop: after.loop, counters: delta };
}
