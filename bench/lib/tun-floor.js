// tun-floor (bench/tools/tun-floor.c), or its Node.js twin bench/tools/tun-floor.mjs, as a path of the benchmark: started in synfin's namespace,
// its TUN device moved into the client's namespace and addressed as synfin's is, so a client there
// dials the same address (ADDR.tunTarget) through it. `withFloorOr` runs a function on it, or on
// one of bench/lib/relays.js's paths.
import { ADDR } from './topology.js';
import { endpoint, withPath } from './relays.js';
import { Daemon, procCpuMs, runSync } from './proc.js';
import { BENCH_DIR, tool } from './tools.js';
import path from 'node:path';

/**
 * tun-floor in synfin's namespace, its device moved into the client's, addressed as synfin's is.
 * `js`: bench/tools/tun-floor.mjs instead, run as bench/lib/synfin.js runs synfin (the same node,
 * the same semi-space setting as the image's NODE_OPTIONS or SYNFIN_BENCH_NODE_ARGS, the same
 * `ulimit -n`), so the process is as synfin's is but for what it runs.
 */
export class TunFloor {
  constructor(topo, { js = false, options = false, extra = [] } = {}) {
    this.topo = topo;
    this.js = js;
    this.options = options;
    this.extra = extra;
    this.daemon = null;
    this.pid = 0;
  }

  async start() {
    const { topo } = this;
    const dev = topo.dev.tun;
    if (this.js) {
      const nodeArgs = (process.env.SYNFIN_BENCH_NODE_ARGS ?? '').split(' ').filter((a) => a !== '');
      if (!nodeArgs.some((a) => a.includes('semi-space-size'))) nodeArgs.unshift('--min-semi-space-size=8', '--max-semi-space-size=8');
      // exec: the daemon's pid is node's, whose CPU is measured.
      const cmd = ['ulimit -n 20000 && exec "$0" "$@"', process.execPath, ...nodeArgs, path.join(BENCH_DIR, 'tools', 'tun-floor.mjs'), dev, ADDR.synfinServer, ...(this.options ? ['--options'] : []), ...this.extra];
      this.daemon = new Daemon('tun-floor.mjs', 'sh', ['-c', ...cmd], { ns: topo.ns.sfn, readyLine: /^ready/, readyMs: 30_000 });
    } else {
      this.daemon = new Daemon('tun-floor', tool('tun-floor'), [dev, ADDR.synfinServer], { ns: topo.ns.sfn, readyLine: /^ready/ });
    }
    this.pid = this.daemon.pid;
    await this.daemon.ready;
    runSync('ip', ['-n', topo.ns.sfn, 'link', 'set', 'dev', dev, 'netns', topo.ns.scli]);
    runSync('ip', ['-n', topo.ns.scli, 'addr', 'add', `${ADDR.tunClient}/24`, 'dev', dev]);
    runSync('ip', ['-n', topo.ns.scli, 'link', 'set', dev, 'up']);
    return this;
  }

  cpuMs() {
    return procCpuMs(this.pid);
  }

  async stop() {
    // The device goes with its only descriptor. stderr: how its dials were answered.
    return this.daemon.stop('SIGTERM', 2000);
  }
}

/** A path withFloorOr runs itself: floor, floorjs, floorjsopt, or floorjs+burn=US / floorjs+touch=KB. */
export function isFloorPath(p) {
  return p === 'floor' || /^floorjs(opt)?(\+(burn|touch)=\d+)*$/.test(p);
}

/**
 * Runs `fn(relay, endpoint)` on path `p`: 'floor' (tun-floor), 'floorjs' (tun-floor.mjs),
 * 'floorjsopt' (tun-floor.mjs --options: synfin's TCP options), or kernel, haproxy or synfin (withPath).
 */
export async function withFloorOr(ctx, p, name, fn) {
  if (!isFloorPath(p)) return withPath(ctx, p, { name }, fn);
  // 'floorjs+burn=30', 'floorjs+touch=512': tun-floor.mjs's --burn/--touch experiments.
  const [base, ...extra] = p.split('+');
  const relay = await new TunFloor(ctx.topo, { js: base !== 'floor', options: base === 'floorjsopt', extra: extra.map((e) => `--${e}`) }).start();
  try {
    return await fn(relay, endpoint(ctx.topo, 'synfin'));
  } finally {
    const r = await relay.stop();
    if (r.stderr.trim() !== '') ctx.log(`  ${p === 'floor' ? 'tun-floor' : 'tun-floor.mjs'}: ${r.stderr.trim().slice(0, 500)}`);
  }
}
