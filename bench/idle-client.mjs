// Opens COUNT connections to HOST:PORT (at most CONCURRENCY connecting at once) and holds them idle.
// Prints {"established","failed","errors","ms"} once every connection has been tried; on SIGTERM
// prints {"open","lost"} (lost = closed or reset by the other side while held) and exits.
//
//   node bench/idle-client.mjs HOST PORT COUNT CONCURRENCY
import net from 'node:net';

const [host, portText, countText, concText] = process.argv.slice(2);
const port = Number(portText);
const count = Number(countText);
const concurrency = Number(concText ?? 200);
const sockets = [];
const errors = {};
let established = 0;
let failed = 0;
let lost = 0;
let next = 0;
let inFlight = 0;
const started = Date.now();

function onLost() {
  lost++;
}

function openOne() {
  next++;
  inFlight++;
  const s = net.connect({ host, port });
  let up = false;
  s.setNoDelay(true);
  s.on('connect', () => {
    up = true;
    established++;
    inFlight--;
    s.on('close', onLost);
    pump();
  });
  s.on('error', (err) => {
    if (up) return; // 'close' follows and counts it as lost
    failed++;
    inFlight--;
    errors[err.code ?? err.message] = (errors[err.code ?? err.message] ?? 0) + 1;
    pump();
  });
  sockets.push(s);
}

function pump() {
  while (inFlight < concurrency && next < count) openOne();
  if (inFlight === 0 && next === count) {
    process.stdout.write(JSON.stringify({ established, failed, errors, ms: Date.now() - started }) + '\n');
  }
}

process.on('SIGTERM', () => {
  process.stdout.write(JSON.stringify({ open: established - lost, lost }) + '\n');
  for (const s of sockets) {
    s.off('close', onLost);
    s.destroy();
  }
  process.exit(0);
});
pump();
