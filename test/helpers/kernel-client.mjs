// A kernel TCP client for tests, run inside a test namespace with `ip netns exec NS node kernel-client.mjs MODE ...`.
// Prints one JSON line with its results on stdout. Plain JavaScript: it runs with no build step.
//
//   connections HOST PORT COUNT CONCURRENCY CLOSE   open COUNT connections, send a line, read the
//                                                    reply, close (CLOSE = "client" closes after the
//                                                    reply, "server" waits for the server's FIN first)
//   send HOST PORT BYTES SEED                       send BYTES of seeded data, then half-close and
//                                                    wait for the server to close; prints sha256
//   receive HOST PORT                               read until the server closes; prints bytes, sha256
//   hold HOST PORT COUNT MODE                        open COUNT connections; MODE "half-close" sends FIN
//                                                    and never reads; "never-close" reads the reply and
//                                                    never closes; prints when ready and stays alive
import crypto from 'node:crypto';
import net from 'node:net';

const [mode, host, portText, ...rest] = process.argv.slice(2);
const port = Number(portText);

function out(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

function seededChunk(seed, index, size) {
  // Deterministic, incompressible-looking data: SHA-256 in counter mode.
  const buf = Buffer.allocUnsafe(size);
  let off = 0;
  let block = 0;
  while (off < size) {
    const h = crypto.createHash('sha256').update(`${seed}:${index}:${block++}`).digest();
    off += h.copy(buf, off);
  }
  return buf;
}

async function connections(count, concurrency, closeMode) {
  let ok = 0;
  let failed = 0;
  const errors = {};
  let next = 0;
  async function one(i) {
    await new Promise((resolve) => {
      const s = net.connect({ host, port, allowHalfOpen: true });
      let got = '';
      let done = false;
      const finish = (good, why) => {
        if (done) return;
        done = true;
        if (good) ok++;
        else {
          failed++;
          errors[why] = (errors[why] ?? 0) + 1;
        }
        resolve();
      };
      s.setTimeout(20_000, () => {
        s.destroy();
        finish(false, 'timeout');
      });
      s.on('connect', () => s.write(`hello ${i}\n`));
      s.on('data', (d) => {
        got += d.toString();
        if (closeMode === 'client' && got.includes('\n')) s.end();
      });
      s.on('end', () => {
        if (closeMode === 'server') s.end();
      });
      s.on('close', (hadError) => finish(!hadError && got.length > 0, hadError ? 'error' : 'empty'));
      s.on('error', (e) => finish(false, e.code ?? 'error'));
    });
  }
  async function worker() {
    while (next < count) await one(next++);
  }
  await Promise.all(Array.from({ length: concurrency }, worker));
  out({ ok, failed, errors });
}

async function send(bytes, seed) {
  const hash = crypto.createHash('sha256');
  const s = net.connect({ host, port, allowHalfOpen: true });
  await new Promise((r) => s.once('connect', r));
  const chunk = 64 * 1024;
  let sent = 0;
  let index = 0;
  while (sent < bytes) {
    const n = Math.min(chunk, bytes - sent);
    const data = seededChunk(seed, index++, n);
    hash.update(data);
    sent += n;
    if (!s.write(data)) await new Promise((r) => s.once('drain', r));
  }
  s.end();
  await new Promise((resolve, reject) => {
    s.on('data', () => {});
    s.on('close', resolve);
    s.on('error', reject);
  });
  out({ sent, sha256: hash.digest('hex') });
}

async function receive() {
  const hash = crypto.createHash('sha256');
  let bytes = 0;
  const s = net.connect({ host, port, allowHalfOpen: true });
  s.on('connect', () => s.write('go\n'));
  await new Promise((resolve, reject) => {
    s.on('data', (d) => {
      bytes += d.length;
      hash.update(d);
    });
    s.on('end', () => {
      s.end();
      resolve();
    });
    s.on('error', reject);
  });
  out({ bytes, sha256: hash.digest('hex') });
}

async function hold(count, holdMode) {
  const sockets = [];
  for (let i = 0; i < count; i++) {
    const s = net.connect({ host, port, allowHalfOpen: true });
    await new Promise((r, j) => {
      s.once('connect', r);
      s.once('error', j);
    });
    s.on('error', () => {});
    if (holdMode === 'half-close') {
      s.end(`bye ${i}\n`);
    } else {
      s.write(`hello ${i}\n`);
      s.on('data', () => {});
      // Deliberately never s.end(): the app leak.
    }
    sockets.push(s);
  }
  out({ ready: sockets.length });
  setInterval(() => {}, 1 << 30);
}

switch (mode) {
  case 'connections':
    await connections(Number(rest[0]), Number(rest[1]), rest[2] ?? 'client');
    break;
  case 'send':
    await send(Number(rest[0]), rest[1] ?? 'seed');
    break;
  case 'receive':
    await receive();
    break;
  case 'hold':
    await hold(Number(rest[0]), rest[1] ?? 'never-close');
    break;
  default:
    process.stderr.write(`unknown mode ${mode}\n`);
    process.exit(2);
}
