// The benchmark's network: four namespaces made for one run, all removed at the end.
//
//   [kcli] 198.19.101.1 ──veth── 198.19.101.2 [srv]                        kernel baseline
//   [scli] 198.18.103.1 ══TUN══▶ synfin in [sfn] 198.19.102.1 ──veth── 198.19.102.2 [srv]   synfin path
//   [hcli] 198.19.106.1 ──veth── 198.19.106.2 haproxy in [sfn] 198.19.102.1 ──veth── 198.19.102.2 [srv]   haproxy relay
//   [lcli] 198.19.104.1 ──veth── [lrt] router ──veth── 198.19.105.2 [srv]                 kernel, impaired
//   [lsc]  198.19.107.1 ──veth── [scli] router ══TUN══▶ synfin ... [srv]                  synfin, impaired
//
// Clients in kcli reach the servers in srv over a veth pair. In scli the only route is synfin's TUN
// device: clients there dial 198.18.103.2 and synfin (running in sfn, its device moved into scli)
// maps 198.18.103.0/24 to 198.19.102.2 keeping the port, so its upstream sockets cross a veth pair
// just as the baseline's do. The relay baseline (haproxy in TCP mode, one thread) runs in synfin's
// namespace: its client leg is a veth pair from hcli and its upstream leg the very veth pair that
// synfin's upstream sockets use. Addresses come from the benchmarking range 198.18.0.0/15 (RFC 2544).
import { killAllDaemons, runSync, tryRunSync } from './proc.js';

export const ADDR = {
  kernelClient: '198.19.101.1',
  kernelServer: '198.19.101.2',
  synfinUpstream: '198.19.102.1',
  synfinServer: '198.19.102.2',
  tunClient: '198.18.103.1',
  /** What clients in scli dial: mapped by synfin to synfinServer. */
  tunTarget: '198.18.103.2',
  tunNet: '198.18.103.0/24',
  // The loss workload's kernel baseline goes through a router namespace (see addRoutedPath).
  routedClient: '198.19.104.1',
  routerClientSide: '198.19.104.2',
  routerServerSide: '198.19.105.1',
  routedServer: '198.19.105.2',
  haproxyClient: '198.19.106.1',
  /** What clients in hcli dial: haproxy's frontend in sfn, relaying to synfinServer on the same port. */
  haproxyFront: '198.19.106.2',
  // The loss workload's synfin path: a client in lsc routed through scli (the impairer) into the TUN.
  routedSynfinClient: '198.19.107.1',
  synfinRouterSide: '198.19.107.2',
};

/** Client-side ephemeral ports: narrow, so 4-tuples come back within seconds (with tcp_tw_reuse). */
export const CLIENT_PORT_RANGE = [40000, 59999];

function rand(n) {
  let s = '';
  while (s.length < n) s += Math.random().toString(36).slice(2);
  return s.slice(0, n);
}

export class Topology {
  constructor() {
    const tag = `${process.pid.toString(36)}${rand(3)}`;
    this.tag = tag;
    this.ns = {
      srv: `sfb-${tag}-srv`,
      kcli: `sfb-${tag}-kcli`,
      scli: `sfb-${tag}-scli`,
      sfn: `sfb-${tag}-sfn`,
      hcli: `sfb-${tag}-hcli`,
    };
    // Interface names ≤ 15 bytes.
    this.dev = {
      kc: `sfb${tag}kc`, ks: `sfb${tag}ks`, uc: `sfb${tag}uc`, us: `sfb${tag}us`, tun: `sfb${tag}t`,
      lc: `sfb${tag}lc`, la: `sfb${tag}la`, lb: `sfb${tag}lb`, ls: `sfb${tag}ls`,
      hc: `sfb${tag}hc`, hs: `sfb${tag}hs`, sc: `sfb${tag}sc`, sr: `sfb${tag}sr`,
    };
    this.routed = false;
    this.created = [];
  }

  create() {
    const { ns, dev } = this;
    for (const n of Object.values(ns)) {
      runSync('ip', ['netns', 'add', n]);
      this.created.push(n);
      runSync('ip', ['-n', n, 'link', 'set', 'lo', 'up']);
    }
    this.veth(dev.kc, ns.kcli, `${ADDR.kernelClient}/24`, dev.ks, ns.srv, `${ADDR.kernelServer}/24`);
    this.veth(dev.uc, ns.sfn, `${ADDR.synfinUpstream}/24`, dev.us, ns.srv, `${ADDR.synfinServer}/24`);
    this.veth(dev.hc, ns.hcli, `${ADDR.haproxyClient}/24`, dev.hs, ns.sfn, `${ADDR.haproxyFront}/24`);
    const [lo, hi] = CLIENT_PORT_RANGE;
    for (const n of [ns.kcli, ns.scli, ns.hcli]) {
      this.sysctl(n, 'net.ipv4.ip_local_port_range', `${lo} ${hi}`);
      // Reuse the client's own TIME-WAIT ports for new connections (needs timestamps; ≥ 1 s later).
      this.sysctl(n, 'net.ipv4.tcp_tw_reuse', '1');
    }
    // synfin's upstream sockets: every connection of the client's is one here too.
    this.sysctl(ns.sfn, 'net.ipv4.ip_local_port_range', '10000 65000');
    this.sysctl(ns.sfn, 'net.ipv4.tcp_tw_reuse', '1');
    for (const n of [ns.srv, ns.sfn]) {
      this.sysctl(n, 'net.core.somaxconn', '8192');
      this.sysctl(n, 'net.ipv4.tcp_max_syn_backlog', '8192');
    }
  }

