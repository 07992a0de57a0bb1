// The upstream side of the integrity test: a kernel TCP server on 127.0.0.1, run as its own
// process so that hashing and generating 200 MB each way does not share an event loop with
// synfin (which runs in the test's process). It speaks the protocol of peer.mjs's `exchange`
// mode: the client sends an 8-byte header (u32 id, u32 byte count) and then that many bytes;
// the server answers with that many bytes of its own keystream for the id while hashing what
// arrives. Plain JavaScript: no build step.
//
//   node integrity-server.mjs     prints {port}, then one line per finished connection:
//                                 {id, code, recvBytes, recvSha, sentBytes, sentSha}
import crypto from 'node:crypto';
import net from 'node:net';

const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');

/** Deterministic, incompressible data: AES-128-CTR keystream keyed by label and id (as peer.mjs). */
function keystream(id, label) {
  const key = crypto.createHash('sha256').update(`${label}:${id}`).digest().subarray(0, 16);
  return crypto.createCipheriv('aes-128-ctr', key, Buffer.alloc(16));
}

const server = net.createServer({ allowHalfOpen: true }, (s) => {
  let header = Buffer.alloc(0);
  let id = -1;
  let want = 0;
  let sent = 0;
  let recvBytes = 0;
  let code = null;
  const recvHash = crypto.createHash('sha256');
  const sentHash = crypto.createHash('sha256');
  const zeros = Buffer.alloc(64 * 1024);
  let gen = null;

  const pump = () => {
    while (sent < want) {
      const n = Math.min(zeros.length, want - sent);
      const data = gen.update(zeros.subarray(0, n));
      sentHash.update(data);
      sent += n;
      if (!s.write(data)) {
        s.once('drain', pump);
        return;
      }
    }
    // Our half is done; the client's may still be arriving (allowHalfOpen).
    s.end();
  };

  s.on('data', (d) => {
    if (id < 0) {
      header = Buffer.concat([header, d]);
      if (header.length < 8) return;
      id = header.readUInt32BE(0);
      want = header.readUInt32BE(4);
      d = header.subarray(8);
      gen = keystream(id, 'server');
      pump();
    }
    recvBytes += d.length;
    recvHash.update(d);
  });
  s.on('error', (e) => (code = e.code));
  s.on('close', () =>
    out({ id, code, recvBytes, recvSha: recvHash.digest('hex'), sentBytes: sent, sentSha: sentHash.digest('hex') }),
  );
});

server.listen(0, '127.0.0.1', () => out({ port: server.address().port }));
// The test ends us with SIGTERM once every connection has reported.
process.on('SIGTERM', () => process.exit(0));
