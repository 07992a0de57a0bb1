/**
 * Least privilege (issue 20, item 7): `synfin run` changes only what differs on its device, and
 * once the device is ready it holds no capability in any thread (src/tun/caps.ts: drop in the main
 * thread, no_new_privs, re-exec with the TUN fd). Root tests run the real CLI in namespaces and
 * read /proc/<pid>/task/<tid>/status of every thread; the rest are unit tests.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  capabilitiesNeeded,
  capabilityNames,
  holdsCapabilities,
  INHERITED_CHANGES_ENV,
  INHERITED_TUN_FD_ENV,
  parseCapabilities,
  takeInheritedTun,
} from '../../src/tun/caps.js';
import { configureDevice } from '../../src/tun/configure.js';
import { Tun, type LinkState } from '../../src/tun/tun.js';
import { destroyAllNetns, NetNs, uniqueIfName } from '../helpers/netns.js';
import { describeIfTun } from '../helpers/root.js';
import { metricValue } from '../helpers/synfin-env.js';
import { WITH_OPEN_TUN_NODE } from '../helpers/tun-node.js';

const ROOT = path.join(import.meta.dirname, '../..');
const BIN = path.join(ROOT, 'bin/synfin.js');
const SYNFIN_UID = '10477';

const STATUS = `Name:\tnode
CapInh:\t0000000000000000
CapPrm:\t0000000000001000
CapEff:\t0000000000001000
CapBnd:\t000001ffffffffff
CapAmb:\t0000000000001000
NoNewPrivs:\t0
`;

describe('capability sets', () => {
  it('parseCapabilities: reads every cap line', () => {
    const c = parseCapabilities(STATUS);
    expect(c).toEqual({ inheritable: 0n, permitted: 0x1000n, effective: 0x1000n, bounding: 0x1ffffffffffn, ambient: 0x1000n });
    expect(capabilityNames(c.effective)).toEqual(['net_admin']);
    expect(capabilityNames(0x400n | 0x2000n)).toEqual(['net_bind_service', 'net_raw']);
  });

  it('holdsCapabilities: counts every set but the bounding set', () => {
    expect(holdsCapabilities(parseCapabilities(STATUS))).toBe(true);
    // An ordinary non-root process: a full bounding set and nothing else.
    expect(holdsCapabilities({ inheritable: 0n, permitted: 0n, effective: 0n, bounding: 0x1ffffffffffn, ambient: 0n })).toBe(false);
    expect(holdsCapabilities({ inheritable: 0x1000n, permitted: 0n, effective: 0n, bounding: 0n, ambient: 0n })).toBe(true);
    // What an option needs does not count.
    const bind = { inheritable: 0x400n, permitted: 0x400n, effective: 0x400n, bounding: 0x400n, ambient: 0x400n };
    expect(holdsCapabilities(bind, ['net_bind_service'])).toBe(false);
    expect(holdsCapabilities(bind)).toBe(true);
    expect(holdsCapabilities({ ...bind, permitted: 0x1400n }, ['net_bind_service'])).toBe(true);
  });

  it('capabilitiesNeeded: only a privileged listen port keeps one', () => {
    expect(capabilitiesNeeded(9477, 1024)).toEqual([]);
    expect(capabilitiesNeeded(0, 1024)).toEqual([]);
    expect(capabilitiesNeeded(80, 1024)).toEqual(['net_bind_service']);
    // Docker and Kubernetes set ip_unprivileged_port_start=0 in containers.
    expect(capabilitiesNeeded(80, 0)).toEqual([]);
  });

  it('takeInheritedTun: reads and removes the hand over', () => {
    const env: NodeJS.ProcessEnv = { [INHERITED_TUN_FD_ENV]: '23', [INHERITED_CHANGES_ENV]: 'address 198.18.0.1/15\nup', PATH: '/bin' };
    expect(takeInheritedTun(env)).toEqual({ fd: 23, changes: ['address 198.18.0.1/15', 'up'] });
    expect(env).toEqual({ PATH: '/bin' });
    expect(takeInheritedTun(env)).toBeNull();
    expect(() => takeInheritedTun({ [INHERITED_TUN_FD_ENV]: '1' })).toThrow(/not a file descriptor/);
  });
});

describe('synfin run --help', () => {
  it('help says which capabilities are needed and what is kept', async () => {
    const { spawnSync } = await import('node:child_process');
    const r = spawnSync(process.execPath, [BIN, 'run', '--help'], { encoding: 'utf8' });
    expect(r.status).toBe(0);
    const text = r.stdout.replace(/\s+/g, ' ');
    expect(text).toMatch(/Capabilities: creating the TUN device, or changing it .* needs CAP_NET_ADMIN/);
    expect(text).toMatch(/already in the state asked for needs none/);
    expect(text).toMatch(/gives up every capability .* keeps only CAP_NET_BIND_SERVICE, and only when --listen is on a port below/);
  });
});

/** A Tun stand-in recording the ip changes configureDevice asks for. */
function fakeTun(state: LinkState, routes: string[]): { tun: Tun; calls: string[] } {
  const calls: string[] = [];
  const tun = {
    linkState: () => state,
    hasRoute: (r: string) => routes.includes(r),
    setMtu: (m: number) => calls.push(`mtu ${m}`),
    addAddress: (a: string) => calls.push(`addr ${a}`),
    up: () => calls.push('up'),
    addRoute: (r: string) => calls.push(`route ${r}`),
  } as unknown as Tun;
  return { tun, calls };
}

