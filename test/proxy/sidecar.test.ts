/**
 * The sidecar topology: the app and synfin share one network namespace (a Kubernetes pod).
 * deploy/sidecar-routing.sh makes the TUN device (owned by synfin's uid, up) and sends the app's
 * TCP (another uid) through it, while synfin's own upstream sockets and connections that come in
 * from outside keep the ordinary routes (by uid, and by a conntrack mark); a server sits outside
 * the pod, behind a veth. synfin runs as uid 10477 with an empty capability set, as in
 * deploy/kubernetes/sidecar.yaml: attaching to that device needs none.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { destroyAllNetns, NetNs, uniqueIfName } from '../helpers/netns.js';
import { describeIfTun } from '../helpers/root.js';
import { metricValue } from '../helpers/synfin-env.js';
import { WITH_OPEN_TUN_NODE } from '../helpers/tun-node.js';

const ROOT = path.join(import.meta.dirname, '../..');
const BIN = path.join(ROOT, 'bin/synfin.js');
const ROUTING = path.join(ROOT, 'deploy/sidecar-routing.sh');
const TW_POKE = path.join(import.meta.dirname, 'tw-poke.py');
const APP_UID = '65534';
/** synfin's own uid, as in the container image; it runs with no capability at all. */
const SYNFIN_UID = '10477';

interface Row {
  state: string;
  appState: string;
  appStateSource: string;
  appProcess: unknown;
  appProcessSource: string;
  client: string;
  destination: string;
  upstream: { local: string; remote: string } | null;
}

/** An app connection from a chosen local address and port, as the app's uid (see appConnect). */
const APP_CONNECT = `
const net = require('net');
const [la, lp, host, port, hold] = process.argv.slice(1);
const c = net.connect({ host, port: +port, localAddress: la, localPort: +lp });
c.on('connect', () => { console.log('connected'); c.write('hello'); if (hold !== 'hold') c.end(); });
c.on('data', (d) => console.log('data ' + JSON.stringify(String(d))));
c.on('error', (e) => { console.log('error ' + e.code); process.exit(0); });
c.on('close', () => process.exit(0));
process.stdin.on('data', () => c.end());
`;

