/**
 * `synfin run --workers 2` as a user runs it (the built bin/synfin.js, as root in a namespace of
 * its own): the main thread opens two queues, gives up every capability (its re-exec hands both
 * queue fds over), connections get through both workers, and SIGTERM stops the workers and exits 0.
 */
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { expect, it } from 'vitest';
import { NetNs } from '../helpers/netns.js';
import { describeIfTun } from '../helpers/root.js';
import { metricValue } from '../helpers/synfin-env.js';

const BIN = path.join(import.meta.dirname, '../../bin/synfin.js');

const ECHO_SERVER = `
const net = require('node:net');
const srv = net.createServer((s) => { s.on('data', (d) => s.write(d)); s.on('end', () => s.end()); s.on('error', () => {}); });
srv.listen(0, '127.0.0.1', () => console.log(srv.address().port));
`;

const CLIENTS = `
const net = require('net');
let ok = 0, done = 0;
const n = 32;
for (let i = 0; i < n; i++) {
  const s = net.connect({ host: process.argv[1], port: +process.argv[2] });
  let got = '';
  s.on('connect', () => s.end('hello ' + i));
  s.on('data', (d) => { got += d; });
  s.on('close', () => { if (got === 'hello ' + i) ok++; if (++done === n) console.log(JSON.stringify({ ok })); });
  s.on('error', () => {});
}
`;

describeIfTun('synfin run --workers 2', () => {
  it('drops its capabilities with both queues handed over, carries connections on both workers, and exits 0 on SIGTERM', async () => {
    const ns = NetNs.create('wcli');
    const children: ChildProcess[] = [];
    try {
      const collect = (child: ChildProcess): { text: () => string } => {
        let out = '';
        child.stdout!.on('data', (d) => (out += d));
        return { text: () => out };
      };
      const until = async (what: string, ok: () => boolean): Promise<void> => {
        const deadline = Date.now() + 15_000;
        while (!ok()) {
          if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
          await new Promise((r) => setTimeout(r, 20));
        }
      };
      const server = ns.spawn(process.execPath, ['-e', ECHO_SERVER]);
      children.push(server);
      const serverOut = collect(server);
      await until('the echo server', () => serverOut.text().includes('\n'));
      const port = Number(serverOut.text().trim());

      const n = ((process.pid * 3) % 200) + 20;
      const synfin = ns.spawn(process.execPath, [
        BIN, 'run', '--tun', `sfwc${process.pid % 10000}`, '--address', `198.18.${n}.1/24`, '--listen', '127.0.0.1:9477',
        '--map', `198.18.${n}.0/24=127.0.0.1`, '--shutdown-grace', '1', '--workers', '2',
      ]);
      children.push(synfin);
      const out = collect(synfin);
      let stderr = '';
      synfin.stderr!.on('data', (d) => (stderr += d));
      await until('synfin ready', () => /"workers":2.*"msg":"synfin ready"/.test(out.text()));

      // Every thread of the process without capabilities (the re-exec), and four TUN fds: the main
      // thread's two queues and each worker's duplicate.
      // (`ip netns exec` execs node, so the child's pid is synfin's.)
      const pid = synfin.pid!;
      for (const tid of fs.readdirSync(`/proc/${pid}/task`)) {
        expect(fs.readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8')).toMatch(/^CapEff:\s*0+$/m);
      }
      const tunFds = fs.readdirSync(`/proc/${pid}/fd`).filter((fd) => {
        try {
          return fs.readlinkSync(`/proc/${pid}/fd/${fd}`) === '/dev/net/tun';
        } catch {
          return false;
        }
      });
      expect(tunFds).toHaveLength(4);

      const r = await ns.exec(process.execPath, ['-e', CLIENTS, `198.18.${n}.2`, String(port)]);
      expect(JSON.parse(r.stdout.trim())).toEqual({ ok: 32 });
      const metrics = (await ns.exec('curl', ['-s', '--max-time', '5', 'http://127.0.0.1:9477/metrics'])).stdout;
      expect(metricValue(metrics, 'synfin_tcp_connections_opened_total')).toBe(32);
      expect(metricValue(metrics, 'synfin_worker_connections_opened_total', { worker: '0' })).toBeGreaterThan(0);
      expect(metricValue(metrics, 'synfin_worker_connections_opened_total', { worker: '1' })).toBeGreaterThan(0);

      const exited = new Promise<number | null>((resolve) => synfin.once('exit', resolve));
      synfin.kill('SIGTERM');
      expect(await exited).toBe(0);
      expect(out.text()).toMatch(/synfin stopped/);
      expect(stderr).toBe('');
    } finally {
      for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
      ns.destroy();
    }
  }, 60_000);
});
