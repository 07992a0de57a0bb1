/**
 * No loop through the device, end to end: synfin and the app in one namespace, synfin's device
 * routed as in the README (`--route 198.18.0.0/15`), and the app dials an unmapped destination
 * inside that prefix. synfin's own dial to it is routed into the device; before this change synfin
 * answered that SYN by dialling again, and again, until the connect timeout, the SYN backlog and
 * the dial cap were full. Now the dial's SYN is recognised (its 4-tuple is synfin's own upstream
 * socket) and refused: the app gets ECONNREFUSED at once, the loop counter moves, and nothing else
 * is taken. A mapped destination still goes through, and a --map to synfin's own --listen address
 * is refused the same way.
 */
import { type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { destroyAllNetns, NetNs, uniqueIfName } from '../helpers/netns.js';
import { describeIfTun } from '../helpers/root.js';
import { metricValue } from '../helpers/synfin-env.js';

const ROOT = path.join(import.meta.dirname, '../..');
const BIN = path.join(ROOT, 'bin/synfin.js');
const PEER = path.join(ROOT, 'test/reliability/peer.mjs');

interface ConnectResult {
  ok: boolean;
  code: string | null;
  bytes: number;
  ms: number;
}

describeIfTun('no loop through the device (--route over an unmapped destination)', () => {
  let ns: NetNs;
  let synfin: ChildProcess;
  let server: ChildProcess;
  let log = '';
  const apiPort = 19_500 + (process.pid % 400);
  const serverPort = 8081;

  const inNs = (args: string[]) => ns.exec(args[0]!, args.slice(1));
  const metrics = async () => (await inNs(['curl', '-sS', `http://127.0.0.1:${apiPort}/metrics`])).stdout;
  const connect = async (host: string, port: number) =>
    JSON.parse((await inNs([process.execPath, PEER, 'connect', host, String(port), '8000'])).stdout.trim().split('\n').at(-1)!) as ConnectResult;

  beforeAll(async () => {
    ns = NetNs.create('loop');
    server = ns.spawn(process.execPath, ['-e', `require('net').createServer((s)=>{s.on('error',()=>{});s.end('served\\n')}).listen(${serverPort},'127.0.0.1')`]);
    const tun = uniqueIfName('sflp');
    synfin = ns.spawn(process.execPath, [
      BIN,
      'run',
      '--tun',
      tun,
      // The README's example routes 198.18.0.0/15 into the device; the address is a /32 here
      // because `ip route add` of the prefix a /15 address already routes fails (File exists).
      '--address',
      '198.18.0.1/32',
      '--route',
      '198.18.0.0/15',
      '--listen',
      `127.0.0.1:${apiPort}`,
      '--map',
      `198.18.7.7:80=127.0.0.1:${serverPort}`,
      '--map',
      `198.18.7.8:80=localhost:${apiPort}`,
      '--syn-backlog',
      '4',
      '--connect-timeout',
      '20',
      '--log-level',
      'warn',
    ]);
    synfin.stdout?.on('data', (d) => (log += d));
    synfin.stderr?.on('data', (d) => (log += d));
    const deadline = Date.now() + 20_000;
    for (;;) {
      const r = await inNs(['curl', '-s', '-o', '/dev/null', '-w', '%{http_code}', `http://127.0.0.1:${apiPort}/readyz`]);
      if (r.stdout === '200') break;
      if (Date.now() > deadline || synfin.exitCode !== null) throw new Error(`synfin never became ready: ${log}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }, 90_000);

  afterAll(() => {
    synfin?.kill('SIGKILL');
    server?.kill('SIGKILL');
    destroyAllNetns();
  });

  it('the app is refused at once, each dial back into the device counts as a loop, and nothing fills up', async () => {
    const m0 = await metrics();
    // Exported at zero from the start (metricValue would also read 0 for a missing series).
    expect(m0).toMatch(/^synfin_tcp_dropped_segments_total\{reason="loop"\} 0$/m);
    expect(m0).toMatch(/^synfin_tcp_resets_total\{direction="sent",reason="loop"\} 0$/m);
    // More attempts than the SYN backlog (4) holds: a loop that took places would refuse or stall later ones.
    for (let i = 0; i < 10; i++) {
      const r = await connect(`198.18.5.${i + 1}`, 80);
      expect(r, log).toMatchObject({ ok: false, code: 'ECONNREFUSED' });
      expect(r.ms).toBeLessThan(1000);
    }
    const m1 = await metrics();
    expect(metricValue(m1, 'synfin_tcp_dropped_segments_total', { reason: 'loop' })).toBe(10);
    expect(metricValue(m1, 'synfin_tcp_resets_total', { direction: 'sent', reason: 'loop' })).toBe(10);
    // Only the app's ten connections were ever opened: synfin's own SYNs took no state.
    expect(metricValue(m1, 'synfin_tcp_connections_opened_total')).toBe(10);
    expect(metricValue(m1, 'synfin_upstream_connect_duration_seconds_count', { result: 'refused' })).toBe(10);
    expect(metricValue(m1, 'synfin_tcp_handshake_duration_seconds_count', { result: 'upstream_refused' })).toBe(10);
    expect(metricValue(m1, 'synfin_tcp_dropped_segments_total', { reason: 'syn_limit' })).toBe(0);
    expect(metricValue(m1, 'synfin_tcp_syn_cookies_total', { result: 'sent' })).toBe(0);
    const open = await inNs(['curl', '-sS', `http://127.0.0.1:${apiPort}/api/connections`]);
    expect((JSON.parse(open.stdout) as { count: number }).count).toBe(0);
  }, 60_000);

  it('a mapped destination still goes through; a map to synfin\'s own --listen address is refused as a loop', async () => {
    const ok = await connect('198.18.7.7', 80);
    expect(ok, log).toMatchObject({ ok: true, code: null });
    const before = metricValue(await metrics(), 'synfin_tcp_dropped_segments_total', { reason: 'loop' });
    const self = await connect('198.18.7.8', 80);
    expect(self).toMatchObject({ ok: false, code: 'ECONNREFUSED' });
    expect(self.ms).toBeLessThan(1000);
    const m = await metrics();
    expect(metricValue(m, 'synfin_tcp_dropped_segments_total', { reason: 'loop' }) - before).toBe(1);
    // Refused before any dial: the only connects ever made are the ten loops and the mapped one.
    expect(metricValue(m, 'synfin_upstream_connect_duration_seconds_count')).toBe(11);
  }, 60_000);
});
