// The N-API glue of an upstream connect and register (issue 24): upstreamConnectIo /
// upstreamRegisterIo (a few integers, the io array bound once), against upstreamSocketError (one
// small call with one system call). Every call is made to fail in the kernel at once (fd 100000:
// EBADF) so the system calls are the same; user CPU per call, medians of 15. (Before 2026-12-07
// 14:30 UTC the addon also had upstreamConnect / upstreamRegister, twelve and five arguments with
// typed arrays read back per call; BENCHMARKS.md has both measured by this script.)
//
//   node bench/upstream-connect-glue.mjs build/Release/synfin.node
import { createRequire } from 'node:module';
const require = createRequire(import.meta.url);
const a = require(process.argv[2] ?? new URL('../build/Release/synfin.node', import.meta.url).pathname);
const words = new Uint32Array([0,0,0,0x7f000001]);
const io = new Uint32Array(18); io[0] = 4; io.set(words, 1); io[5] = 80;
const p = new a.UpstreamPoller(new Int32Array(3 * a.UpstreamPoller.MAX_EVENTS), () => {}); p.unref(); a.upstreamBindIo(io);
const epfd = p.epfd;
const N = 100000;
const fs = {
  sockErr: () => a.upstreamSocketError(100000),
  register: () => a.upstreamRegisterIo(epfd, 100000, 0, 0),
  connect: () => { io[0] = 4; for (let i = 0; i < 4; i++) io[1 + i] = words[i]; io[5] = 80; io[6] = 0; return a.upstreamConnectIo(epfd, 0, 0, 100000, 0); },
};
const res = {};
for (let round = 0; round < 15; round++) for (const [n, f] of Object.entries(fs)) {
  const c0 = process.cpuUsage(); for (let i = 0; i < N; i++) f(); const c = process.cpuUsage(c0);
  (res[n] ??= []).push(c.user * 1000 / N);
}
for (const [n, r] of Object.entries(res)) { r.sort((x, y) => x - y); console.log(n.padEnd(8), 'user ns median', r[7].toFixed(0), 'q1', r[3].toFixed(0), 'q3', r[11].toFixed(0)); }
p.close();
