// tun-floor (bench/tools/tun-floor.c) as a path of the benchmark: started in synfin's namespace,
// its TUN device moved into the client's namespace and addressed as synfin's is, so a client there
// dials the same address (ADDR.tunTarget) through it. `withFloorOr` runs a function on it, or on
// one of bench/lib/relays.js's paths.
import { ADDR } from './topology.js';
import { endpoint, withPath } from './relays.js';
import { Daemon, procCpuMs, runSync } from './proc.js';
import { tool } from './tools.js';

/** tun-floor in synfin's namespace, its device moved into the client's, addressed as synfin's is. */
export class TunFloor {
  constructor(topo) {
    this.topo = topo;
    this.daemon = null;
    this.pid = 0;
  }

  async start() {
    const { topo } = this;
    const dev = topo.dev.tun;
    this.daemon = new Daemon('tun-floor', tool('tun-floor'), [dev, ADDR.synfinServer], { ns: topo.ns.sfn, readyLine: /^ready/ });
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

/** Runs `fn(relay, endpoint)` on path `p`: 'floor' (tun-floor), or kernel, haproxy or synfin (withPath). */
export async function withFloorOr(ctx, p, name, fn) {
  if (p !== 'floor') return withPath(ctx, p, { name }, fn);
  const relay = await new TunFloor(ctx.topo).start();
  try {
    return await fn(relay, endpoint(ctx.topo, 'synfin'));
  } finally {
    const r = await relay.stop();
    if (r.stderr.trim() !== '') ctx.log(`  tun-floor: ${r.stderr.trim().slice(0, 500)}`);
  }
}
