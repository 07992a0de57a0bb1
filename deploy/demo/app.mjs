// The compose demo's app (deploy/compose.yaml): it shares synfin's network namespace, so all of
// its TCP goes through synfin. A steady mix of connection shapes, and one bug on purpose: every
// LEAK_EVERY_SECONDS it reads a response to the end and never closes the socket, so the socket
// sits in CLOSE_WAIT (synfin: waiting on the app) until LEAK_MAX are open. That is what the
// "connection leaks" dashboard and the SynfinAppNotClosingSockets alert are for.
// Plain Node.js, no dependencies. Environment: UPSTREAM_HOST (upstream), HTTP_PORT (8080),
// HOLD_PORT (8081), LEAK_EVERY_SECONDS (60), LEAK_MAX (120).
import http from 'node:http';
import net from 'node:net';

const host = process.env.UPSTREAM_HOST ?? 'upstream';
const httpPort = Number(process.env.HTTP_PORT ?? 8080);
const holdPort = Number(process.env.HOLD_PORT ?? 8081);
const leakEverySeconds = Number(process.env.LEAK_EVERY_SECONDS ?? 60);
const leakMax = Number(process.env.LEAK_MAX ?? 120);

const keepAlive = new http.Agent({ keepAlive: true, maxSockets: 4 });
const leaked = [];

function get(path, agent) {
  const req = http.get({ host, port: httpPort, path, agent }, (res) => res.resume());
  req.on('error', () => {});
  req.setTimeout(15_000, () => req.destroy());
}

/** The app closes first: its request is answered, then it sends FIN (upstream TIME_WAIT). */
function appClosesFirst() {
  const s = net.connect({ host, port: httpPort }, () => {
    s.write(`GET /hello HTTP/1.1\r\nHost: ${host}\r\n\r\n`);
  });
  s.once('data', () => s.end());
  s.on('error', () => {});
}

/** The app aborts: RST instead of FIN. */
function appResets() {
  const s = net.connect({ host, port: httpPort }, () => {
    s.write('GET /hello HTTP/1.1\r\n');
    setTimeout(() => s.resetAndDestroy(), 100);
  });
  s.on('error', () => {});
}

/** Nothing listens on port 9: the app's SYN is answered with RST. */
function refused() {
  net.connect({ host, port: 9 }).on('error', () => {});
}

/** The app closes, the destination holds its side open (synfin: waiting on the upstream). */
function destinationSlowToClose() {
  const s = net.connect({ host, port: holdPort, allowHalfOpen: true }, () => {
    s.end('done\n');
  });
  s.on('data', () => {});
  s.on('end', () => s.destroy());
  s.on('error', () => {});
}

/** The bug: read to EOF and never close. */
function leak() {
  if (leaked.length >= leakMax) return;
  const s = net.connect({ host, port: httpPort, allowHalfOpen: true }, () => {
    s.write(`GET /close HTTP/1.1\r\nHost: ${host}\r\n\r\n`);
  });
  s.on('data', () => {});
  s.on('end', () => {
    // Deliberately no s.end() or s.destroy().
  });
  s.on('error', () => {});
  leaked.push(s);
}

let tick = 0;
setInterval(() => {
  tick++;
  get('/hello', keepAlive);
  if (tick % 4 === 0) get('/close', false);
  if (tick % 4 === 2) appClosesFirst();
  if (tick % 20 === 0) appResets();
  if (tick % 28 === 0) refused();
  if (tick % 40 === 0) get('/slow', false);
  if (tick % 60 === 0) get('/download', false);
  if (tick % 120 === 0) destinationSlowToClose();
}, 250);
setInterval(leak, leakEverySeconds * 1000);

console.log(`app: talking to ${host}:${httpPort} and :${holdPort}; leaking a socket every ${leakEverySeconds} s (up to ${leakMax})`);
for (const sig of ['SIGTERM', 'SIGINT']) process.once(sig, () => process.exit(0));
