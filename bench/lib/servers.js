// The programs in the server namespace: iperf3, the C echo/hold/greet server, nginx and redis-server. Each listens on
// every address of the namespace, so the kernel baseline and synfin's upstream sockets reach the
// same process.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Daemon, sleep, tryRunSync } from './proc.js';
import { tool } from './tools.js';

export const PORT = { iperf: 5201, echo: 7001, hold: 7002, greet: 7003, http: 8080, redis: 6379 };

export async function startIperf(topo) {
  const d = new Daemon('iperf3 -s', 'iperf3', ['-s', '--forceflush', '-p', String(PORT.iperf)], { ns: topo.ns.srv, readyLine: /Server listening/ });
  await d.ready;
  return d;
}

export async function startTcpServer(topo, mode) {
  const port = PORT[mode];
  if (port === undefined || mode === 'http' || mode === 'iperf' || mode === 'redis') throw new Error(`tcpserv mode ${mode}`);
  const d = new Daemon(`tcpserv ${mode}`, tool('tcpserv'), [String(port), mode], { ns: topo.ns.srv, readyLine: /^listening/ });
  await d.ready;
  return d;
}

/** nginx with one worker answering every request with a 6-byte body; keep-alive without limit. */
export async function startNginx(topo) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sfb-nginx-'));
  const conf = `
# One process (no master): its pid is the one we started, and it is what we stop.
worker_processes 1;
daemon off;
master_process off;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
worker_rlimit_nofile 40000;
events { worker_connections 20000; multi_accept on; }
http {
  access_log off;
  keepalive_requests 10000000;
  keepalive_timeout 60s;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  server {
    listen ${PORT.http} backlog=8192;
    location / { default_type text/plain; return 200 "hello\\n"; }
  }
}
`;
  fs.writeFileSync(path.join(dir, 'nginx.conf'), conf);
  const d = new Daemon('nginx', 'nginx', ['-p', dir, '-e', `${dir}/error.log`, '-c', path.join(dir, 'nginx.conf')], { ns: topo.ns.srv });
  // nginx prints nothing when it is up: wait until the port listens.
  for (let i = 0; i < 100; i++) {
    if (d.exited) throw new Error(`nginx exited: ${d.stderr}${tryRunSync('cat', [`${dir}/error.log`])}`);
    if (tryRunSync('ss', ['-Htln', `sport = :${PORT.http}`], { ns: topo.ns.srv }).includes(String(PORT.http))) break;
    await sleep(100);
  }
  const stop = d.stop.bind(d);
  // SIGQUIT: graceful stop; remove the scratch directory afterwards.
  d.stop = async () => {
    const r = await stop('SIGQUIT', 5000);
    const errors = tryRunSync('cat', [`${dir}/error.log`]).trim();
    if (errors !== '') r.stderr += errors;
    fs.rmSync(dir, { recursive: true, force: true });
    return r;
  };
  return d;
}

/** redis-server, no persistence, in the foreground (the request/response workload's server). */
export async function startRedis(topo) {
  const args = ['--port', String(PORT.redis), '--bind', '0.0.0.0', '--protected-mode', 'no', '--save', '', '--appendonly', 'no', '--daemonize', 'no', '--maxclients', '20000', '--logfile', ''];
  const d = new Daemon('redis-server', 'redis-server', args, { ns: topo.ns.srv, readyLine: /Ready to accept connections/ });
  await d.ready;
  return d;
}
