// Kernel TCP peers for the reliability tests, run inside the app's namespace with
// `ip netns exec NS node peer.mjs MODE ...`. Each prints JSON lines on stdout (the last one is the
// result). Plain JavaScript: no build step.
//
//   connect HOST PORT TIMEOUT_MS           connect, send a line, read to the end; {ok, code, bytes, ms}
//   read HOST PORT                         connect, read until the connection ends; {bytes, code, ms}
//   hold HOST PORT [BIND]                  connect (from BIND if given), send a line, print
//                                          {ready, localPort}, then keep the socket open, printing
//                                          {data} / {error} / {end} as they happen
//   never-read HOST PORT                   connect, send a line, never read; {ready}, then {error}
//   slowloris HOST PORT INTERVAL_MS        send one byte per interval; {error, sent, ms} when cut off
//   exchange HOST PORT CONNS BYTES         CONNS concurrent connections; each sends an 8-byte id
//                                          and BYTES of data keyed by the id while reading BYTES
//                                          back; {results: [{id, sentSha, recvSha, recvBytes}]}
import crypto from 'node:crypto';
import net from 'node:net';

const [mode, host, portText, ...rest] = process.argv.slice(2);
const port = Number(portText);
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');
const t0 = Date.now();

/** Deterministic, incompressible data for connection `id`: AES-128-CTR keystream. */
function keystream(id, label) {
  const key = crypto.createHash('sha256').update(`${label}:${id}`).digest().subarray(0, 16);
  return crypto.createCipheriv('aes-128-ctr', key, Buffer.alloc(16));
}

switch (mode) {
  case 'connect': {
    const timeout = Number(rest[0] ?? 10000);
    const s = net.connect({ host, port });
    let bytes = 0;
    const done = (ok, code) => {
      out({ ok, code, bytes, ms: Date.now() - t0 });
      process.exit(0);
    };
    s.setTimeout(timeout, () => done(false, 'TIMEOUT'));
    s.on('connect', () => s.write('hello\n'));
    s.on('data', (d) => {
      bytes += d.length;
      s.end();
    });
    s.on('close', () => done(bytes > 0, null));
    s.on('error', (e) => done(false, e.code));
    break;
  }
  case 'read': {
    const s = net.connect({ host, port });
    let bytes = 0;
    s.on('data', (d) => (bytes += d.length));
    s.on('end', () => {
      out({ bytes, code: null, ms: Date.now() - t0 });
      process.exit(0);
    });
    s.on('error', (e) => {
      out({ bytes, code: e.code, ms: Date.now() - t0 });
      process.exit(0);
    });
    break;
  }
  case 'hold': {
    const bind = rest[0];
    const s = net.connect({ host, port, allowHalfOpen: true, ...(bind ? { localAddress: bind } : {}) });
    s.on('connect', () => {
      s.write('hello\n');
      out({ ready: true, localPort: s.localPort });
    });
    s.on('data', (d) => out({ data: d.length }));
    s.on('end', () => out({ end: true }));
    s.on('error', (e) => out({ error: e.code, ms: Date.now() - t0 }));
    process.stdin.on('data', (d) => {
      // Commands from the test: "send N" writes N bytes.
      const m = /^send (\d+)/.exec(d.toString());
      if (m) s.write(Buffer.alloc(Number(m[1]), 0x78));
    });
    process.stdin.resume();
    break;
  }
  case 'never-read': {
    const s = net.connect({ host, port });
    s.pause();
    s.on('connect', () => {
      s.write('hello\n');
      out({ ready: true });
    });
    s.on('error', (e) => out({ error: e.code, ms: Date.now() - t0 }));
    setInterval(() => {}, 1 << 30);
    break;
  }
  case 'slowloris': {
    const interval = Number(rest[0]);
    const s = net.connect({ host, port });
    let sent = 0;
    let timer = null;
    s.on('connect', () => {
      out({ ready: true });
      const tick = () => {
        if (s.destroyed) return;
        s.write('x');
        sent++;
        timer = setTimeout(tick, interval);
      };
      tick();
    });
    const end = (code) => {
      clearTimeout(timer);
      out({ error: code, sent, ms: Date.now() - t0 });
      process.exit(0);
    };
    s.on('error', (e) => end(e.code));
    s.on('close', () => end('CLOSED'));
    break;
  }
  case 'exchange': {
    const conns = Number(rest[0]);
    const bytes = Number(rest[1]);
    const one = (id) =>
      new Promise((resolve) => {
        const s = net.connect({ host, port, allowHalfOpen: true });
        const sentHash = crypto.createHash('sha256');
        const recvHash = crypto.createHash('sha256');
        let recvBytes = 0;
        let code = null;
        const gen = keystream(id, 'client');
        const chunk = Buffer.alloc(64 * 1024);
        let sent = 0;
        const pump = () => {
          while (sent < bytes) {
            const n = Math.min(chunk.length, bytes - sent);
            const data = gen.update(chunk.subarray(0, n));
            sentHash.update(data);
            sent += n;
            if (!s.write(data)) {
              s.once('drain', pump);
              return;
            }
          }
          s.end();
        };
        s.on('connect', () => {
          const header = Buffer.alloc(8);
          header.writeUInt32BE(id, 0);
          header.writeUInt32BE(bytes, 4);
          s.write(header);
          pump();
        });
        s.on('data', (d) => {
          recvBytes += d.length;
          recvHash.update(d);
        });
        s.on('error', (e) => (code = e.code));
        s.on('close', () =>
          resolve({ id, code, sentBytes: sent, sentSha: sentHash.digest('hex'), recvBytes, recvSha: recvHash.digest('hex') }),
        );
      });
    const results = await Promise.all(Array.from({ length: conns }, (_, i) => one(i)));
    out({ results, ms: Date.now() - t0 });
    break;
  }
  default:
    process.stderr.write(`unknown mode ${mode}\n`);
    process.exit(2);
}
