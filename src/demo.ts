/**
 * `synfin demo` (and `npm start`): the whole product in a minute on a fresh machine (as root).
 *
 *   [namespace synfin-demo-PID]            [this host]
 *    demo client (node) ── TUN device ──▶ synfin ── kernel sockets ──▶ demo HTTP server (127.0.0.1)
 *    198.18.0.1/15, default route via TUN
 *
 * The client dials addresses in 198.18.0.0/15; synfin maps them to the local demo server
 * (--map 198.18.0.0/15=127.0.0.1), so every connection crosses the userspace stack: short
 * requests, long downloads, idle keep-alives, resets, a refused port, and a "leaky" client that
 * never closes its sockets after the server closed (it shows as waitingOn=app, service
 * demo-leaky, held by the client's pid and fd: synfin reads the namespace's socket table). Ctrl-C
 * removes everything the demo created.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { DEFAULT_CONFIG, parseListen, type Config, type LogLevel, type RawOptions } from './config.js';
import { SynfinError } from './errors.js';
import { startSynfin } from './runtime.js';

export async function runDemo(flags: RawOptions): Promise<void> {
  if (process.getuid?.() !== 0) {
    throw new SynfinError('ERR_DEMO_ROOT', 'the demo creates a network namespace and a TUN device: run it as root (sudo npm start)');
  }
  const ns = `synfin-demo-${process.pid}`;
  const tunName = `sfdemo${process.pid % 100000}`;
  const listen = parseListen(typeof flags.listen === 'string' ? flags.listen : '127.0.0.1:9477');

  const server = await startDemoServer();
  const port = (server.address() as AddressInfo).port;
  let client: ChildProcess | null = null;
  let cleaned = false;
  const cleanup = (): void => {
    if (cleaned) return;
    cleaned = true;
    client?.kill('SIGKILL');
    server.closeAllConnections();
    server.close();
    try {
      execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
    } catch {
      // Already gone.
    }
  };
  process.once('exit', cleanup);

  execFileSync('ip', ['netns', 'add', ns]);
  try {
    execFileSync('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    const config: Config = {
      ...DEFAULT_CONFIG,
      tun: tunName,
      addresses: ['198.18.0.1/15'],
      routes: ['default'],
      listenHost: listen.host,
      listenPort: listen.port,
      mslSeconds: 5,
      logLevel: (typeof flags['log-level'] === 'string' ? flags['log-level'] : 'info') as LogLevel,
      map: ['198.18.0.0/15=127.0.0.1'],
      // The leaking client dials .3, everything else .1 (the refused port .2 stays "other").
      services: ['demo-leaky=198.18.1.3/32', 'demo=198.18.1.1/32'],
      shutdownGraceSeconds: 2,
    };
    // The client's sockets live in its namespace: synfin reads their states and owners there.
    const synfin = await startSynfin(config, { netns: ns, appNetns: `/var/run/netns/${ns}` });
    const here = path.dirname(fileURLToPath(import.meta.url));
    client = spawn('ip', ['netns', 'exec', ns, process.execPath, path.join(here, 'demo-client.js'), '198.18.1.1', String(port), '198.18.1.2', '198.18.1.3'], {
      stdio: ['ignore', 'inherit', 'inherit'],
    });
    const u = synfin.listenUrl;
    process.stdout.write(
      [
        '',
        'synfin demo running. Traffic from namespace ' + ns + ' goes through TUN device ' + tunName + '.',
        `  live page:    ${u}/`,
        `  metrics:      ${u}/metrics`,
        `  connections:  ${u}/api/connections        (try ?waitingOn=app: service demo-leaky, held by the client's process)`,
        `  history:      ${u}/api/history            (closed connections: who closed first, bytes, states)`,
        `  events:       ${u}/api/events             (curl -N: every state transition)`,
        `  try it:       sudo ip netns exec ${ns} curl -s http://198.18.1.1:${port}/hello`,
        'Ctrl-C stops the demo and removes the namespace and the device.',
        '',
      ].join('\n'),
    );
    await new Promise<void>((resolve) => {
      // The first SIGINT or SIGTERM stops the demo gracefully. A second one (Ctrl-C pressed again,
      // or coreutils `timeout`, which signals the process and then its process group) must not
      // kill it by default before the namespace is removed: it removes it at once and exits.
      let signals = 0;
      const onSignal = (signal: NodeJS.Signals): void => {
        if (++signals === 1) {
          resolve();
          return;
        }
        cleanup();
        process.exit(signal === 'SIGINT' ? 130 : 143);
      };
      process.on('SIGINT', onSignal);
      process.on('SIGTERM', onSignal);
    });
    client.kill('SIGKILL');
    await synfin.shutdown('demo stopped');
  } finally {
    cleanup();
  }
}

/** The demo's destination: a few endpoints that make connections of different shapes. */
function startDemoServer(): Promise<http.Server> {
  const big = Buffer.alloc(4 * 1024 * 1024, 'synfin ');
  const server = http.createServer((req, res) => {
    const url = req.url ?? '/';
    if (url.startsWith('/download')) {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': big.length });
      res.end(big);
    } else if (url.startsWith('/slow')) {
      // Held open a while: a long-lived ESTABLISHED connection.
      const timer = setTimeout(() => res.end('slow done\n'), 8000);
      res.on('close', () => clearTimeout(timer));
    } else if (url.startsWith('/close')) {
      // The server closes first: synfin sends the app a FIN (FIN_WAIT_1/2 until the app closes).
      res.writeHead(200, { connection: 'close', 'content-type': 'text/plain' });
      res.end('bye\n');
    } else {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('hello from the demo upstream\n');
    }
  });
  server.keepAliveTimeout = 3000;
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve(server));
  });
}
