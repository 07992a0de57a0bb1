/**
 * The sidecar topology: the app and synfin share one network namespace (a Kubernetes pod).
 * deploy/sidecar-routing.sh sends the app's TCP (another uid) through synfin's TUN device while
 * synfin's own upstream sockets (root here) keep the ordinary routes; a server sits outside the
 * pod, behind a veth.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { destroyAllNetns, NetNs, uniqueIfName } from '../helpers/netns.js';
import { describeIfTun } from '../helpers/root.js';
import { metricValue } from '../helpers/synfin-env.js';
import { WITH_OPEN_TUN_NODE } from '../helpers/tun-node.js';

const ROOT = path.join(import.meta.dirname, '../..');
const BIN = path.join(ROOT, 'bin/synfin.js');
const ROUTING = path.join(ROOT, 'deploy/sidecar-routing.sh');
const APP_UID = '65534';
/** synfin's own uid, as in the container image: unprivileged, with only CAP_NET_ADMIN (ambient). */
const SYNFIN_UID = '10477';

interface Row {
  state: string;
  appState: string;
  appStateSource: string;
  client: string;
}

describeIfTun('sidecar: app and synfin in one namespace', () => {
  let pod: NetNs;
  let srv: NetNs;
  let synfin: ChildProcess;
  let server: ChildProcess;
  let tun: string;
  const n = (process.pid % 200) + 20;
  const podAddr = `10.${n}.77.1`;
  const srvAddr = `10.${n}.77.2`;
  const metricsPort = 19_000 + (process.pid % 1000);

  const inPod = (args: string[]) => pod.exec(args[0]!, args.slice(1));
  const asApp = (args: string[]) => pod.exec('setpriv', [`--reuid=${APP_UID}`, `--regid=${APP_UID}`, '--clear-groups', ...args]);
  const api = async <T>(p: string): Promise<T> => JSON.parse((await inPod(['curl', '-sS', `http://127.0.0.1:${metricsPort}${p}`])).stdout) as T;

  beforeAll(async () => {
    execFileSync('npm', ['run', '--silent', 'build'], { cwd: ROOT, stdio: 'ignore' });
    pod = NetNs.create('pod');
    srv = NetNs.create('srv');
    const vp = uniqueIfName('vp');
    const vs = uniqueIfName('vs');
    pod.ip(['link', 'add', vp, 'type', 'veth', 'peer', 'name', vs]);
    pod.ip(['link', 'set', vs, 'netns', srv.name]);
    pod.addAddress(vp, `${podAddr}/24`);
    pod.linkUp(vp);
    srv.addAddress(vs, `${srvAddr}/24`);
    srv.linkUp(vs);
    server = srv.spawn(process.execPath, [
      '-e',
      `require('http').createServer((q,s)=>{if(q.url==='/close'){s.writeHead(200,{connection:'close'});s.end('bye\\n')}else s.end('hello from outside\\n')}).listen(8080,'${srvAddr}')`,
    ]);
    tun = uniqueIfName('sfsc');
    const routed = await inPod([ROUTING, '--tun', tun, '--uid', SYNFIN_UID, '--metrics-port', String(metricsPort), '--no-ipv6']);
    expect(routed.code, routed.stderr).toBe(0);
    synfin = pod.spawn(WITH_OPEN_TUN_NODE[0]!, [
      ...WITH_OPEN_TUN_NODE.slice(1),
      'setpriv',
      `--reuid=${SYNFIN_UID}`,
      `--regid=${SYNFIN_UID}`,
      '--clear-groups',
      '--inh-caps=+net_admin',
      '--ambient-caps=+net_admin',
      '--',
      process.execPath,
      BIN,
      'run',
      '--tun',
      tun,
      '--listen',
      `127.0.0.1:${metricsPort}`,
      '--msl',
      '0.5',
      '--log-level',
      'warn',
    ]);
    let synfinErr = '';
    synfin.stderr?.on('data', (d) => (synfinErr += d));
    synfin.stdout?.on('data', (d) => (synfinErr += d));
    // Ready when /readyz answers (from inside the pod: loopback stays local).
    const deadline = Date.now() + 20_000;
    for (;;) {
      const r = await inPod(['curl', '-s', '-o', '/dev/null', '-w', '%{http_code}', `http://127.0.0.1:${metricsPort}/readyz`]);
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
    const m0 = (await inPod(['curl', '-sS', `http://127.0.0.1:${metricsPort}/metrics`])).stdout;
    const opened0 = metricValue(m0, 'synfin_tcp_connections_opened_total');
    for (let i = 0; i < 5; i++) {
      const r = await asApp(['curl', '-sS', '--max-time', '10', `http://${srvAddr}:8080/`]);
      expect(r.stderr).toBe('');
      expect(r.stdout).toBe('hello from outside\n');
    }
    const m1 = (await inPod(['curl', '-sS', `http://127.0.0.1:${metricsPort}/metrics`])).stdout;
    // Exactly one userspace connection per app connection: synfin's own dials did not come back
    // into the TUN device (a loop would open more).
    expect(metricValue(m1, 'synfin_tcp_connections_opened_total') - opened0).toBe(5);
    expect(metricValue(m1, 'synfin_upstream_connect_duration_seconds_count', { result: 'ok' })).toBe(5);
  }, 60_000);

  it("connections of synfin's own uid bypass the device", async () => {
    const m0 = (await inPod(['curl', '-sS', `http://127.0.0.1:${metricsPort}/metrics`])).stdout;
    const r = await inPod(['setpriv', `--reuid=${SYNFIN_UID}`, `--regid=${SYNFIN_UID}`, '--clear-groups', 'curl', '-sS', '--max-time', '10', `http://${srvAddr}:8080/`]);
    expect(r.stdout).toBe('hello from outside\n');
    const m1 = (await inPod(['curl', '-sS', `http://127.0.0.1:${metricsPort}/metrics`])).stdout;
    expect(metricValue(m1, 'synfin_tcp_connections_opened_total')).toBe(metricValue(m0, 'synfin_tcp_connections_opened_total'));
  }, 30_000);

  it("a leaking app's sockets are read from the kernel: appState CLOSE_WAIT, source kernel", async () => {
    const script =
      `const net=require('net');const s=[];for(let i=0;i<3;i++){const c=net.connect({host:'${srvAddr}',port:8080,allowHalfOpen:true},` +
      `()=>c.write('GET /close HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n'));c.on('data',()=>{});c.on('error',()=>{});s.push(c)}setInterval(()=>{},1e9)`;
    const leak = spawn('ip', ['netns', 'exec', pod.name, 'setpriv', `--reuid=${APP_UID}`, `--regid=${APP_UID}`, '--clear-groups', process.execPath, '-e', script], { stdio: 'ignore' });
    try {
      const deadline = Date.now() + 15_000;
      let rows: Row[] = [];
      for (;;) {
        rows = (await api<{ connections: Row[] }>('/api/connections?waitingOn=app')).connections;
        if (rows.length === 3 && rows.every((r) => r.state === 'FIN_WAIT_2' && r.appState === 'CLOSE_WAIT')) break;
        if (Date.now() > deadline) throw new Error(`leak not seen: ${JSON.stringify(rows)}`);
        await new Promise((r) => setTimeout(r, 100));
      }
      for (const row of rows) {
        expect(row.appStateSource).toBe('kernel');
        expect(row.client.startsWith(`${podAddr}:`)).toBe(true);
      }
    } finally {
      leak.kill('SIGKILL');
    }
  }, 30_000);

  it('--remove takes the routing away again', async () => {
    const r = await inPod([ROUTING, '--tun', tun, '--uid', SYNFIN_UID, '--metrics-port', String(metricsPort), '--no-ipv6', '--remove']);
    expect(r.code, r.stderr).toBe(0);
    expect(pod.ip(['rule', 'show'])).not.toMatch(/ipproto tcp lookup/);
  });
});