  /**
   * The impaired kernel baseline: client [lcli] → router [lrt] → [srv]. The impairment (NFQUEUE on
   * the router's FORWARD chain) then sits in the middle of the path, as synfin's does, and not on
   * the sender's own egress, where holding packets would throttle it through TCP Small Queues.
   */
  addRoutedPath() {
    if (this.routed) return;
    const { ns, dev } = this;
    ns.lcli = `sfb-${this.tag}-lcli`;
    ns.lrt = `sfb-${this.tag}-lrt`;
    for (const n of [ns.lcli, ns.lrt]) {
      runSync('ip', ['netns', 'add', n]);
      this.created.push(n);
      runSync('ip', ['-n', n, 'link', 'set', 'lo', 'up']);
    }
    this.veth(dev.lc, ns.lcli, `${ADDR.routedClient}/24`, dev.la, ns.lrt, `${ADDR.routerClientSide}/24`);
    this.veth(dev.lb, ns.lrt, `${ADDR.routerServerSide}/24`, dev.ls, ns.srv, `${ADDR.routedServer}/24`);
    runSync('ip', ['-n', ns.lcli, 'route', 'add', 'default', 'via', ADDR.routerClientSide]);
    runSync('ip', ['-n', ns.srv, 'route', 'add', `${ADDR.routedClient}/32`, 'via', ADDR.routerServerSide]);
    this.sysctl(ns.lrt, 'net.ipv4.ip_forward', '1');
    const [lo, hi] = CLIENT_PORT_RANGE;
    // synfin's impaired path: lsc → scli, which forwards into synfin's TUN device (the impairer
    // sits on scli's FORWARD chain, as on lrt's for the kernel).
    ns.lsc = `sfb-${this.tag}-lsc`;
    runSync('ip', ['netns', 'add', ns.lsc]);
    this.created.push(ns.lsc);
    runSync('ip', ['-n', ns.lsc, 'link', 'set', 'lo', 'up']);
    this.veth(dev.sc, ns.lsc, `${ADDR.routedSynfinClient}/24`, dev.sr, ns.scli, `${ADDR.synfinRouterSide}/24`);
    runSync('ip', ['-n', ns.lsc, 'route', 'add', 'default', 'via', ADDR.synfinRouterSide]);
    // scli forwards only while the loss workload runs (loss() turns it on and off): the other
    // workloads' client namespace stays a plain host.
    for (const n of [ns.lcli, ns.lsc]) {
      this.sysctl(n, 'net.ipv4.ip_local_port_range', `${lo} ${hi}`);
      this.sysctl(n, 'net.ipv4.tcp_tw_reuse', '1');
    }
    this.routed = true;
  }

  veth(a, nsA, addrA, b, nsB, addrB) {
    runSync('ip', ['link', 'add', a, 'netns', nsA, 'type', 'veth', 'peer', 'name', b, 'netns', nsB]);
    runSync('ip', ['-n', nsA, 'addr', 'add', addrA, 'dev', a]);
    runSync('ip', ['-n', nsB, 'addr', 'add', addrB, 'dev', b]);
    runSync('ip', ['-n', nsA, 'link', 'set', a, 'up']);
    runSync('ip', ['-n', nsB, 'link', 'set', b, 'up']);
  }

  sysctl(ns, key, value) {
    runSync('sysctl', ['-q', '-w', `${key}=${value}`], { ns });
  }

  /** MTU of both veth pairs (the TUN device's is set by synfin's --mtu). */
  setVethMtu(mtu) {
    const { ns, dev } = this;
    runSync('ip', ['-n', ns.kcli, 'link', 'set', dev.kc, 'mtu', String(mtu)]);
    runSync('ip', ['-n', ns.srv, 'link', 'set', dev.ks, 'mtu', String(mtu)]);
    runSync('ip', ['-n', ns.sfn, 'link', 'set', dev.uc, 'mtu', String(mtu)]);
    runSync('ip', ['-n', ns.srv, 'link', 'set', dev.us, 'mtu', String(mtu)]);
    runSync('ip', ['-n', ns.hcli, 'link', 'set', dev.hc, 'mtu', String(mtu)]);
    runSync('ip', ['-n', ns.sfn, 'link', 'set', dev.hs, 'mtu', String(mtu)]);
  }

  /** nstat counters (absolute) of namespace `ns`: { name: value }. */
  nstat(ns, names) {
    const out = tryRunSync('nstat', ['-a', '-s', '-z', ...names], { ns });
    const r = Object.fromEntries(names.map((n) => [n, 0]));
    for (const line of out.split('\n')) {
      const [k, v] = line.trim().split(/\s+/);
      if (k !== undefined && k in r) r[k] = Number(v);
    }
    return r;
  }

  /** Deletes every namespace (and with them the veths and the TUN device). Idempotent, synchronous. */
  destroy() {
    for (const n of this.created) {
      // Only programs this benchmark started run in these namespaces; they are killed by pid by the
      // daemon registry first. Anything left (a grandchild) would keep nothing alive: the namespace
      // is unlinked either way.
      tryRunSync('ip', ['netns', 'del', n]);
    }
    this.created = [];
  }
}

/**
 * A Topology torn down, with every daemon the benchmark started, when the process exits (normally,
 * or on SIGINT/SIGTERM): for scripts that build one for their whole run. Returns the topology and
 * its idempotent teardown.
 */
export function topologyTornDownOnExit() {
  const topo = new Topology();
  let done = false;
  const teardown = () => {
    if (done) return;
    done = true;
    killAllDaemons();
    topo.destroy();
  };
  process.on('exit', teardown);
  for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(130));
  return { topo, teardown };
}
