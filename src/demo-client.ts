/**
 * The demo's traffic, run inside the demo namespace: a steady mix of connection shapes so every
 * part of the TCP lifecycle shows up in the metrics and the live page. Runs until killed.
 *   node demo-client.js HOST PORT REFUSED_HOST LEAKY_HOST
 * The leaking client dials LEAKY_HOST (the same server behind another address), so that its
 * connections are a service of their own ("demo-leaky") in the metrics, the API and the page.
 */
import http from 'node:http';
import net from 'node:net';

const [host = '198.18.1.1', portText = '80', refusedHost = '198.18.1.2', leakyHost = '198.18.1.3'] = process.argv.slice(2);
const port = Number(portText);
const leaked: net.Socket[] = [];
const MAX_LEAKED = 20;

function get(pathname: string, agent: http.Agent | false): Promise<void> {
  return new Promise((resolve) => {
    const req = http.get({ host, port, path: pathname, agent }, (res) => {
      res.resume();
      res.on('end', () => resolve());
      res.on('error', () => resolve());
    });
    req.on('error', () => resolve());
    req.setTimeout(15_000, () => req.destroy());
  });
}

/** A client that reads the reply and never closes: the server's FIN leaves its socket in CLOSE_WAIT. */
function leak(): void {
  const s = net.connect({ host: leakyHost, port, allowHalfOpen: true }, () => {
    s.write(`GET /close HTTP/1.1\r\nHost: ${leakyHost}\r\nConnection: close\r\n\r\n`);
  });
  s.on('data', () => {});
  s.on('end', () => {
    // Deliberately no s.end(): this is the bug synfin helps find.
  });
  s.on('error', () => {});
  leaked.push(s);
  while (leaked.length > MAX_LEAKED) leaked.shift()!.destroy();
}

/** Connect and reset: the app aborts (RST instead of FIN). */
function reset(): void {
  const s = net.connect({ host, port }, () => {
    s.write('GET /hello HTTP/1.1\r\n');
    setTimeout(() => s.resetAndDestroy(), 200);
  });
  s.on('error', () => {});
}

/** A port nobody listens on: the destination refuses, so the app sees a RST to its SYN. */
function refused(): void {
  const s = net.connect({ host: refusedHost, port: 9 });
  s.on('error', () => {});
}

const keepAlive = new http.Agent({ keepAlive: true, maxSockets: 4 });
let tick = 0;
setInterval(() => {
  tick++;
  void get('/hello', false);
  void get('/hello', keepAlive);
  if (tick % 3 === 0) void get('/close', false);
  if (tick % 5 === 0) reset();
  if (tick % 7 === 0) refused();
  if (tick % 10 === 0) void get('/slow', false);
  if (tick % 15 === 0) void get('/download', false);
  if (tick % 20 === 0) leak();
}, 250);
