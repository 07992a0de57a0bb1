// Load on synfin's API while the benchmark measures the proxy: one client walking
// /api/connections page by page (following `next`, starting over at the end) as fast as it is
// answered, and STREAMS /api/events readers that read the response head and then never read
// again (their sockets stay paused, so synfin's writes back up). Runs inside synfin's namespace
// (its API is on 127.0.0.1 there) for SECONDS, then prints
//   {"pages":..,"walks":..,"rows":..,"errors":..,"p50Ms":..,"maxMs":..,"streams":{"200":16}}
//
//   node bench/api-load.mjs URL SECONDS [STREAMS=16]
import http from 'node:http';
import net from 'node:net';

const [url, secondsText = '10', streamsText = '16'] = process.argv.slice(2);
if (url === undefined) {
  console.error('usage: node bench/api-load.mjs URL SECONDS [STREAMS]');
  process.exit(2);
}
const base = new URL(url);
const end = Date.now() + Number(secondsText) * 1000;

// The stalled readers: each reads the status line, then pauses its socket for good.
const streams = {};
const sockets = [];
await Promise.all(
  Array.from({ length: Number(streamsText) }, () =>
    new Promise((resolve) => {
      const s = net.connect(Number(base.port), base.hostname, () => {
        s.write(`GET /api/events HTTP/1.1\r\nHost: ${base.host}\r\nAccept: text/event-stream\r\n\r\n`);
      });
      sockets.push(s);
      s.once('data', (chunk) => {
        const status = /^HTTP\/1\.1 (\d+)/.exec(String(chunk))?.[1] ?? 'bad';
        streams[status] = (streams[status] ?? 0) + 1;
        s.pause();
        resolve();
      });
      s.on('error', () => {
        streams.error = (streams.error ?? 0) + 1;
        resolve();
      });
    }),
  ),
);

// The page walker, on one keep-alive connection.
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
function get(path) {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: base.hostname, port: base.port, path, agent }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
  });
}
const times = [];
let pages = 0;
let walks = 0;
let rows = 0;
let errors = 0;
let cursor = null;
while (Date.now() < end) {
  const t0 = performance.now();
  try {
    const { status, body } = await get(cursor === null ? '/api/connections' : `/api/connections?cursor=${cursor}`);
    if (status !== 200) throw new Error(`HTTP ${status}`);
    // The body ends with "next":null} or "next":"…"}: no need to parse half a megabyte.
    const tail = body.subarray(Math.max(0, body.length - 64)).toString();
    // A synfin from before pages (no "next") answers the whole table at once: one walk per request.
    const next = /"next":(null|"([0-9a-f]+)")\}$/.exec(tail);
    if (next === null && !tail.endsWith(']}')) throw new Error('not a connections body');
    const count = /^\{"count":(\d+)/.exec(body.subarray(0, 32).toString());
    rows += Number(count?.[1] ?? 0);
    cursor = next?.[2] ?? null;
    if (cursor === null) walks++;
    pages++;
  } catch {
    errors++;
    cursor = null;
    await new Promise((r) => setTimeout(r, 100));
  }
  times.push(performance.now() - t0);
}
times.sort((a, b) => a - b);
for (const s of sockets) s.destroy();
agent.destroy();
const p50 = times.length > 0 ? times[Math.floor(times.length / 2)] : NaN;
console.log(JSON.stringify({ pages, walks, rows, errors, p50Ms: Number(p50.toFixed(2)), maxMs: Number((times.at(-1) ?? NaN).toFixed(2)), streams }));