describe('configureDevice', () => {
  it('configureDevice: device already in the state changes nothing', () => {
    const { tun, calls } = fakeTun({ up: true, mtu: 1400, addresses: ['198.18.0.1/15', 'fd00::1/64'] }, ['198.18.0.0/15', 'default']);
    const changes = configureDevice(tun, { mtu: 1400, addresses: ['198.18.0.1/15', 'fd00:0:0::1/64'], routes: ['198.18.0.0/15', 'default'] });
    expect(changes).toEqual([]);
    expect(calls).toEqual([]);
  });

  it('configureDevice: no options an up device changes nothing', () => {
    const { tun, calls } = fakeTun({ up: true, mtu: 1500, addresses: [] }, []);
    expect(configureDevice(tun, { mtu: null, addresses: [], routes: [] })).toEqual([]);
    expect(calls).toEqual([]);
  });

  it('configureDevice: changes only what differs', () => {
    const { tun, calls } = fakeTun({ up: false, mtu: 1500, addresses: ['198.18.0.1/15'] }, ['198.18.0.0/15']);
    const changes = configureDevice(tun, { mtu: 1400, addresses: ['198.18.0.1/15', '10.9.0.1/24'], routes: ['198.18.0.0/15', '10.9.0.0/16'] });
    expect(calls).toEqual(['mtu 1400', 'addr 10.9.0.1/24', 'up', 'route 10.9.0.0/16']);
    expect(changes).toEqual(['mtu 1400', 'address 10.9.0.1/24', 'up', 'route 10.9.0.0/16']);
  });
});

interface Proc {
  child: ChildProcess;
  out: () => string;
}

const procs: ChildProcess[] = [];
afterEach(() => {
  for (const p of procs.splice(0)) p.kill('SIGKILL');
  destroyAllNetns();
});

function start(ns: NetNs, argv: string[]): Proc {
  const child = ns.spawn(argv[0]!, argv.slice(1));
  procs.push(child);
  let out = '';
  child.stdout?.on('data', (d) => (out += d));
  child.stderr?.on('data', (d) => (out += d));
  return { child, out: () => out };
}

