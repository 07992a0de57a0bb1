// The N-API glue of an upstream connect and register (issue 24): upstreamConnect / upstreamRegister
// (twelve and five arguments, typed arrays read back per call) against upstreamConnectIo /
// upstreamRegisterIo (a few integers, the io array bound once). Every call is made to fail in the
// kernel at once (fd 100000: EBADF) so the system calls are the same; user CPU per call, medians of 15.
//
//   node bench/upstream-connect-glue.mjs build/Release/synfin.node
import { createRequire } from 'node:module';
const require = createRequire(import.meta.url);
const a = require(process.argv[2] ?? new URL('../build/Release/synfin.node', import.meta.url).pathname);
const out = new Uint32Array(7), words = new Uint32Array([0,0,0,0x7f000001]);
const hasIo = a.upstreamBindIo !== undefined;
const io = new Uint32Array(18); io[0] = 4; io.set(words, 1); io[5] = 80;
const p = new a.UpstreamPoller(new Int32Array(3 * a.UpstreamPoller.MAX_EVENTS), () => {}); p.unref(); if (hasIo) a.upstreamBindIo(io);
const epfd = p.epfd;
const N = 100000;
const fs = {
  sockErr: () => a.upstreamSocketError(100000),
  oldreg: () => a.upstreamRegister(epfd, 100000, 0, 0, out),
  oldconn: () => a.upstreamConnect(epfd, 0, 0, 4, words, 80, 0, null, out, 100000, false, false),
};
if (hasIo) Object.assign(fs, {
  newreg: () => a.upstreamRegisterIo(epfd, 100000, 0, 0),
  newconn: () => { io[0] = 4; for (let i = 0; i < 4; i++) io[1 + i] = words[i]; io[5] = 80; io[6] = 0; return a.upstreamConnectIo(epfd, 0, 0, 100000, 0); },
});
const res = {};
for (let round = 0; round < 15; round++) for (const [n, f] of Object.entries(fs)) {
  const c0 = process.cpuUsage(); for (let i = 0; i < N; i++) f(); const c = process.cpuUsage(c0);
  (res[n] ??= []).push(c.user * 1000 / N);
}
for (const [n, r] of Object.entries(res)) { r.sort((x, y) => x - y); console.log(n.padEnd(8), 'user ns median', r[7].toFixed(0), 'q1', r[3].toFixed(0), 'q3', r[11].toFixed(0)); }
p.close();