describeIfTun('sidecar: app and synfin in one namespace', () => {
  let pod: NetNs;
  let srv: NetNs;
  let synfin: ChildProcess;
  let server: ChildProcess;
  let tun: string;
  let synfinErr = '';
  const n = (process.pid % 200) + 20;
  const podAddr = `10.${n}.77.1`;
  /** A second address of the pod, for app sockets bound to ports synfin or the app's server hold on podAddr. */
  const podAddr2 = `10.${n}.77.11`;
  const srvAddr = `10.${n}.77.2`;
  /** A server address outside the pod that synfin is told to --deny (the server answers there too). */
  const deniedAddr = `10.${n}.77.3`;
  const metricsPort = 19_000 + (process.pid % 1000);
  const base = `http://${podAddr}:${metricsPort}`;

  const inPod = (args: string[]) => pod.exec(args[0]!, args.slice(1));
  const asApp = (args: string[]) => pod.exec('setpriv', [`--reuid=${APP_UID}`, `--regid=${APP_UID}`, '--clear-groups', ...args]);
  const api = async <T>(p: string): Promise<T> => JSON.parse((await inPod(['curl', '-sS', `${base}${p}`])).stdout) as T;
  const scrape = async (): Promise<string> => (await inPod(['curl', '-sS', `${base}/metrics`])).stdout;
  let counters = 0;
  /**
   * Counts the TCP packets matching `match` (an nft expression) that the kernel sends into the
   * device from now on (a postrouting rule in a table of the test's own); returns the reader.
   */
  const tunTcpCounter = (match: string): (() => number) => {
    const name = `c${counters++}`;
    pod.execSync('nft', ['add', 'counter', 'inet', 'sftest', name]);
    pod.execSync('nft', [`add rule inet sftest out oifname "${tun}" meta l4proto tcp ${match} counter name ${name}`]);
    return () => {
      const out = JSON.parse(pod.execSync('nft', ['-j', 'list', 'counter', 'inet', 'sftest', name])) as { nftables: Array<{ counter?: { packets: number } }> };
      return out.nftables.find((e) => e.counter !== undefined)!.counter!.packets;
    };
  };
  /** An app process (APP_UID) connecting from la:lp to host:port; 'hold' keeps it open until stdin. */
  const appConnect = (la: string, lp: number, host: string, port: number, hold = false): ChildProcess =>
    spawn(
      'ip',
      ['netns', 'exec', pod.name, 'setpriv', `--reuid=${APP_UID}`, `--regid=${APP_UID}`, '--clear-groups', process.execPath, '-e', APP_CONNECT, la, String(lp), host, String(port), hold ? 'hold' : ''],
      { stdio: ['pipe', 'pipe', 'pipe'] },
    );
  const output = (child: ChildProcess): Promise<string> =>
    new Promise((resolve) => {
      let out = '';
      child.stdout?.on('data', (d) => (out += d));
      child.on('exit', () => resolve(out));
    });
  const waitFor = async <T>(what: string, probe: () => Promise<T | null>, ms = 15_000): Promise<T> => {
    const deadline = Date.now() + ms;
    for (;;) {
      const v = await probe();
      if (v !== null) return v;
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };

  beforeAll(async () => {
    pod = NetNs.create('pod');
    srv = NetNs.create('srv');
    const vp = uniqueIfName('vp');
    const vs = uniqueIfName('vs');
    pod.ip(['link', 'add', vp, 'type', 'veth', 'peer', 'name', vs]);
    pod.ip(['link', 'set', vs, 'netns', srv.name]);
    pod.addAddress(vp, `${podAddr}/24`);
    pod.addAddress(vp, `${podAddr2}/24`);
    pod.linkUp(vp);
    srv.addAddress(vs, `${srvAddr}/24`);
    srv.addAddress(vs, `${deniedAddr}/24`);
    srv.linkUp(vs);
    // HTTP on 8080 and a plain TCP server on 9000 that closes when its peer does, on every address.
    server = srv.spawn(process.execPath, [
      '-e',
      `require('http').createServer((q,s)=>{if(q.url==='/close'){s.writeHead(200,{connection:'close'});s.end('bye\\n')}else s.end('hello from outside\\n')}).listen(8080);` +
        `require('net').createServer((c)=>{c.on('data',(d)=>c.write(d));c.on('error',()=>{})}).listen(9000)`,
    ]);
    tun = uniqueIfName('sfsc');
    // No port exemptions: inbound connections are recognised by conntrack.
    const routed = await inPod([ROUTING, '--tun', tun, '--uid', SYNFIN_UID, '--no-ipv6']);
    expect(routed.code, routed.stderr).toBe(0);
    pod.execSync('nft', ['-f', '-'], { input: 'table inet sftest {\n chain out {\n  type filter hook postrouting priority 100; policy accept;\n }\n}\n' });
    // An empty capability set: nothing inheritable or ambient, an empty bounding set, so neither
    // synfin nor anything it could exec can hold a capability. /dev/net/tun as a container gets it
    // (0666), whatever the host's node says.
    synfin = pod.spawn(WITH_OPEN_TUN_NODE[0]!, [
      ...WITH_OPEN_TUN_NODE.slice(1),
      'setpriv',
      `--reuid=${SYNFIN_UID}`,
      `--regid=${SYNFIN_UID}`,
      '--clear-groups',
      '--inh-caps=-all',
      '--bounding-set=-all',
      '--',
      process.execPath,
      BIN,
      'run',
      '--tun',
      tun,
      '--listen',
      `${podAddr}:${metricsPort}`,
      '--api-addresses',
      'all',
      '--deny',
      `${deniedAddr}/32`,
      '--msl',
      '0.5',
      '--log-level',
      'info',
    ]);
    synfin.stderr?.on('data', (d) => (synfinErr += d));
    synfin.stdout?.on('data', (d) => (synfinErr += d));
    // Ready when /readyz answers (from inside the pod: loopback stays local).
    const deadline = Date.now() + 20_000;
    for (;;) {
      const r = await inPod(['curl', '-s', '-o', '/dev/null', '-w', '%{http_code}', `${base}/readyz`]);
      if (r.stdout === '200') break;
      if (Date.now() > deadline) throw new Error(`synfin never became ready in the pod: ${synfinErr}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }, 60_000);

  afterAll(() => {
    synfin?.kill('SIGKILL');
    server?.kill('SIGKILL');
    destroyAllNetns();
  });

  it("the app's connections reach the server outside through synfin, without a loop", async () => {
    const before = await api<{ count: number }>('/api/connections');
    expect(before.count).toBe(0);
    const m0 = await scrape();
    const opened0 = metricValue(m0, 'synfin_tcp_connections_opened_total');
    for (let i = 0; i < 5; i++) {
      const r = await asApp(['curl', '-sS', '--max-time', '10', `http://${srvAddr}:8080/`]);
      expect(r.stderr).toBe('');
      expect(r.stdout).toBe('hello from outside\n');
    }
    const m1 = await scrape();
    // Exactly one userspace connection per app connection: synfin's own dials did not come back
    // into the TUN device (a loop would open more).
    expect(metricValue(m1, 'synfin_tcp_connections_opened_total') - opened0).toBe(5);
    expect(metricValue(m1, 'synfin_upstream_connect_duration_seconds_count', { result: 'ok' })).toBe(5);
  }, 60_000);

  it("connections of synfin's own uid bypass the device", async () => {
    const m0 = await scrape();
    const r = await inPod(['setpriv', `--reuid=${SYNFIN_UID}`, `--regid=${SYNFIN_UID}`, '--clear-groups', 'curl', '-sS', '--max-time', '10', `http://${srvAddr}:8080/`]);
    expect(r.stdout).toBe('hello from outside\n');
    const m1 = await scrape();
    expect(metricValue(m1, 'synfin_tcp_connections_opened_total')).toBe(metricValue(m0, 'synfin_tcp_connections_opened_total'));
  }, 30_000);

  it('synfin attached to the device with no capability: every thread has CapEff and CapPrm 0, and it changed nothing', async () => {
    const pid = synfin.pid!;
    const threads = fs.readdirSync(`/proc/${pid}/task`);
    expect(threads.length).toBeGreaterThan(1);
    for (const tid of threads) {
      const status = fs.readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8');
      expect(/^CapEff:\s*(\S+)$/m.exec(status)?.[1], `thread ${tid}`).toBe('0000000000000000');
      expect(/^CapPrm:\s*(\S+)$/m.exec(status)?.[1], `thread ${tid}`).toBe('0000000000000000');
    }
    expect(fs.readFileSync(`/proc/${pid}/status`, 'utf8')).toMatch(new RegExp(`^Uid:\\s+${SYNFIN_UID}\\s`, 'm'));
    expect(synfinErr).toMatch(/"deviceChanges":\[\],"capabilities":\[\],"msg":"synfin ready"/);
  });

  for (const which of ['8080', 'metrics'] as const) {
    it(`an app socket bound to local port ${which} and connecting out still goes through synfin: --deny refuses it, and an allowed one is in /api/connections`, async () => {
      const lp = which === '8080' ? 8080 : metricsPort;
      const fromPort = tunTcpCounter(`ip saddr ${podAddr2} tcp sport ${lp}`);
      // Denied: synfin answers the SYN with ICMP administratively prohibited. Without the device
      // in the way the server (listening on deniedAddr too) would have accepted it.
      const denied = await output(appConnect(podAddr2, lp, deniedAddr, 8080));
      expect(denied.trim()).toBe('error EHOSTUNREACH');
      // Its SYN went into the device, not out of the pod.
      expect(fromPort()).toBeGreaterThan(0);
      // Allowed: the connection is one of synfin's, from podAddr2:lp.
      const app = appConnect(podAddr2, lp, srvAddr, 9000, true);
      const done = output(app);
      try {
        const row = await waitFor('the app connection in /api/connections', async () => {
          const rows = (await api<{ connections: Row[] }>('/api/connections')).connections;
          return rows.find((r) => r.client === `${podAddr2}:${lp}`) ?? null;
        });
        expect(row.destination).toBe(`${srvAddr}:9000`);
        expect(row.upstream?.local.startsWith(`${podAddr}:`)).toBe(true);
      } finally {
        app.stdin?.end('x');
      }
      expect(await done).toContain('data "hello"');
    }, 30_000);
  }

  it("connections from outside to the app's server and to synfin's port are answered by the ordinary route, not synfin", async () => {
    const appServer = spawn(
      'ip',
      ['netns', 'exec', pod.name, 'setpriv', `--reuid=${APP_UID}`, `--regid=${APP_UID}`, '--clear-groups', process.execPath, '-e',
        `require('http').createServer((q,s)=>s.end('hello from the app\\n')).listen(8080,'${podAddr}')`],
      { stdio: 'ignore' },
    );
    try {
      const opened0 = metricValue(await scrape(), 'synfin_tcp_connections_opened_total');
      const fromAppServer = tunTcpCounter('tcp sport 8080');
      const fromMetricsPort = tunTcpCounter(`tcp sport ${metricsPort}`);
      const r = await waitFor('the app server from outside', async () => {
        const x = await srv.exec('curl', ['-sS', '--max-time', '5', `http://${podAddr}:8080/`]);
        return x.code === 0 ? x : null;
      });
      expect(r.stdout).toBe('hello from the app\n');
      const m = await srv.exec('curl', ['-sS', '--max-time', '5', `http://${podAddr}:${metricsPort}/metrics`]);
      expect(m.code, m.stderr).toBe(0);
      expect(m.stdout).toContain('synfin_tcp_connections_opened_total');
      // Neither reply went into the device, and synfin proxied nothing.
      expect(fromAppServer()).toBe(0);
      expect(fromMetricsPort()).toBe(0);
      expect(metricValue(await scrape(), 'synfin_tcp_connections_opened_total')).toBe(opened0);
    } finally {
      appServer.kill('SIGKILL');
    }
  }, 30_000);

  it('a connection opened from inside never inherits the mark of an inbound connection with the same addresses and ports', async () => {
    // A cooperating outside host sends a SYN from port X to the app's port 8080, and the app's
    // listener (SO_REUSEPORT, accept queue full) drops it: conntrack keeps the entry, marked as
    // inbound, in SYN_SENT. The app then connects from 8080 (SO_REUSEPORT too) to X: its SYN is
    // the reply direction of that entry, a simultaneous open conntrack accepts. Were the mark
    // kept, that connection would leave the pod directly, past --deny and synfin; the outbound
    // chain clears the mark on a bare SYN from any uid but synfin's, so it goes through synfin,
    // whose dial to X finds no listener there (refused).
    const x = 41_000 + (process.pid % 1000);
    const app = `
import socket, sys, time
def s():
    k = socket.socket(); k.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); k.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1); return k
l = s(); l.bind(('${podAddr}', 8080)); l.listen(0)
print('listening', flush=True)
sys.stdin.readline()
c = s(); c.bind(('${podAddr}', 8080)); c.settimeout(5)
try:
    c.connect(('${srvAddr}', ${x})); print('connected', flush=True)
except OSError as e:
    print('error', e.errno, flush=True)
`;
    const appProc = spawn('ip', ['netns', 'exec', pod.name, 'setpriv', `--reuid=${APP_UID}`, `--regid=${APP_UID}`, '--clear-groups', '/usr/bin/python3', '-c', app], { stdio: ['pipe', 'pipe', 'pipe'] });
    let appOut = '';
    appProc.stdout?.on('data', (d) => (appOut += d));
    const appDone = new Promise<void>((r) => appProc.on('exit', () => r()));
    const outside: ChildProcess[] = [];
    try {
      await waitFor('the app listener', async () => (appOut.includes('listening') ? true : null));
      // One connection fills the accept queue (backlog 0: one queued), the next SYN is dropped.
      outside.push(srv.spawn(process.execPath, ['-e', `require('net').connect({host:'${podAddr}',port:8080}).on('error',()=>{});setInterval(()=>{},1e9)`]));
      await new Promise((r) => setTimeout(r, 500));
      const synSender = srv.spawn(process.execPath, ['-e',
        `const c=require('net').connect({host:'${podAddr}',port:8080,localPort:${x}});c.on('connect',()=>console.log('outside connected '+c.remoteAddress+':'+c.remotePort));c.on('error',(e)=>console.log('outside '+e.code));setInterval(()=>{},1e9)`]);
      outside.push(synSender);
      let outsideOut = '';
      synSender.stdout?.on('data', (d) => (outsideOut += d));
      await waitFor('the marked SYN_SENT entry', async () => {
        const ct = await inPod(['cat', '/proc/net/nf_conntrack']);
        return ct.stdout.split('\n').some((l) => l.includes('SYN_SENT') && l.includes(`sport=${x} dport=8080`) && /mark=(\d+)/.exec(l)?.[1] === String(0x100000)) ? true : null;
      });
      const refused0 = metricValue(await scrape(), 'synfin_upstream_connect_duration_seconds_count', { result: 'refused' });
      appProc.stdin?.end('go\n');
      await appDone;
      // Through synfin: its dial to X was refused, and so was the app (no direct handshake).
      expect(appOut).toMatch(/error 111/);
      expect(metricValue(await scrape(), 'synfin_upstream_connect_duration_seconds_count', { result: 'refused' })).toBe(refused0 + 1);
      expect(outsideOut).not.toMatch(/outside connected/);
    } finally {
      appProc.kill('SIGKILL');
      for (const o of outside) o.kill('SIGKILL');
    }
  }, 30_000);

  it("the kernel's own packets for synfin's upstream connections (TIME-WAIT ACK, RST for no socket) never enter the device", async () => {
    // synfin's upstream socket closes first (the app ends, synfin half-closes upstream, the
    // server closes back), so it is the one in TIME-WAIT.
    const appToServer = tunTcpCounter('tcp dport 9000');
    const app = appConnect(podAddr2, 0, srvAddr, 9000, true);
    const done = output(app);
    const row = await waitFor('the connection in /api/connections', async () => {
      const rows = (await api<{ connections: Row[] }>('/api/connections')).connections;
      return rows.find((r) => r.destination === `${srvAddr}:9000` && r.upstream !== null) ?? null;
    });
    const upstreamPort = Number(row.upstream!.local.split(':')[1]);
    app.stdin?.end('x');
    await done;
    await waitFor("synfin's upstream socket in TIME-WAIT", async () => {
      const ss = await inPod(['ss', '-Htn', 'state', 'time-wait', 'src', `${podAddr}:${upstreamPort}`]);
      return ss.stdout.trim() !== '' ? true : null;
    });
    // The counters see the device: the app's own packets to the server went in.
    expect(appToServer()).toBeGreaterThan(0);
    const fromUpstreamSocket = tunTcpCounter(`tcp sport ${upstreamPort}`);
    const poke = await srv.exec('python3', [TW_POKE, srvAddr, '9000', podAddr, String(upstreamPort)]);
    // Both replies came out of the pod's real interface...
    expect(poke.stdout, poke.stderr).toMatch(/^ack \d+ \d+\nrst \d+\n$/);
    // ...and none went into the device.
    expect(fromUpstreamSocket()).toBe(0);
  }, 30_000);

  it("a leaking app's sockets are read from the kernel: appState CLOSE_WAIT, source kernel; its process (another uid) is not_permitted to synfin without capabilities", async () => {
    const script =
      `const net=require('net');const s=[];for(let i=0;i<3;i++){const c=net.connect({host:'${srvAddr}',port:8080,allowHalfOpen:true},` +
      `()=>c.write('GET /close HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n'));c.on('data',()=>{});c.on('error',()=>{});s.push(c)}setInterval(()=>{},1e9)`;
    const leak = spawn('ip', ['netns', 'exec', pod.name, 'setpriv', `--reuid=${APP_UID}`, `--regid=${APP_UID}`, '--clear-groups', process.execPath, '-e', script], { stdio: 'ignore' });
    try {
      const deadline = Date.now() + 15_000;
      let rows: Row[] = [];
      for (;;) {
        rows = (await api<{ connections: Row[] }>('/api/connections?waitingOn=app')).connections;
        if (rows.length === 3 && rows.every((r) => r.state === 'FIN_WAIT_2' && r.appState === 'CLOSE_WAIT' && r.appProcessSource !== 'pending')) break;
        if (Date.now() > deadline) throw new Error(`leak not seen: ${JSON.stringify(rows)}`);
        await new Promise((r) => setTimeout(r, 100));
      }
      for (const row of rows) {
        expect(row.appStateSource).toBe('kernel');
        expect(row.client.startsWith(`${podAddr}:`)).toBe(true);
        // One pid namespace here, but the app's uid is not synfin's, and synfin holds no capability.
        expect(row.appProcess).toBeNull();
        expect(row.appProcessSource).toBe('not_permitted');
      }
    } finally {
      leak.kill('SIGKILL');
    }
  }, 30_000);

  it('--remove takes the routing away again', async () => {
    const r = await inPod([ROUTING, '--tun', tun, '--uid', SYNFIN_UID, '--no-ipv6', '--remove']);
    expect(r.code, r.stderr).toBe(0);
    expect(pod.ip(['rule', 'show'])).not.toMatch(/ipproto tcp lookup/);
  });
});
