// Container health check: GET a path (default /healthz) of synfin's HTTP server, at the address
// synfin listens on (SYNFIN_LISTEN, default 127.0.0.1:9477; a wildcard host, 0.0.0.0 or [::], is
// asked on 127.0.0.1).
// Exit 0 on 200, 1 otherwise. Plain node, no capability needed:
//   node deploy/healthcheck.mjs [/readyz]
const path = process.argv[2] ?? '/healthz';
const listen = process.env.SYNFIN_LISTEN || '127.0.0.1:9477';

const colon = listen.lastIndexOf(':');
let host = colon > 0 ? listen.slice(0, colon) : '127.0.0.1';
const port = colon > 0 ? listen.slice(colon + 1) : listen;
if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
// A wildcard is asked on 127.0.0.1: a dual-stack [::] listener accepts IPv4 too, and lo has
// 127.0.0.1 even where IPv6 is off or ::1 is missing.
if (host === '0.0.0.0' || host === '::' || host === '') host = '127.0.0.1';
const url = `http://${host.includes(':') ? `[${host}]` : host}:${port}${path}`;

try {
  const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
  if (res.status !== 200) {
    process.stderr.write(`${url}: HTTP ${res.status}\n`);
    process.exit(1);
  }
} catch (err) {
  process.stderr.write(`${url}: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
}