async function ready(ns: NetNs, p: Proc, port: number): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const r = await ns.exec('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', `http://127.0.0.1:${port}/readyz`]);
    if (r.stdout === '200') return;
    if (p.child.exitCode !== null || Date.now() > deadline) throw new Error(`synfin not ready: ${p.out()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** CapEff/CapPrm/CapInh/CapAmb of every thread of `pid`, and NoNewPrivs. */
function threadCaps(pid: number): { tid: string; eff: string; prm: string; inh: string; amb: string; nnp: string }[] {
  return fs.readdirSync(`/proc/${pid}/task`).map((tid) => {
    const s = fs.readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8');
    const f = (k: string) => new RegExp(`^${k}:\\s*(\\S+)$`, 'm').exec(s)?.[1] ?? '?';
    return { tid, eff: f('CapEff'), prm: f('CapPrm'), inh: f('CapInh'), amb: f('CapAmb'), nnp: f('NoNewPrivs') };
  });
}

const ZERO = '0000000000000000';

describeIfTun('synfin run: capabilities once the device is ready', () => {
  const port = 19_500 + (process.pid % 400);

  it('run as root creating the device every thread ends with no capability same pid and traffic flows', async () => {
    const ns = NetNs.create('cap');
    const tun = uniqueIfName('sfcp');
    const server = start(ns, [process.execPath, '-e', `require('http').createServer((q,s)=>s.end('through\\n')).listen(18080,'127.0.0.1')`]);
    void server;
    const p = start(ns, [process.execPath, BIN, 'run', '--tun', tun, '--address', '198.18.0.1/15', '--route', '198.18.0.0/15', '--map', '198.18.5.5=127.0.0.1', '--listen', `127.0.0.1:${port}`, '--log-level', 'info']);
    await ready(ns, p, port);
    // The pid is the one started (the exec keeps it), and every thread of it holds nothing.
    const threads = threadCaps(p.child.pid!);
    expect(threads.length).toBeGreaterThan(4);
    for (const t of threads) expect({ tid: t.tid, eff: t.eff, prm: t.prm, inh: t.inh, amb: t.amb, nnp: t.nnp }).toEqual({ tid: t.tid, eff: ZERO, prm: ZERO, inh: ZERO, amb: ZERO, nnp: '1' });
    expect(fs.readFileSync(`/proc/${p.child.pid}/status`, 'utf8')).toMatch(/^CapBnd:\s*0000000000000000$/m);
    // The first process configured the device; the second says what was changed.
    expect(p.out()).toMatch(/"deviceChanges":\["address 198\.18\.0\.1\/15","up"\],"capabilities":\[\],"msg":"synfin ready"/);
    expect(ns.ip(['addr', 'show', 'dev', tun])).toMatch(/inet 198\.18\.0\.1\/15 .*UP|UP[\s\S]*inet 198\.18\.0\.1\/15/);
    // Real traffic through the adopted device.
    const r = await ns.exec('curl', ['-sS', '--max-time', '10', 'http://198.18.5.5:18080/']);
    expect(r.stdout, r.stderr).toBe('through\n');
    const m = await ns.exec('curl', ['-sS', `http://127.0.0.1:${port}/metrics`]);
    expect(metricValue(m.stdout, 'synfin_tcp_connections_opened_total')).toBe(1);
  }, 60_000);

  it('run as uid 10477 with ambient net admin like the image drops it once the device is up', async () => {
    const ns = NetNs.create('cap');
    const tun = uniqueIfName('sfcp');
    const p = start(ns, [...WITH_OPEN_TUN_NODE, 'setpriv', `--reuid=${SYNFIN_UID}`, `--regid=${SYNFIN_UID}`, '--clear-groups', '--inh-caps=+net_admin', '--ambient-caps=+net_admin', '--',
      process.execPath, BIN, 'run', '--tun', tun, '--address', '198.18.0.1/15', '--listen', `127.0.0.1:${port}`, '--log-level', 'info']);
    await ready(ns, p, port);
    for (const t of threadCaps(p.child.pid!)) expect([t.tid, t.eff, t.prm, t.amb, t.inh]).toEqual([t.tid, ZERO, ZERO, ZERO, ZERO]);
    expect(ns.ip(['link', 'show', 'dev', tun])).toMatch(/\bUP\b/);
  }, 60_000);

  it('run listen on a privileged port keeps only net bind service', async () => {
    const ns = NetNs.create('cap');
    ns.execSync('sh', ['-c', 'echo 1024 > /proc/sys/net/ipv4/ip_unprivileged_port_start']);
    const tun = uniqueIfName('sfcp');
    const p = start(ns, [process.execPath, BIN, 'run', '--tun', tun, '--address', '198.18.0.1/15', '--listen', '127.0.0.1:80', '--log-level', 'info']);
    await ready(ns, p, 80);
    for (const t of threadCaps(p.child.pid!)) expect([t.tid, t.eff, t.prm]).toEqual([t.tid, '0000000000000400', '0000000000000400']);
    expect(p.out()).toMatch(/"capabilities":\["net_bind_service"\]/);
  }, 60_000);

  it('run handed a tun fd while holding capabilities still ends with none', async () => {
    // _SYNFIN_TUN_FD set by someone else is no proof that the drop happened.
    const ns = NetNs.create('cap');
    const dev = Tun.open({ name: uniqueIfName('sfcp') });
    try {
      dev.moveToNetns(ns.name);
      ns.linkUp(dev.name);
      const child = spawn('ip', ['netns', 'exec', ns.name, process.execPath, BIN, 'run', '--tun', dev.name, '--listen', `127.0.0.1:${port}`, '--log-level', 'info'], {
        stdio: ['ignore', 'pipe', 'pipe', dev.fd],
        env: { ...process.env, [INHERITED_TUN_FD_ENV]: '3' },
      });
      procs.push(child);
      let out = '';
      child.stdout?.on('data', (d) => (out += d));
      child.stderr?.on('data', (d) => (out += d));
      await ready(ns, { child, out: () => out }, port);
      for (const t of threadCaps(child.pid!)) expect([t.tid, t.eff, t.prm, t.amb, t.inh]).toEqual([t.tid, ZERO, ZERO, ZERO, ZERO]);
    } finally {
      dev.close();
    }
  }, 60_000);

  it('run without capabilities on a device that is down fails saying why and changes nothing', async () => {
    const ns = NetNs.create('cap');
    const tun = uniqueIfName('sfcp');
    ns.ip(['tuntap', 'add', 'dev', tun, 'mode', 'tun', 'user', SYNFIN_UID]);
    const p = start(ns, [...WITH_OPEN_TUN_NODE, 'setpriv', `--reuid=${SYNFIN_UID}`, `--regid=${SYNFIN_UID}`, '--clear-groups', '--inh-caps=-all', '--bounding-set=-all', '--',
      process.execPath, BIN, 'run', '--tun', tun, '--listen', `127.0.0.1:${port}`]);
    const code = await new Promise<number | null>((resolve) => p.child.on('exit', (c) => resolve(c)));
    expect(code).not.toBe(0);
    expect(p.out()).toMatch(/ip link set dev \S+ up.*(Operation not permitted|RTNETLINK)/i);
    expect(ns.ip(['link', 'show', 'dev', tun])).not.toMatch(/<[^>]*\bUP\b/);
  }, 60_000);
});
