// The compose demo's destination (deploy/compose.yaml): an HTTP server and a server that is slow
// to close its side. Plain Node.js, no dependencies.
//   HTTP on :8080  /hello (keep-alive), /close (the server closes first), /slow (2 s), /download (1 MiB)
//   TCP  on :8081  reads until the client's FIN, then keeps its own side open for HOLD_SECONDS
//                  (default 300) before closing: the app has closed, the destination has not.
import http from 'node:http';
import net from 'node:net';

const httpPort = Number(process.env.HTTP_PORT ?? 8080);
const holdPort = Number(process.env.HOLD_PORT ?? 8081);
const holdSeconds = Number(process.env.HOLD_SECONDS ?? 300);
const oneMiB = Buffer.alloc(1 << 20, 0x61);

const server = http.createServer((req, res) => {
  const url = req.url ?? '/';
  if (url.startsWith('/close')) {
    res.setHeader('connection', 'close');
    res.end('bye\n');
  } else if (url.startsWith('/slow')) {
    setTimeout(() => res.end('slow\n'), 2000);
  } else if (url.startsWith('/download')) {
    res.setHeader('content-type', 'application/octet-stream');
    res.end(oneMiB);
  } else {
    res.end('hello\n');
  }
});
server.keepAliveTimeout = 30_000;
server.listen(httpPort, '0.0.0.0');

const holder = net.createServer({ allowHalfOpen: true }, (socket) => {
  socket.on('data', () => {});
  socket.on('end', () => {
    setTimeout(() => socket.end(), holdSeconds * 1000);
  });
  socket.on('error', () => {});
});
holder.listen(holdPort, '0.0.0.0');

console.log(`upstream: http on :${httpPort}, slow closer on :${holdPort} (holds ${holdSeconds} s)`);
for (const sig of ['SIGTERM', 'SIGINT']) process.once(sig, () => process.exit(0));
